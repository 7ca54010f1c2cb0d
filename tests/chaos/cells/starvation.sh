#!/usr/bin/env bash
# tests/chaos/cells/starvation.sh: LOW marks of priority 0 are enqueued
# together with (and before) DEPTH marks of priority 10; then, for FLOOD_S,
# more priority-10 marks are enqueued every 100 ms so that at least DEPTH of
# them are always queued: the workers never run out of high-priority work.
# Claims go by priority, then age, but a claim from the start of the
# queue gives one in eight of its places to the invocations overdue by more
# than 2 s (fx.claim): every low-priority one must end during the flood
# (STARVE=report only reports it), and in any case within LOW_BOUND_S of
# the flood's end.  The
# fault ends with the flood's last enqueue; recovered: when everything
# enqueued before that (the low ones included) has ended.
source "$(dirname "$0")/lib.sh"

FLOOD_S=$(size 15 240)
DEPTH=$(size 400 400)
LOW=$(size 50 200)
LOW_BOUND_S=${LOW_BOUND_S:-30}
STARVE=${STARVE:-fail}

cell_setup
start_workers
q "SELECT fx_call('ping', '{}')" >/dev/null		# the bundle is fetched and warm

t0=$(now_s)
fault_start
q "BEGIN;
   SELECT count(fx_invoke('mark', '{\"nap\": $NAP, \"low\": true}', priority => 0))
     FROM generate_series(1, $LOW);
   SELECT count(fx_invoke('mark', '{\"nap\": $NAP}', priority => 10))
     FROM generate_series(1, $DEPTH);
   COMMIT;" >/dev/null
low_left() {
	q "SELECT count(*) FROM fx.invocation WHERE priority = 0 AND fn = 'mark'
	      AND status IN ('queued', 'running')"
}
end=$((SECONDS + FLOOD_S))
next=$((SECONDS + 5))
while [ $SECONDS -lt $end ]; do
	q "SELECT count(fx_invoke('mark', '{\"nap\": $NAP}', priority => 10))
	     FROM generate_series(1, greatest(0, $DEPTH - (SELECT count(*) FROM fx.invocation
	                                                    WHERE status = 'queued' AND priority = 10)))" \
		>/dev/null 2>&1
	if [ $SECONDS -ge $next ]; then
		next=$((SECONDS + 5))
		echo "# +$(secs_since "$t0") s: $(low_left) of $LOW low-priority left;" \
			"$(q "SELECT count(*) FROM fx.invocation WHERE priority = 10 AND status = 'succeeded'")" \
			"high-priority done"
		check_alive
	fi
	sleep 0.1
done
fault_end
t1=${FAULT_ENDS[0]}
during=$(q "SELECT count(*) FROM fx.invocation WHERE priority = 0 AND fn = 'mark'
              AND finished_at < to_timestamp($t1)")
high=$(q "SELECT count(*) FROM fx.invocation WHERE priority = 10
            AND finished_at >= to_timestamp($t0) AND finished_at < to_timestamp($t1)")
rate=$(awk -v n="$high" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
no_low_left() { [ "$(low_left)" = 0 ]; }
wait_for "$CELL: the low-priority invocations end" "$DRAIN_S" no_low_left
last=$(q "SELECT round(extract(epoch FROM max(finished_at - created_at))::numeric, 2)
            FROM fx.invocation WHERE priority = 0 AND fn = 'mark'")
after=$(q "SELECT round(greatest(0, extract(epoch FROM max(finished_at)) - $t1)::numeric, 2)
             FROM fx.invocation WHERE priority = 0 AND fn = 'mark'")
echo "# the flood: $FLOOD_S s, $high high-priority marks done ($rate/s), at least $DEPTH queued all along"
echo "# low-priority: $during of $LOW ended during the flood; the last one $last s after its enqueue," \
	"$after s after the flood's end"
if [ "$during" -lt "$LOW" ]; then
	echo "# finding: $((LOW - during)) of $LOW low-priority invocations waited for the end of the flood"
	[ "$STARVE" = fail ] && not_ok "$CELL: every low-priority invocation ends during the flood ($during of $LOW did)"
else
	ok "$CELL: every low-priority invocation ends during the flood ($during of $LOW)"
fi
check "$CELL: every low-priority invocation ends within $LOW_BOUND_S s of the flood's end (the last: $after s)" \
	awk -v l="$after" -v b="$LOW_BOUND_S" 'BEGIN { exit !(l != "" && l <= b) }'
cell_drain
cell_check
cell_report "$(recovery)" "low-priority $during/$LOW done during the flood, last after $last s"
