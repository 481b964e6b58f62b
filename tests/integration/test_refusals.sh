# Every refusal with its errno: writing a protocol node, a filter's child, a backing layer or
# anything in a read-only mount (EACCES/EROFS, for root too); shrinking (EINVAL); the control/node
# errors (ENOENT, EEXIST, EBUSY, EINVAL) with their read-back line and their log line. (The
# refusals of the job files: test_jobs_refusals.sh.)
source "$(dirname "$0")/lib.sh" "$@"
command -v qemu-img >/dev/null || skip "qemu-img is not installed"

truncate -s 4M "$TMP/plain.raw"
truncate -s 4M "$TMP/spare.raw"
qemu-img create -q -f qcow2 "$TMP/base.qcow2" 8M
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$TMP/top.qcow2"
cat >"$TMP/graph.yaml" <<EOF
nodes:
  - name: plain
    driver: raw
    file: $TMP/plain.raw
  - name: flaky
    driver: fault
    child: plain
    rules:
      - {op: read, offset: 1048576, length: 512, errno: EIO, count: 1}
images:
  - path: $TMP/top.qcow2
    chain: vm
EOF
mount_fg --config "$TMP/graph.yaml"

is_refused() {  # is_refused WHAT ERRNO...: the last output must be one of the errnos
  local what=$1 got=$2; shift 2
  for want in "$@"; do [ "$got" = "$want" ] && return 0; done
  fail "$what: got $got, expected one of $*"
}

step "writers refused by the graph"
expect_eq "chain layers" "$(ls "$MNT/chains/vm" | tr '\n' ' ')" "0-top 1-base "
is_refused "backing layer" "$(open_errno "$MNT/nodes/base" w)" EACCES EROFS
is_refused "backing layer rw" "$(open_errno "$MNT/nodes/base" rw)" EACCES EROFS
is_refused "protocol node" "$(open_errno "$MNT/nodes/top.file" w)" EACCES EROFS
is_refused "filter's child" "$(open_errno "$MNT/nodes/plain" w)" EACCES EROFS
expect_eq "backing layer read" "$(open_errno "$MNT/nodes/base" r)" "OK"
expect_eq "active layer" "$(open_errno "$MNT/nodes/top" rw)" "OK"
expect_eq "filter" "$(open_errno "$MNT/nodes/flaky" rw)" "OK"
expect_eq "backing mode" "$(stat -c %a "$MNT/nodes/base")" "444"
is_refused "truncate a backing layer" "$(python3 -c "
import errno, os
try: os.truncate('$MNT/nodes/base', 16 << 20); print('OK')
except OSError as e: print(errno.errorcode[e.errno])")" EACCES EROFS

step "shrinking is refused"
expect_eq "shrink qcow2" "$(python3 -c "
import errno, os
try: os.truncate('$MNT/nodes/top', 1 << 20); print('OK')
except OSError as e: print(errno.errorcode[e.errno])")" "EINVAL"
expect_eq "size kept" "$(stat -c %s "$MNT/nodes/top")" "$((8 << 20))"

step "an injected I/O error reaches the reader as EIO"
expect_eq "faulty read" "$(python3 -c "
import errno, os
fd = os.open('$MNT/nodes/flaky', os.O_RDONLY | os.O_DIRECT)
import mmap
buf = mmap.mmap(-1, 4096)
try: os.preadv(fd, [buf], 1048576); print('OK')
except OSError as e: print(errno.errorcode[e.errno])")" "EIO"

step "control/node refusals: errno, read-back line and log line"
out=$(control node "remove nosuch\n")
expect_eq "unknown node" "$out" "ENOENT error ENOENT: no node 'nosuch'"
log_has "control/node 'remove nosuch': refused (ENOENT)" || fail "no log line for ENOENT"
out=$(control node "remove plain\n")
[[ "$out" == "EBUSY error EBUSY: "*"plain"* ]] || fail "referenced node: $out"
log_has "control/node 'remove plain': refused (EBUSY)" || fail "no log line for EBUSY"
out=$(control node "open $TMP/plain.raw chain=vm\n")
expect_eq "chain taken" "$out" "EEXIST error EEXIST: chain 'vm' already exists"
log_has "control/node 'open $TMP/plain.raw chain=vm': refused (EEXIST)" || fail "no log line for EEXIST"
out=$(control node "open $TMP/plain.raw chain=again\n")
[[ "$out" == "EBUSY error EBUSY: "*"already open as node 'plain'" ]] || fail "image open twice: $out"
log_has "control/node 'open $TMP/plain.raw chain=again': refused (EBUSY)" || fail "no log line for an image open twice"
out=$(control node "open $TMP/none.raw\n")
[[ "$out" == "ENOENT error ENOENT: "*"none.raw"* ]] || fail "missing image: $out"
out=$(control node "open\n")
[[ "$out" == "EINVAL error EINVAL: usage: open PATH"* ]] || fail "open without path: $out"
out=$(control node "frobnicate x\n")
[[ "$out" == "EINVAL error EINVAL: unknown command 'frobnicate'"* ]] || fail "bad verb: $out"
out=$(control node "close vm extra\n")
[[ "$out" == "EINVAL error EINVAL: usage: close CHAIN" ]] || fail "bad arity: $out"
out=$(control node "open $TMP/plain.raw color=red\n")
[[ "$out" == "EINVAL error EINVAL: unknown option 'color"* ]] || fail "bad option: $out"
log_has "control/node 'frobnicate x': refused (EINVAL)" || fail "no log line for EINVAL"

step "several lines run in order and stop at the first refusal"
out=$(control node "open $TMP/spare.raw chain=p1 name=p1\nremove nosuch\nclose p1\n")
expect_eq "stops at the refusal" "$out" "ENOENT error ENOENT: no node 'nosuch'"
[ -e "$MNT/chains/p1" ] || fail "the line before the refusal did not run"
expect_eq "close p1" "$(control node "close p1\n")" "OK ok"

step "removing a user-held node"
truncate -s 1M "$TMP/extra.raw"
out=$(control node "remove flaky\n")
expect_eq "remove filter" "$out" "OK ok"
[ ! -e "$MNT/nodes/flaky" ] || fail "removed node still listed"
expect_eq "remove plain now" "$(control node "remove plain\n")" "OK ok"

unmount

step "a read-only mount"
mount_fg --image "$TMP/top.qcow2" --read-only
is_refused "read-only mount, active layer" "$(open_errno "$MNT/nodes/top" w)" EROFS EACCES
expect_eq "read-only mount mode" "$(stat -c %a "$MNT/nodes/top")" "444"
expect_eq "read works" "$(open_errno "$MNT/nodes/top" r)" "OK"
expect_eq "control still works" "$(control node "open $TMP/plain.raw chain=ro\n")" "OK ok"
is_refused "read-only mount, new chain" "$(open_errno "$MNT/nodes/plain" w)" EROFS EACCES
unmount
qemu-img check -q "$TMP/top.qcow2" || fail "qemu-img check"
echo "PASS: $TEST_NAME"
