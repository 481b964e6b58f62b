# Stream jobs on real qcow2 chains made by qemu-img/qemu-io: the whole chain through
# control/stream, down to a base through `chainfs stream --wait`, and one with guests writing and
# reading the active node file meanwhile. Checked through the node files while mounted and with
# qemu-img (check, compare, info --backing-chain) after unmounting.
source "$(dirname "$0")/lib.sh" "$@"
command -v qemu-img >/dev/null || skip "qemu-img is not installed"
command -v qemu-io >/dev/null || skip "qemu-io is not installed"

make_chain "$TMP" 16
make_chain "$TMP" 16 b
make_chain "$TMP" 32 c
mount_fg --image "$TMP/top.qcow2,chain=vm" --image "$TMP/btop.qcow2,chain=b" \
         --image "$TMP/ctop.qcow2,chain=c"
expect_eq "chain before" "$(layers vm)" "0-top 1-mid 2-base"

step "the whole chain through control/stream"
expect_eq "started" "$(control stream "top\n")" "OK ok stream0"
log_has "control/stream: stream of 'top' (whole chain): started job stream0" || fail "no log line"
wait_job stream0 concluded 20
expect_eq "error" "$(job_field stream0 error)" "~"
expect_eq "type" "$(job_field stream0 type)" "stream"
expect_eq "progress = total" "$(job_field stream0 progress)" "$(job_field stream0 total)"
expect_eq "chain after" "$(layers vm)" "0-top"
[ ! -e "$MNT/nodes/mid" ] && [ ! -e "$MNT/nodes/base" ] || fail "streamed-out layers still listed: $(ls "$MNT/nodes")"
same_bytes "$MNT/nodes/top" "$TMP/ref.raw" || fail "top reads other bytes after the stream"
python3 - "$MNT/graph.json" <<'PY' || fail "graph.json after the stream"
import json, sys
g = json.load(open(sys.argv[1]))
assert [c["layers"] for c in g["chains"] if c["name"] == "vm"] == [["top"]], g["chains"]
top = [n for n in g["nodes"] if n["name"] == "top"][0]
assert [c["role"] for c in top["children"]] == ["file"], top
job = [j for j in g["jobs"] if j["id"] == "stream0"][0]
assert job["state"] == "concluded" and job["base"] is None and job["error"] is None, job
PY
grep -q '"job:stream0"' "$MNT/graph.dot" || fail "graph.dot lacks the job"
expect_eq "dismiss" "$(control job "dismiss stream0\n")" "OK ok"
[ ! -e "$MNT/jobs/stream0" ] || fail "dismissed job still listed"

step "down to a base through the client verb, --wait"
"$CHAINFS" stream "$MNT" btop --base bbase --wait >"$TMP/out" 2>"$TMP/err" || fail "chainfs stream: $(cat "$TMP/err")"
id=$(sed -n 's/^started job //p' "$TMP/out")
[ -n "$id" ] || fail "no job id printed: $(cat "$TMP/out")"
grep -qx "job $id completed" "$TMP/out" || fail "--wait did not report the end: $(cat "$TMP/out")"
expect_eq "state" "$(job_field "$id" state)" "concluded"  # not dismissed by the client
expect_eq "chain b" "$(layers b)" "0-btop 1-bbase"
[ ! -e "$MNT/nodes/bmid" ] || fail "bmid still listed"
same_bytes "$MNT/nodes/btop" "$TMP/bref.raw" || fail "btop reads other bytes after the stream"

step "guests write and read the active node file during a stream"
expect_eq "started" "$(control stream "ctop speed=12M id=busy\n")" "OK ok busy"
running() { [ "$(job_field busy state)" = running ]; }
guest_io ctop "$TMP/cref.raw" 20 running
wait_job busy concluded 20
expect_eq "busy error" "$(job_field busy error)" "~"
expect_eq "chain c" "$(layers c)" "0-ctop"
same_bytes "$MNT/nodes/ctop" "$TMP/cref.raw" || fail "ctop differs from the reference after the stream"

unmount
step "qemu-img agrees"
for img in top btop ctop; do qemu-img check -q "$TMP/$img.qcow2" || fail "qemu-img check $img"; done
expect_eq "top's chain" "$(backing_chain "$TMP/top.qcow2")" "top.qcow2"
expect_eq "btop's chain" "$(backing_chain "$TMP/btop.qcow2")" "btop.qcow2 bbase.qcow2"
expect_eq "ctop's chain" "$(backing_chain "$TMP/ctop.qcow2")" "ctop.qcow2"
compare_image "$TMP/top.qcow2" "$TMP/ref.raw"
compare_image "$TMP/btop.qcow2" "$TMP/bref.raw"
compare_image "$TMP/ctop.qcow2" "$TMP/cref.raw"
echo "PASS: $TEST_NAME"
