#!/usr/bin/env bash
# tests/chaos/cells/retry-storm.sh: a function that always fails (storm:
# it writes a row through sql, then raises a retryable error; retries 2,
# the workers' --backoff-ms 50) is invoked STORM_BURST times at once and
# then STORM_BATCH times every 100 ms for STORM_S, beside the usual load.  Every storm invocation must end dead
# after exactly 3 attempts with none of its rows committed, the rest must
# succeed, and the workers must stay responsive: an fx_call of a healthy
# function (ping) once a second during the storm must return within
# PING_MAX_S (its latency is reported).  The fault ends with the last storm
# invocation enqueued; recovered: when everything enqueued before that
# (the storm's retries included) has ended.
source "$(dirname "$0")/lib.sh"

STORM_S=$(size 10 240)
STORM_BURST=$(size 1500 5000)
STORM_BATCH=$(size 30 30)
BATCH=$(size 12 12)
PING_MAX_S=${PING_MAX_S:-30}

cell_setup
start_workers
load_start "$BATCH"
sleep 2

stop_storm=$FX_TEST_DIR/storm-stop
fault_start
q "SELECT count(fx_invoke('storm', '{}')) FROM generate_series(1, $STORM_BURST)" >/dev/null
(
	while [ ! -e "$stop_storm" ]; do
		q "SELECT count(fx_invoke('storm', '{}')) FROM generate_series(1, $STORM_BATCH)" >/dev/null 2>&1
		sleep 0.1
	done
) &
storm=$!
FX_PIDS+=("$storm")
lat=()
end=$((SECONDS + STORM_S))
while [ $SECONDS -lt $end ]; do
	t=$(now_s)
	out=$(q "SELECT fx_call('ping', '{\"n\": $SECONDS}', '60s')" 2>&1)
	l=$(secs_since "$t")
	lat+=("$l")
	[ "$out" = "{\"n\": $SECONDS}" ] || [ "${out#\{\"n\": }" != "$out" ] ||
		not_ok "$CELL: fx_call of ping during the storm answers (got '${out:0:200}')"
	sleep 1
	check_alive
done
touch "$stop_storm"
wait "$storm"
fault_end
echo "# storm: $(q "SELECT count(*) FROM fx.invocation WHERE fn = 'storm'") invocations over $STORM_S s;" \
	"$(pending) queued or running at its end"
stats=$(printf '%s\n' "${lat[@]}" | sort -n | awk '{ a[NR] = $1 }
	END { printf "%d calls, median %.2f s, max %.2f s", NR, a[int((NR + 1) / 2)], a[NR] }')
max=$(printf '%s\n' "${lat[@]}" | sort -n | tail -1)
echo "# fx_call(ping) during the storm: $stats"
check "$CELL: fx_call of a healthy function returns within $PING_MAX_S s during the storm ($stats)" \
	awk -v m="$max" -v b="$PING_MAX_S" 'BEGIN { exit !(m <= b) }'
sleep 2
load_stop
cell_drain
cell_check
echo "# before the storm, an invocation ended at most $(baseline_latency) s after its enqueue"
cell_report "$(recovery)" "fx_call during the storm: $stats"
