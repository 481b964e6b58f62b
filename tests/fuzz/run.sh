#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz and runs the qcow2 parser fuzzer for a
# bounded time (default 60 s) on a copy of the committed seed corpus. Usable from CI:
#   tests/fuzz/run.sh [SECONDS]
# Exit status is non-zero if the build fails or the fuzzer finds a crash (the reproducer is left
# in build-fuzz/findings/).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=${1:-60}
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCHAINFS_BUILD_FUZZ=ON -DCHAINFS_BUILD_TESTS=OFF -DCHAINFS_BUILD_BENCH=OFF \
  >/dev/null
cmake --build "$build" --target qcow2_fuzz -j2

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$root"/tests/fuzz/corpus/qcow2/* "$corpus"/
mkdir -p "$build/findings"
"$build/tests/fuzz/qcow2_fuzz" -max_total_time="$seconds" -max_len=262144 -timeout=20 \
  -rss_limit_mb=2048 -artifact_prefix="$build/findings/" -print_final_stats=1 "$corpus"
