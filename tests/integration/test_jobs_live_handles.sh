# A guest's open file follows the graph change (docs/fusefs.md "Moved handles"): an fd kept open
# on nodes/top (`exec 3<>`, written with pwrite on that same fd) through an active commit and its `complete` writes into base after the
# switch, nothing is lost and top gets nothing more; a reader of nodes/top keeps seeing top's own
# bytes (its cached pages are dropped where the moved fd wrote). A live snapshot with a writer
# open succeeds, the writer's later writes land in the overlay and the node keeps its
# point-in-time content. Checked through the node files and, after unmounting, qemu-img.
source "$(dirname "$0")/lib.sh" "$@"
command -v qemu-img >/dev/null || skip "qemu-img is not installed"
command -v qemu-io >/dev/null || skip "qemu-io is not installed"

for p in "" b; do make_chain "$TMP" 16 "$p"; done
{
  echo "nodes:"
  for p in "" b; do chain_nodes_yaml "$TMP" "$p"; done
  echo "chains:"
  echo "  - {name: vm, node: top}"
  echo "  - {name: b, node: btop}"
} >"$TMP/chains.yaml"
mount_fg --config "$TMP/chains.yaml"

# put FD OFFSET_KIB BYTE LEN_KIB [RAW...]: writes LEN_KIB KiB of BYTE at OFFSET_KIB through the
# open fd FD (inherited by python: the same open file, no reopen; pwrite in 4 KiB pieces, as a
# guest would), and the same bytes into each RAW file. (dd >&FD would seek from the fd's shared
# offset, and dd of=/proc/self/fd/FD would open the node file again.)
put() {
  local fd=$1 off=$2 byte=$3 len=$4; shift 4
  python3 -c "import sys; sys.stdout.buffer.write(bytes([$byte]) * ($len * 1024))" >"$TMP/chunk"
  python3 - "$fd" "$off" "$TMP/chunk" <<'PY' || fail "write through fd $fd"
import os, sys
fd, off, data = int(sys.argv[1]), int(sys.argv[2]) * 1024, open(sys.argv[3], "rb").read()
for i in range(0, len(data), 4096):
    assert os.pwrite(fd, data[i:i + 4096], off + i) == len(data[i:i + 4096])
PY
  local raw
  for raw in "$@"; do
    dd if="$TMP/chunk" of="$raw" bs=1K seek="$off" conv=notrunc status=none
  done
}
# byte_at FILE_OR_FD OFFSET: the byte at OFFSET (hex), read through a path or an open fd number.
byte_at() {
  python3 - "$1" "$2" <<'PY'
import os, sys
src, off = sys.argv[1], int(sys.argv[2])
fd = int(src) if src.isdigit() else os.open(src, os.O_RDONLY)
print(os.pread(fd, 1, off).hex())
if not src.isdigit():
    os.close(fd)
PY
}

step "active commit with a guest fd open on nodes/top from before the job to after complete"
cp "$TMP/ref.raw" "$TMP/expected.raw"
# top's own clusters: make_chain's [4M, 6M) of 0x33, then what the guest writes before the switch.
head -c 16M /dev/zero >"$TMP/topown.raw"
python3 -c "import sys; sys.stdout.buffer.write(b'\x33' * (2 << 20))" |
  dd of="$TMP/topown.raw" bs=1M seek=4 conv=notrunc status=none
exec 3<>"$MNT/nodes/top"
exec 4<"$MNT/nodes/top"  # a reader of top: it stays on top
put 3 0 0x61 64 "$TMP/expected.raw" "$TMP/topown.raw"
expect_eq "started" "$(control commit "top base=base id=ac\n")" "OK ok ac"
put 3 1024 0x62 64 "$TMP/expected.raw" "$TMP/topown.raw"
wait_job ac ready 20
put 3 2048 0x63 64 "$TMP/expected.raw" "$TMP/topown.raw"
expect_eq "reader sees top before the switch" "$(byte_at 4 4096)" "61"
expect_eq "complete" "$(control job "complete ac\n")" "OK ok"
wait_job ac concluded 20
expect_eq "ac error" "$(job_field ac error)" "~"
expect_eq "chain vm" "$(layers vm)" "0-base"
log_has "open writer(s) of 'top' moved to 'base'" || fail "no log line for the moved writer"
put 3 3072 0x64 64 "$TMP/expected.raw"
put 3 4 0x65 4 "$TMP/expected.raw"  # over data top holds itself
expect_eq "the moved fd reads its write" "$(byte_at 3 4096)" "65"
# The reader of top keeps top's own bytes: the pages the moved fd filled are dropped.
wait_until 5 bash -c "[ \"\$(python3 -c 'import os; print(os.pread(4, 1, 4096).hex())')\" = 61 ]" ||
  fail "the reader of top sees $(byte_at 4 4096) at 4096, written into base through the moved fd"
same_bytes "$MNT/nodes/base" "$TMP/expected.raw" || fail "base lacks a write of the guest"
exec 3>&- 4<&-

step "live snapshot of btop with a guest fd open: the writer moves to the overlay"
cp "$TMP/bref.raw" "$TMP/bpoint.raw"
exec 3<>"$MNT/nodes/btop"
put 3 0 0x71 64 "$TMP/bpoint.raw"
cp "$TMP/bpoint.raw" "$TMP/bexpected.raw"
expect_eq "snapshot" "$(control snapshot "btop $TMP/bsnap.qcow2\n")" "OK ok"
expect_eq "chain b" "$(layers b)" "0-bsnap 1-btop 2-bmid 3-bbase"
put 3 2048 0x72 64 "$TMP/bexpected.raw"
put 3 8 0x73 8 "$TMP/bexpected.raw"
exec 3>&-
same_bytes "$MNT/nodes/btop" "$TMP/bpoint.raw" || fail "btop changed after the snapshot"
same_bytes "$MNT/nodes/bsnap" "$TMP/bexpected.raw" || fail "bsnap lacks a write of the guest"

step "qemu-img agrees"
unmount
for img in base top bsnap btop; do
  qemu-img check -q "$TMP/$img.qcow2" || fail "qemu-img check $img.qcow2"
done
compare_image "$TMP/base.qcow2" "$TMP/expected.raw"
compare_image "$TMP/bsnap.qcow2" "$TMP/bexpected.raw"
compare_image "$TMP/btop.qcow2" "$TMP/bpoint.raw"
# top's own clusters (its backing left out) got nothing after the switch.
qemu-img convert -O raw \
  "json:{\"driver\":\"qcow2\",\"backing\":null,\"file\":{\"driver\":\"file\",\"filename\":\"$TMP/top.qcow2\"}}" \
  "$TMP/topnow.raw" || fail "qemu-img convert top.qcow2"
same_bytes "$TMP/topnow.raw" "$TMP/topown.raw" || fail "top.qcow2 got a write after the switch"
echo "PASS: $TEST_NAME"
