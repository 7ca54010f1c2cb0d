#!/usr/bin/env bash
# 30_kill9.sh: a worker killed with SIGKILL in the middle of an attempt: the
# invocation is requeued and finished by another worker, and committed once.
source "$(dirname "$0")/../lib.sh"


fx_pg_start

# owner_of NAME: the owner (application_name) of worker NAME's session; the
# owner is fx-HOST-PID-XXXX.
owner_of() {
	q "SELECT application_name FROM pg_stat_activity
	    WHERE application_name LIKE 'fx-%-$(fx_worker_pid "$1")-____' LIMIT 1"
}
sessions_are() { [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fx-%'")" = "$1" ]; }
status_is() { [ "$(q "SELECT status FROM fx.invocation WHERE id = $1")" = "$2" ]; }

# work: logs, sleeps about 3 s, answers.  The sandbox hides the function from
# the host's files, so its runs are seen through its log lines, the
# invocation row, and its sleep, whose argument (unique to this test run and
# to the attempt) shows it in the host's process list.
tag=$$$RANDOM
nap() { echo "sleep 3.${tag}0$1"; }
mkdir -p "$FX_TEST_DIR/fn/work"
cat >"$FX_TEST_DIR/fn/work/main" <<EOF
#!/bin/sh
echo "work: invocation \$FX_INVOCATION_ID attempt \$FX_ATTEMPT started" >&2
sleep 3.${tag}0\$FX_ATTEMPT
echo "work: invocation \$FX_INVOCATION_ID attempt \$FX_ATTEMPT done" >&2
echo "{\"attempt\": \$FX_ATTEMPT}"
EOF
chmod +x "$FX_TEST_DIR/fn/work/main"
fx_deploy work "$FX_TEST_DIR/fn/work" --timeout 20s --retries 0

fx_worker_start A
wait_for "worker A is connected" 10 sessions_are 1
owner_a=$(owner_of A)

id=$(q "SELECT fx_invoke('work', '{}')")
running_on_a() {
	[ "$(q "SELECT status || ' ' || worker || ' ' || attempts FROM fx.invocation WHERE id = $id")" = "running $owner_a 1" ] &&
		pgrep -f "$(nap 1)" >/dev/null
}
seen=
wait_for "attempt 1 runs on worker A ($owner_a): its process is there" 5 running_on_a && seen=1

fx_worker_start B
wait_for "worker B is connected" 10 sessions_are 2
owner_b=$(owner_of B)

kill -KILL "$(fx_worker_pid A)"
killed_at=$SECONDS
wait "$(fx_worker_pid A)" 2>/dev/null

running_on_b() {
	[ "$(q "SELECT status || ' ' || worker || ' ' || attempts FROM fx.invocation WHERE id = $id")" = "running $owner_b 2" ] &&
		pgrep -f "$(nap 2)" >/dev/null
}
wait_for "requeued: attempt 2 runs on worker B ($owner_b): its process is there" 6 running_on_b &&
	seen="${seen:+$seen }2"
# Attempt 1's sandbox may outlive its worker (it is still in its sleep
# here); end it.
left=$(pgrep -f "$(nap 1)")
[ -n "$left" ] && { echo "# attempt 1's process outlived its worker: $left"; kill -KILL $left 2>/dev/null; }
left_s=$((killed_at + 6 - SECONDS))
wait_for "requeued and finished by B within 6 s of the kill" $((left_s > 0 ? left_s : 1)) status_is "$id" succeeded
echo "# finished about $((SECONDS - killed_at)) s after the kill"
check_eq "succeeded on B with attempts = 2, lost = 1" "succeeded|2|1|$owner_b|{\"attempt\": 2}" \
	"$(q "SELECT status, attempts, lost, worker, result FROM fx.invocation WHERE id = $id")"
check_eq "exactly one invocation row, succeeded once" "1|1" \
	"$(q "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM fx.invocation")"
check_eq "the function's code ran twice: attempt 1's process seen on A, attempt 2's on B" "1 2" "$seen"
check_eq "fx_logs: attempt 2's lines exactly once, nothing of attempt 1" \
	"2|stderr|work: invocation $id attempt 2 started;2|stderr|work: invocation $id attempt 2 done" \
	"$(q "SELECT attempt, stream, line FROM fx_logs($id)" | paste -sd ';')"

sleep 1
check_eq "still succeeded once, a second later" "succeeded|2|1" \
	"$(q "SELECT status, attempts, lost FROM fx.invocation WHERE id = $id")"

out=$(q "SELECT fx_call('work', '{}', '10s')" 2>&1)
check_eq "a third invocation still works" '{"attempt": 1}' "$out"
check_eq "and ran on B" "$owner_b" "$(q "SELECT worker FROM fx.invocation ORDER BY id DESC LIMIT 1")"

exit $FX_FAILED
