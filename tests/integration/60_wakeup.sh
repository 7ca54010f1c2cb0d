#!/usr/bin/env bash
# 60_wakeup.sh: an idle worker is woken by the commit of fx_invoke (NOTIFY),
# not by its fallback poll; an invocation exists only once its transaction
# commits; an idle worker costs one transaction a tick, and that tick finds
# work no NOTIFY announced.
source "$(dirname "$0")/../lib.sh"


fx_pg_start

sessions_are() { [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fx-%'")" = "$1" ]; }
status_is() { [ "$(q "SELECT status FROM fx.invocation WHERE id = $1")" = "$2" ]; }

# quick: logs "quick: invocation ID args ARGS" and answers its args.  Its
# runs are seen through these log lines (fx.log): the sandbox hides the
# host's files from it.
ran_with() { q "SELECT count(*) FROM fx.log WHERE line LIKE 'quick: invocation % args ' || \$a\$$1\$a\$"; }
mkdir -p "$FX_TEST_DIR/fn/quick"
cat >"$FX_TEST_DIR/fn/quick/main" <<EOF
#!/bin/sh
args=\$(cat)
echo "quick: invocation \$FX_INVOCATION_ID args \$args" >&2
echo "\$args"
EOF
chmod +x "$FX_TEST_DIR/fn/quick/main"
fx_deploy quick "$FX_TEST_DIR/fn/quick" --timeout 10s --retries 0
# nap: sleeps 5 s, keeping the worker busy (with free slots)
mkdir -p "$FX_TEST_DIR/fn/nap"
printf '#!/bin/sh\nsleep 5\necho null\n' >"$FX_TEST_DIR/fn/nap/main"
chmod +x "$FX_TEST_DIR/fn/nap/main"
fx_deploy nap "$FX_TEST_DIR/fn/nap" --timeout 10s --retries 0

fx_worker_start A
wait_for "worker A is connected" 10 sessions_are 1
# warm the bundle cache, then let the worker idle
check_eq "a first call works" '"warm"' "$(q "SELECT fx_call('quick', '\"warm\"')")"
sleep 2.5

# --- wake-up latency: commit of fx_invoke -> started_at
# Each fx_invoke runs in its own autocommit statement, so created_at (the
# transaction's start) is at most a few ms before its commit.
for i in $(seq 1 20); do
	id=$(q "SELECT fx_invoke('quick', to_jsonb($i))")
	q "SELECT fx_result($id, '5s')" >/dev/null
	ids="${ids:+$ids,}$id"
done
check_eq "the 20 sequential invocations succeeded" 20 \
	"$(q "SELECT count(*) FROM fx.invocation WHERE id IN ($ids) AND status = 'succeeded'")"
check_eq "each of them logged its run once" 20 \
	"$(q "SELECT count(*) FROM fx.log l JOIN fx.invocation i ON i.id = l.invocation_id
	      WHERE i.id IN ($ids) AND l.line = 'quick: invocation ' || i.id || ' args ' || i.args::text")"
lat=$(q "SELECT string_agg(round(ms)::text, ' ' ORDER BY id) FROM
	(SELECT id, extract(epoch FROM started_at - created_at) * 1000 AS ms
	   FROM fx.invocation WHERE id IN ($ids)) s")
median=$(q "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY
	extract(epoch FROM started_at - created_at) * 1000)::numeric, 1)
	FROM fx.invocation WHERE id IN ($ids)")
echo "# enqueue -> start, ms: $lat"
check "median enqueue -> start latency ${median} ms < 50 ms (woken by NOTIFY, not the poll)" \
	awk -v m="$median" 'BEGIN { exit !(m != "" && m < 50) }'

# --- rollback: nothing to run
q "BEGIN; SELECT fx_invoke('quick', '\"rolled back\"'); ROLLBACK;" >/dev/null
sleep 1.5
check_eq "a rolled-back fx_invoke leaves no invocation" 0 \
	"$(q "SELECT count(*) FROM fx.invocation WHERE args = '\"rolled back\"'")"
check_eq "and nothing ran: no log line of it" 0 "$(ran_with '"rolled back"')"

# --- a transaction that commits later: runs only after the commit
"$PG_BIN/psql" -X -qAt -v ON_ERROR_STOP=1 >"$FX_TEST_DIR/later.out" 2>&1 <<'EOF' &
BEGIN;
SELECT fx_invoke('quick', '"later"');
SELECT pg_sleep(1.5);
SELECT 'commit at ' || clock_timestamp();
COMMIT;
EOF
psql_pid=$!
sleep 1
check_eq "before the commit, other sessions see no invocation" 0 \
	"$(q "SELECT count(*) FROM fx.invocation WHERE args = '\"later\"'")"
check_eq "before the commit, it has not run: no log line of it" 0 "$(ran_with '"later"')"
wait "$psql_pid"
check_eq "the transaction committed" 0 "$?"
id=$(sed -n 1p "$FX_TEST_DIR/later.out")
commit_at=$(sed -n 's/^commit at //p' "$FX_TEST_DIR/later.out")
wait_for "after the commit it runs" 5 status_is "${id:-0}" succeeded
check_eq "once: one log line of it, from its invocation" "1|${id:-0}" \
	"$(q "SELECT count(*), min(invocation_id) FROM fx.log WHERE line LIKE 'quick: invocation % args \"later\"'")"
check_eq "it started after the commit" t \
	"$(q "SELECT started_at >= '$commit_at'::timestamptz FROM fx.invocation WHERE id = ${id:-0}")"
d=$(q "SELECT round(extract(epoch FROM started_at - '$commit_at'::timestamptz) * 1000) FROM fx.invocation WHERE id = ${id:-0}")
check "and promptly: ${d} ms after the commit (< 200 ms)" test "${d:-9999}" -lt 200

# --- an idle worker costs one transaction a tick (--poll-ms 200 here):
# the tick's statement reaps, fires schedules, and looks for work that no
# NOTIFY announced and for the next delayed invocation's time; after three
# ticks that found nothing it ticks half as often (every 400 ms here)
sleep 1.5
commits() { q "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
c0=$(commits)
sleep 10
c1=$(commits)
n=$((c1 - c0 - 1))
echo "# idle for 10 s, 25 quiet ticks: $n transactions"
check "an idle worker commits about once a quiet tick: $n in 25 ticks (at most 31)" test "$n" -le 31
# A row written without fx_invoke while the worker is quiet: found by its
# next tick, 400 ms away at most.
id=$(q "INSERT INTO fx.invocation (bucket, fn, version, args, max_attempts)
        SELECT 0, 'quick', max(version), '\"quiet\"', 1 FROM fx.version WHERE fn = 'quick'
        RETURNING id")
wait_for "a quiet worker runs an invocation no NOTIFY announced within 2 s" 2 status_is "${id:-0}" succeeded
# A row written without fx_invoke, so without its NOTIFY: the tick finds
# it, though the worker is busy with another invocation (it has free slots).
napping=$(q "SELECT fx_invoke('nap')")
wait_for "a 5 s invocation is running" 5 status_is "$napping" running
id=$(q "INSERT INTO fx.invocation (bucket, fn, version, args, max_attempts)
        SELECT 0, 'quick', max(version), '\"unannounced\"', 1 FROM fx.version WHERE fn = 'quick'
        RETURNING id")
wait_for "an invocation no NOTIFY announced runs within 3 s" 3 status_is "${id:-0}" succeeded
check_eq "once: one log line of it" 1 "$(ran_with '"unannounced"')"
check_eq "meanwhile the other one still runs" running "$(q "SELECT status FROM fx.invocation WHERE id = $napping")"

# --- a relative --cache is taken from the worker's working directory: the
# sandbox, which mounts the bundle from it, used to find nothing there
fx_worker_stop A
pushd "$FX_TEST_DIR" >/dev/null || exit 2
fx_worker_start R --cache relative-cache
popd >/dev/null || exit 2
wait_for "worker R is connected" 10 sessions_are 1
check_eq "a worker started with --cache relative-cache runs a call" '"relative"' \
	"$(q "SELECT fx_call('quick', '\"relative\"')" 2>&1)"
check "its bundles are under the directory it was started in" \
	test -d "$FX_TEST_DIR/relative-cache"

exit $FX_FAILED
