#!/usr/bin/env bash
# The main job, end to end: install what is missing, build, create a sample 3-layer qcow2 chain,
# mount it with chainfs, show the tree, read it with ordinary tools, then edit the chain while it
# is mounted (live snapshot, intermediate commit, a write, stream), unmount, and check the images
# with qemu-img.
# Usage: scripts/demo.sh [WORKDIR]   (default: ./demo, recreated)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh" release chainfs
chainfs="$here/build/chainfs"

work=$(realpath -m "${1:-$here/demo}")
rm -rf "$work"; mkdir -p "$work/mnt"
cd "$work"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

say "create a chain: base.qcow2 <- mid.qcow2 <- top.qcow2 (64 MiB, different data per layer)"
qemu-img create -q -f qcow2 base.qcow2 64M
qemu-io -f qcow2 -c "write -q -P 0xaa 0 16M" base.qcow2
"$chainfs" create mid.qcow2 64M --backing base.qcow2
qemu-io -f qcow2 -c "write -q -P 0xbb 8M 8M" mid.qcow2
"$chainfs" create top.qcow2 64M --backing mid.qcow2
qemu-io -f qcow2 -c "write -q -P 0xcc 12M 1M" top.qcow2

cleanup() { fusermount3 -u "$work/mnt" 2>/dev/null || true; }
trap cleanup EXIT
run "$chainfs" mount "$work/mnt" --image "$work/top.qcow2"
run find mnt -maxdepth 3 | sort
run ls -l mnt/chains/top/
run du -k mnt/nodes/base mnt/nodes/mid mnt/nodes/top
say "dd: the 1 MiB at 12 MiB reads the top layer's bytes, 8 MiB the mid's, 0 the base's"
for off in 0 8 12; do
  printf '  at %2s MiB: ' "$off"
  dd if=mnt/nodes/top of=piece bs=1M skip="$off" count=1 status=none
  od -An -tx1 -N4 piece
done
say "cmp the node file with qemu-img's own flattening of the chain"
qemu-img convert -O raw top.qcow2 flat.raw
cmp mnt/nodes/top flat.raw && echo "  identical"
run cat mnt/graph.json

say "live snapshot: snap.qcow2 becomes the chain's active layer, above top"
run "$chainfs" snapshot "$work/mnt" top "$work/snap.qcow2"
run ls -l mnt/chains/top/
say "intermediate commit: mid's data goes into base, and top now backs onto base"
run "$chainfs" commit "$work/mnt" mid --wait
run ls -l mnt/chains/top/
say "a guest-style write into the active layer (1 MiB of 0xdd at 20 MiB), the same on the flat copy"
printf '\xdd%.0s' $(seq 1 1048576) > piece
dd if=piece of=mnt/nodes/snap bs=1M seek=20 conv=notrunc status=none
dd if=piece of=flat.raw bs=1M seek=20 conv=notrunc status=none
say "stream: everything the chain below shows is copied into snap, which then stands alone"
run "$chainfs" stream "$work/mnt" snap --wait
run ls -l mnt/chains/top/
cmp mnt/nodes/snap flat.raw && echo "  snap holds exactly the chain's data plus the write"
run fusermount3 -u mnt
trap - EXIT
run qemu-img info --backing-chain snap.qcow2
run qemu-img check -q snap.qcow2 && echo "  qemu-img check snap.qcow2: clean"
run qemu-img check -q top.qcow2 && echo "  qemu-img check top.qcow2: clean"
run qemu-img check -q base.qcow2 && echo "  qemu-img check base.qcow2: clean"
qemu-img compare -q snap.qcow2 flat.raw && echo "  qemu-img compare snap.qcow2 flat.raw: identical"
