# Following and steering jobs: a speed-limited stream observed through jobs/<id> (progress bounded
# over a window), pause/resume/speed through control/job, auto-finalize=off with finalize,
# auto-dismiss=on, jobs/ and graph.json and `chainfs status` while jobs run, `--wait` output on a
# pipe and on a terminal; then unmounting while jobs run (SIGTERM with a stream and a ready active
# commit that guests wrote through, then fusermount3 -u with a stream): the daemon exits cleanly,
# the cancelled jobs left the graph as it was, every acknowledged write is in the images.
source "$(dirname "$0")/lib.sh" "$@"
command -v qemu-img >/dev/null || skip "qemu-img is not installed"
command -v qemu-io >/dev/null || skip "qemu-io is not installed"

make_chain "$TMP" 32
for p in b c d; do make_chain "$TMP" 8 "$p"; done
make_chain "$TMP" 8 e
# Every chain from its headers: the active commit of etop reopens ebase read-write for its run.
mount_fg --image "$TMP/top.qcow2,chain=vm" --image "$TMP/btop.qcow2,chain=b" \
         --image "$TMP/ctop.qcow2,chain=c" --image "$TMP/dtop.qcow2,chain=d" \
         --image "$TMP/etop.qcow2,chain=e"

step "a speed-limited stream, observed through jobs/<id>"
expect_eq "start" "$(control stream "top speed=2M id=slow\n")" "OK ok slow"
expect_eq "listed" "$(ls "$MNT/jobs")" "slow"
expect_eq "speed" "$(job_field slow speed)" "2097152"
total=$(job_field slow total)
[ "$total" -ge $((24 << 20)) ] || fail "total $total is less than what the chain holds"
sleep 0.5
p0=$(job_field slow progress); sleep 3; p1=$(job_field slow progress)
# 2 MiB/s: the ~30 MiB to copy take ~15 s, so the job is still running for the steps below
# even on a loaded machine. At most speed x window + 100 ms of speed + one 4 MiB window (docs/jobs.md), and moving.
[ $((p1 - p0)) -gt 0 ] || fail "no progress in 3 s: $p0 -> $p1"
[ $((p1 - p0)) -le $(( (2 << 20) * 3 + (2 << 20) / 10 + (4 << 20) )) ] || fail "too fast for 2M/s: $p0 -> $p1 in 3 s"
[ "$(job_field slow state)" = running ] || fail "state: $(job_field slow state)"
[[ "$(job_field slow rate)" =~ ^[0-9.]+[KM]?$ ]] || fail "rate: $(job_field slow rate)"

step "jobs in graph.json and chainfs status"
python3 - "$MNT/graph.json" <<'PY' || fail "graph.json jobs"
import json, sys
g = json.load(open(sys.argv[1]))
[job] = [j for j in g["jobs"] if j["id"] == "slow"]
assert list(job) == ["id", "type", "state", "node", "base", "progress", "total", "speed", "rate",
                     "io-status", "error"], list(job)
assert job["type"] == "stream" and job["state"] == "running" and job["node"] == "top", job
assert job["speed"] == 2 << 20 and job["io-status"] == "ok" and job["error"] is None, job
PY
"$CHAINFS" status "$MNT" >"$TMP/status" || fail "chainfs status"
grep -q "slow: stream running of node top (base none)" "$TMP/status" || fail "status: $(cat "$TMP/status")"

step "pause, resume and speed through control/job"
expect_eq "pause" "$(control job "pause slow\n")" "OK ok"
expect_eq "paused" "$(job_field slow state)" "paused"
sleep 1  # the job parks at its next pause point, at most one window later
p0=$(job_field slow progress); sleep 1; p1=$(job_field slow progress)
expect_eq "no progress while paused" "$p1" "$p0"
expect_eq "no rate while paused" "$(job_field slow rate)" "0"
expect_eq "resume" "$(control job "resume slow\n")" "OK ok"
expect_eq "running again" "$(job_field slow state)" "running"
expect_eq "unlimited" "$(control job "speed slow 0\n")" "OK ok"
expect_eq "speed 0" "$(job_field slow speed)" "0"
wait_job slow concluded 20
expect_eq "stream done" "$(layers vm)" "0-top"
same_bytes "$MNT/nodes/top" "$TMP/ref.raw" || fail "top after the stream"

step "auto-finalize=off: pending until finalize, which returns once the graph changed"
expect_eq "start" "$(control stream "btop auto-finalize=off id=fin\n")" "OK ok fin"
wait_job fin pending 20
expect_eq "graph unchanged while pending" "$(layers b)" "0-btop 1-bmid 2-bbase"
expect_eq "finalize" "$(control job "finalize fin\n")" "OK ok"
expect_eq "changed when finalize returned" "$(layers b)" "0-btop"
expect_eq "concluded" "$(job_field fin state)" "concluded"

step "auto-dismiss=on: gone from jobs/ once it succeeded"
expect_eq "start" "$(control stream "ctop auto-dismiss=on id=ad\n")" "OK ok ad"
wait_until 20 bash -c "[ ! -e '$MNT/jobs/ad' ]" || fail "auto-dismissed job still listed"
expect_eq "chain c" "$(layers c)" "0-ctop"
ls "$MNT/jobs" | grep -qx fin || fail "a job without auto-dismiss was dismissed"

step "--wait on a pipe: plain progress lines; on a terminal: a bar redrawn in place"
"$CHAINFS" stream "$MNT" dtop --base dbase --speed 2M --wait >"$TMP/out" 2>&1 || fail "stream --wait: $(cat "$TMP/out")"
grep -qE '^stream[0-9]+: (running|created) [0-9]+% \(.* of .*\) .*/s ETA ' "$TMP/out" || fail "no progress line: $(cat "$TMP/out")"
grep -qE '^job stream[0-9]+ completed$' "$TMP/out" || fail "no end line: $(cat "$TMP/out")"
script -qec "$CHAINFS stream $MNT dtop --speed 2M --wait" /dev/null >"$TMP/tty" 2>&1 || fail "stream --wait on a tty: $(cat "$TMP/tty")"
grep -q $'\r' "$TMP/tty" && grep -qE '\[#*\.*\] +[0-9]+%  .* ETA ' "$TMP/tty" || fail "no progress bar: $(cat -v "$TMP/tty")"
expect_eq "chain d" "$(layers d)" "0-dtop"
cp "$TMP/dref.raw" "$TMP/dref0.raw"

step "SIGTERM while a stream runs and an active commit is ready with guest writes"
make_chain "$TMP" 32 f
expect_eq "open" "$(control node "open $TMP/ftop.qcow2 chain=f\n")" "OK ok"
expect_eq "stream f" "$(control stream "ftop speed=1M id=fs\n")" "OK ok fs"
expect_eq "commit e" "$(control commit "etop id=ec\n")" "OK ok ec"
wait_job ec ready 20
printf 'acknowledged before SIGTERM' | dd of="$MNT/nodes/etop" bs=1 seek=65536 conv=notrunc,fsync status=none
printf 'acknowledged before SIGTERM' | dd of="$TMP/eref.raw" bs=1 seek=65536 conv=notrunc status=none
kill -TERM "$DAEMON_PID"
wait_daemon_exit 20
expect_eq "daemon exit" "$DAEMON_RC" 0
! mountpoint -q "$MNT" || fail "still mounted"
grep -q "cancelling 2 job(s) that are still running" "$DAEMON_LOG" || fail "no shutdown line: $(tail "$DAEMON_LOG")"
for img in ftop fmid fbase etop emid ebase top dtop; do qemu-img check -q "$TMP/$img.qcow2" || fail "qemu-img check $img"; done
expect_eq "f unchanged" "$(backing_chain "$TMP/ftop.qcow2")" "ftop.qcow2 fmid.qcow2 fbase.qcow2"
expect_eq "e unchanged" "$(backing_chain "$TMP/etop.qcow2")" "etop.qcow2 emid.qcow2 ebase.qcow2"
compare_image "$TMP/ftop.qcow2" "$TMP/fref.raw"
compare_image "$TMP/etop.qcow2" "$TMP/eref.raw"
compare_image "$TMP/top.qcow2" "$TMP/ref.raw"
compare_image "$TMP/dtop.qcow2" "$TMP/dref0.raw"

step "fusermount3 -u while a stream runs"
mount_fg --image "$TMP/ftop.qcow2,chain=f"
expect_eq "stream f" "$(control stream "ftop speed=1M id=fs\n")" "OK ok fs"
unmount
qemu-img check -q "$TMP/ftop.qcow2" || fail "qemu-img check ftop"
expect_eq "f unchanged" "$(backing_chain "$TMP/ftop.qcow2")" "ftop.qcow2 fmid.qcow2 fbase.qcow2"
compare_image "$TMP/ftop.qcow2" "$TMP/fref.raw"
echo "PASS: $TEST_NAME"
