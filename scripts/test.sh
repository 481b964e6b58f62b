#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test:
#   1. Debug + ASan/UBSan build: all unit and integration tests (ctest);
#   2. ThreadSanitizer build: the concurrency-heavy unit tests (graph, io, jobs);
#   3. the qcow2 parser fuzzer for a bounded time on its seed corpus (clang, libFuzzer).
# Usage: scripts/test.sh [--quick]   (--quick: the ASan stage only)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
jobs=$(nproc)

stage() { printf '\n==== %s ====\n' "$*"; }

stage "set-up and ASan/UBSan build"
scripts/setup.sh debug
stage "tests (ASan/UBSan)"
(cd build-debug && ctest --output-on-failure -j"$jobs" --timeout 600)

[ "${1:-}" = "--quick" ] && exit 0

stage "ThreadSanitizer build (graph, io, jobs)"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCHAINFS_SANITIZE=thread >/dev/null
tsan_targets=()
for area in graph io jobs; do
  [ -d "tests/unit/$area" ] && tsan_targets+=("unit_$area")
done
if ((${#tsan_targets[@]})); then
  cmake --build build-tsan -j"$jobs" --target "${tsan_targets[@]}"
  stage "tests (TSan)"
  regex=$(IFS='|'; echo "${tsan_targets[*]/#unit_/}")
  (cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
     ctest --output-on-failure -j"$jobs" -R "^($regex)\\." --timeout 600)
fi

if [ -x tests/fuzz/run.sh ]; then
  stage "fuzzing (bounded)"
  tests/fuzz/run.sh "${FUZZ_SECONDS:-45}"
fi
stage "all tests passed"
