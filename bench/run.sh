#!/usr/bin/env bash
# One command: set up (packages, release build), then the side-by-side benchmark table.
# Usage: bench/run.sh [bench.py options]   e.g. bench/run.sh --size-mib 512 --repeat 1
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh" release chainfs >/dev/null
exec python3 "$here/bench/bench.py" "$@"
