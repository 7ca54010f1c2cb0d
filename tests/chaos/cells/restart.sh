#!/usr/bin/env bash
# tests/chaos/cells/restart.sh: PostgreSQL restarted under load, by turns
# with an immediate shutdown (crash recovery; transactions in flight are
# lost) and a fast one (sessions ended, a checkpoint).  Each restart is a
# fault from the pg_ctl call until it returns with the server accepting
# connections; recovered: when everything enqueued before that has ended
# (the largest over the restarts).
source "$(dirname "$0")/lib.sh"

RESTARTS=$(size 2 8)
GAP_S=$(size 6 30)
BATCH=$(size 18 18)

cell_setup
start_workers
load_start "$BATCH"

restarts=0
for ((r = 0; r < RESTARTS; r++)); do
	sleep "$GAP_S"
	check_alive
	mode=$([ $((r % 2)) = 0 ] && echo immediate || echo fast)
	echo "# restart $((r + 1)) (-m $mode) at +$(secs_since "$CELL_BEGUN") s, $(pending) queued or running"
	fault_start
	if fx_pg_ctl restart -m "$mode"; then
		restarts=$((restarts + 1))
	else
		not_ok "$CELL: PostgreSQL restarted (-m $mode)"
	fi
	fault_end
done
sleep "$GAP_S"
load_stop
cell_drain
cell_check
echo "# before the first restart, an invocation ended at most $(baseline_latency) s after its enqueue"
cell_report "$(recovery)" "$restarts restarts"
