#!/usr/bin/env bash
# 65_logs.sh: log lines reach fx.log while the invocation runs, so that
# `fx logs ID -f` follows it; every line is stored once, in order, across
# the lines sent while it ran and those sent with its completion; and
# `fx logs --fn NAME --since DURATION` shows a function's recent lines.
source "$(dirname "$0")/../lib.sh"


fx_pg_start

mkdir -p "$FX_TEST_DIR/fn/slow"
cat >"$FX_TEST_DIR/fn/slow/main" <<'EOF2'
#!/bin/sh
echo "slow: first" >&2
sleep 1.5
echo "slow: second" >&2
sleep 1.5
echo "slow: third" >&2
echo '{"done": true}'
EOF2
chmod +x "$FX_TEST_DIR/fn/slow/main"
fx_deploy slow "$FX_TEST_DIR/fn/slow" --timeout 20s
mkdir -p "$FX_TEST_DIR/fn/chatty"
cat >"$FX_TEST_DIR/fn/chatty/main.py" <<'EOF2'
import sys, time
import fx

def handler(args, ctx):
    for i in range(args.get("lines", 3)):
        print("chatty: line %d" % i, file=sys.stderr, flush=True)
        time.sleep(args.get("pause", 0))
    return i

fx.run(handler)
EOF2
fx_deploy chatty "$FX_TEST_DIR/fn/chatty" --cmd "python3 main.py" --mode session
fx_worker_start A

id=$(q "SELECT fx_invoke('slow', '{}')")
first_seen() {
	[ "$(q "SELECT fx_status($id)")" = running ] &&
		"$FX_BIN" logs "$id" | grep -q 'slow: first'
}
wait_for "fx logs shows the first line while the invocation runs" 5 first_seen
out=$(timeout 20 "$FX_BIN" logs "$id" -f)
check_eq "fx logs -f follows it to the end: three lines, in order" \
	"slow: first|slow: second|slow: third" "$(sed -E 's/.*stderr: //' <<<"$out" | paste -sd '|')"
check_eq "each line stored once (seq 1..n, no gap)" "3 1 3" \
	"$(q "SELECT count(*) || ' ' || min(seq) || ' ' || max(seq) FROM fx.log WHERE invocation_id = $id")"
check_eq "the invocation succeeded" "succeeded" "$(q "SELECT fx_status($id)")"

# A session function: lines while it runs and after, one attempt's seqs 1..n.
id=$(q "SELECT fx_invoke('chatty', '{\"lines\": 6, \"pause\": 0.3}')")
wait_for "the session function's run ends" 15 bash -c "[ \"\$(psql -X -qAt -c \"SELECT fx_status($id)\")\" = succeeded ]"
check_eq "its six lines, in order, seq 1..6" "0 1 2 3 4 5|1 6" \
	"$(q "SELECT string_agg(substr(line, 14), ' ' ORDER BY seq) || '|' || min(seq) || ' ' || max(seq)
	      FROM fx.log WHERE invocation_id = $id")"
out=$(q "SELECT fx_call('chatty', '{\"lines\": 2}')")
check_eq "a quick call's lines come with its completion" "2" \
	"$(q "SELECT count(*) FROM fx.log l JOIN fx.invocation i ON i.id = l.invocation_id
	      WHERE i.fn = 'chatty' AND i.id > $id")"

# fx logs --fn NAME --since DURATION
out=$("$FX_BIN" logs --fn chatty --since 10m)
check_eq "fx logs --fn chatty --since 10m: the function's 8 lines" "8" "$(grep -c 'chatty: line' <<<"$out")"
check "... each naming its invocation" grep -q "\[invocation $id attempt 1\] stderr: chatty: line 0" <<<"$out"
out=$("$FX_BIN" logs --fn slow --since 1s 2>&1)
check_eq "--since 1s: nothing that old" "" "$out"
err=$("$FX_BIN" logs --fn nope 2>&1 >/dev/null)
rc=$?
check_eq "--fn of a function not deployed: exit 1 and the error" "1 fx: function \"nope\" is not deployed" "$rc $err"
"$FX_BIN" logs --fn chatty 7 >/dev/null 2>&1
check_eq "--fn with an id: usage, exit 2" "2" "$?"
