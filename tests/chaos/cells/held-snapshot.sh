#!/usr/bin/env bash
# tests/chaos/cells/held-snapshot.sh: another session of the database holds
# a snapshot (BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;) open while
# the load runs, so vacuum can remove no row version the run makes dead.
# Throughput: DRAIN_N marks enqueued at once and drained, once before the
# snapshot is taken and once at the end of the hold (after HOLD_S), both
# while the load runs beside them; the ratio with/without must stay above
# MIN_RATIO.  The fault ends when the holder commits; recovered: when
# everything enqueued before that has ended.
#
# Workers claim on from where their last claim ended (a cursor), so that
# they do not step over the dead index entries the snapshot keeps; what
# ranks before the cursor must still run in time while it is held: a
# delayed invocation once it comes due, a retried one (storm: 3 attempts)
# and a new one of higher priority, each within BEHIND_MAX_S.
source "$(dirname "$0")/lib.sh"

HOLD_S=$(size 15 300)
AFTER_S=$(size 3 20)
BATCH=$(size 18 18)
DRAIN_N=$(size 3000 20000)
MIN_RATIO=${MIN_RATIO:-0.3}
BEHIND_MAX_S=${BEHIND_MAX_S:-3}

# drained FROM: no mark after id FROM is queued or running.
drained() {
	[ "$(q "SELECT count(*) FROM fx.invocation WHERE id > $1 AND fn = 'mark'
	          AND status IN ('queued', 'running')")" = 0 ]
}

# drain_rate LABEL SECONDS: enqueue DRAIN_N marks (no nap) at once, wait up
# to SECONDS for them; RATE is the rate at which they ended (per second,
# database timestamps; of those that ended, if not all did).
drain_rate() {
	local from
	from=$(q "SELECT coalesce(max(id), 0) FROM fx.invocation")
	q "SELECT count(fx_invoke('mark', '{\"nap\": 0}')) FROM generate_series(1, $DRAIN_N)" >/dev/null
	wait_for "$CELL: $DRAIN_N marks drain $1" "$2" drained "$from"
	RATE=$(q "SELECT round((count(finished_at) / extract(epoch FROM max(finished_at) - min(created_at)))::numeric, 1)
	     FROM fx.invocation WHERE id > $from AND fn = 'mark' AND args->>'nap' = '0'")
}

cell_setup
start_workers
q "SELECT count(fx_invoke('mark', '{\"nap\": 0}')) FROM generate_series(1, 200)" >/dev/null
wait_for "$CELL: warm-up" 60 settled
load_start "$BATCH"
drain_rate "without the snapshot" "$DRAIN_S"
without=$RATE
echo "# without the snapshot: $without marks/s"

# The holder: psql reading its statements from a pipe that only this
# subshell writes, so that it sees the end of its input when told to stop.
stop_hold=$FX_TEST_DIR/hold-stop
{
	echo "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;"
	while [ ! -e "$stop_hold" ] && kill -0 $$ 2>/dev/null; do sleep 0.1; done
	echo "COMMIT;"
} | PGAPPNAME=cell-hold "$PG_BIN/psql" -X -q >"$FX_TEST_DIR/hold.log" 2>&1 &
holder=$!
FX_PIDS+=("$holder")
holding() {
	[ "$(q "SELECT count(*) FROM pg_stat_activity
	         WHERE application_name = 'cell-hold' AND backend_xmin IS NOT NULL")" = 1 ]
}
wait_for "$CELL: the snapshot is held" 10 holding
holder_gone() {
	[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cell-hold'")" = 0 ]
}
xmin=$(q "SELECT backend_xmin FROM pg_stat_activity WHERE application_name = 'cell-hold'")
fault_start
sleep "$HOLD_S"
# Slower than MIN_RATIO fails anyway: wait twice as long as that allows.
drain_rate "with the snapshot held" \
	"$(awk -v n="$DRAIN_N" -v r="$without" -v m="$MIN_RATIO" 'BEGIN { printf "%d", (r > 0) ? 30 + 2 * n / (m * r) : 600 }')"
with=$RATE
# Behind the cursors: seconds from coming due (the retried one: from its
# enqueue, all three attempts) to the end.
late=$(q "SELECT fx_invoke('mark', '{\"nap\": 0}', delay => '1 second')")
retried=$(q "SELECT fx_invoke('storm', '{\"nap\": 0}')")
urgent=$(q "SELECT fx_invoke('mark', '{\"nap\": 0}', priority => 10)")
behind_ended() {
	[ "$(q "SELECT count(*) FROM fx.invocation WHERE id IN ($late, $retried, $urgent)
	          AND finished_at IS NOT NULL")" = 3 ]
}
wait_for "$CELL: a delayed, a retried and an urgent invocation end while the snapshot is held" \
	$((BEHIND_MAX_S + 30)) behind_ended
behind=$(q "SELECT string_agg(CASE id WHEN $late THEN 'delayed' WHEN $retried THEN 'retried'
	                                ELSE 'urgent' END || ' ' || status || ' '
	                           || round(extract(epoch FROM finished_at - CASE WHEN id = $retried
	                                        THEN created_at ELSE not_before END)::numeric, 2), ', '
	                           ORDER BY id)
	      FROM fx.invocation WHERE id IN ($late, $retried, $urgent)")
echo "# behind the cursors, seconds from due to end: $behind"
check "$CELL: each ended within $BEHIND_MAX_S s of coming due ($behind)" \
	test "$(q "SELECT count(*) FROM fx.invocation WHERE id IN ($late, $retried, $urgent)
	            AND finished_at - CASE WHEN id = $retried THEN created_at ELSE not_before END
	                <= interval '$BEHIND_MAX_S seconds'")" = 3
check "$CELL: the retried one is dead after its 3 attempts" \
	test "$(q "SELECT status || ' ' || attempts FROM fx.invocation WHERE id = $retried")" = "dead 3"
check "$CELL: the snapshot was held all along (xmin $xmin)" \
	test "$(q "SELECT backend_xmin FROM pg_stat_activity WHERE application_name = 'cell-hold'")" = "$xmin"
dead=$(q "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'fx.invocation'::regclass")
touch "$stop_hold"
wait_for "$CELL: the holder commits and leaves" 10 holder_gone
fault_end
wait "$holder"
ratio=$(awk -v a="$with" -v b="$without" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
echo "# with the snapshot held $HOLD_S s: $with marks/s, ratio $ratio; dead row versions of fx.invocation: $dead"
check "$CELL: throughput with the snapshot held is at least $MIN_RATIO of without (ratio $ratio)" \
	awk -v r="$ratio" -v m="$MIN_RATIO" 'BEGIN { exit !(r >= m) }'
sleep "$AFTER_S"
load_stop
cell_drain
cell_check
cell_report "$(recovery)" "throughput with/without $ratio: $with/$without per s"
