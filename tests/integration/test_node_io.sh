# Reading and writing node files: unaligned offsets across request boundaries, 1 MiB requests,
# concurrent readers and writers, the end of the node, fsync, fallocate, SEEK_DATA/SEEK_HOLE,
# st_blocks and growing by truncate. Raw images, checked against the host file.
source "$(dirname "$0")/lib.sh" "$@"

SIZE_MIB=24
truncate -s ${SIZE_MIB}M "$TMP/disk.raw"
cp --sparse=always "$TMP/disk.raw" "$TMP/expected"
mount_fg --image "$TMP/disk.raw" --log-level trace --threads 4
NODE=$MNT/nodes/disk

step "unaligned writes and reads across request boundaries"
python3 - "$NODE" "$TMP/expected" <<'EOF'
import os, random, sys
node, expected = sys.argv[1], sys.argv[2]
rng = random.Random(7)
size = os.path.getsize(expected)
fd = os.open(node, os.O_RDWR)
ef = os.open(expected, os.O_RDWR)
# Odd offsets and lengths, several crossing 1 MiB and 128 KiB boundaries.
cases = [(1, 3), (4095, 2), (131071, 131074), ((1 << 20) - 7, (1 << 20) + 13), (3 * (1 << 20) + 511, 3 * (1 << 20) + 1)]
cases += [(rng.randrange(0, size - (5 << 20)), rng.randrange(1, 3 << 20)) for _ in range(12)]
for off, length in cases:
    data = rng.randbytes(length)
    assert os.pwrite(fd, data, off) == length, (off, length)
    os.pwrite(ef, data, off)
for off, length in cases + [(rng.randrange(0, size - 1), rng.randrange(1, 2 << 20)) for _ in range(20)]:
    got = os.pread(fd, length, off)
    want = os.pread(ef, length, off)
    assert got == want, ("mismatch", off, length)
os.close(fd)
os.close(ef)
EOF
cmp "$NODE" "$TMP/expected" || fail "node differs from the expected bytes"
cmp "$TMP/disk.raw" "$TMP/expected" || fail "host file differs from the expected bytes"

step "1 MiB requests reach the node"
dd if=/dev/urandom of="$TMP/block" bs=1M count=4 status=none
dd if="$TMP/block" of="$NODE" bs=1M seek=8 conv=notrunc status=none
dd if="$NODE" of="$TMP/back" bs=1M skip=8 count=4 iflag=direct status=none
cmp "$TMP/block" "$TMP/back" || fail "1 MiB blocks read back differently"
dd if="$TMP/block" of="$TMP/expected" bs=1M seek=8 conv=notrunc status=none
writes=$(grep -c "write node 'disk' offset [0-9]* length 1048576" "$DAEMON_LOG" || true)
reads=$(grep -c "read node 'disk' offset [0-9]* length 1048576" "$DAEMON_LOG" || true)
[ "$writes" -ge 4 ] || fail "expected 1 MiB write requests, saw $writes"
[ "$reads" -ge 4 ] || fail "expected 1 MiB read requests, saw $reads"

step "concurrent writers on disjoint ranges, concurrent readers"
pids=()
for i in 0 1 2 3 4 5; do
  head -c $((2 << 20)) /dev/urandom >"$TMP/part$i"
  dd if="$TMP/part$i" of="$TMP/expected" bs=64K seek=$((i * 32 + 192)) conv=notrunc status=none
done
for i in 0 1 2 3 4 5; do
  flag=$([ $((i % 2)) = 0 ] && echo "oflag=direct" || echo "")
  dd if="$TMP/part$i" of="$NODE" bs=64K seek=$((i * 32 + 192)) conv=notrunc $flag status=none &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a writer failed"; done
pids=()
for i in 0 1 2 3; do
  cmp "$NODE" "$TMP/expected" >"$TMP/cmp$i" 2>&1 &
  pids+=($!)
done
for i in 0 1 2 3; do wait "${pids[$i]}" || fail "concurrent reader $i: $(cat "$TMP/cmp$i")"; done

step "the end of the node"
python3 - "$NODE" <<'EOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
size = os.fstat(fd).st_size
try:
    os.pwrite(fd, b"x" * 10, size)
    raise SystemExit("write at the end succeeded")
except OSError as e:
    assert e.errno == errno.ENOSPC, errno.errorcode[e.errno]
n = os.pwrite(fd, b"y" * 4096, size - 100)
assert n == 100, n  # a write that crosses the end writes what fits
assert os.pread(fd, 200, size - 100) == b"y" * 100
assert os.pread(fd, 10, size + 10) == b""
os.close(fd)
EOF
printf 'y%.0s' $(seq 100) | dd of="$TMP/expected" bs=1 seek=$((SIZE_MIB * 1048576 - 100)) conv=notrunc status=none

step "O_TRUNC keeps the node's length"
echo "short" >"$NODE"
expect_eq "size after O_TRUNC" "$(stat -c %s "$NODE")" "$((SIZE_MIB << 20))"
printf 'short\n' | dd of="$TMP/expected" conv=notrunc status=none
cmp "$NODE" "$TMP/expected" || fail "O_TRUNC write"

step "fsync"
python3 -c "
import os
fd = os.open('$NODE', os.O_RDWR)
os.pwrite(fd, b'synced!', 12345)
os.fsync(fd); os.fdatasync(fd)
os.close(fd)"
printf 'synced!' | dd of="$TMP/expected" bs=1 seek=12345 conv=notrunc status=none
cmp "$TMP/disk.raw" "$TMP/expected" || fail "host file after fsync"

step "fallocate: punch hole, zero range, other modes"
fallocate -p -o 1M -l 1M "$NODE"
dd if=/dev/zero of="$TMP/expected" bs=1M seek=1 count=1 conv=notrunc status=none
fallocate -z -o 5000 -l 70000 "$NODE"
dd if=/dev/zero of="$TMP/expected" bs=1 seek=5000 count=70000 conv=notrunc status=none
cmp "$NODE" "$TMP/expected" || fail "fallocate results"
if fallocate -o 0 -l 4096 "$NODE" 2>"$TMP/err"; then fail "plain fallocate succeeded"; fi
grep -q "not supported" "$TMP/err" || fail "plain fallocate: $(cat "$TMP/err")"

step "SEEK_DATA / SEEK_HOLE and st_blocks"
# A fresh sparse node: data at 2 MiB and 6 MiB only.
truncate -s 8M "$TMP/sparse.raw"
expect_eq "open sparse" "$(control node "open $TMP/sparse.raw\n")" "OK ok"
dd if=/dev/urandom of="$MNT/nodes/sparse" bs=64K count=1 seek=32 conv=notrunc status=none
dd if=/dev/urandom of="$MNT/nodes/sparse" bs=64K count=2 seek=96 conv=notrunc status=none
python3 - "$MNT/nodes/sparse" <<'EOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
M = 1 << 20
assert os.lseek(fd, 0, os.SEEK_DATA) == 2 * M
assert os.lseek(fd, 0, os.SEEK_HOLE) == 0
assert os.lseek(fd, 2 * M, os.SEEK_HOLE) == 2 * M + 65536
assert os.lseek(fd, 2 * M + 65536, os.SEEK_DATA) == 6 * M
assert os.lseek(fd, 6 * M, os.SEEK_HOLE) == 6 * M + 2 * 65536
try:
    os.lseek(fd, 6 * M + 2 * 65536, os.SEEK_DATA)
    raise SystemExit("SEEK_DATA past the last data succeeded")
except OSError as e:
    assert e.errno == errno.ENXIO
try:
    os.lseek(fd, 8 * M, os.SEEK_HOLE)
    raise SystemExit("SEEK_HOLE at the end succeeded")
except OSError as e:
    assert e.errno == errno.ENXIO
blocks = os.fstat(fd).st_blocks
assert 3 * 65536 // 512 <= blocks <= 3 * 65536 // 512 + 64, blocks
EOF
cp --sparse=always "$MNT/nodes/sparse" "$TMP/copy"
cmp "$TMP/copy" "$TMP/sparse.raw" || fail "cp --sparse of the node"

step "truncate grows the node"
truncate -s 32M "$NODE"
expect_eq "grown size" "$(stat -c %s "$NODE")" "$((32 << 20))"
expect_eq "host size" "$(stat -c %s "$TMP/disk.raw")" "$((32 << 20))"
truncate -s 32M "$TMP/expected"
cmp "$NODE" "$TMP/expected" || fail "after growing"

unmount
cmp "$TMP/disk.raw" "$TMP/expected" || fail "host file after unmount"
echo "PASS: $TEST_NAME"
