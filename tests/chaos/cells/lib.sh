# tests/chaos/cells/lib.sh: what the chaos cells share (bash, sourced by
# each tests/chaos/cells/<cell>.sh, which tests/chaos/cells.sh runs).
#
# A cell starts its own PostgreSQL (tests/lib.sh), deploys the functions of
# the chaos suite (tests/chaos/fn/chaos.py: transfer, counter) and its own
# (fn.py beside this file: mark, storm, ping), starts two workers, puts a
# steady load on them (load_start), does its fault, and then checks the
# invariants (cell_check) and reports (cell_report).
#
# Invariants, as in tests/chaos/run.sh (those they share are in
# tests/chaos/invariants.sh):
#   - no invocation is left queued or running;
#   - every invocation succeeded, except storm's, which are dead after
#     exactly their allowed attempts;
#   - each counter's state is the number of its succeeded invocations, in
#     enqueue order;
#   - balances add up, each succeeded transfer is in the history exactly
#     once (two rows) and no other one is;
#   - each succeeded mark wrote its row exactly once, and no invocation
#     that did not succeed left a row (storm writes one, then fails).
#
# Recovery time, the same for every cell: a fault ends at a moment T
# (fault_end: the backend kills stop, PostgreSQL accepts connections again,
# the other client's connections are closed, the snapshot holder commits,
# the last failing or high-priority invocation is enqueued); the cell
# recovered when every invocation enqueued before T has ended.  It is
# max(finished_at) of those minus T, from the database's clock (the same
# host's), 0 when they had all ended by T; with several faults, the largest.
# The load goes on past T, so the workers also serve new work meanwhile.
#
# SIZE=small|full picks the durations (size SMALL FULL).

source "$(dirname "${BASH_SOURCE[0]}")/../../lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../invariants.sh"

SIZE=${SIZE:-small}
CELL=${CELL:-$(basename "$0" .sh)}
# each check names its cell; a query that fails says so
EXPECT_PREFIX="$CELL: "
EXPECT_NO_COUNT="query failed"
size() { if [ "$SIZE" = full ]; then echo "$2"; else echo "$1"; fi; }

WORKERS=2
CONCURRENCY=${CONCURRENCY:-8}
TIMEOUT_MS=5000
SLACK_MS=1000
RETRIES=10
ACCOUNTS=16
COUNTERS=8
START_BALANCE=1000
DRAIN_S=${DRAIN_S:-$(size 90 600)}

# now_s: this host's clock, seconds with a fraction.
now_s() { date +%s.%N; }

# secs_since T: seconds from T (now_s) to now, two decimals.
secs_since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }'; }

# sleep_ms N
sleep_ms() { sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"; }

# --- set-up ---------------------------------------------------------------

# cell_setup [SETTING=VALUE...]: a fresh PostgreSQL (with these settings,
# by ALTER SYSTEM and a restart), the tables and the functions.
cell_setup() {
	local s
	fx_pg_start
	if [ $# -gt 0 ]; then
		for s in "$@"; do q "ALTER SYSTEM SET ${s%%=*} = '${s#*=}'" >/dev/null; done
		fx_pg_ctl restart -m fast || { not_ok "$CELL: PostgreSQL restarted with $*"; exit 1; }
	fi
	q "CREATE ROLE chaos_fn LOGIN;
	   CREATE TABLE chaos_account (id int PRIMARY KEY, balance bigint NOT NULL);
	   CREATE TABLE chaos_history (transfer bigint NOT NULL, account int NOT NULL,
	                               delta bigint NOT NULL, at timestamptz DEFAULT clock_timestamp());
	   CREATE INDEX ON chaos_history (transfer);
	   CREATE SEQUENCE chaos_transfer;
	   INSERT INTO chaos_account SELECT i, $START_BALANCE FROM generate_series(1, $ACCOUNTS) i;
	   CREATE TABLE cell_mark (inv bigint NOT NULL, fn text NOT NULL,
	                           at timestamptz DEFAULT clock_timestamp());
	   CREATE INDEX ON cell_mark (inv);
	   GRANT SELECT, UPDATE ON chaos_account TO chaos_fn;
	   GRANT INSERT ON chaos_history, cell_mark TO chaos_fn;" >/dev/null
	local dir=$FX_TEST_DIR/fn
	mkdir -p "$dir"
	cp "$FX_ROOT/tests/chaos/fn/chaos.py" "$FX_ROOT/tests/chaos/cells/fn.py" "$dir/"
	fx_deploy cells "$dir" --cmd "python3 fn.py ping" --mode session
	local o="\"mode\": \"session\", \"role\": \"chaos_fn\", \"timeout_ms\": $TIMEOUT_MS"
	q "SELECT fx_deploy('transfer', fx.bundle('cells', 1), ARRAY['python3', 'chaos.py', 'transfer'],
	                    '{$o, \"retries\": $RETRIES}');
	   SELECT fx_deploy('counter', fx.bundle('cells', 1), ARRAY['python3', 'chaos.py', 'counter'],
	                    '{$o, \"retries\": $RETRIES}');
	   SELECT fx_deploy('mark', fx.bundle('cells', 1), ARRAY['python3', 'fn.py', 'mark'],
	                    '{$o, \"retries\": $RETRIES}');
	   SELECT fx_deploy('storm', fx.bundle('cells', 1), ARRAY['python3', 'fn.py', 'storm'],
	                    '{$o, \"retries\": 2}');
	   SELECT fx_deploy('ping', fx.bundle('cells', 1), ARRAY['python3', 'fn.py', 'ping'],
	                    '{$o, \"retries\": 0}');" >/dev/null
}

# --- workers ----------------------------------------------------------------

declare -a W
CRASHES=0
# start_worker I: start worker I and wait (up to 20 s) for its session.
start_worker() {
	local before end
	before=$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fx-%'" 2>/dev/null)
	$FX_WORKER_WRAPPER "$FX_BIN" worker --cache "$FX_TEST_DIR/cache" --concurrency "$CONCURRENCY" \
		--poll-ms 200 --backoff-ms 50 --lease-slack-ms $SLACK_MS \
		>>"$FX_TEST_DIR/worker$1.log" 2>&1 &
	W[$1]=$!
	FX_PIDS+=("${W[$1]}")
	end=$((SECONDS + 20))
	while [ $SECONDS -lt $end ]; do
		[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fx-%'" 2>/dev/null)" \
			-gt "${before:-0}" ] 2>/dev/null && return 0
		sleep 0.05
	done
}
start_workers() {
	local i
	for ((i = 0; i < WORKERS; i++)); do start_worker "$i"; done
}

# check_alive: a worker that exited (no cell kills its workers) crashed:
# count it and start another.
check_alive() {
	local i
	for ((i = 0; i < WORKERS; i++)); do
		if ! kill -0 "${W[$i]}" 2>/dev/null; then
			wait "${W[$i]}" 2>/dev/null
			echo "# worker $i (pid ${W[$i]}) exited by itself, status $?"
			CRASHES=$((CRASHES + 1))
			start_worker "$i"
		fi
	done
}

# --- load -------------------------------------------------------------------

# load_start BATCH: every 100 ms, enqueue BATCH invocations (a
# third each of transfers, counters and marks, each sleeping up to NAP ms,
# twice for transfers and counters) until load_stop.  A failed enqueue (the
# database down or full) is simply not made.
NAP=${NAP:-40}
LOAD_PID=
load_start() {
	local batch=$1 stop=$FX_TEST_DIR/load-stop
	rm -f "$stop"
	(
		while [ ! -e "$stop" ]; do
			q "SELECT count(fx_invoke('transfer',
			           jsonb_build_object('id', nextval('chaos_transfer'), 'from', a, 'to', b,
			                              'amount', 1 + (random() * 50)::int, 'nap', $NAP),
			           key => a::text))
			     FROM (SELECT 1 + (random() * ($ACCOUNTS - 1))::int AS a,
			                  1 + (random() * ($ACCOUNTS - 1))::int AS b
			             FROM generate_series(1, greatest($batch / 3, 1))) p WHERE a <> b;
			   SELECT count(fx_invoke('counter', '{\"nap\": $NAP}', key => 'c' || (random() * ($COUNTERS - 1))::int))
			     FROM generate_series(1, greatest($batch / 3, 1));
			   SELECT count(fx_invoke('mark', '{\"nap\": $NAP}'))
			     FROM generate_series(1, greatest($batch - 2 * ($batch / 3), 1));" >/dev/null 2>&1
			sleep 0.1
		done
	) &
	LOAD_PID=$!
	FX_PIDS+=("$LOAD_PID")
}
load_stop() {
	touch "$FX_TEST_DIR/load-stop"
	wait "$LOAD_PID" 2>/dev/null
}

# --- faults and recovery ----------------------------------------------------

FAULT_ENDS=()
FAULT_STARTS=()
fault_start() { FAULT_STARTS+=("$(now_s)"); }
fault_end() { FAULT_ENDS+=("$(now_s)"); }

# recovery: seconds from each fault's end until every invocation enqueued
# before it had ended; the largest (see the top of this file).
recovery() {
	local t r worst=0
	for t in "${FAULT_ENDS[@]}"; do
		r=$(q "SELECT round(greatest(0, coalesce(extract(epoch FROM max(finished_at)) - $t, 0))::numeric, 2)
		         FROM fx.invocation WHERE created_at < to_timestamp($t)")
		echo "# fault ended at +$(awk -v a="$t" -v b="$CELL_BEGUN" 'BEGIN { printf "%.1f", a - b }') s: recovered in $r s" >&2
		worst=$(awk -v a="$worst" -v b="$r" 'BEGIN { printf "%.2f", (b > a) ? b : a }')
	done
	echo "$worst"
}

# baseline_latency: before the first fault, the longest time from enqueue
# to end: what "recovered in" is to be compared with.
baseline_latency() {
	q "SELECT coalesce(round(extract(epoch FROM max(finished_at - created_at))::numeric, 2), 0)
	     FROM fx.invocation WHERE finished_at < to_timestamp(${FAULT_STARTS[0]})"
}

# --- checks -------------------------------------------------------------------

# cell_drain: wait for every invocation to end, then stop the workers.
cell_drain() {
	local left
	if ! wait_for "$CELL: every invocation ends within $DRAIN_S s" "$DRAIN_S" settled; then
		left=$(pending)
		VIOLATIONS=$((VIOLATIONS + ${left:-1}))
	fi
	check_alive
	check_eq "$CELL: no worker exited by itself" 0 "$CRASHES"
	[ "$CRASHES" = 0 ] || VIOLATIONS=$((VIOLATIONS + CRASHES))
	local i
	for ((i = 0; i < WORKERS; i++)); do kill -TERM "${W[$i]}" 2>/dev/null; done
	for ((i = 0; i < WORKERS; i++)); do wait "${W[$i]}" 2>/dev/null; done
}

# cell_check: the invariants (top of this file).
cell_check() {
	echo "# $(q "SELECT string_agg(fn || ' ' || status || ' ' || n, ', ') FROM
		(SELECT fn, status, count(*) n FROM fx.invocation GROUP BY 1, 2 ORDER BY 1, 2) s")"
	echo "# lost attempts: $(q "SELECT coalesce(sum(lost), 0) FROM fx.invocation"), retried attempts:" \
		"$(q "SELECT coalesce(sum(attempts - lost - 1), 0) FROM fx.invocation WHERE fn <> 'storm'")" \
		"(storm's not counted); attempts failed because their database session was lost" \
		"or could not connect: $(cat "$FX_TEST_DIR"/worker*.log |
			grep -c -E "attempt [0-9]+ failed: the invocation's database connection was lost")"
	q "SELECT id, fn, status, attempts, lost, error FROM fx.invocation
	    WHERE (fn = 'storm') = (status = 'succeeded') ORDER BY id LIMIT 5" | sed 's/^/# unexpected: /'
	expect "no invocation is left queued or running" \
		"SELECT count(*) FROM fx.invocation WHERE status IN ('queued', 'running')"
	expect "every invocation succeeded (storm's: dead after exactly its 3 attempts)" \
		"SELECT count(*) FROM fx.invocation
		  WHERE CASE WHEN fn = 'storm'
		             THEN NOT (status = 'dead' AND attempts - lost = 3 AND max_attempts = 3)
		             ELSE status <> 'succeeded' END"
	expect_counters
	expect_balances
	expect_transfers
	expect "each succeeded mark wrote its row exactly once" \
		"SELECT count(*) FROM fx.invocation i
		  WHERE i.fn = 'mark' AND i.status = 'succeeded'
		    AND (SELECT count(*) FROM cell_mark m WHERE m.inv = i.id) <> 1"
	expect "no invocation that did not succeed left a row (storm's included)" \
		"SELECT count(*) FROM cell_mark m
		  WHERE NOT EXISTS (SELECT 1 FROM fx.invocation i
		                     WHERE i.id = m.inv AND i.status = 'succeeded')"
}

# cell_report RECOVER [EXTRA]: the cell's line and its summary line.
cell_report() {
	local n rec=$1 extra=${2:-}
	n=$(q "SELECT count(*) FROM fx.invocation")
	[ -n "$rec" ] || { rec="?"; VIOLATIONS=$((VIOLATIONS + 1)); }
	if [ "$VIOLATIONS" = 0 ] && [ "$FX_FAILED" = 0 ]; then
		ok "$CELL: $n invocations, $VIOLATIONS violations, recovered in $rec s${extra:+ ($extra)}"
	else
		not_ok "$CELL: $n invocations, $VIOLATIONS violations, recovered in $rec s${extra:+ ($extra)}"
	fi
	echo "cell $CELL: invocations $n, violations $VIOLATIONS, recover $rec s${extra:+, $extra}"
}

CELL_BEGUN=$(now_s)
