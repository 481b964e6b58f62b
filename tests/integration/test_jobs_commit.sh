# Commit jobs on real qcow2 chains: an intermediate commit (a reader that keeps the base open sees
# the committed bytes: its cached pages are dropped), one through `chainfs commit --wait`, an
# active commit through `chainfs commit
# --wait` (returns at ready) and `chainfs job complete`, an active commit with guests writing and
# reading the active node file from its start to past ready, and a ready active commit cancelled
# (the chain stays on its top). Checked through the node files and, after unmounting, qemu-img.
# Chains vm, b and e are declared by name in a config: such layers are opened writable and held by
# the user, so committed-out layers stay listed until `control/node remove`. Chains c and d are
# opened with --image: their backing layers are read-only and the commit reopens its base
# read-write for the job (test_jobs_image_chains.sh has more of those).
source "$(dirname "$0")/lib.sh" "$@"
command -v qemu-img >/dev/null || skip "qemu-img is not installed"
command -v qemu-io >/dev/null || skip "qemu-io is not installed"

for p in "" b d e; do make_chain "$TMP" 16 "$p"; done
make_chain "$TMP" 32 c
qemu-img convert -O raw "$TMP/mid.qcow2" "$TMP/midview.raw"  # what base reads after the commit
{
  echo "nodes:"
  for p in "" b e; do chain_nodes_yaml "$TMP" "$p"; done
  echo "chains:"
  for p in "" b e; do echo "  - {name: ${p:-vm}, node: ${p}top}"; done
} >"$TMP/chains.yaml"
mount_fg --config "$TMP/chains.yaml" --image "$TMP/ctop.qcow2,chain=c" --image "$TMP/dtop.qcow2,chain=d"

step "intermediate commit through control/commit; an open reader of base sees the new bytes"
python3 - "$MNT" "$TMP/midview.raw" <<'PY' || fail "intermediate commit"
import os, sys, time
mnt, midview = sys.argv[1], sys.argv[2]
at = 2 << 20  # mid's data starts at SIZE/8 = 2 MiB; base holds 0x11 there
fd = os.open(f"{mnt}/nodes/base", os.O_RDONLY)
assert os.pread(fd, 65536, at) == b"\x11" * 65536  # cached now
c = os.open(f"{mnt}/control/commit", os.O_RDWR)
os.write(c, b"mid base=base\n")
assert os.read(c, 100) == b"ok commit0\n"
os.close(c)
for _ in range(400):
    status = open(f"{mnt}/jobs/commit0").read()
    if "state: concluded" in status:
        break
    time.sleep(0.05)
assert "state: concluded" in status and "error: ~" in status, status
assert "type: commit\n" in status, status
# The same descriptor, no reopen: the kernel's cached pages were dropped.
for _ in range(40):
    if os.pread(fd, 65536, at) == b"\x22" * 65536:
        break
    time.sleep(0.05)
whole = b"".join(os.pread(fd, 1 << 20, off) for off in range(0, 16 << 20, 1 << 20))
assert whole == open(midview, "rb").read(), "base does not read as mid did"
os.close(fd)
PY
expect_eq "chain vm" "$(layers vm)" "0-top 1-base"
expect_eq "mid, unreferenced now, removed" "$(control node "remove mid\n")" "OK ok"
[ ! -e "$MNT/nodes/mid" ] || fail "mid still listed"
same_bytes "$MNT/nodes/top" "$TMP/ref.raw" || fail "top reads other bytes after the commit"

step "intermediate commit through the client, --wait"
"$CHAINFS" commit "$MNT" emid --base ebase --speed 8M --wait >"$TMP/out" 2>"$TMP/err" ||
  fail "chainfs commit: $(cat "$TMP/err")"
id=$(sed -n 's/^started job //p' "$TMP/out")
grep -qx "job $id completed" "$TMP/out" || fail "--wait did not report the end: $(cat "$TMP/out")"
expect_eq "type" "$(job_field "$id" type)" "commit"
expect_eq "chain e" "$(layers e)" "0-etop 1-ebase"
same_bytes "$MNT/nodes/etop" "$TMP/eref.raw" || fail "etop reads other bytes after the commit"

step "active commit through the client: --wait returns at ready, job complete finishes it"
"$CHAINFS" commit "$MNT" btop --wait >"$TMP/out" 2>"$TMP/err" || fail "chainfs commit: $(cat "$TMP/err")"
id=$(sed -n 's/^started job //p' "$TMP/out")
expect_eq "type" "$(job_field "$id" type)" "active-commit"
expect_eq "state" "$(job_field "$id" state)" "ready"
grep -qF "chainfs job $MNT complete $id" "$TMP/out" || fail "no hint to complete: $(cat "$TMP/out")"
"$CHAINFS" job "$MNT" complete "$id" >"$TMP/out" || fail "chainfs job complete"
wait_job "$id" concluded 20
expect_eq "error" "$(job_field "$id" error)" "~"
expect_eq "chain b" "$(layers b)" "0-bbase"
# The committed-out layers are the user's (config) and still read through bbase, so bbase takes
# no writer until they are removed.
expect_eq "bbase read-only while bmid reads it" "$(open_errno "$MNT/nodes/bbase" rw)" "EACCES"
expect_eq "remove bmid while btop uses it" "$(control node "remove bmid\n" | cut -d' ' -f1)" "EBUSY"
expect_eq "remove btop" "$(control node "remove btop\nremove bmid\n")" "OK ok"
[ ! -e "$MNT/nodes/btop" ] && [ ! -e "$MNT/nodes/bmid" ] || fail "removed layers still listed"
expect_eq "bbase writable" "$(open_errno "$MNT/nodes/bbase" rw)" "OK"
same_bytes "$MNT/nodes/bbase" "$TMP/bref.raw" || fail "bbase differs from what btop read"

step "guests write and read the active node file through an active commit"
expect_eq "started" "$(control commit "ctop speed=16M id=ac\n")" "OK ok ac"
state=$(job_field ac state)
[ "$state" = running ] || [ "$state" = created ] || fail "the commit should still copy: $state"
guest_io ctop "$TMP/cref.raw" 4 true  # ~2 s copying, then mirroring while ready
wait_job ac ready 20
expect_eq "complete" "$(control job "complete ac\n")" "OK ok"
wait_job ac concluded 20
expect_eq "ac error" "$(job_field ac error)" "~"
expect_eq "chain c" "$(layers c)" "0-cbase"
same_bytes "$MNT/nodes/cbase" "$TMP/cref.raw" || fail "cbase lacks guest writes"
# cbase was a backing layer found through a header; now it is the active layer: it stays writable.
[ ! -e "$MNT/nodes/ctop" ] && [ ! -e "$MNT/nodes/cmid" ] || fail "committed-out layers still listed"
expect_eq "cbase writable" "$(open_errno "$MNT/nodes/cbase" rw)" "OK"

step "a ready active commit cancelled: the chain stays on its top"
expect_eq "started" "$(control commit "dtop id=dc\n")" "OK ok dc"
wait_job dc ready 20
printf 'written while ready' | dd of="$MNT/nodes/dtop" bs=1 seek=4096 conv=notrunc status=none
printf 'written while ready' | dd of="$TMP/dref.raw" bs=1 seek=4096 conv=notrunc status=none
expect_eq "cancel" "$(control job "cancel dc\n")" "OK ok"
wait_job dc concluded 20
[ "$(job_field dc error)" != "~" ] || fail "a cancelled job has no error"
expect_eq "chain d" "$(layers d)" "0-dtop 1-dmid 2-dbase"
same_bytes "$MNT/nodes/dtop" "$TMP/dref.raw" || fail "dtop lost bytes"
expect_eq "dtop writable" "$(open_errno "$MNT/nodes/dtop" rw)" "OK"
case $(open_errno "$MNT/nodes/dbase" rw) in EACCES | EROFS) ;; *) fail "dbase takes writers" ;; esac
log_has "node 'dbase' reopened read-only" || fail "no log line for dbase going back to read-only"

unmount
step "qemu-img agrees"
for img in top base bbase cbase dtop dmid dbase etop ebase; do
  qemu-img check -q "$TMP/$img.qcow2" || fail "qemu-img check $img"
done
expect_eq "top's chain" "$(backing_chain "$TMP/top.qcow2")" "top.qcow2 base.qcow2"
expect_eq "dtop's chain" "$(backing_chain "$TMP/dtop.qcow2")" "dtop.qcow2 dmid.qcow2 dbase.qcow2"
compare_image "$TMP/top.qcow2" "$TMP/ref.raw"
compare_image "$TMP/base.qcow2" "$TMP/midview.raw"
compare_image "$TMP/bbase.qcow2" "$TMP/bref.raw"
compare_image "$TMP/cbase.qcow2" "$TMP/cref.raw"
compare_image "$TMP/dtop.qcow2" "$TMP/dref.raw"
compare_image "$TMP/etop.qcow2" "$TMP/eref.raw"
expect_eq "etop's chain" "$(backing_chain "$TMP/etop.qcow2")" "etop.qcow2 ebase.qcow2"
echo "PASS: $TEST_NAME"
