#!/usr/bin/env bash
# Installs the Debian packages chainfs needs (only those missing), then configures and builds.
# Usage: scripts/setup.sh [debug|release|tsan|all] [TARGET...]   (default: release, all targets)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

packages=(
  cmake ninja-build g++ pkg-config
  libfuse3-dev fuse3 liburing-dev libyaml-cpp-dev libspdlog-dev
  zlib1g-dev libzstd-dev libgtest-dev libgmock-dev libbenchmark-dev
  qemu-utils qemu-system-common fio clang python3
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing missing packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build() {  # build <dir> <cmake args...>
  local dir=$1; shift
  cmake -S "$here" -B "$here/$dir" -G Ninja "$@" >/dev/null
  cmake --build "$here/$dir" -j"$(nproc)" ${targets[@]:+--target "${targets[@]}"}
}
mode=${1:-release}
shift || true
targets=("$@")

case "$mode" in
  release) build build -DCMAKE_BUILD_TYPE=Release ;;
  debug)   build build-debug -DCMAKE_BUILD_TYPE=Debug -DCHAINFS_SANITIZE=address ;;
  tsan)    build build-tsan -DCMAKE_BUILD_TYPE=Debug -DCHAINFS_SANITIZE=thread ;;
  all)     build build -DCMAKE_BUILD_TYPE=Release
           build build-debug -DCMAKE_BUILD_TYPE=Debug -DCHAINFS_SANITIZE=address ;;
  *) echo "usage: scripts/setup.sh [debug|release|tsan|all]" >&2; exit 2 ;;
esac
