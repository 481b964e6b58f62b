# Snapshots: one line through control/snapshot; a write of three lines whose second is refused
# (nothing applied, no file left); mode=existing onto an image made by qemu-img; relative overlay
# paths (the writer's folder for the control file, the client's for `chainfs snapshot`). Checked
# through the tree and, after unmounting, with qemu-img.
source "$(dirname "$0")/lib.sh" "$@"
command -v qemu-img >/dev/null || skip "qemu-img is not installed"
command -v qemu-io >/dev/null || skip "qemu-io is not installed"

make_chain "$TMP" 8
make_chain "$TMP" 8 b
make_chain "$TMP" 8 c
mkdir "$TMP/sub"
mount_fg --image "$TMP/top.qcow2,chain=vm" --image "$TMP/btop.qcow2,chain=b" \
         --image "$TMP/ctop.qcow2,chain=c"

step "one line through control/snapshot"
expect_eq "snapshot" "$(control snapshot "top $TMP/s1.qcow2\n")" "OK ok"
log_has "control/snapshot: 'top' onto $TMP/s1.qcow2: done" || fail "no log line"
expect_eq "chain vm" "$(layers vm)" "0-s1 1-top 2-mid 3-base"
same_bytes "$MNT/nodes/s1" "$TMP/ref.raw" || fail "the overlay reads other bytes than top did"
expect_eq "top no longer writable" "$(open_errno "$MNT/nodes/top" rw)" "EACCES"
printf 'into the overlay' | dd of="$MNT/nodes/s1" bs=1 seek=100 conv=notrunc status=none
same_bytes "$MNT/nodes/top" "$TMP/ref.raw" || fail "a write through the overlay reached top"
cp "$TMP/ref.raw" "$TMP/s1ref.raw"
printf 'into the overlay' | dd of="$TMP/s1ref.raw" bs=1 seek=100 conv=notrunc status=none

step "three lines, the second refused: nothing applied, no file left"
out=$(control snapshot "s1 $TMP/s2.qcow2\nbtop $TMP/nofolder/x.qcow2\nctop $TMP/s4.qcow2\n")
[[ "$out" == "ENOENT error ENOENT: "* ]] || fail "refused transaction: $out"
log_has "control/snapshot: 's1' onto $TMP/s2.qcow2, 'btop' onto $TMP/nofolder/x.qcow2, 'ctop' onto $TMP/s4.qcow2: refused (ENOENT), nothing applied" ||
  fail "no log line for the refused transaction: $(tail -3 "$MNT/log")"
expect_eq "chain vm kept" "$(layers vm)" "0-s1 1-top 2-mid 3-base"
expect_eq "chain b kept" "$(layers b)" "0-btop 1-bmid 2-bbase"
expect_eq "chain c kept" "$(layers c)" "0-ctop 1-cmid 2-cbase"
[ ! -e "$TMP/s2.qcow2" ] && [ ! -e "$TMP/s4.qcow2" ] || fail "files of the refused transaction left: $(ls "$TMP")"
[ ! -e "$MNT/nodes/s2" ] || fail "node of the refused transaction listed"

step "mode=existing onto an image made by qemu-img"
qemu-img create -q -f qcow2 "$TMP/ex.qcow2" 8M
expect_eq "existing" "$(control snapshot "btop $TMP/ex.qcow2 mode=existing name=exnode\n")" "OK ok"
expect_eq "chain b" "$(layers b)" "0-exnode 1-btop 2-bmid 3-bbase"
same_bytes "$MNT/nodes/exnode" "$TMP/bref.raw" || fail "the existing overlay reads other bytes"

step "relative overlay paths: the writer's folder, and the client's"
out=$(cd "$TMP/sub" && control snapshot "ctop rel.qcow2 name=crel\n")
expect_eq "relative through the control file" "$out" "OK ok"
[ -f "$TMP/sub/rel.qcow2" ] || fail "rel.qcow2 not in the writer's folder"
(cd "$TMP/sub" && "$CHAINFS" snapshot "$MNT" crel c2.qcow2 --name c2 exnode ../ex2.qcow2) >"$TMP/out" 2>"$TMP/err" ||
  fail "chainfs snapshot: $(cat "$TMP/err")"
[ -f "$TMP/sub/c2.qcow2" ] && [ -f "$TMP/ex2.qcow2" ] || fail "client overlays not where the client meant"
expect_eq "chain c" "$(layers c)" "0-c2 1-crel 2-ctop 3-cmid 4-cbase"
expect_eq "chain b" "$(layers b)" "0-ex2 1-exnode 2-btop 3-bmid 4-bbase"
same_bytes "$MNT/nodes/c2" "$TMP/cref.raw" || fail "c2 reads other bytes"
if "$CHAINFS" snapshot "$MNT" c2 "$TMP/sub/c2.qcow2" 2>"$TMP/err"; then fail "snapshot onto c2.qcow2 again succeeded"; fi
grep -q "refused (EEXIST)" "$TMP/err" || fail "the client does not say why: $(cat "$TMP/err")"

unmount
step "qemu-img agrees"
for img in s1.qcow2 ex.qcow2 sub/rel.qcow2 sub/c2.qcow2 ex2.qcow2; do
  qemu-img check -q "$TMP/$img" || fail "qemu-img check $img"
done
expect_eq "s1's chain" "$(backing_chain "$TMP/s1.qcow2")" "s1.qcow2 top.qcow2 mid.qcow2 base.qcow2"
expect_eq "ex2's chain" "$(backing_chain "$TMP/ex2.qcow2")" "ex2.qcow2 ex.qcow2 btop.qcow2 bmid.qcow2 bbase.qcow2"
expect_eq "c2's chain" "$(backing_chain "$TMP/sub/c2.qcow2")" "c2.qcow2 rel.qcow2 ctop.qcow2 cmid.qcow2 cbase.qcow2"
compare_image "$TMP/s1.qcow2" "$TMP/s1ref.raw"
compare_image "$TMP/top.qcow2" "$TMP/ref.raw"
compare_image "$TMP/ex2.qcow2" "$TMP/bref.raw"
compare_image "$TMP/sub/c2.qcow2" "$TMP/cref.raw"
echo "PASS: $TEST_NAME"
