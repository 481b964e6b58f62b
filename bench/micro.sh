#!/usr/bin/env bash
# Builds bench_micro in a Release build folder (build-bench, -DCHAINFS_BUILD_BENCH=ON) and runs it.
# Usage: bench/micro.sh [Google Benchmark flags]   e.g. bench/micro.sh --benchmark_filter=Qcow2
# The default run takes well under a minute (--benchmark_min_time=0.2 per benchmark).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build="$here/build-bench"
if ! pkg-config --exists benchmark 2>/dev/null && [ ! -d /usr/lib/x86_64-linux-gnu/cmake/benchmark ] \
    && [ ! -d /usr/lib/cmake/benchmark ]; then
  echo "micro.sh: Google Benchmark is missing (scripts/setup.sh installs libbenchmark-dev)" >&2
  exit 1
fi
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCHAINFS_BUILD_BENCH=ON \
  -DCHAINFS_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_micro
exec "$build/bench/bench_micro" "$@"
