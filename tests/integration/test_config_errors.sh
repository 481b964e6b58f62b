# A bad config mounts nothing: `chainfs mount` exits 1 with one line naming the file, the line
# and what is wrong, for each kind of mistake; the daemonized start-up reports it the same way.
source "$(dirname "$0")/lib.sh" "$@"

truncate -s 1M "$TMP/a.raw"
truncate -s 1M "$TMP/b.raw"
"$CHAINFS" create "$TMP/q.qcow2" 1M >/dev/null || fail "chainfs create"

# check_bad NAME EXPECTED_TEXT: $TMP/NAME.yaml must be refused with one line that names the file,
# a line number and EXPECTED_TEXT; nothing may be mounted.
check_bad() {
  local name=$1 expected=$2 config=$TMP/$1.yaml rc=0
  for mode in foreground daemon; do
    rc=0
    if [ $mode = foreground ]; then
      timeout 20 "$CHAINFS" mount "$MNT" -f --config "$config" >"$TMP/out" 2>"$TMP/err" || rc=$?
    else
      timeout 20 "$CHAINFS" mount "$MNT" --config "$config" >"$TMP/out" 2>"$TMP/err" || rc=$?
    fi
    [ "$rc" = 1 ] || fail "$name ($mode): exit code $rc, expected 1; stderr: $(cat "$TMP/err")"
    ! mountpoint -q "$MNT" || fail "$name ($mode): something was mounted"
    [ "$(wc -l <"$TMP/err")" = 1 ] || fail "$name ($mode): expected one line, got: $(cat "$TMP/err")"
    grep -Eq "^chainfs: .*$config:[0-9]+: " "$TMP/err" || fail "$name ($mode): no FILE:LINE in: $(cat "$TMP/err")"
    grep -qF -- "$expected" "$TMP/err" || fail "$name ($mode): '$expected' not in: $(cat "$TMP/err")"
    [ ! -s "$TMP/out" ] || fail "$name ($mode): unexpected stdout: $(cat "$TMP/out")"
  done
  echo "    $name: $(cat "$TMP/err")"
}

step "YAML syntax"
printf 'nodes:\n  - name: a\n    driver: raw\n   file: [oops\n' >"$TMP/syntax.yaml"
check_bad syntax "syntax"

step "unknown key"
cat >"$TMP/unknown_key.yaml" <<EOF
nodes:
  - name: a
    driver: raw
    file: $TMP/a.raw
    colour: blue
EOF
check_bad unknown_key "colour"

step "unknown driver"
cat >"$TMP/driver.yaml" <<EOF
nodes:
  - name: a
    driver: vmdk
    file: $TMP/a.raw
EOF
check_bad driver "vmdk"

step "missing file"
cat >"$TMP/missing.yaml" <<EOF
nodes:
  - name: a
    driver: raw
    file: $TMP/nothere.raw
EOF
check_bad missing "nothere.raw"

step "a name taken twice"
cat >"$TMP/duplicate.yaml" <<EOF
nodes:
  - name: a
    driver: raw
    file: $TMP/a.raw
  - name: a
    driver: raw
    file: $TMP/b.raw
EOF
check_bad duplicate "'a'"

step "backing that names no node"
cat >"$TMP/dangling.yaml" <<EOF
nodes:
  - name: q
    driver: qcow2
    file: $TMP/q.qcow2
    backing: ghost
EOF
check_bad dangling "ghost"

step "a chain of an unknown node"
cat >"$TMP/chain.yaml" <<EOF
nodes:
  - name: a
    driver: raw
    file: $TMP/a.raw
chains:
  - name: vm
    node: ghost
EOF
check_bad chain "ghost"

step "a bad log level"
cat >"$TMP/level.yaml" <<EOF
log-level: loud
EOF
check_bad level "loud"

step "a bad --image option and a missing image are refused too"
rc=0; "$CHAINFS" mount "$MNT" -f --image "$TMP/a.raw,chian=x" 2>"$TMP/err" || rc=$?
expect_eq "bad --image exit code" "$rc" "2"
grep -q "chian" "$TMP/err" || fail "bad --image: $(cat "$TMP/err")"
rc=0; "$CHAINFS" mount "$MNT" --image "$TMP/none.qcow2" 2>"$TMP/err" || rc=$?
expect_eq "missing image exit code" "$rc" "1"
grep -q "none.qcow2" "$TMP/err" || fail "missing image: $(cat "$TMP/err")"
! mountpoint -q "$MNT" || fail "mounted after a missing image"

echo "PASS: $TEST_NAME"
