#!/usr/bin/env bash
# tests/chaos/cells.sh: the chaos cells, the scenarios of the public
# PostgreSQL job-queue benchmarks, each against its own PostgreSQL with two
# workers under a steady load of transfers, counters and marks:
#
#   terminate        the workers' sessions ended (pg_terminate_backend)
#                    every 150-250 ms
#   restart          PostgreSQL restarted under load (-m immediate, -m fast)
#   held-snapshot    a session idle in a REPEATABLE READ transaction for the
#                    whole run; throughput compared to without
#   max-connections  another client takes every connection for a while
#   retry-storm      a function that always fails, invoked in bulk
#   starvation       a flood of priority 10 over priority 0 invocations
#
# Each cell checks the invariants of tests/chaos/run.sh (nothing lost,
# nothing applied twice; see tests/chaos/cells/lib.sh), prints its checks,
# then "ok - CELL: N invocations, V violations, recovered in S s" (or
# "not ok - ..."), and this script ends with one line per cell:
# "cell CELL: invocations N, violations V, recover S s, ...".  Recovery is
# the time from the fault's end until everything enqueued before it has
# ended (lib.sh; each cell's file says what its fault's end is).
#
#   SIZE=small bash tests/chaos/cells.sh    (make check: about 2 minutes)
#   make chaos-cells                        (SIZE=full: minutes per cell)
#   CELLS="restart starvation" bash tests/chaos/cells.sh
#
# Other knobs: DRAIN_S (seconds allowed for the invocations to end, 90
# small, 600 full), NAP (ms a function sleeps at most, 40), MIN_RATIO
# (held-snapshot, 0.3), PING_MAX_S (retry-storm, 30), LOW_BOUND_S
# (starvation, 30), STARVE=report (starvation: only report low-priority
# invocations that waited for the whole flood, instead of failing).
set -u
cd "$(dirname "$0")/../.." || exit 1
export SIZE=${SIZE:-small}
CELLS=${CELLS:-terminate restart held-snapshot max-connections retry-storm starvation}

case $SIZE in
small | full) ;;
*) echo "not ok - SIZE must be small or full, not '$SIZE'"; exit 1 ;;
esac

out=$(mktemp -d /tmp/fx-cells.XXXXXX)
trap 'rm -rf "$out"' EXIT
summary=()
failed=0
for c in $CELLS; do
	if [ ! -f "tests/chaos/cells/$c.sh" ]; then
		echo "not ok - $c: no such cell"
		failed=1
		continue
	fi
	echo "# --- cell $c (SIZE=$SIZE)"
	start=$SECONDS
	bash "tests/chaos/cells/$c.sh" 2>&1 | tee "$out/$c.log"
	rc=${PIPESTATUS[0]}
	line=$(grep "^cell $c:" "$out/$c.log" | tail -1)
	if [ -z "$line" ]; then
		echo "not ok - $c: the cell ended (status $rc) without its result"
		line="cell $c: invocations ?, violations ?, recover ? s (ended with status $rc)"
	fi
	[ "$rc" = 0 ] || failed=1
	summary+=("$line (in $((SECONDS - start)) s)")
done

echo "# --- SIZE=$SIZE"
[ ${#summary[@]} = 0 ] || printf '%s\n' "${summary[@]}"
exit $failed
