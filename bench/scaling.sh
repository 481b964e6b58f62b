#!/usr/bin/env bash
# One command: set up (packages, release build of chainfs), then the scaling tables.
# Usage: bench/scaling.sh [scaling.py options]   e.g. bench/scaling.sh --depths 1,10,100 --repeat 1
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh" release chainfs >/dev/null
exec python3 "$here/bench/scaling.py" --chainfs "$here/build/chainfs" "$@"
