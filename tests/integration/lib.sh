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
  # A mount whose daemon died fails `mountpoint` (ENOTCONN) but is still in /proc/mounts.
  if mountpoint -q "$MNT" 2>/dev/null || grep -qsF " $MNT fuse" /proc/mounts; then
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

# ---- jobs ------------------------------------------------------------------------------------

# make_chain DIR SIZE_MIB [PREFIX]: PREFIXbase.qcow2 <- PREFIXmid.qcow2 <- PREFIXtop.qcow2 in DIR
# (node names PREFIXbase, ...), each layer with data of its own (qemu-io patterns: base
# everywhere, mid over [SIZE/8, 3*SIZE/8) and zeros over its last MiB but one, top over
# [SIZE/4, SIZE/4 + 2M)), and DIR/PREFIXref.raw: what top reads (qemu-img convert).
make_chain() {
  local dir=$1 size=$2 p=${3:-}
  qemu-img create -q -f qcow2 "$dir/${p}base.qcow2" "${size}M"
  qemu-io -c "write -P 0x11 0 ${size}M" "$dir/${p}base.qcow2" >/dev/null
  qemu-img create -q -f qcow2 -b "${p}base.qcow2" -F qcow2 "$dir/${p}mid.qcow2"
  qemu-io -c "write -P 0x22 $((size / 8))M $((size / 4))M" \
          -c "write -z $((size - 2))M 1M" "$dir/${p}mid.qcow2" >/dev/null
  qemu-img create -q -f qcow2 -b "${p}mid.qcow2" -F qcow2 "$dir/${p}top.qcow2"
  qemu-io -c "write -P 0x33 $((size / 4))M 2M" "$dir/${p}top.qcow2" >/dev/null
  qemu-img convert -O raw "$dir/${p}top.qcow2" "$dir/${p}ref.raw"
}

# job_field ID KEY: the value of KEY in $MNT/jobs/ID (empty if the job is not listed).
job_field() { sed -n "s/^$2: //p" "$MNT/jobs/$1" 2>/dev/null; }

# wait_job ID STATE SECONDS: waits until jobs/ID says state STATE.
wait_job() {
  wait_until "$3" bash -c "[ \"\$(sed -n 's/^state: //p' '$MNT/jobs/$1' 2>/dev/null)\" = '$2' ]" ||
    fail "job $1 did not reach $2 within $3 s: $(cat "$MNT/jobs/$1" 2>&1)"
}

# layers CHAIN: the chain's folder listing on one line ("0-top 1-base").
layers() { ls "$MNT/chains/$1" | tr '\n' ' ' | sed 's/ $//'; }

# backing_chain IMAGE: the images of IMAGE's backing chain by file name, top first, as qemu-img
# sees them ("top.qcow2 base.qcow2").
backing_chain() {
  qemu-img info --backing-chain --output=json "$1" |
    python3 -c 'import json, os, sys; print(" ".join(os.path.basename(i["filename"]) for i in json.load(sys.stdin)))'
}

# same_bytes A B: the two files (or node files) hold the same bytes.
same_bytes() { cmp -s "$1" "$2"; }

# compare_image IMAGE RAW: qemu-img reads the same bytes from the qcow2 IMAGE (and its chain) as
# from the raw file RAW.
compare_image() { qemu-img compare -q -f qcow2 -F raw "$1" "$2" || fail "qemu-img compare $1 $2"; }

# guest_io NODE REF SECONDS_MAX WHILE_CMD...: while WHILE_CMD succeeds (at most SECONDS_MAX), two
# dd writers write random 64 KiB blocks into the first half of $MNT/nodes/NODE (and the same bytes
# into the raw file REF), and two dd readers (one buffered, one O_DIRECT) read the second half and
# compare it with REF. Fails on a mismatch or an I/O error; prints how many writes and reads ran.
guest_io() {
  local node=$1 ref=$2 max=$3; shift 3
  local file=$MNT/nodes/$node size half blocks
  size=$(stat -c %s "$ref"); half=$((size / 2)); blocks=$((half / 65536))
  head -c $((64 * 65536)) /dev/urandom >"$TMP/blocks.bin"
  local deadline=$((SECONDS + max))
  writer() {  # writer PARITY: blocks whose index has that parity
    local n=0 i k
    while "$@" && [ $SECONDS -lt $deadline ]; do
      i=$(( (RANDOM * 2 + PARITY) % blocks )); k=$((RANDOM % 64))
      dd if="$TMP/blocks.bin" of="$file" bs=64K skip=$k seek=$i count=1 conv=notrunc status=none || { echo "write error"; return 1; }
      dd if="$TMP/blocks.bin" of="$ref" bs=64K skip=$k seek=$i count=1 conv=notrunc status=none
      n=$((n + 1))
    done
    echo "$n writes"
  }
  reader() {  # reader DD_FLAGS
    local n=0
    while "$@" && [ $SECONDS -lt $deadline ]; do
      cmp -s <(dd if="$file" bs=1M skip=$((half >> 20)) $FLAGS status=none) \
             <(dd if="$ref" bs=1M skip=$((half >> 20)) status=none) || { echo "read mismatch"; return 1; }
      n=$((n + 1))
    done
    echo "$n reads"
  }
  local pids=() rc=0
  PARITY=0 writer "$@" >"$TMP/io.w0" 2>&1 & pids+=($!)
  PARITY=1 writer "$@" >"$TMP/io.w1" 2>&1 & pids+=($!)
  FLAGS= reader "$@" >"$TMP/io.r0" 2>&1 & pids+=($!)
  FLAGS=iflag=direct reader "$@" >"$TMP/io.r1" 2>&1 & pids+=($!)
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  echo "guest I/O: $(cat "$TMP"/io.w0 "$TMP"/io.w1 "$TMP"/io.r0 "$TMP"/io.r1 | tr '\n' ' ')"
  [ $rc = 0 ] || fail "guest I/O failed: $(cat "$TMP"/io.*)"
}

# chain_nodes_yaml DIR PREFIX: the config's `nodes:` entries that declare the layers made by
# `make_chain DIR SIZE PREFIX` by name. Such nodes are opened writable and held by the user (they
# stay listed until `control/node remove`); layers found through image headers (--image) are
# opened read-only, and a job reopens the ones it writes read-write for its run.
chain_nodes_yaml() {
  local dir=$1 p=$2
  cat <<YAML
  - {name: ${p}base, driver: qcow2, file: $dir/${p}base.qcow2, backing: null}
  - {name: ${p}mid, driver: qcow2, file: $dir/${p}mid.qcow2, backing: ${p}base}
  - {name: ${p}top, driver: qcow2, file: $dir/${p}top.qcow2, backing: ${p}mid}
YAML
}
