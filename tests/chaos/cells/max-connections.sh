#!/usr/bin/env bash
# tests/chaos/cells/max-connections.sh: another client takes every
# connection the server has left (max_connections = MAX_CONN; it connects as
# a superuser, so the reserved slots go too) and holds them for HOLD_S, by
# opening sessions that sleep (SELECT pg_sleep) until none is accepted and
# then trying again every 20 ms, while the load goes on; BACKLOG marks are
# enqueued just before.  In every other episode the workers' own sessions
# are ended once the server is full, so they must reconnect against it.  The workers must not crash, and
# what was enqueued must finish afterwards.  Each episode is a fault from
# the first session the other client opens until its last one has closed;
# recovered: when everything enqueued before that has ended.
source "$(dirname "$0")/lib.sh"

EPISODES=$(size 1 6)
HOLD_S=$(size 5 20)
GAP_S=$(size 4 20)
BATCH=$(size 18 18)
MAX_CONN=50
BACKLOG=$(size 1000 1000)

# hog SECONDS [CUT]: the other client (see above); sets HELD (sessions it
# held), REFUSED (connections refused) and CUT (the workers' sessions it
# ended), and returns once all its sessions have closed.  With CUT, its
# first session ends the workers' sessions once the others have had half
# a second to fill the server.
hog() {
	local deadline left i pids=() rc cut=${2:-}
	deadline=$(awk -v t="$(now_s)" -v h="$1" 'BEGIN { printf "%.3f", t + h }')
	HELD=0
	REFUSED=0
	CUT=0
	if [ -n "$cut" ]; then
		PGAPPNAME=cell-hog "$PG_BIN/psql" -X -qAt -c "SELECT pg_sleep(0.5)" \
			-c "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
			     WHERE application_name ~ '^(state/|sql/)?fx-'" \
			-c "SELECT pg_sleep($1 - 0.5)" >"$FX_TEST_DIR/hog-cut.log" 2>&1 &
		pids+=("$!")
	fi
	while :; do
		left=$(awk -v d="$deadline" -v t="$(now_s)" 'BEGIN { printf "%.3f", d - t }')
		awk -v l="$left" 'BEGIN { exit !(l > 0.05) }' || break
		# a burst as large as the server at first, then a few at a time
		for ((i = 0; i < (${#pids[@]} > 1 ? 4 : MAX_CONN); i++)); do
			PGAPPNAME=cell-hog "$PG_BIN/psql" -X -qAt -c "SELECT pg_sleep($left)" \
				>>"$FX_TEST_DIR/hog.log" 2>&1 &
			pids+=("$!")
		done
		sleep 0.02
	done
	for i in "${pids[@]}"; do
		wait "$i"
		rc=$?
		if [ $rc = 0 ]; then HELD=$((HELD + 1)); else REFUSED=$((REFUSED + 1)); fi
	done
	[ -n "$cut" ] && CUT=$(grep -E '^[0-9]+$' "$FX_TEST_DIR/hog-cut.log" | head -1)
	CUT=${CUT:-0}
}

cell_setup "max_connections=$MAX_CONN"
start_workers
load_start "$BATCH"
cut=0
for ((e = 1; e <= EPISODES; e++)); do
	sleep "$GAP_S"
	check_alive
	echo "# episode $e at +$(secs_since "$CELL_BEGUN") s: $(q "SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'client backend'") client sessions, $(pending) invocations queued or running"
	# a backlog that the workers cannot have finished when the server fills
	q "SELECT count(fx_invoke('mark', '{\"nap\": $NAP}')) FROM generate_series(1, $BACKLOG)" >/dev/null
	fault_start
	if [ $((e % 2)) = 1 ]; then hog "$HOLD_S" cut; else hog "$HOLD_S"; fi
	fault_end
	cut=$((cut + CUT))
	echo "# episode $e: the other client held $HELD sessions for $HOLD_S s, $REFUSED connections refused," \
		"$CUT sessions of the workers ended; $(pending) invocations queued or running"
	check "$CELL: episode $e: the server was full (connections refused: $REFUSED)" test "$REFUSED" -gt 0
done
sleep "$GAP_S"
load_stop
cell_drain
full=$(cat "$FX_TEST_DIR"/worker*.log | grep -c -E 'too many clients|remaining connection slots')
echo "# the workers met the full server $full times (log lines); $cut of their sessions ended"
cell_check
echo "# before the first episode, an invocation ended at most $(baseline_latency) s after its enqueue"
cell_report "$(recovery)" "$EPISODES x $HOLD_S s full"
