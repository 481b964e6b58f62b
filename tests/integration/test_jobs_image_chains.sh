# Jobs on chains mounted with --image only: the backing layers are found through the images'
# headers and opened read-only; a job reopens the layers it writes read-write for its run and
# read-only again at its end (docs/jobs.md, "Read-only layers"). An intermediate commit, an active
# commit (its base becomes the active layer and stays writable), a stream into a middle layer, and
# a chain the user opened read-only, where the same commit is refused with EROFS and a log line.
# Checked through the node files and, after unmounting, with qemu-img (check, compare,
# info --backing-chain).
source "$(dirname "$0")/lib.sh" "$@"
command -v qemu-img >/dev/null || skip "qemu-img is not installed"
command -v qemu-io >/dev/null || skip "qemu-io is not installed"

# refused_for_writing NODE: opening the node file for writing fails with EACCES or EROFS.
refused_for_writing() {
  case $(open_errno "$MNT/nodes/$1" rw) in
    EACCES | EROFS) ;;
    *) fail "$1 takes writers" ;;
  esac
}

for p in "" b c d; do make_chain "$TMP" 16 "$p"; done
qemu-img convert -O raw "$TMP/mid.qcow2" "$TMP/midview.raw"    # base after the commit
qemu-img convert -O raw "$TMP/cmid.qcow2" "$TMP/cmidview.raw"  # cmid after its stream
mount_fg --image "$TMP/top.qcow2" --image "$TMP/btop.qcow2" --image "$TMP/ctop.qcow2" \
         --image "$TMP/dtop.qcow2,read-only"
refused_for_writing base
refused_for_writing mid

step "intermediate commit of mid into base"
expect_eq "started" "$(control commit "mid base=base\n")" "OK ok commit0"
wait_job commit0 concluded 20
expect_eq "error" "$(job_field commit0 error)" "~"
expect_eq "chain" "$(layers top)" "0-top 1-base"
[ ! -e "$MNT/nodes/mid" ] || fail "mid (found through a header) still listed"
log_has "node 'base' reopened read-write" || fail "no log line for base going read-write"
log_has "node 'base' reopened read-only" || fail "no log line for base going back to read-only"
refused_for_writing base
same_bytes "$MNT/nodes/top" "$TMP/ref.raw" || fail "top reads other bytes after the commit"
same_bytes "$MNT/nodes/base" "$TMP/midview.raw" || fail "base does not read as mid did"

step "active commit of btop: bbase becomes the active layer and stays writable"
"$CHAINFS" commit "$MNT" btop --wait >"$TMP/out" 2>"$TMP/err" || fail "chainfs commit: $(cat "$TMP/err")"
id=$(sed -n 's/^started job //p' "$TMP/out")
expect_eq "type" "$(job_field "$id" type)" "active-commit"
printf 'written while ready' | dd of="$MNT/nodes/btop" bs=1 seek=8192 conv=notrunc status=none
printf 'written while ready' | dd of="$TMP/bref.raw" bs=1 seek=8192 conv=notrunc status=none
"$CHAINFS" job "$MNT" complete "$id" >/dev/null || fail "chainfs job complete"
wait_job "$id" concluded 20
expect_eq "error" "$(job_field "$id" error)" "~"
expect_eq "chain b" "$(layers btop)" "0-bbase"
expect_eq "bbase writable" "$(open_errno "$MNT/nodes/bbase" rw)" "OK"
printf 'written after the switch' | dd of="$MNT/nodes/bbase" bs=1 seek=65536 conv=notrunc status=none
printf 'written after the switch' | dd of="$TMP/bref.raw" bs=1 seek=65536 conv=notrunc status=none
same_bytes "$MNT/nodes/bbase" "$TMP/bref.raw" || fail "bbase lacks writes"

step "stream into the middle layer cmid (whole chain below it)"
expect_eq "started" "$(control stream "cmid\n")" "OK ok stream2"
wait_job stream2 concluded 20
expect_eq "error" "$(job_field stream2 error)" "~"
expect_eq "chain c" "$(layers ctop)" "0-ctop 1-cmid"
[ ! -e "$MNT/nodes/cbase" ] || fail "cbase still listed"
refused_for_writing cmid
same_bytes "$MNT/nodes/ctop" "$TMP/cref.raw" || fail "ctop reads other bytes after the stream"
same_bytes "$MNT/nodes/cmid" "$TMP/cmidview.raw" || fail "cmid reads other bytes after the stream"

step "a chain the user opened read-only: the same commit is refused with EROFS"
out=$(control commit "dmid base=dbase\n")
case $out in
  "EROFS error EROFS: commit into 'dbase': node 'dbase' is read-only as the user asked"*) ;;
  *) fail "commit into a read-only base: $out" ;;
esac
log_has "control/commit: commit of 'dmid' into 'dbase': refused (EROFS)" || fail "no log line for the refusal"
expect_eq "refused stream" "$(control stream "dmid\n" | cut -d' ' -f1)" "EROFS"
expect_eq "chain d" "$(layers dtop)" "0-dtop 1-dmid 2-dbase"

unmount
step "qemu-img agrees"
for img in top base bbase ctop cmid dtop dmid dbase; do
  qemu-img check -q "$TMP/$img.qcow2" || fail "qemu-img check $img"
done
expect_eq "top's chain" "$(backing_chain "$TMP/top.qcow2")" "top.qcow2 base.qcow2"
expect_eq "bbase's chain" "$(backing_chain "$TMP/bbase.qcow2")" "bbase.qcow2"
expect_eq "ctop's chain" "$(backing_chain "$TMP/ctop.qcow2")" "ctop.qcow2 cmid.qcow2"
expect_eq "dtop's chain" "$(backing_chain "$TMP/dtop.qcow2")" "dtop.qcow2 dmid.qcow2 dbase.qcow2"
compare_image "$TMP/top.qcow2" "$TMP/ref.raw"
compare_image "$TMP/base.qcow2" "$TMP/midview.raw"
compare_image "$TMP/bbase.qcow2" "$TMP/bref.raw"
compare_image "$TMP/ctop.qcow2" "$TMP/cref.raw"
compare_image "$TMP/cmid.qcow2" "$TMP/cmidview.raw"
compare_image "$TMP/dtop.qcow2" "$TMP/dref.raw"
echo "PASS: $TEST_NAME"
