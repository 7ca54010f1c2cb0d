#!/usr/bin/env bash
# tests/chaos/run.sh: exactly once under crashes.
#
# Several workers run a bank of keyed functions (tests/chaos/fn/chaos.py):
# transfers between accounts through sql, counters through state.  Work is
# enqueued all along while this script
#   - kills a random worker with SIGKILL every 100-400 ms and starts a new one,
#   - restarts PostgreSQL (immediate shutdown) at the half-way point,
#   - every tenth kill, also ends the database session of a worker running a
#     transfer (pg_terminate_backend): its other sessions, and the transfer's
#     own transaction, live on, but its leases are taken over as lost (this
#     script runs fx.reap() at once, before the worker reconnects), so its
#     late completion must be refused and the transfer's writes rolled back,
#   - stops a worker (SIGSTOP) for longer than its leases at a quarter and at
#     three quarters, so that another worker takes its invocations over, and
#     then lets it go on: a zombie finishing late, whose completions must be
#     refused.
# Then it waits for every invocation to end and checks:
#   - every invocation succeeded, or failed or is dead with a reason; none
#     is lost or still queued or running;
#   - each counter's state equals the number of its succeeded invocations,
#     and no invocation of a key ran after a later one;
#   - the sum of all balances is unchanged, and each balance is its start
#     plus its history;
#   - each succeeded transfer is in the history exactly once (two rows), and
#     no other transfer is.
# Last line: "chaos: N invocations, K kills, R restarts, V violations"; the
# script fails unless V is 0.
#
#   KILLS=200 bash tests/chaos/run.sh     (make check runs this size)
#   make chaos                            (KILLS=5000)
#   make chaos KILLS=N
#
# Other knobs: WORKERS (3), ACCOUNTS (16), COUNTERS (8), BATCH (invocations
# enqueued every 100 ms, 8), DRAIN_S (seconds allowed to finish, 300),
# KILL_GAP_MS (100: the least time between kills; up to 300 ms more at random).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/invariants.sh"

KILLS=${KILLS:-200}
WORKERS=${WORKERS:-3}
ACCOUNTS=${ACCOUNTS:-16}
COUNTERS=${COUNTERS:-8}
BATCH=${BATCH:-8}
DRAIN_S=${DRAIN_S:-300}
KILL_GAP_MS=${KILL_GAP_MS:-100}
TIMEOUT_MS=3000
SLACK_MS=1000
START_BALANCE=1000

fx_pg_start

q "CREATE ROLE chaos_fn LOGIN;
   CREATE TABLE chaos_account (id int PRIMARY KEY, balance bigint NOT NULL);
   CREATE TABLE chaos_history (transfer bigint NOT NULL, account int NOT NULL,
                               delta bigint NOT NULL, at timestamptz DEFAULT clock_timestamp());
   CREATE INDEX ON chaos_history (transfer);
   CREATE SEQUENCE chaos_transfer;
   INSERT INTO chaos_account SELECT i, $START_BALANCE FROM generate_series(1, $ACCOUNTS) i;
   GRANT SELECT, UPDATE ON chaos_account TO chaos_fn;
   GRANT INSERT ON chaos_history TO chaos_fn;" >/dev/null

bundle_dir=$FX_TEST_DIR/fn
mkdir -p "$bundle_dir"
cp "$FX_ROOT/tests/chaos/fn/chaos.py" "$bundle_dir/"
opts="{\"mode\": \"session\", \"role\": \"chaos_fn\", \"retries\": 10, \"timeout_ms\": $TIMEOUT_MS}"
fx_deploy transfer "$bundle_dir" --cmd "python3 chaos.py transfer" --mode session
q "SELECT fx_deploy('transfer', fx.bundle('transfer', 1), ARRAY['python3', 'chaos.py', 'transfer'], '$opts');
   SELECT fx_deploy('counter', fx.bundle('transfer', 1), ARRAY['python3', 'chaos.py', 'counter'], '$opts');" >/dev/null

# --- workers -------------------------------------------------------------

declare -a W
start_worker() {
	$FX_WORKER_WRAPPER "$FX_BIN" worker --cache "$FX_TEST_DIR/cache" --concurrency 8 \
		--poll-ms 200 --backoff-ms 50 --lease-slack-ms $SLACK_MS \
		>>"$FX_TEST_DIR/worker$1.log" 2>&1 &
	W[$1]=$!
	FX_PIDS=("${W[@]}")			# fx_cleanup stops the live ones only
}
for ((i = 0; i < WORKERS; i++)); do start_worker $i; done

# --- enqueuer: BATCH invocations every 100 ms until told to stop -------

stop_file=$FX_TEST_DIR/stop-enqueue
enqueue() {
	while [ ! -e "$stop_file" ]; do
		q "SELECT count(fx_invoke('transfer',
		           jsonb_build_object('id', nextval('chaos_transfer'), 'from', a, 'to', b,
		                              'amount', 1 + (random() * 50)::int),
		           key => a::text))
		     FROM (SELECT 1 + (random() * ($ACCOUNTS - 1))::int AS a,
		                  1 + (random() * ($ACCOUNTS - 1))::int AS b
		             FROM generate_series(1, $BATCH / 2)) p WHERE a <> b;
		   SELECT count(fx_invoke('counter', '{}', key => 'c' || (random() * ($COUNTERS - 1))::int))
		     FROM generate_series(1, $BATCH / 2);" >/dev/null 2>&1
		sleep 0.1
	done
}
enqueue &
enqueuer=$!

# --- chaos -----------------------------------------------------------------

kills=0
restarts=0
zombies=0
cuts=0
crashes=0
# A worker that exited though nobody killed it crashed: count it, replace it.
check_alive() {
	local i
	for ((i = 0; i < WORKERS; i++)); do
		if ! kill -0 "${W[$i]}" 2>/dev/null; then
			wait "${W[$i]}" 2>/dev/null
			echo "# worker $i (pid ${W[$i]}) exited by itself"
			crashes=$((crashes + 1))
			start_worker "$i"
		fi
	done
}
begun=$SECONDS
while [ $kills -lt "$KILLS" ]; do
	check_alive
	gap=$((KILL_GAP_MS + RANDOM % 300))
	sleep "$((gap / 1000)).$(printf %03d $((gap % 1000)))"
	i=$((RANDOM % WORKERS))
	kill -KILL "${W[$i]}" 2>/dev/null
	wait "${W[$i]}" 2>/dev/null
	start_worker $i
	kills=$((kills + 1))
	if [ $((kills % 10)) -eq 5 ]; then
		cut=$(q "SELECT count(pg_terminate_backend(lease_pid)) FROM (
		           SELECT lease_pid FROM fx.invocation
		            WHERE status = 'running' AND fn = 'transfer' ORDER BY random() LIMIT 1) s;
		         SELECT pg_sleep(0.01); SELECT fx.reap();" 2>/dev/null | head -1)
		cuts=$((cuts + ${cut:-0}))
	fi
	if [ $kills -eq $((KILLS / 2)) ]; then
		fx_pg_ctl restart -m immediate && restarts=$((restarts + 1))
	fi
	if [ $kills -eq $((KILLS / 4)) ] || [ $kills -eq $((3 * KILLS / 4)) ]; then
		i=$(((i + 1) % WORKERS))
		kill -STOP "${W[$i]}"
		sleep $(((TIMEOUT_MS + SLACK_MS) / 1000 + 2))
		kill -CONT "${W[$i]}"
		zombies=$((zombies + 1))
	fi
	if [ $((kills % 100)) -eq 0 ]; then
		echo "# $kills kills, $cuts cut session(s), $restarts restart(s), $zombies zombie(s) in $((SECONDS - begun)) s;" \
			"$(q "SELECT count(*) FILTER (WHERE status = 'succeeded') || ' succeeded of ' || count(*) FROM fx.invocation" 2>/dev/null)"
	fi
done
touch "$stop_file"
wait $enqueuer
echo "# chaos over after $((SECONDS - begun)) s ($cuts worker sessions cut, $zombies zombies); waiting for the invocations to end"

wait_for "every invocation ends within ${DRAIN_S} s" "$DRAIN_S" settled
check_alive
check_eq "no worker exited by itself" 0 "$crashes"
for ((i = 0; i < WORKERS; i++)); do kill -TERM "${W[$i]}" 2>/dev/null; done
for ((i = 0; i < WORKERS; i++)); do wait "${W[$i]}" 2>/dev/null; done

# --- checks ------------------------------------------------------------------

total=$(q "SELECT count(*) FROM fx.invocation")
echo "# $(q "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) n FROM fx.invocation GROUP BY 1 ORDER BY 1) s")"
echo "# lost attempts: $(q "SELECT coalesce(sum(lost), 0) FROM fx.invocation"), retried attempts: $(q "SELECT coalesce(sum(attempts - 1), 0) FROM fx.invocation")"

# The invariants of tests/chaos/invariants.sh, after two of this suite's
# own: here an invocation may end failed or dead, but with a reason.
expect "no invocation is lost, queued or running" \
	"SELECT count(*) FROM fx.invocation WHERE status NOT IN ('succeeded', 'failed', 'dead')"
expect "every invocation that did not succeed says why" \
	"SELECT count(*) FROM fx.invocation WHERE status <> 'succeeded' AND error IS NULL"
expect_counters
expect_balances
expect_transfers

echo "chaos: $total invocations, $kills kills, $restarts restarts, $VIOLATIONS violations"
[ "$VIOLATIONS" = 0 ]
