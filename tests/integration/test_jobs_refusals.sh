# Every refusal of the job files (INTERFACE.md "Refusals that must hold" and the job verbs), each
# with its errno on the write, its "error ENAME: ..." read back from the same descriptor, and its
# line in `log`; then the client verbs' exit codes (1 refused, 2 usage) and messages.
source "$(dirname "$0")/lib.sh" "$@"
command -v qemu-img >/dev/null || skip "qemu-img is not installed"
command -v qemu-io >/dev/null || skip "qemu-io is not installed"

make_chain "$TMP" 16
make_chain "$TMP" 8 b
mount_fg --image "$TMP/top.qcow2,chain=vm" --image "$TMP/btop.qcow2,chain=b"

# refused FILE TEXT ERRNO LOG_TEXT: the write of TEXT to control/FILE fails with ERRNO, the same fd
# reads back "error ERRNO: ...", and `log` has a line with LOG_TEXT and "refused (ERRNO)".
refused() {
  local file=$1 text=$2 errno=$3 log_text=$4 out
  out=$(control "$file" "$text")
  [[ "$out" == "$errno error $errno: "* ]] || fail "control/$file '$text': got '$out', expected $errno"
  grep -F -- "$log_text" "$MNT/log" | grep -qF "refused ($errno)" ||
    fail "control/$file '$text': no log line with '$log_text' and 'refused ($errno)': $(tail -2 "$MNT/log")"
}

step "unknown nodes: ENOENT"
refused stream "nosuch\n" ENOENT "control/stream: stream of 'nosuch'"
refused commit "nosuch\n" ENOENT "control/commit: commit of 'nosuch'"
refused stream "top base=nosuch\n" ENOENT "stream of 'top' down to 'nosuch'"
refused snapshot "nosuch $TMP/o.qcow2\n" ENOENT "control/snapshot: 'nosuch' onto $TMP/o.qcow2"

step "a base that is not below the node, or is the node: EINVAL"
refused stream "mid base=top\n" EINVAL "stream of 'mid' down to 'top'"
refused commit "mid base=btop\n" EINVAL "commit of 'mid' into 'btop'"
refused stream "top base=top\n" EINVAL "stream of 'top' down to 'top'"
refused commit "top base=top\n" EINVAL "commit of 'top' into 'top'"

step "bad syntax: EINVAL"
refused stream "top speed=fast\n" EINVAL "control/stream 'top speed=fast'"
refused commit "top colour=red\n" EINVAL "control/commit 'top colour=red'"
refused stream "top mid\n" EINVAL "control/stream 'top mid'"
refused job "explode x\n" EINVAL "control/job 'explode x'"
refused snapshot "top\n" EINVAL "control/snapshot"

step "a job that overlaps a running one: EBUSY; a taken id: EEXIST"
expect_eq "slow stream" "$(control stream "top speed=256K id=slow\n")" "OK ok slow"
refused commit "top\n" EBUSY "control/commit: commit of 'top'"
refused stream "top\n" EBUSY "control/stream: stream of 'top'"
refused commit "mid\n" EBUSY "control/commit: commit of 'mid'"
refused stream "btop id=slow\n" EEXIST "control/stream: stream of 'btop'"
[ ! -e "$MNT/jobs/stream1" ] || fail "a refused job is listed"

step "job verbs the state does not accept: EBUSY; unknown jobs: ENOENT"
refused job "complete slow\n" EBUSY "control/job: complete slow"
refused job "finalize slow\n" EBUSY "control/job: finalize slow"
refused job "dismiss slow\n" EBUSY "control/job: dismiss slow"
refused job "resume slow\n" EBUSY "control/job: resume slow"
expect_eq "pause" "$(control job "pause slow\n")" "OK ok"
refused job "pause slow\n" EBUSY "control/job: pause slow"
refused job "cancel nosuch\n" ENOENT "control/job: cancel nosuch"
refused job "pause nosuch\n" ENOENT "control/job: pause nosuch"
refused job "speed nosuch 1M\n" ENOENT "control/job: speed nosuch"

step "snapshots: an existing file, a missing folder, a taken name: EEXIST, ENOENT, EEXIST"
qemu-img create -q -f qcow2 "$TMP/taken.qcow2" 8M
refused snapshot "btop $TMP/taken.qcow2\n" EEXIST "'btop' onto $TMP/taken.qcow2"
refused snapshot "btop $TMP/nofolder/o.qcow2\n" ENOENT "'btop' onto $TMP/nofolder/o.qcow2"
refused snapshot "btop $TMP/o.qcow2 name=bmid\n" EEXIST "'btop' onto $TMP/o.qcow2"
refused snapshot "btop $TMP/bmid.qcow2.new name=top\n" EEXIST "'btop' onto $TMP/bmid.qcow2.new"
refused snapshot "btop $TMP/missing.qcow2 mode=existing\n" ENOENT "'btop' onto $TMP/missing.qcow2"
[ ! -e "$TMP/o.qcow2" ] && [ ! -e "$TMP/bmid.qcow2.new" ] || fail "refused snapshots left files"

step "removing a referenced node: EBUSY"
refused node "remove mid\n" EBUSY "control/node 'remove mid'"
refused node "remove base\n" EBUSY "control/node 'remove base'"

step "nothing changed, and the slow job cancels cleanly"
expect_eq "chain vm" "$(layers vm)" "0-top 1-mid 2-base"
expect_eq "chain b" "$(layers b)" "0-btop 1-bmid 2-bbase"
expect_eq "cancel" "$(control job "cancel slow\n")" "OK ok"
wait_job slow concluded 10
expect_eq "cancelled" "$(job_field slow error)" 'job cancelled'
expect_eq "chain vm after cancel" "$(layers vm)" "0-top 1-mid 2-base"
refused job "cancel slow\n" EBUSY "control/job: cancel slow"

step "the client verbs: 1 for a refusal (with the reason), 2 for usage"
rc=0; "$CHAINFS" stream "$MNT" nosuch 2>"$TMP/err" || rc=$?
expect_eq "refused stream exit" "$rc" 1
grep -q "refused (ENOENT): .*nosuch" "$TMP/err" || fail "stream message: $(cat "$TMP/err")"
rc=0; "$CHAINFS" job "$MNT" complete nosuch 2>"$TMP/err" || rc=$?
expect_eq "refused job exit" "$rc" 1
grep -q "refused (ENOENT)" "$TMP/err" || fail "job message: $(cat "$TMP/err")"
rc=0; "$CHAINFS" commit "$MNT" top --base top --wait 2>"$TMP/err" || rc=$?
expect_eq "refused commit --wait exit" "$rc" 1
rc=0; "$CHAINFS" job "$MNT" explode x 2>/dev/null || rc=$?
expect_eq "bad verb exit" "$rc" 2
rc=0; "$CHAINFS" stream "$MNT" 2>/dev/null || rc=$?
expect_eq "missing node exit" "$rc" 2
rc=0; "$CHAINFS" stream "$MNT" top --speed fast 2>/dev/null || rc=$?
expect_eq "bad speed exit" "$rc" 2
rc=0; "$CHAINFS" snapshot "$MNT" top 2>/dev/null || rc=$?
expect_eq "snapshot without overlay exit" "$rc" 2
rc=0; "$CHAINFS" stream "$TMP" top 2>"$TMP/err" || rc=$?
expect_eq "not a mount exit" "$rc" 1

unmount
qemu-img check -q "$TMP/top.qcow2" || fail "qemu-img check top"
compare_image "$TMP/top.qcow2" "$TMP/ref.raw"
echo "PASS: $TEST_NAME"
