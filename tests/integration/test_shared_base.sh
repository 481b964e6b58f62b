# Two overlays on one base image, mounted with two --image: the base is one node with two parents
# (docs/interface.md "Images and nodes"). A commit into the shared base is refused (it would
# change what the other chain reads); streaming one overlay frees the base, which can then take
# the other's commit. Naming an image that is already open is refused with EBUSY. Checked through
# the node files and, after unmounting, with qemu-img.
source "$(dirname "$0")/lib.sh" "$@"
command -v qemu-img >/dev/null || skip "qemu-img is not installed"
command -v qemu-io >/dev/null || skip "qemu-io is not installed"

qemu-img create -q -f qcow2 "$TMP/base.qcow2" 16M
qemu-io -c "write -P 0x11 0 16M" "$TMP/base.qcow2" >/dev/null
for vm in 1 2; do
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$TMP/vm$vm.qcow2"
  qemu-io -c "write -P 0x$vm$vm $((vm * 2))M 1M" "$TMP/vm$vm.qcow2" >/dev/null
  qemu-img convert -O raw "$TMP/vm$vm.qcow2" "$TMP/ref$vm.raw"
done
mount_fg --image "$TMP/vm1.qcow2" --image "$TMP/vm2.qcow2"

step "one base node, listed in both chains"
expect_eq "chain vm1" "$(layers vm1)" "0-vm1 1-base"
expect_eq "chain vm2" "$(layers vm2)" "0-vm2 1-base"
[ ! -e "$MNT/nodes/base-2" ] || fail "base.qcow2 opened twice"
same_bytes "$MNT/nodes/vm1" "$TMP/ref1.raw" || fail "vm1 reads wrong bytes"
same_bytes "$MNT/nodes/vm2" "$TMP/ref2.raw" || fail "vm2 reads wrong bytes"

step "an image already open is refused"
out=$(control node "open $TMP/base.qcow2 chain=b\n")
[[ "$out" == "EBUSY error EBUSY: "*"already open as node 'base'" ]] || fail "open of base: $out"
log_has "control/node 'open $TMP/base.qcow2 chain=b': refused (EBUSY)" || fail "no log line"

step "a commit into the shared base is refused; nothing changes"
out=$(control commit "vm1\n")
[[ "$out" == "EBUSY error EBUSY: "* || "$out" == "EACCES error EACCES: "* ]] ||
  fail "commit into a shared base: $out"
log_has "control/commit: commit of 'vm1'" || fail "no log line for the refused commit"
same_bytes "$MNT/nodes/vm2" "$TMP/ref2.raw" || fail "vm2 changed"

step "stream vm1 frees the base; then vm2 commits into it"
expect_eq "stream" "$(control stream "vm1 id=s1\n")" "OK ok s1"
wait_job s1 concluded 60
expect_eq "s1 error" "$(job_field s1 error)" "~"
expect_eq "chain vm1" "$(layers vm1)" "0-vm1"
expect_eq "commit" "$(control commit "vm2 id=c2\n")" "OK ok c2"
wait_job c2 ready 60
expect_eq "complete" "$(control job "complete c2\n")" "OK ok"
wait_job c2 concluded 60
expect_eq "c2 error" "$(job_field c2 error)" "~"
expect_eq "chain vm2" "$(layers vm2)" "0-base"
same_bytes "$MNT/nodes/vm1" "$TMP/ref1.raw" || fail "vm1 reads wrong bytes after its stream"
same_bytes "$MNT/nodes/base" "$TMP/ref2.raw" || fail "base does not hold vm2's data"
unmount

step "the images, as qemu-img sees them"
for f in base vm1 vm2; do qemu-img check -q "$TMP/$f.qcow2" || fail "qemu-img check $f"; done
expect_eq "vm1 chain" "$(backing_chain "$TMP/vm1.qcow2")" "vm1.qcow2"
compare_image "$TMP/vm1.qcow2" "$TMP/ref1.raw"
compare_image "$TMP/base.qcow2" "$TMP/ref2.raw"
echo "PASS: $TEST_NAME"
