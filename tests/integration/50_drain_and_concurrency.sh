#!/usr/bin/env bash
# 50_drain_and_concurrency.sh: SIGTERM drains a worker (the running attempt
# finishes, nothing new is claimed, exit 0); two workers share 200
# invocations enqueued in one statement, each run exactly once; busy
# workers claim in batches.
source "$(dirname "$0")/../lib.sh"


fx_pg_start

status_is() { [ "$(q "SELECT status FROM fx.invocation WHERE id = $1")" = "$2" ]; }
sessions_are() { [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fx-%'")" = "$1" ]; }
owner_of() {
	q "SELECT application_name FROM pg_stat_activity
	    WHERE application_name LIKE 'fx-%-$(fx_worker_pid "$1")-____' LIMIT 1"
}

# slow: sleeps 2 s; fast: logs its invocation id and attempt, answers its
# args.
mkdir -p "$FX_TEST_DIR/fn/slow" "$FX_TEST_DIR/fn/fast"
cat >"$FX_TEST_DIR/fn/slow/main" <<'EOF'
#!/bin/sh
sleep 2
echo '"slept"'
EOF
cat >"$FX_TEST_DIR/fn/fast/main" <<EOF
#!/bin/sh
args=\$(cat)
echo "fast: invocation \$FX_INVOCATION_ID attempt \$FX_ATTEMPT" >&2
echo "\$args"
EOF
chmod +x "$FX_TEST_DIR/fn/slow/main" "$FX_TEST_DIR/fn/fast/main"
fx_deploy slow "$FX_TEST_DIR/fn/slow" --timeout 10s --retries 0
fx_deploy fast "$FX_TEST_DIR/fn/fast" --timeout 10s --retries 0

# --- drain on SIGTERM
fx_worker_start A
pid_a=$(fx_worker_pid A)
wait_for "worker A is connected" 10 sessions_are 1
id=$(q "SELECT fx_invoke('slow')")
wait_for "the slow invocation is running" 5 status_is "$id" running
kill -TERM "$pid_a"
sleep 0.2
late=$(q "SELECT fx_invoke('fast', '\"late\"')")
gone() { ! kill -0 "$pid_a" 2>/dev/null; }
wait_for "the worker exits after SIGTERM" 10 gone
wait "$pid_a"
check_eq "the worker's exit status is 0" 0 "$?"
check_eq "the running invocation was finished and recorded" 'succeeded|1|"slept"' \
	"$(q "SELECT status, attempts, result FROM fx.invocation WHERE id = $id")"
sleep 0.5
check_eq "the invocation enqueued after SIGTERM stays queued" "queued|0" \
	"$(q "SELECT status, attempts FROM fx.invocation WHERE id = $late")"
check_eq "it never ran: no log line, no start" "0|" \
	"$(q "SELECT count(l.invocation_id), max(i.started_at) FROM fx.invocation i LEFT JOIN fx.log l ON l.invocation_id = i.id
	      WHERE i.id = $late GROUP BY i.id")"
check_eq "the worker's session is gone" 0 \
	"$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fx-%'")"
q "SELECT fx_cancel($late)" >/dev/null

# --- two workers, 200 invocations in one statement
fx_worker_start B
wait_for "worker B is connected" 10 sessions_are 1
fx_worker_start C
wait_for "worker C is connected" 10 sessions_are 2
owner_b=$(owner_of B)
owner_c=$(owner_of C)
q "SELECT fx_invoke('fast', to_jsonb(i)) FROM generate_series(1, 200) i" >/dev/null
all_done() {
	[ "$(q "SELECT count(*) FROM fx.invocation WHERE fn = 'fast' AND id <> $late
	        AND status NOT IN ('queued', 'running')")" = 200 ]
}
t0=$SECONDS
wait_for "all 200 finish within 30 s" 30 all_done
echo "# in about $((SECONDS - t0)) s"
check_eq "200 succeeded, 200 distinct ids, attempts = 1 everywhere" "200|200|200" \
	"$(q "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE attempts = 1 AND lost = 0)
	      FROM fx.invocation WHERE fn = 'fast' AND status = 'succeeded'")"
check_eq "each result is its own args, and the args are 1..200" "200|200" \
	"$(q "SELECT count(*) FILTER (WHERE result = args), count(DISTINCT result)
	      FROM fx.invocation WHERE fn = 'fast' AND status = 'succeeded'
	       AND (args #>> '{}')::int BETWEEN 1 AND 200")"
q "SELECT id, args, coalesce(result::text, 'NULL'), worker, round(wall_ms) FROM fx.invocation
    WHERE fn = 'fast' AND id <> $late AND result IS DISTINCT FROM args ORDER BY id LIMIT 10" |
	sed 's/^/# result differs from args: /'
# Each run of the code logs one line, kept with its attempt: one run per
# invocation means exactly one line per invocation, its own id, attempt 1.
check_eq "the function's code ran exactly once per invocation (200 log lines, one per id, each its own)" \
	"200|200|200" \
	"$(q "SELECT count(*), count(DISTINCT l.invocation_id),
	             count(*) FILTER (WHERE l.attempt = 1 AND l.stream = 'stderr'
	                              AND l.line = 'fast: invocation ' || i.id || ' attempt 1')
	        FROM fx.log l JOIN fx.invocation i ON i.id = l.invocation_id WHERE i.fn = 'fast'")"
by_worker=$(q "SELECT worker || ' ' || count(*) FROM fx.invocation
               WHERE fn = 'fast' AND status = 'succeeded' GROUP BY worker ORDER BY worker" | paste -sd ',')
echo "# per worker: $by_worker"
took() { [ "$(q "SELECT count(*) FROM fx.invocation WHERE fn = 'fast' AND worker = '$1' AND status = 'succeeded'")" -gt 0 ]; }
check "worker B took some" took "$owner_b"
check "worker C took some" took "$owner_c"
check_eq "no other worker took any" 0 \
	"$(q "SELECT count(*) FROM fx.invocation WHERE fn = 'fast' AND status = 'succeeded'
	      AND worker NOT IN ('$owner_b', '$owner_c')")"

# --- 200 more in one fx_invoke_all: its one NOTIFY wakes the workers, and
# each runs once, with its own args
ids=$(q "SELECT fx_invoke_all('fast', array_agg(to_jsonb(i) ORDER BY i))
         FROM generate_series(201, 400) i")
# ended N: all N invocations of $ids have ended
ended() {
	[ "$(q "SELECT count(*) FROM fx.invocation WHERE id = ANY ('$ids')
	        AND status NOT IN ('queued', 'running')")" = "$1" ]
}
wait_for "all 200 of the batch finish within 30 s" 30 ended 200
check_eq "the batch: 200 succeeded once, each with its own args, ids in args' order" "200|200|200" \
	"$(q "SELECT count(*) FILTER (WHERE i.status = 'succeeded' AND i.attempts = 1),
	             count(*) FILTER (WHERE i.result = i.args),
	             count(*) FILTER (WHERE (i.args #>> '{}')::int = 200 + o.n)
	        FROM unnest('$ids'::bigint[]) WITH ORDINALITY o(id, n)
	        JOIN fx.invocation i ON i.id = o.id")"

# --- claims come in batches: while all of a worker's slots are busy and a
# round of work waits claimed, it claims again only once half its room
# (slots + prefetch) is free, not a row or two each time one finishes.
# The rows of one claim share its transaction's time, started_at.
fx_worker_stop B
fx_worker_stop C
fx_worker_start D --concurrency 2 --prefetch 8
fx_worker_start E --concurrency 2 --prefetch 8
wait_for "workers D and E are connected" 10 sessions_are 2
ids=$(q "SELECT fx_invoke_all('fast', array_agg(to_jsonb(i) ORDER BY i))
         FROM generate_series(1, 300) i")
wait_for "300 more finish through 2 x 2 slots within 60 s" 60 ended 300
check_eq "each of the 300 succeeded once" 300 \
	"$(q "SELECT count(*) FROM fx.invocation WHERE id = ANY ('$ids') AND status = 'succeeded' AND attempts = 1")"
claims=$(q "SELECT count(DISTINCT (worker, started_at)) FROM fx.invocation WHERE id = ANY ('$ids')")
echo "# 300 invocations in $claims claims"
check "they came in at most 75 claims, 4 rows a claim or more on average (room 10, half is 5)" \
	[ "$claims" -le 75 ]

exit $FX_FAILED
