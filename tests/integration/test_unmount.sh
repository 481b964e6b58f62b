# Clean unmount with the data on disk: after SIGTERM, SIGINT and `fusermount3 -u` (foreground and
# daemonized), the host files hold what was written, qcow2 images pass `qemu-img check`, and the
# daemon exits 0 — also while a writer still holds a node file open.
source "$(dirname "$0")/lib.sh" "$@"
command -v qemu-img >/dev/null || skip "qemu-img is not installed"

truncate -s 8M "$TMP/disk.raw"
cp "$TMP/disk.raw" "$TMP/expected.raw"
qemu-img create -q -f qcow2 "$TMP/base.qcow2" 8M
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$TMP/top.qcow2"
truncate -s 8M "$TMP/expected.top"

# write_both NODE EXPECTED SEEK_KIB COUNT_KIB: random data into the node file and the expectation.
write_both() {
  head -c $(($4 * 1024)) /dev/urandom >"$TMP/chunk"
  dd if="$TMP/chunk" of="$MNT/nodes/$1" bs=1K seek="$3" conv=notrunc status=none
  dd if="$TMP/chunk" of="$2" bs=1K seek="$3" conv=notrunc status=none
}

check_disk() {
  cmp "$TMP/disk.raw" "$TMP/expected.raw" || fail "$1: raw file differs"
  qemu-img check -q "$TMP/top.qcow2" || fail "$1: qemu-img check of top"
  qemu-img convert -O raw "$TMP/top.qcow2" "$TMP/top.out"
  cmp "$TMP/top.out" "$TMP/expected.top" || fail "$1: top's data differs"
  qemu-img convert -O raw "$TMP/base.qcow2" "$TMP/base.out"
  cmp "$TMP/base.out" <(head -c $((8 << 20)) /dev/zero) || fail "$1: writes through top reached base"
}

for how in SIGTERM SIGINT fusermount; do
  step "$how"
  mount_fg --image "$TMP/disk.raw" --image "$TMP/top.qcow2"
  write_both disk "$TMP/expected.raw" $((RANDOM % 4000)) 1500
  write_both top "$TMP/expected.top" $((RANDOM % 4000)) 1500
  # A writer that has written and still holds its file open when the unmount comes.
  python3 - "$MNT/nodes/top" "$TMP/expected.top" "$TMP/held" <<'EOF' &
import os, sys, time
data = os.urandom(300000)
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, data, 5000000)
ef = os.open(sys.argv[2], os.O_RDWR)
os.pwrite(ef, data, 5000000)
os.close(ef)
open(sys.argv[3], "w").close()
time.sleep(1.5)
EOF
  holder=$!
  wait_until 10 test -e "$TMP/held" || fail "the holding writer did not start"
  case $how in
    SIGTERM) kill -TERM "$DAEMON_PID" ;;
    SIGINT) kill -INT "$DAEMON_PID" ;;
    fusermount) fusermount3 -u -z "$MNT" ;;
  esac
  wait_daemon_exit 15
  expect_eq "$how: daemon exit code" "$DAEMON_RC" "0"
  grep -q "stopped cleanly" "$DAEMON_LOG" || fail "$how: no clean stop in the log"
  wait "$holder" 2>/dev/null || true
  rm -f "$TMP/held"
  ! mountpoint -q "$MNT" || fail "$how: still mounted"
  check_disk "$how"
done

step "daemonized: returns once mounted, stops on fusermount3 -u"
"$CHAINFS" mount "$MNT" --image "$TMP/disk.raw" --image "$TMP/top.qcow2" >"$TMP/out" 2>&1 ||
  fail "daemonized mount failed: $(cat "$TMP/out")"
mountpoint -q "$MNT" || fail "not mounted when chainfs mount returned"
[ ! -s "$TMP/out" ] || fail "daemonized mount printed: $(cat "$TMP/out")"
write_both disk "$TMP/expected.raw" 100 700
write_both top "$TMP/expected.top" 3000 900
fusermount3 -u "$MNT"
# The daemon flushes and closes after the unmount: wait until no process holds the images.
wait_until 10 no_holders "$TMP/disk.raw" "$TMP/top.qcow2" ||
  fail "the daemon still holds the images after unmount"
check_disk "daemonized"

echo "PASS: $TEST_NAME"
