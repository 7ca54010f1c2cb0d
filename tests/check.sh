#!/usr/bin/env bash
# tests/check.sh (make check): run every suite and count the results.
#
# Suites print one line per check, "ok - ..." or "not ok - ...".  This
# script runs them in turn, keeps their output in build/check/, and ends
# with the line "N passed, N failed"; its exit status is non-zero if any
# check failed or any suite failed without saying which check.
#
# Suites: the SDK protocol tests, pg_regress + isolation (tests/sql-suites.sh),
# the image unpacker, the worker integration tests (tests/integration/*.sh),
# the hostile functions against the sandbox (tests/sandbox/*.sh), then
# memory-checker passes: integration and sandbox tests against the worker
# built with AddressSanitizer and UndefinedBehaviorSanitizer, and under
# valgrind; last a short run of the fuzz targets (fuzz/run.sh).
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
out=$root/build/check
rm -rf "$out"
mkdir -p "$out"
passed=0
failed=0

# run_suite NAME CMD...: run one suite, tally its lines.
run_suite() {
	local name=$1
	shift
	local log=$out/$name.log
	local start=$SECONDS
	echo "=== $name"
	"$@" >"$log" 2>&1
	local rc=$?
	local p f
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	grep -E '^(ok|not ok) ' "$log" | sed 's/^/  /'
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "  not ok - $name exited with status $rc"
		f=1
	fi
	if [ "$f" -ne 0 ]; then
		echo "  --- $name output (last 60 lines):"
		grep -vE '^(ok|not ok) ' "$log" | tail -n 60 | sed 's/^/  | /'
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	echo "  ($name: $p passed, $f failed, $((SECONDS - start)) s)"
}

run_suite sdk bash tests/sdk/run.sh
run_suite sql bash tests/sql-suites.sh
[ -f tests/image/run.sh ] && run_suite image bash tests/image/run.sh
for t in tests/integration/*.sh tests/sandbox/*.sh; do
	[ -f "$t" ] || continue
	run_suite "$(basename "$(dirname "$t")")-$(basename "$t" .sh)" bash "$t"
done
# The chaos suite's small configuration (make chaos runs the large one).
run_suite chaos env KILLS=200 bash tests/chaos/run.sh
run_suite chaos-cells env SIZE=small bash tests/chaos/cells.sh

# Memory checkers, once per suite family.
echo "=== building the worker with ASan + UBSan"
if make -s -C worker BUILD="$root/build/asan" \
	SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	>"$out/asan-build.log" 2>&1; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
	for t in tests/integration/10_examples.sh tests/integration/20_failures.sh \
		tests/integration/30_kill9.sh tests/integration/40_pg_restart.sh \
		tests/integration/65_logs.sh tests/integration/70_state_sql.sh tests/integration/80_workflow.sh \
		tests/integration/90_schedule.sh tests/integration/95_http.sh tests/integration/97_dashboard.sh \
		tests/integration/99_roles.sh \
		tests/sandbox/10_hostile.sh tests/sandbox/40_protocol.sh tests/sandbox/50_secrets.sh; do
		[ -f "$t" ] && FX_BIN=$root/build/asan/fx run_suite "asan-$(basename "$t" .sh)" bash "$t"
	done
	FX_BIN=$root/build/asan/fx run_suite asan-chaos env KILLS=40 bash tests/chaos/run.sh
	unset ASAN_OPTIONS
else
	echo "  not ok - asan build"
	tail -20 "$out/asan-build.log"
	failed=$((failed + 1))
fi
for t in tests/integration/10_examples.sh tests/integration/70_state_sql.sh \
	tests/integration/80_workflow.sh tests/sandbox/10_hostile.sh; do
	[ -f "$t" ] && FX_WORKER_WRAPPER="valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99" \
		run_suite "valgrind-$(basename "$(dirname "$t")")-$(basename "$t" .sh)" bash "$t"
done
# Workers under valgrind start slowly: kill them less often.
FX_WORKER_WRAPPER="valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99" \
	run_suite valgrind-chaos env KILLS=6 KILL_GAP_MS=3000 bash tests/chaos/run.sh
VALGRIND=1 run_suite valgrind-sql bash tests/sql-suites.sh
# The libFuzzer targets, 20 s each (make fuzz runs them longer).
run_suite fuzz env FUZZ_SECONDS=20 bash fuzz/run.sh

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
