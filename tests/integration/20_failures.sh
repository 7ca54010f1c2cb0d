#!/usr/bin/env bash
# 20_failures.sh: how attempts fail and what is recorded: timeout (the whole
# process tree dies), retries then dead, a retry that succeeds, bad output,
# a session process that dies, fx_cancel of a running invocation, delay.
source "$(dirname "$0")/../lib.sh"


fx_pg_start

# mkfn NAME FILE: a bundle directory holding FILE (read from stdin), executable.
mkfn() {
	mkdir -p "$FX_TEST_DIR/fn/$1"
	cat >"$FX_TEST_DIR/fn/$1/$2"
	chmod +x "$FX_TEST_DIR/fn/$1/$2"
	echo "$FX_TEST_DIR/fn/$1"
}

# status_is ID STATUS...: the invocation's status is one of STATUS.
status_is() {
	local s
	s=$(q "SELECT status FROM fx.invocation WHERE id = $1")
	shift
	for want in "$@"; do [ "$s" = "$want" ] && return 0; done
	return 1
}

# Unique markers: other tests may run sleeps on this machine at the same time.
tag=$$$RANDOM
bg_sleep="sleep 300.$tag"
cancel_sleep="sleep 200.$tag"
no_proc() { ! pgrep -f "$1" >/dev/null; }

fx_worker_start A

# --- timeout: the process tree dies, the attempt fails with "timed out"
dir=$(mkfn slow main <<EOF2
#!/bin/sh
$bg_sleep &
echo "slow: started" >&2
exec sleep 30
EOF2
)
fx_deploy slow "$dir" --timeout 1s --retries 0
id=$(q "SELECT fx_invoke('slow')")
t0=$SECONDS
wait_for "timeout: a background child is running" 5 pgrep -f "$bg_sleep"
wait_for "timeout: ends within a few seconds" 5 status_is "$id" failed dead
check_eq "timeout: failed after 1 attempt" "failed|1" \
	"$(q "SELECT status, attempts FROM fx.invocation WHERE id = $id")"
err=$(q "SELECT error FROM fx.invocation WHERE id = $id")
if grep -q "timed out after 1000 ms" <<<"$err"; then ok "timeout: error says 'timed out after 1000 ms'"
else not_ok "timeout: error says 'timed out after 1000 ms' (got '$err')"; fi
wait_for "timeout: no process of its tree survives (no '$bg_sleep')" 2 no_proc "$bg_sleep"
no_proc "$bg_sleep" || kill -KILL $(pgrep -f "$bg_sleep") 2>/dev/null
wall=$(q "SELECT round(wall_ms) FROM fx.invocation WHERE id = $id")
check "timeout: wall_ms about 1000 (got $wall)" test "${wall:-0}" -ge 900 -a "${wall:-0}" -lt 3000

# --- always fails: retried, then dead
dir=$(mkfn bad main <<'EOF2'
#!/bin/sh
echo "bad: attempt $FX_ATTEMPT went wrong" >&2
echo "bad: giving up" >&2
exit 3
EOF2
)
fx_deploy bad "$dir" --timeout 5s --retries 2
id=$(q "SELECT fx_invoke('bad')")
wait_for "retries: ends dead" 10 status_is "$id" dead
check_eq "retries: dead after attempts = 3" "dead|3|0" \
	"$(q "SELECT status, attempts, lost FROM fx.invocation WHERE id = $id")"
err=$(q "SELECT error FROM fx.invocation WHERE id = $id")
if grep -q "exit status 3" <<<"$err"; then ok "retries: error mentions exit status 3 ($err)"
else not_ok "retries: error mentions exit status 3 (got '$err')"; fi
detail=$(q "SELECT error_detail FROM fx.invocation WHERE id = $id")
if grep -q "bad: attempt 3 went wrong" <<<"$detail" && grep -q "bad: giving up" <<<"$detail"; then
	ok "retries: detail has the last attempt's stderr"
else
	not_ok "retries: detail has the last attempt's stderr (got '$detail')"
fi
check_eq "retries: each attempt kept its log" "1|2|3" \
	"$(q "SELECT string_agg(DISTINCT attempt::text, '|') FROM fx_logs($id)")"
check_eq "retries: fx_status says dead" dead "$(q "SELECT fx_status($id)")"

# --- fails once, then succeeds: the first attempt fails, the retry (which
# sees FX_ATTEMPT=2) succeeds
dir=$(mkfn flaky main <<'EOF2'
#!/bin/sh
if [ "$FX_ATTEMPT" = 1 ]; then
	echo "flaky: attempt 1 fails" >&2
	exit 1
fi
echo "flaky: attempt $FX_ATTEMPT succeeds" >&2
echo "{\"attempt\": $FX_ATTEMPT}"
EOF2
)
fx_deploy flaky "$dir" --timeout 5s --retries 2
id=$(q "SELECT fx_invoke('flaky')")
wait_for "flaky: ends succeeded" 10 status_is "$id" succeeded
check_eq "flaky: succeeded with attempts = 2" "succeeded|2|{\"attempt\": 2}" \
	"$(q "SELECT status, attempts, result FROM fx.invocation WHERE id = $id")"
check_eq "flaky: no error left on the succeeded row" "" \
	"$(q "SELECT coalesce(error, '') FROM fx.invocation WHERE id = $id")"
check_eq "flaky: both attempts ran and kept their log" \
	"1|flaky: attempt 1 fails;2|flaky: attempt 2 succeeds" \
	"$(q "SELECT attempt, line FROM fx_logs($id)" | paste -sd ';')"

# steady: always succeeds at once, answers the attempt it saw.
dir=$(mkfn steady main <<'EOF2'
#!/bin/sh
echo "{\"attempt\": $FX_ATTEMPT}"
EOF2
)
fx_deploy steady "$dir" --timeout 5s --retries 2

# --- bad output
dir=$(mkfn garbage main <<'EOF2'
#!/bin/sh
echo "this is not JSON"
EOF2
)
fx_deploy garbage "$dir" --timeout 5s --retries 0
id=$(q "SELECT fx_invoke('garbage')")
wait_for "bad output: ends failed" 5 status_is "$id" failed
err=$(q "SELECT error FROM fx.invocation WHERE id = $id")
if grep -q "^bad output" <<<"$err"; then ok "bad output: error is '$err'"
else not_ok "bad output: error starts with 'bad output' (got '$err')"; fi

# --- a session process that exits during an invocation
dir=$(mkfn crashy main.py <<'EOF2'
import os
import sys

import fx

count = 0
token = os.urandom(8).hex()  # this process's identity: pids are always 2


def handler(args, ctx):
    global count
    count += 1
    if isinstance(args, dict) and args.get("die"):
        print("crashy: dying", file=sys.stderr, flush=True)
        os._exit(1)
    return {"count": count, "token": token}


fx.run(handler)
EOF2
)
fx_deploy crashy "$dir" --cmd "python3 main.py" --mode session --timeout 5s --retries 0
r1=$(q "SELECT fx_call('crashy', '{}', '10s')")
r2=$(q "SELECT fx_call('crashy', '{}', '10s')")
token1=$(q "SELECT (\$j\$$r1\$j\$::jsonb)->>'token'")
check "session: the process reports a token ('$token1')" test -n "$token1"
check_eq "session: warm process serves the second call (count 2, same token)" \
	"2|$token1" "$(q "SELECT (\$j\$$r2\$j\$::jsonb)->>'count' || '|' || ((\$j\$$r2\$j\$::jsonb)->>'token')")"
id=$(q "SELECT fx_invoke('crashy', '{\"die\": true}')")
wait_for "session: the invocation whose process exits fails" 10 status_is "$id" failed dead
err=$(q "SELECT error FROM fx.invocation WHERE id = $id")
if grep -qE "session process .*status 1" <<<"$err"; then ok "session: error is '$err'"
else not_ok "session: error says the session process exited with status 1 (got '$err')"; fi
r3=$(q "SELECT fx_call('crashy', '{}', '10s')" 2>&1)
token3=$(q "SELECT (\$j\$$r3\$j\$::jsonb)->>'token'" 2>/dev/null)
if [ "$(q "SELECT (\$j\$$r3\$j\$::jsonb)->>'count'" 2>/dev/null)" = 1 ] &&
	[ -n "$token3" ] && [ "$token3" != "$token1" ]; then
	ok "session: the next invocation works in a new process (cold start, count 1, new token)"
else
	not_ok "session: the next invocation works in a new process (got '$r3', first token $token1)"
fi

# --- fx_cancel of a running invocation
dir=$(mkfn long main <<EOF2
#!/bin/sh
echo "long: started" >&2
exec $cancel_sleep
EOF2
)
fx_deploy long "$dir" --timeout 60s --retries 2
id=$(q "SELECT fx_invoke('long')")
wait_for "cancel: the invocation is running" 5 status_is "$id" running
wait_for "cancel: its process is there" 5 pgrep -f "$cancel_sleep"
check_eq "cancel: fx_cancel returns true" t "$(q "SELECT fx_cancel($id)")"
check_eq "cancel: status cancelled" cancelled "$(q "SELECT fx_status($id)")"
wait_for "cancel: its process is killed" 3 no_proc "$cancel_sleep"
no_proc "$cancel_sleep" || kill -KILL $(pgrep -f "$cancel_sleep") 2>/dev/null
sleep 1
check_eq "cancel: still cancelled once the worker is done with it, not retried" "cancelled|1" \
	"$(q "SELECT status, attempts FROM fx.invocation WHERE id = $id")"
check_eq "cancel: fx_cancel again returns false" f "$(q "SELECT fx_cancel($id)")"
out=$(q "SELECT fx_call('steady', '{}', '10s')")
check_eq "cancel: the worker still serves" '{"attempt": 1}' "$out"

# --- delayed invocation
id=$(q "SELECT fx_invoke('steady', '{}', delay => '1s')")
sleep 0.6
check_eq "delay: not started after 0.6 s" queued "$(q "SELECT fx_status($id)")"
wait_for "delay: runs after the delay" 5 status_is "$id" succeeded
d=$(q "SELECT round(extract(epoch FROM started_at - created_at) * 1000) FROM fx.invocation WHERE id = $id")
check "delay: started ${d} ms after it was enqueued (>= 950, < 2500)" test "${d:-0}" -ge 950 -a "${d:-0}" -lt 2500

exit $FX_FAILED
