# Shared helpers of the integration tests. A test script does
#   source "$(dirname "$0")/lib.sh" "$@"
# and gets: $CHAINFS (the binary, the script's first argument), a private temporary folder $TMP
# with a mountpoint $MNT, a trap that always unmounts and cleans up, and the helpers below.
# Exit codes: 0 pass, 77 skip (with a printed reason), anything else fail.

set -euo pipefail

CHAINFS=${1:-}
if [ -z "$CHAINFS" ] || [ ! -x "$CHAINFS" ]; then
  echo "usage: bash $0 /path/to/chainfs" >&2
  exit 2
fi
CHAINFS=$(readlink -f "$CHAINFS")
TEST_NAME=$(basename "$0" .sh)

skip() { echo "SKIP: $TEST_NAME: $*"; exit 77; }
fail() { echo "FAIL: $TEST_NAME: $*" >&2; [ -f "${DAEMON_LOG:-/nonexistent}" ] && tail -n 30 "$DAEMON_LOG" >&2; exit 1; }
step() { echo "--- $*"; }

[ "$(id -u)" = 0 ] || skip "needs root (FUSE mounts)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
command -v fusermount3 >/dev/null || skip "fusermount3 is not installed"
command -v python3 >/dev/null || skip "python3 is not installed"

TMP=$(mktemp -d "/tmp/chainfs-${TEST_NAME}.XXXXXX")
MNT=$TMP/mnt
mkdir -p "$MNT"
DAEMON_PID=
DAEMON_LOG=$TMP/daemon.log

cleanup() {
  local rc=$?
  if mountpoint -q "$MNT" 2>/dev/null; then
    fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
  fi
  # A daemonized mount (no pid here) ends by itself once unmounted.
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS COMMAND...: polls COMMAND every 50 ms.
wait_until() {
  local seconds=$1; shift
  local tries=$((seconds * 20))
  for _ in $(seq "$tries"); do
    if "$@"; then return 0; fi
    sleep 0.05
  done
  return 1
}

mounted() { mountpoint -q "$MNT" && [ -e "$MNT/graph.json" ]; }

# mount_fg ARGS...: runs `chainfs mount $MNT -f ARGS` in the background (its pid in DAEMON_PID,
# its output in $DAEMON_LOG) and waits until the tree is there.
mount_fg() {
  "$CHAINFS" mount "$MNT" -f "$@" >"$DAEMON_LOG" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 200); do
    mounted && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "chainfs mount exited early: $(cat "$DAEMON_LOG")"
    sleep 0.05
  done
  fail "not mounted after 10 s"
}

# wait_daemon_exit SECONDS: waits for the foreground daemon to exit; its status in DAEMON_RC.
wait_daemon_exit() {
  local seconds=${1:-10}
  wait_until "$seconds" bash -c "! kill -0 $DAEMON_PID 2>/dev/null" || fail "daemon did not exit within $seconds s"
  DAEMON_RC=0
  wait "$DAEMON_PID" || DAEMON_RC=$?
  DAEMON_PID=
}

# unmount: fusermount3 -u and wait for a foreground daemon to finish.
unmount() {
  fusermount3 -u "$MNT" || fail "fusermount3 -u failed"
  if [ -n "$DAEMON_PID" ]; then
    wait_daemon_exit 10
    [ "$DAEMON_RC" = 0 ] || fail "daemon exited with $DAEMON_RC"
  fi
  ! mountpoint -q "$MNT" || fail "still mounted"
}

# open_errno PATH r|w|rw: prints OK or the errno name of open().
open_errno() {
  python3 - "$1" "$2" <<'EOF'
import errno, os, sys
flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[sys.argv[2]]
try:
    os.close(os.open(sys.argv[1], flags))
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])
EOF
}

# control FILE TEXT: writes TEXT (printf %b) to $MNT/control/FILE through one fd and reads the
# outcome back; prints "<OK|ERRNO> <outcome line>".
control() {
  python3 - "$MNT/control/$1" "$2" <<'EOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
text = sys.argv[2].encode().decode("unicode_escape").encode()
try:
    n = os.write(fd, text)
    result = "OK" if n == len(text) else "SHORT"
except OSError as e:
    result = errno.errorcode[e.errno]
back = os.read(fd, 4096).decode().rstrip("\n")
os.close(fd)
print(result, back)
EOF
}

# no_holders FILE...: true when no process has any of the files open.
no_holders() {
  python3 - "$@" <<'EOF'
import os, sys
wanted = {os.path.realpath(p) for p in sys.argv[1:]}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        continue
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                sys.exit(1)
        except OSError:
            pass
EOF
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
  [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

# log_has TEXT: the mount's `log` has a line containing TEXT.
log_has() { grep -qF -- "$1" "$MNT/log"; }

# make_random FILE SIZE_IN_KIB: a file of random bytes.
make_random() { head -c "$(($2 * 1024))" /dev/urandom >"$1"; }
