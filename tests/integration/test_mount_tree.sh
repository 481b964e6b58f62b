# The mount tree of INTERFACE.md over raw images: folders, node files, chain links, control files,
# graph.json / graph.dot / log, modes, and `chainfs status`; listings follow graph changes.
source "$(dirname "$0")/lib.sh" "$@"

truncate -s 8M "$TMP/alpha.raw"
truncate -s 3M "$TMP/beta.img"
mount_fg --image "$TMP/alpha.raw" --image "$TMP/beta.img,chain=second,name=b"

step "top level"
expect_eq "root listing" "$(ls "$MNT" | tr '\n' ' ')" "chains control graph.dot graph.json jobs log nodes "
expect_eq "nodes" "$(ls "$MNT/nodes" | tr '\n' ' ')" "alpha alpha.file b b.file "
expect_eq "chains" "$(ls "$MNT/chains" | tr '\n' ' ')" "alpha second "
expect_eq "control" "$(ls "$MNT/control" | tr '\n' ' ')" "commit job node snapshot stream "
expect_eq "jobs" "$(ls "$MNT/jobs" | wc -l)" "0"

step "modes and sizes"
expect_eq "writable node mode" "$(stat -c %a "$MNT/nodes/alpha")" "644"
expect_eq "protocol node mode" "$(stat -c %a "$MNT/nodes/alpha.file")" "444"
expect_eq "control mode" "$(stat -c %a "$MNT/control/node")" "200"
expect_eq "graph.json mode" "$(stat -c %a "$MNT/graph.json")" "444"
expect_eq "log mode" "$(stat -c %a "$MNT/log")" "444"
expect_eq "jobs mode" "$(stat -c %a "$MNT/jobs")" "555"
expect_eq "alpha size" "$(stat -c %s "$MNT/nodes/alpha")" "$((8 << 20))"
expect_eq "b size" "$(stat -c %s "$MNT/nodes/b")" "$((3 << 20))"
expect_eq "node inode stable" "$(stat -c %i "$MNT/nodes/alpha")" "$(stat -c %i "$MNT/nodes/alpha")"

step "chain links"
expect_eq "second chain" "$(ls "$MNT/chains/second")" "0-b"
expect_eq "link target" "$(readlink "$MNT/chains/second/0-b")" "../../nodes/b"
expect_eq "link resolves" "$(stat -L -c %s "$MNT/chains/alpha/0-alpha")" "$((8 << 20))"
[ ! -e "$MNT/chains/second/1-b" ] || fail "a layer that does not exist is visible"
[ ! -e "$MNT/nodes/nosuch" ] || fail "unknown node visible"

step "graph.json"
python3 - "$MNT/graph.json" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1]))
nodes = {n["name"]: n for n in g["nodes"]}
assert set(nodes) == {"alpha", "alpha.file", "b", "b.file"}, nodes.keys()
assert nodes["alpha"]["driver"] == "raw" and nodes["alpha.file"]["driver"] == "file"
assert nodes["alpha"]["size"] == 8 << 20
assert nodes["alpha"]["writable"] is True and nodes["alpha.file"]["writable"] is False
assert nodes["alpha"]["children"] == [{"role": "file", "node": "alpha.file"}]
assert nodes["b"]["filename"].endswith("/beta.img")
chains = {c["name"]: c for c in g["chains"]}
assert chains["second"]["layers"] == ["b"] and chains["second"]["root"] == "b"
assert g["jobs"] == []
EOF
grep -q '"alpha" -> "alpha.file"' "$MNT/graph.dot" || fail "graph.dot lacks the file edge"
grep -q '^digraph' "$MNT/graph.dot" || fail "graph.dot is not a digraph"

step "log"
log_has "info mounted on $MNT" || fail "log lacks the mount line: $(cat "$MNT/log")"
head -n1 "$MNT/log" | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+ info ' || fail "log line format"

step "generated files refuse writes"
expect_eq "write graph.json" "$(open_errno "$MNT/graph.json" w)" "EACCES"
expect_eq "create a file" "$(python3 -c "
import errno, os
try: os.open('$MNT/nodes/new', os.O_CREAT | os.O_WRONLY); print('OK')
except OSError as e: print(errno.errorcode[e.errno])")" "ENOSYS"

step "status"
"$CHAINFS" status "$MNT" >"$TMP/status.txt"
grep -q "second: 0-b (raw)" "$TMP/status.txt" || fail "status: $(cat "$TMP/status.txt")"
grep -Eq "^  alpha +raw +8M +rw " "$TMP/status.txt" || fail "status: $(cat "$TMP/status.txt")"

step "listings follow the graph"
expect_eq "close" "$(control node 'close second\n')" "OK ok"
expect_eq "nodes after close" "$(ls "$MNT/nodes" | tr '\n' ' ')" "alpha alpha.file "
[ ! -e "$MNT/chains/second" ] || fail "closed chain still visible"
[ ! -e "$MNT/nodes/b" ] || fail "node of a closed chain still visible"
expect_eq "reopen" "$(control node "open $TMP/beta.img chain=again\n")" "OK ok"
expect_eq "chain again" "$(ls "$MNT/chains/again")" "0-beta"
expect_eq "new node size" "$(stat -c %s "$MNT/nodes/beta")" "$((3 << 20))"

unmount
echo "PASS: $TEST_NAME"
