# A qcow2 backing chain through the mount, with qemu-img as the oracle: each layer's file reads
# like `qemu-img convert`, SEEK_DATA/SEEK_HOLE follow `qemu-img map` of the whole chain, st_blocks
# counts only a layer's own clusters, and writes through the top never change the base.
source "$(dirname "$0")/lib.sh" "$@"
command -v qemu-img >/dev/null || skip "qemu-img is not installed"
command -v qemu-io >/dev/null || skip "qemu-io is not installed"

M=$((1 << 20))
qemu-img create -q -f qcow2 "$TMP/base.qcow2" 16M
qemu-io -f qcow2 -c "write -P 0x11 1M 2M" -c "write -P 0x22 9M 64k" "$TMP/base.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$TMP/top.qcow2"
qemu-io -f qcow2 -c "write -P 0x33 2M 1M" -c "write -P 0x44 12M 128k" -c "write -z 9M 64k" "$TMP/top.qcow2" >/dev/null
qemu-img convert -O raw "$TMP/top.qcow2" "$TMP/top.expected"
qemu-img convert -O raw "$TMP/base.qcow2" "$TMP/base.expected"
qemu-img map --output=json "$TMP/top.qcow2" >"$TMP/top.map"

mount_fg --image "$TMP/top.qcow2,chain=vm"

step "layers and their data"
expect_eq "chain" "$(ls "$MNT/chains/vm" | tr '\n' ' ')" "0-top 1-base "
cmp "$MNT/nodes/top" "$TMP/top.expected" || fail "top reads differently from qemu-img convert"
cmp "$MNT/nodes/base" "$TMP/base.expected" || fail "base reads differently from qemu-img convert"
cmp "$MNT/chains/vm/1-base" "$TMP/base.expected" || fail "through the chain link"

step "SEEK_DATA / SEEK_HOLE follow the whole chain"
python3 - "$MNT/nodes/top" "$TMP/top.map" <<'EOF'
import errno, json, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
# Byte ranges that hold data anywhere in the chain (qemu-img map reports the chain).
data = [(e["start"], e["start"] + e["length"]) for e in json.load(open(sys.argv[2])) if e["data"]]
def is_data(pos):
    return any(a <= pos < b for a, b in data)
def next_change(pos, want_data):
    while pos < size and is_data(pos) != want_data:
        pos = min([b for a, b in data if a <= pos < b] + [a for a, b in data if a > pos] + [size])
    return pos
for start in [0, 1 << 20, (1 << 20) + 4096, 3 << 20, 9 << 20, (9 << 20) + 100, 12 << 20, size - 1]:
    want = next_change(start, True)
    try:
        got = os.lseek(fd, start, os.SEEK_DATA)
    except OSError as e:
        assert e.errno == errno.ENXIO and want >= size, (start, "ENXIO", want)
        got = size
    assert got == want, ("SEEK_DATA", start, got, want)
    got = os.lseek(fd, start, os.SEEK_HOLE)
    assert got == next_change(start, False), ("SEEK_HOLE", start, got)
EOF

step "st_blocks counts a layer's own clusters"
python3 - "$MNT/nodes/top" "$MNT/nodes/base" <<'EOF'
import os, sys
top, base = (os.stat(p).st_blocks * 512 for p in sys.argv[1:])
M = 1 << 20
assert M + 128 * 1024 <= top <= M + 128 * 1024 + 256 * 1024, top
assert 2 * M + 64 * 1024 <= base <= 2 * M + 64 * 1024 + 256 * 1024, base
EOF

step "writes through the top leave the base alone"
head -c $((3 * M)) /dev/urandom >"$TMP/chunk"
dd if="$TMP/chunk" of="$MNT/nodes/top" bs=64K seek=$((M / 65536 / 2)) conv=notrunc status=none
dd if="$TMP/chunk" of="$TMP/top.expected" bs=64K seek=$((M / 65536 / 2)) conv=notrunc status=none
fallocate -p -o $((12 * M)) -l 65536 "$MNT/nodes/top"
dd if=/dev/zero of="$TMP/top.expected" bs=64K seek=$((12 * M / 65536)) count=1 conv=notrunc status=none
cmp "$MNT/nodes/top" "$TMP/top.expected" || fail "top after writes"
cmp "$MNT/nodes/base" "$TMP/base.expected" || fail "base changed by writes through top"

step "grow the top"
truncate -s 20M "$MNT/nodes/top"
expect_eq "grown" "$(stat -c %s "$MNT/nodes/top")" "$((20 * M))"
truncate -s 20M "$TMP/top.expected"
cmp "$MNT/nodes/top" "$TMP/top.expected" || fail "after growing"

unmount
qemu-img check -q "$TMP/top.qcow2" || fail "qemu-img check top"
qemu-img check -q "$TMP/base.qcow2" || fail "qemu-img check base"
qemu-img compare -q -f qcow2 -F raw "$TMP/top.qcow2" "$TMP/top.expected" || fail "qemu-img compare top"
qemu-img compare -q -f qcow2 -F raw "$TMP/base.qcow2" "$TMP/base.expected" || fail "qemu-img compare base"
echo "PASS: $TEST_NAME"
