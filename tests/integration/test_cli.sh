# The command line: help, exit codes (0 ok, 1 refused/failed, 2 usage), `chainfs create` checked
# with qemu-img, and the client verbs' argument checks.
source "$(dirname "$0")/lib.sh" "$@"

# rc COMMAND...: prints the exit code.
rc() { local r=0; "$@" >"$TMP/out" 2>"$TMP/err" || r=$?; echo "$r"; }

step "help"
expect_eq "--help" "$(rc "$CHAINFS" --help)" "0"
grep -q "^Usage: chainfs COMMAND" "$TMP/out" || fail "--help text"
for cmd in mount create status stream commit snapshot job; do
  expect_eq "$cmd --help" "$(rc "$CHAINFS" "$cmd" --help)" "0"
  grep -q "^Usage: chainfs $cmd" "$TMP/out" || fail "$cmd --help text: $(cat "$TMP/out")"
done
expect_eq "help mount" "$(rc "$CHAINFS" help mount)" "0"

step "usage errors exit 2"
expect_eq "no command" "$(rc "$CHAINFS")" "2"
expect_eq "unknown command" "$(rc "$CHAINFS" frobnicate)" "2"
grep -q "unknown command 'frobnicate'" "$TMP/err" || fail "unknown command message"
expect_eq "unknown option" "$(rc "$CHAINFS" mount "$MNT" --colour)" "2"
grep -q "unknown option '--colour'" "$TMP/err" || fail "unknown option message"
expect_eq "missing mountpoint" "$(rc "$CHAINFS" mount)" "2"
expect_eq "bad threads" "$(rc "$CHAINFS" mount "$MNT" --threads zero)" "2"
expect_eq "bad log level" "$(rc "$CHAINFS" mount "$MNT" --log-level loud)" "2"
expect_eq "option without value" "$(rc "$CHAINFS" mount "$MNT" --config)" "2"
expect_eq "create without size" "$(rc "$CHAINFS" create "$TMP/x.qcow2")" "2"
expect_eq "create bad size" "$(rc "$CHAINFS" create "$TMP/x.qcow2" 12Q)" "2"
expect_eq "create bad cluster" "$(rc "$CHAINFS" create "$TMP/x.qcow2" 1M --cluster-size 3000)" "2"
expect_eq "job bad verb" "$(rc "$CHAINFS" job "$MNT" explode stream0)" "2"
expect_eq "stream bad speed" "$(rc "$CHAINFS" stream "$MNT" top --speed fast)" "2"
expect_eq "snapshot odd words" "$(rc "$CHAINFS" snapshot "$MNT" top)" "2"
! mountpoint -q "$MNT" || fail "a usage error mounted something"

step "failures exit 1"
expect_eq "mountpoint missing" "$(rc "$CHAINFS" mount "$TMP/nowhere" -f)" "1"
grep -q "nowhere" "$TMP/err" || fail "missing mountpoint message: $(cat "$TMP/err")"
expect_eq "status of a plain folder" "$(rc "$CHAINFS" status "$TMP")" "1"
grep -q "chainfs mount" "$TMP/err" || fail "status message: $(cat "$TMP/err")"
expect_eq "job on a plain folder" "$(rc "$CHAINFS" job "$TMP" cancel stream0)" "1"

step "create"
expect_eq "create" "$(rc "$CHAINFS" create "$TMP/base.qcow2" 64M)" "0"
expect_eq "create again" "$(rc "$CHAINFS" create "$TMP/base.qcow2" 64M)" "1"
expect_eq "create overlay" "$(rc "$CHAINFS" create "$TMP/top.qcow2" 64M --backing base.qcow2 --cluster-size 128K)" "0"
if command -v qemu-img >/dev/null; then
  qemu-img check -q "$TMP/top.qcow2" || fail "qemu-img check of the created overlay"
  info=$(qemu-img info --output=json "$TMP/top.qcow2")
  python3 - "$info" <<'EOF'
import json, sys
info = json.loads(sys.argv[1])
assert info["format"] == "qcow2", info
assert info["virtual-size"] == 64 << 20, info
assert info["cluster-size"] == 128 << 10, info
assert info["backing-filename"] == "base.qcow2", info
EOF
fi

step "a mount of the created chain, seen by status"
mount_fg --image "$TMP/top.qcow2,chain=vm"
expect_eq "status" "$(rc "$CHAINFS" status "$MNT")" "0"
grep -q "vm: 0-top (qcow2) -> 1-base (qcow2)" "$TMP/out" || fail "status: $(cat "$TMP/out")"
expect_eq "mount over a mount" "$(rc "$CHAINFS" mount "$MNT" --image "$TMP/top.qcow2")" "1"
grep -q "already a chainfs mount" "$TMP/err" || fail "double mount: $(cat "$TMP/err")"
unmount
echo "PASS: $TEST_NAME"
