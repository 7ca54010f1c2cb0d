#!/usr/bin/env bash
# tests/chaos/cells/terminate.sh: the workers' database sessions are ended
# with pg_terminate_backend every 150-250 ms for the whole fault: each time
# one at random of their sessions (application_name fx-..., state/fx-...,
# sql/fx-...), every tenth time and once more at the end all of them.  Cut
# in the middle of a claim, a state write, a transfer's transaction or its
# completion, nothing may be lost or applied twice.  Recovered: when
# everything enqueued before the last round has ended.
source "$(dirname "$0")/lib.sh"

FAULT_S=$(size 15 240)
AFTER_S=$(size 3 20)
BATCH=$(size 18 18)

cell_setup
start_workers
load_start "$BATCH"
sleep 2

sessions="application_name LIKE 'fx-%' OR application_name LIKE 'state/fx-%'
          OR application_name LIKE 'sql/fx-%'"
kills=0
rounds=0
# terminate_sessions ALL: one of the sessions at random, or all of them.
terminate_sessions() {
	local pick="SELECT pid FROM pg_stat_activity WHERE $sessions" n
	[ "$1" = all ] || pick="$pick ORDER BY random() LIMIT 1"
	n=$(q "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM ($pick) s" 2>/dev/null)
	kills=$((kills + ${n:-0}))
	rounds=$((rounds + 1))
}
fault_start
end=$((SECONDS + FAULT_S))
while [ $SECONDS -lt $end ]; do
	sleep_ms $((150 + RANDOM % 100))
	terminate_sessions "$([ $((rounds % 10)) = 9 ] && echo all)"
	[ $((rounds % 20)) = 0 ] && check_alive
done
terminate_sessions all
fault_end
echo "# $kills sessions ended in $rounds rounds over $FAULT_S s"
sleep "$AFTER_S"
load_stop
cell_drain
cell_check
echo "# before the fault, an invocation ended at most $(baseline_latency) s after its enqueue"
cell_report "$(recovery)" "$kills sessions terminated"
