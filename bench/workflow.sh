#!/usr/bin/env bash
# bench/workflow.sh: fx's durable workflows side by side with DBOS Transact's,
# in one run on one private PostgreSQL 15.
#
#   bench/workflow.sh            the full run (about 10-15 minutes)
#   QUICK=1 bench/workflow.sh    a short smoke run (about 5 minutes)
#
# It starts its own PostgreSQL 15 (initdb defaults: fsync and
# synchronous_commit on) in a temporary directory as the postgres user,
# installs DBOS Transact from the npm registry at the version pinned in
# bench/peers/package-lock.json (npm ci, into the temporary directory),
# builds two C functions (bench/wf/wf.c, the workflow, and bench/noop/noop.c,
# the child it calls), deploys them as session functions and starts one
# `fx worker --concurrency 16`.  Then, one sample at a time from a node
# client (bench/wf/client.js; the DBOS side is bench/peers/dbos-wf.js, the
# same timer and statistics), for fx and then for DBOS:
#
#   wf0, wf10     a workflow of 0 and of 10 no-op inline steps, called and
#                 awaited (fx: SELECT fx_call(...) from the client; DBOS:
#                 startWorkflow + getResult in its own process); per step =
#                 (wf10 - wf0) / 10
#   wf10-call     10 steps that each call a warm no-op function (fx: fx_call
#                 in the workflow, a child invocation in its own sandbox;
#                 DBOS: a child workflow started and awaited)
#   send-recv     a message sent from the client until recv returns in the
#                 workflow, which is surely waiting
#   event         the workflow sets an event until the get_event that the
#                 client already has waiting returns
#   commit        (fx only) one INSERT, autocommit, from the same client:
#                 the floor of a send, which commits and waits for the disk
#   sleep         a durable sleep of SLEEP_MS (100 ms) and of LONG_SLEEP_MS
#                 (2000 ms: longer than the worker's --wait-grace-ms, so fx
#                 gives the sandbox up and replays the workflow at the
#                 wake-up time): time asleep minus the request
#
# Then writes the "Workflows: fx and DBOS Transact" section to $RESULTS
# (bench/workflow-results.md for a full run, which bench/merge-results.sh
# puts into RESULTS.md; a QUICK run writes
# /tmp/fx-bench-workflow-results.quick.md unless RESULTS is set).  Each fx
# measure runs in its own client process: a sample that fails is reported
# and sampled again, up to MAX_FAILURES, then the measure stops with what it
# has, and the others are measured; failures are listed with the worker's
# and PostgreSQL's log lines.  Progress goes to stderr; everything it starts
# is stopped on exit, Ctrl-C included.
#
# Knobs (environment): QUICK, N (samples per measure, 500; QUICK 100),
# WARMUP (unmeasured samples first, 20; QUICK 10), SLEEP_N (samples per
# sleep, 20; QUICK 5), SLEEP_MS (100), LONG_SLEEP_MS (2000), GRACE_MS (the
# worker's --wait-grace-ms, 1000), GAP_MS (mean pause between samples, 5),
# FX_CONC (16), SYSTEMS ("fx dbos"), FX_MEASURES ("commit wf0 wf10
# wf10-call send-recv event sleep sleep-long"), MAX_FAILURES (failed samples
# an fx measure may skip before it gives up, 10), MEASURE_TIMEOUT_S (per fx
# measure, 900), QUIET_BUDGET (seconds it may wait in all for other load on
# the machine to pass, 60; QUICK 5), FX (the fx binary, default: the one on
# PATH, as installed by make install), BENCH_DIR (/tmp/fx-bench-workflow),
# KEEP=1 (keep the work directory and its logs), RESULTS.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"

case "${QUICK:-0}" in 0 | "" | no | false) QUICK=0 ;; *) QUICK=1 ;; esac
if [ "$QUICK" = 1 ]; then
	: "${N:=100}" "${WARMUP:=10}" "${SLEEP_N:=5}" "${QUIET_BUDGET:=5}"
	: "${RESULTS:=${TMPDIR:-/tmp}/fx-bench-workflow-results.quick.md}"
else
	: "${N:=500}" "${WARMUP:=20}" "${SLEEP_N:=20}" "${QUIET_BUDGET:=60}"
	: "${RESULTS:=$ROOT/bench/workflow-results.md}"
fi
: "${SLEEP_MS:=100}" "${LONG_SLEEP_MS:=2000}" "${GRACE_MS:=1000}" "${GAP_MS:=5}"
: "${FX_CONC:=16}" "${SYSTEMS:=fx dbos}" "${MEASURE_TIMEOUT_S:=900}" "${MAX_FAILURES:=10}"
QUIET_LEFT=$QUIET_BUDGET
SECTION="## Workflows: fx and DBOS Transact"
FX_MEASURES=${FX_MEASURES:-commit wf0 wf10 wf10-call send-recv event sleep sleep-long}

system() { [[ " $SYSTEMS " == *" $1 "* ]]; }

# --- preflight -----------------------------------------------------------

PGBIN=$(pg_config --bindir 2>/dev/null) || die "pg_config not found: run scripts/deps.sh"
FX=${FX:-$(command -v fx || true)}
[ -x "$FX" ] || die "no fx binary: run make install (or set FX)"
[ -f "$(pg_config --sharedir)/extension/fx.control" ] || die "the fx extension is not installed: run make install"
for tool in cc psql node npm "$PGBIN/initdb"; do
	command -v "$tool" >/dev/null || die "$tool not found: run scripts/deps.sh (node, npm: apt-get install nodejs npm)"
done
[ "$(id -u)" != 0 ] || command -v runuser >/dev/null || die "runuser not found"
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 18 ] || die "node $(node --version) is too old for DBOS: 18 or later"
[ "$LONG_SLEEP_MS" -gt "$GRACE_MS" ] || die "LONG_SLEEP_MS ($LONG_SLEEP_MS) must be longer than GRACE_MS ($GRACE_MS)"

mkdir -p "${BENCH_DIR:=/tmp/fx-bench-workflow}"
chmod 755 "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/log" "$WORK/cache" "$WORK/fn" "$WORK/peers"
: >"$WORK/commands.txt"
: >"$WORK/failures.md"

cleanup() {
	local rc=$? left
	trap - EXIT INT TERM
	trap '' PIPE	# a closed pipe (make bench | tee, then Ctrl-C) must not stop the cleanup
	set +e
	stop_all 10
	pg_stop
	left=$(pgrep -f "$WORK" || true)
	if [ -n "$left" ]; then
		log "killing leftover processes: $left"
		# shellcheck disable=SC2086
		kill -KILL $left 2>/dev/null
	fi
	if [ "$rc" = 0 ] && [ -z "${KEEP:-}" ]; then
		rm -rf "$WORK"
	else
		log "logs kept in $WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'trap "" PIPE; log "interrupted: stopping everything"; exit 130' INT TERM

STEP=0
STEPS=4
step() {
	STEP=$((STEP + 1))
	log "[$STEP/$STEPS] $*"
}

# The measured results: R[system.measure.field], field mean, p50, p99, n,
# replayed (sleeps), error; R[system.measure.other] the other load.
declare -A R

# The JSON lines of a client, one measure a line: measure|n|mean|p50|p99|
# replayed|failures|failed_at|errors, - for what is missing.
# shellcheck disable=SC2016	# JavaScript, not shell
RECORD_JS='
		const d = (x) => (x === undefined || x === null ? "-" : String(x).replace(/[|\n]/g, " "));
		for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n")) {
			let o;
			try { o = JSON.parse(l); } catch (e) { continue; }
			if (!o || !o.measure) continue;
			const errors = o.errors ? Object.entries(o.errors).map(([k, v]) => `${v} × ${k}`).join("; ") : undefined;
			console.log([o.measure, o.n, o.mean_ms, o.p50_ms, o.p99_ms, o.replayed, o.failures, o.failed_at, errors]
				.map(d).join("|"));
		}'

# record SYSTEM JSONL: R[...] from the JSON lines a client printed (a
# measure that failed: what it measured before, if anything, and the error).
record() {
	local sys=$1 m n mean p50 p99 replayed failures failed_at errors
	while IFS='|' read -r m n mean p50 p99 replayed failures failed_at errors; do
		if [ "$n" != 0 ]; then
			R[$sys.$m.n]=$n
			R[$sys.$m.mean]=$mean
			R[$sys.$m.p50]=$p50
			R[$sys.$m.p99]=$p99
		fi
		[ "$replayed" = - ] || R[$sys.$m.replayed]=$replayed
		[ "$failures" = - ] || R[$sys.$m.failures]=$failures
		[ "$errors" = - ] || R[$sys.$m.errors]=$errors
		[ "$failed_at" = - ] || { R[$sys.$m.failed_at]=$failed_at; R[$sys.$m.error]=$errors; }
	done < <(node -e "$RECORD_JS" "$2")
}

# run_client OUT ERR CMD...: CMD with stdout to OUT and stderr to ERR,
# which is copied to our stderr as it grows; $CLIENT_RC is its exit status.
# In the background and waited for, so that a signal to this script stops
# the wait at once and cleanup() stops CMD (as every process in PIDS).
run_client() {
	local out=$1 err=$2 pid tail_pid
	shift 2
	: >"$err"
	"$@" >"$out" 2>"$err" </dev/null &
	pid=$!
	PIDS+=("$pid")
	tail -n +1 -s 0.2 -f --pid="$pid" "$err" >&2 &
	tail_pid=$!
	PIDS+=("$tail_pid")
	CLIENT_RC=0
	wait "$pid" || CLIENT_RC=$?
	wait "$tail_pid" || true
	forget_pid "$pid"
	forget_pid "$tail_pid"
}

# --- fx ----------------------------------------------------------------------

FXDB=
FXDB_SHOWN="host=SOCKDIR port=PORT user=postgres dbname=fx"
CFLAGS_FN="-Wall -Wextra -Werror -O2"

# build_fn NAME SOURCE: a bundle directory $WORK/fn/NAME holding ./NAME.
build_fn() {
	mkdir -p "$WORK/fn/$1"
	# shellcheck disable=SC2086
	cc $CFLAGS_FN -I"$ROOT/include" -o "$WORK/fn/$1/$1" "$ROOT/$2" -lcjson ||
		die "cannot build $2"
	cmd_note "cc $CFLAGS_FN -Iinclude -o $1 $2 -lcjson"
}

deploy() {	# NAME
	"$FX" deploy "$1" "$WORK/fn/$1" --cmd "./$1" --mode session --db "$FXDB" >/dev/null ||
		die "fx deploy $1 failed"
	cmd_note "fx deploy $1 DIR --cmd ./$1 --mode session --db \"$FXDB_SHOWN\""
}

fx_setup() {
	q postgres "CREATE DATABASE fx" >/dev/null
	q fx "CREATE EXTENSION fx" >/dev/null
	cmd_note "CREATE DATABASE fx; CREATE EXTENSION fx"
	FXDB="host=$SOCK port=$PORT user=postgres dbname=fx"
	build_fn wf bench/wf/wf.c
	build_fn noop bench/noop/noop.c
	deploy wf
	deploy noop
}

fx_start() {
	spawn "$WORK/log/fx-worker.log" "$FX" worker --db "$FXDB" --concurrency "$FX_CONC" \
		--wait-grace-ms "$GRACE_MS" --cache "$WORK/cache"
	FX_WPID=$SPAWNED
	wait_for_line "$WORK/log/fx-worker.log" "connected to the database" 30 "$FX_WPID" ||
		{ cat "$WORK/log/fx-worker.log" >&2; die "fx worker did not start"; }
	cmd_note "fx worker --db \"$FXDB_SHOWN\" --concurrency $FX_CONC --wait-grace-ms $GRACE_MS --cache DIR"
}

# fx_measure MEASURE: one measure by bench/wf/client.js, in its own process
# so that a failure costs only that measure.  Samples that fail are sampled
# again, up to MAX_FAILURES; each is reported under "Failures" with the
# worker's log lines and the deadlocks PostgreSQL logged meanwhile.
fx_measure() {
	local m=$1 out=$WORK/fx.$1.jsonl err=$WORK/log/fx-client.$1.log wl0 pl0 rc=0 cmdline
	local -a cmd=(node "$WORK/peers/client.js" --n "$N" --warmup "$WARMUP" --gap-ms "$GAP_MS"
		--sleep-n "$SLEEP_N" --sleep-ms "$SLEEP_MS" --long-sleep-ms "$LONG_SLEEP_MS"
		--max-failures "$MAX_FAILURES" --only "$m")
	cmdline="FX_DB_NAME=fx node bench/wf/client.js ${cmd[*]:2}"
	wl0=$(wc -l <"$WORK/log/fx-worker.log")
	pl0=$(wc -l <"$WORK/postgresql.log")
	wait_quiet
	R[fx.$m.busy]=$BUSY
	cpu_mark
	run_client "$out" "$err" env FX_DB_NAME=fx timeout -k 10 "$MEASURE_TIMEOUT_S" "${cmd[@]}"
	rc=$CLIENT_RC
	cpu_other
	R[fx.$m.other]=$OTHER
	record fx "$out"
	if [ "$rc" != 0 ] || [ -z "${R[fx.$m.mean]:-}" ]; then
		[ -n "${R[fx.$m.error]:-}" ] || R[fx.$m.error]=$(grep -v '^ *at \|^fx \|^  ' "$err" | grep . | head -3 | tr '\n' ' ' || true)
		[ -n "${R[fx.$m.error]}" ] || R[fx.$m.error]="exit status $rc"
		log "  fx $m FAILED$([ -n "${R[fx.$m.failed_at]:-}" ] && echo " at sample ${R[fx.$m.failed_at]}"): ${R[fx.$m.error]}"
		{
			# shellcheck disable=SC2016	# the backquotes are markdown
			printf -- '- **fx `%s` failed** (exit status %s)' "$m" "$rc"
			[ -z "${R[fx.$m.failed_at]:-}" ] || printf ' at sample %s (warm-up included), its failure number %s, one more than MAX_FAILURES' \
				"${R[fx.$m.failed_at]}" "${R[fx.$m.failures]:-?}"
			[ -z "${R[fx.$m.n]:-}" ] || printf "; the table's figures marked † are over the %s samples measured before it" "${R[fx.$m.n]}"
			printf '. Errors: %s.\n' "${R[fx.$m.error]}"
		} >>"$WORK/failures.md"
	elif [ -n "${R[fx.$m.failures]:-}" ]; then
		log "  fx $m: mean ${R[fx.$m.mean]} ms, p50 ${R[fx.$m.p50]} ms, p99 ${R[fx.$m.p99]} ms (n ${R[fx.$m.n]}); ${R[fx.$m.failures]} failed sample(s), not counted: ${R[fx.$m.errors]}"
		# shellcheck disable=SC2016
		printf -- '- **fx `%s`: %s sample(s) failed**, not counted (each was sampled again; the row is marked ‡). Errors: %s.\n' \
			"$m" "${R[fx.$m.failures]}" "${R[fx.$m.errors]}" >>"$WORK/failures.md"
	else
		log "  fx $m: mean ${R[fx.$m.mean]} ms, p50 ${R[fx.$m.p50]} ms, p99 ${R[fx.$m.p99]} ms (n ${R[fx.$m.n]})$(
			[ -n "${R[fx.$m.replayed]:-}" ] && echo ", ${R[fx.$m.replayed]} replayed")$(
			[ "${OTHER:-0}" -ge 5 ] && echo " (other processes: $OTHER% of the CPUs)")"
		return 0
	fi
	{
		echo
		echo "  Command: \`$cmdline\`. Its output (the last 12 lines but progress and stack):"
		echo
		echo '  ```'
		grep -v '^ *at \|^  fx [a-z0-9-]*: [0-9]*/' "$err" | grep . | tail -12 | sed 's/^/  /'
		echo '  ```'
		echo
		echo "  The worker's log meanwhile (warnings and errors, the last 12 lines):"
		echo
		echo '  ```'
		tail -n +"$((wl0 + 1))" "$WORK/log/fx-worker.log" | grep -i 'warn\|error\|fail\|fatal\|panic' |
			tail -12 | sed 's/^/  /'
		echo '  ```'
		echo
		echo "  PostgreSQL's log meanwhile: $(tail -n +"$((pl0 + 1))" "$WORK/postgresql.log" | grep -c 'ERROR:  deadlock detected' || true) \"deadlock detected\"; the first, and the first that ended a statement of another kind:"
		echo
		echo '  ```'
		tail -n +"$((pl0 + 1))" "$WORK/postgresql.log" | awk '
			function flush() {
				if (b != "" && (shown == 0 || (shown == 1 && kind != kind1))) {
					printf "%s", b; shown++; if (shown == 1) kind1 = kind }
				b = ""; on = 0 }
			on && /^[0-9]/ && !/ (DETAIL|HINT|CONTEXT|STATEMENT): / { flush() }
			/ERROR:  deadlock detected/ { on = 1; kind = "" }
			on && /PL\/pgSQL function/ && kind == "" { kind = $0 }
			on { b = b $0 "\n" }
			END { flush() }' | cut -c1-400 | sed 's/^/  /'
		echo '  ```'
		echo
	} >>"$WORK/failures.md"
}

fx_run_all() {
	local m
	cmd_note "FX_DB_NAME=fx node bench/wf/client.js --n $N --warmup $WARMUP --gap-ms $GAP_MS --sleep-n $SLEEP_N --sleep-ms $SLEEP_MS --long-sleep-ms $LONG_SLEEP_MS --max-failures $MAX_FAILURES --only MEASURE   (each of: $FX_MEASURES; client.js runs from a copy of bench/peers)"
	for m in $FX_MEASURES; do
		fx_measure "$m"
	done
	FX_STEPS=$(q fx "SELECT string_agg(kind || ' ' || n, ', ') FROM (
		SELECT s.kind, count(*) AS n FROM fx.invocation i, fx_workflow_steps(i.id) s
		 WHERE i.fn = 'wf' GROUP BY 1 ORDER BY 1) x" 2>/dev/null || echo "?")
}

# --- DBOS ----------------------------------------------------------------------

dbos_run() {
	local rc=0 out=$WORK/dbos.jsonl err=$WORK/log/dbos-wf.log
	q postgres "CREATE DATABASE dbos_wf" >/dev/null
	cmd_note "CREATE DATABASE dbos_wf   (empty: DBOS creates its system tables there)"
	cmd_note "DBOS_DB=dbos_wf PGHOST=SOCKDIR PGPORT=PORT PGUSER=postgres node bench/peers/dbos-wf.js --n $N --warmup $WARMUP --gap-ms $GAP_MS --sleep-n $SLEEP_N --sleep-ms $SLEEP_MS --long-sleep-ms $LONG_SLEEP_MS"
	wait_quiet
	R[dbos.busy]=$BUSY
	cpu_mark
	run_client "$out" "$err" env DBOS_DB=dbos_wf node "$WORK/peers/dbos-wf.js" --n "$N" --warmup "$WARMUP" \
		--gap-ms "$GAP_MS" --sleep-n "$SLEEP_N" --sleep-ms "$SLEEP_MS" --long-sleep-ms "$LONG_SLEEP_MS"
	rc=$CLIENT_RC
	cpu_other
	R[dbos.other]=$OTHER
	record dbos "$out"
	if [ "$rc" != 0 ]; then
		log "  DBOS FAILED (exit status $rc): $(grep . "$err" | tail -3 | tr '\n' ' ')"
		{
			echo "- **DBOS failed** (exit status $rc); its measures after the failure are missing:"
			echo
			echo '  ```'
			grep . "$err" | tail -15 | sed 's/^/  /'
			echo '  ```'
			echo
		} >>"$WORK/failures.md"
	fi
	local m
	for m in wf0 wf0-direct wf10 wf10-direct wf10-child send-recv event sleep sleep-long; do
		[ -z "${R[dbos.$m.mean]:-}" ] ||
			log "  DBOS $m: mean ${R[dbos.$m.mean]} ms, p50 ${R[dbos.$m.p50]} ms, p99 ${R[dbos.$m.p99]} ms"
	done
}

# --- report ------------------------------------------------------------------

# per SYS X BASE FIELD: (X - BASE) / 10 of a field, - if either is missing.
per() {
	awk -v a="${R[$1.$2.$4]:-}" -v b="${R[$1.$3.$4]:-}" 'BEGIN {
		if (a == "" || b == "" || a == "-" || b == "-") print "-"; else printf "%.3f", (a - b) / 10 }'
}

derive() {
	local sys f
	for sys in fx dbos; do
		for f in mean p50; do
			R[$sys.per-step.$f]=$(per "$sys" wf10 wf0 "$f")
			R[$sys.per-step-direct.$f]=$(per "$sys" wf10-direct wf0-direct "$f")
		done
		R[$sys.per-step.p99]=-
		R[$sys.per-step-direct.p99]=-
	done
	for f in mean p50; do
		R[fx.per-call.$f]=$(per fx wf10-call wf0 "$f")
		R[dbos.per-call.$f]=$(per dbos wf10-child wf0 "$f")
		# the fx measure of 10 steps calling a function is DBOS's child workflows
		R[dbos.wf10-call.$f]=${R[dbos.wf10-child.$f]:-}
	done
	R[dbos.wf10-call.p99]=${R[dbos.wf10-child.p99]:-}
	R[dbos.wf10-call.n]=${R[dbos.wf10-child.n]:-}
	R[fx.per-call.p99]=-
	R[dbos.per-call.p99]=-
	# a difference of a measure that failed part-way is marked as it is
	[ -z "${R[fx.wf10.error]:-}${R[fx.wf0.error]:-}" ] || R[fx.per-step.error]=1
	[ -z "${R[fx.wf10-call.error]:-}${R[fx.wf0.error]:-}" ] || R[fx.per-call.error]=1
}

v() { local x=${R[$1]:-}; echo "${x:--}"; }

# cell SYS MEASURE FIELD: the value; for a measure that failed, "failed" or
# the value over the samples before the failure, marked †.
cell() {
	local x
	x=$(v "$1.$2.$3")
	if [ -z "${R[$1.$2.error]:-}" ] || { [ "$x" = - ] && [ "$3" = p99 ] && [[ $2 == per-* ]]; }; then
		echo "$x"
	elif [ "$x" = - ]; then
		echo "failed"
	else
		echo "$x†"
	fi
}

# rat DBOS FX: DBOS/fx, - when either is missing or not above 0 (an
# overshoot can be 0 or below); marked † when FX is.
rat() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		mark = ""; if (b ~ /†$/) { mark = "†"; sub(/†$/, "", b) }
		if (a == "" || b == "" || a == "-" || b == "-" || b == "failed" || a + 0 <= 0 || b + 0 <= 0) { print "-"; exit }
		r = a / b; printf (r >= 10 ? "%.1f%s" : "%.2f%s"), r, mark }'
}

row() {	# MEASURE DESCRIPTION
	local m=$1 f out mark=""
	[ -z "${R[fx.$m.failures]:-}" ] || [ -n "${R[fx.$m.error]:-}" ] || mark=" ‡"
	out="| $2$mark |"
	for f in mean p50 p99; do out+=" $(cell fx "$m" "$f") |"; done
	for f in mean p50 p99; do out+=" $(v "dbos.$m.$f") |"; done
	for f in mean p50 p99; do out+=" $(rat "$(v "dbos.$m.$f")" "$(cell fx "$m" "$f")") |"; done
	echo "$out"
}

# target MEASURE FIELD LIMIT: whether fx's figure is within the limit.
target() {
	local x
	x=$(v "fx.$1.$2")
	if [ "$x" = - ]; then
		echo "not measured"
	else
		awk -v x="$x" -v l="$3" -v part="$([ -z "${R[fx.$1.error]:-}" ] || echo 1)" 'BEGIN {
			printf "%s%s\n", (x + 0 <= l + 0 ? "**met**" : "**not met**"),
				(part ? " (over the samples before a failure)" : "") }'
	fi
}

describe_other() {
	local m out=""
	for m in $FX_MEASURES; do
		out+="$m ${R[fx.$m.busy]:--}/${R[fx.$m.other]:--}, "
	done
	echo "${out%, }"
}

section() {
	local pg settings dbos_v pg_v
	pg=$(q postgres "SELECT version()" | sed 's/ on .*//')
	settings=$(q postgres "SELECT string_agg(name || ' ' || current_setting(name), ', ' ORDER BY ord)
		FROM unnest(ARRAY['fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes',
			'shared_buffers', 'max_connections']) WITH ORDINALITY AS s(name, ord)")
	dbos_v=$(node -p 'require(process.argv[1]).version' "$WORK/peers/node_modules/@dbos-inc/dbos-sdk/package.json" 2>/dev/null || echo "?")
	pg_v=$(node -p 'require(process.argv[1]).version' "$WORK/peers/node_modules/pg/package.json" 2>/dev/null || echo "?")
	cat <<EOF
$SECTION

Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/workflow.sh\`$([ "$QUICK" = 1 ] && echo " (QUICK)") (N = $(fmt_int "$N") samples per
measure after $WARMUP unmeasured ones, $SLEEP_N per sleep), fx at \`$FX_REV\`
(when the run began; worker binary \`$FX\` sha256 \`${FX_SHA[0]}\`, installed extension: script sha256
\`${FX_SHA[1]}\`, library \`${FX_SHA[2]}\`), DBOS Transact \`@dbos-inc/dbos-sdk\` $dbos_v from npm.
Both systems run the same work, one sample at a time, against the same server in
the same run: first fx, then DBOS (with fx's worker stopped).

* Machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo),
  kernel $(uname -r); the client, the worker, its sandboxes, DBOS and PostgreSQL share them.
* $pg, a private cluster with initdb's defaults ($settings).
* fx: one \`fx worker --concurrency $FX_CONC --wait-grace-ms $GRACE_MS\`; the workflow
  \`bench/wf/wf.c\` and the no-op \`bench/noop/noop.c\` are C (\`include/fx.h\`, $(cc --version | head -1),
  cJSON $(pkg-config --modversion libcjson 2>/dev/null || echo "?")) run as session functions in fx's sandboxes. The client
  (\`bench/wf/client.js\`, node $(node --version), node-postgres $pg_v) times each sample on this
  machine's wall clock; the function reads the same clock (\`CLOCK_REALTIME\`) where a time
  is taken inside the workflow.
* DBOS: \`bench/peers/dbos-wf.js\`, one node process that both runs the workflows and times
  them, system database \`dbos_wf\` (new and empty) on the same server, DBOS's default
  settings (\`notificationCoalesceMs\` 10).
* Pause between two samples: random, $(awk -v g="$GAP_MS" 'BEGIN { printf "%.1f to %.1f", g / 3, g * 5 / 3 }') ms, for both (none between sleeps).

### Targets

| target | fx | DBOS, same run | fx meets it |
|---|---|---|---|
| per inline step ≤ 0.3 ms (mean of (wf10 − wf0) / 10) | $(v fx.per-step.mean) ms (p50-based: $(v fx.per-step.p50) ms) | $(v dbos.per-step.mean) ms (p50-based: $(v dbos.per-step.p50) ms) | $(target per-step mean 0.3) |
| 10-step workflow ≤ 3 ms (mean round trip) | $(v fx.wf10.mean) ms (p50 $(v fx.wf10.p50) ms) | $(v dbos.wf10.mean) ms (p50 $(v dbos.wf10.p50) ms) | $(target wf10 mean 3) |
| send → recv p50 ≤ 1 ms | $(v fx.send-recv.p50) ms | $(v dbos.send-recv.p50) ms | $(target send-recv p50 1) |

### Latencies (ms)

**DBOS/fx** is DBOS's figure divided by fx's: **above 1 favours fx** (2.00: fx takes half
the time). Per step: (wf10 − wf0) / 10 of the means and of the p50s (no p99).

| measure | fx mean | fx p50 | fx p99 | DBOS mean | DBOS p50 | DBOS p99 | DBOS/fx mean | DBOS/fx p50 | DBOS/fx p99 |
|---|---|---|---|---|---|---|---|---|---|
$(row wf0 "0-step workflow, called and awaited")
$(row wf10 "10-step workflow of no-op inline steps")
$(row per-step "**per inline step**")
$(row wf10-call "10 steps each calling a warm no-op function")
$(row per-call "per call step")
$(row send-recv "send → recv")
$(row commit "for scale: one durable commit (\`INSERT\`, autocommit) from the client")
$(row event "set_event → get_event")
$(row sleep "sleep $SLEEP_MS ms: overshoot")
$(row sleep-long "sleep $LONG_SLEEP_MS ms: overshoot (fx: evicted and replayed)")
$(for m in $FX_MEASURES per-step per-call; do [ -z "${R[fx.$m.error]:-}" ] || { echo; echo "† fx failed part of this measure: the figures are over the samples before the failure (see Failures)."; break; }; done)
$(for m in $FX_MEASURES; do [ -z "${R[fx.$m.failures]:-}" ] || [ -n "${R[fx.$m.error]:-}" ] || { echo; echo "‡ some fx samples of this row failed and were sampled again; the figures are over the samples that succeeded (see Failures)."; break; }; done)

What each row runs:

| measure | fx | DBOS |
|---|---|---|
| 0-step workflow | \`SELECT fx_call('wf', '{"op":"steps","n":0}')\` from the client: enqueue (through fx_call's loopback connection), claim, run in the warm sandbox, completion, NOTIFY back; no step is recorded, so this is a plain function call | \`DBOS.startWorkflow(wf0)()\` then \`getResult()\` in the process that runs it (no client hop): the workflow's status row written and read back |
| 10-step workflow | the same with \`"n":10\`: 10 × \`fx_run(ctx, "noop", ...)\`, each a \`step\` request (answered "run it") and a \`step.done\` recording it (asynchronous commit) | 10 × \`DBOS.runStep(async () => null)\`, each step's output written to \`dbos.operation_outputs\` |
| 10 steps calling a function | 10 × \`fx_call(ctx, "noop", {})\` in the workflow: each a child invocation, claimed and run in the no-op's own warm sandbox, waited for | 10 × \`DBOS.startWorkflow(child)()\` then \`getResult()\` in the workflow: a child workflow in the same process |
| send → recv | a new workflow per sample (\`fx_invoke\`) sets the event "waiting" and waits in \`fx_recv(ctx, "go", 30000)\`; the client sees the event (\`fx_get_event(id, 'waiting', '10s')\`), pauses 5–25 ms, reads t0 and runs \`SELECT fx_send(id, 'go', ...)\`; the workflow reads the clock as \`fx_recv\` returns and returns it | the same with \`DBOS.setEvent\`, \`DBOS.recv\` and \`DBOS.send\` |
| set_event → get_event | a new workflow per sample waits in \`fx_recv(ctx, "go")\`; the client's first connection runs \`SELECT fx_get_event(id, 'k', '5s')\`; once that backend is seen waiting in pg_stat_activity and 5–25 ms later, a second connection sends "go"; the workflow reads its clock t0 and sets "k" to it: the time the get_event returned − t0 | the same with \`DBOS.getEvent\` already waiting (5–25 ms after it was called) and \`DBOS.setEvent\`; DBOS gathers event notifications for \`notificationCoalesceMs\` (10 ms) before it sends them |
| one durable commit | \`INSERT INTO fx_bench_commit VALUES (1)\` from the same client and connection as the rows above: one round trip and one commit that waits for the disk (fsync), the floor under \`fx_send\`, which is such a commit too | not measured (the same server) |
| sleep $SLEEP_MS ms | an inline step records the start, then \`fx_sleep(ctx, $SLEEP_MS)\`, timed in the workflow from just before \`fx_sleep\`; within the grace, the sandbox waits | \`DBOS.sleep($SLEEP_MS)\`, timed in the workflow |
| sleep $LONG_SLEEP_MS ms | the same, longer than \`--wait-grace-ms\` ($GRACE_MS): after $GRACE_MS ms the sandbox is given up and the workflow queued again; it replays at the wake-up time, the recorded start step returns its output and the sleep what is left: from the first run's recorded start to \`fx_sleep\`'s return in the replay ($(v fx.sleep-long.replayed) of $(v fx.sleep-long.n) samples replayed) | \`DBOS.sleep($LONG_SLEEP_MS)\`: a timer in the process (DBOS keeps the workflow in memory) |

DBOS called directly (\`await wf()\` in its own process rather than \`startWorkflow\` and
\`getResult\`; no fx counterpart): 0 steps $(v dbos.wf0-direct.mean) ms mean ($(v dbos.wf0-direct.p50) p50), 10 steps
$(v dbos.wf10-direct.mean) ms mean ($(v dbos.wf10-direct.p50) p50), per step $(v dbos.per-step-direct.mean) ms mean ($(v dbos.per-step-direct.p50) p50-based).

Steps fx recorded over the whole run (\`fx_workflow_steps\` of every \`wf\` invocation, by
kind): ${FX_STEPS:-?}. CPU busy before / other load during each fx measure (% of the
CPUs, as in the queue scenarios): $(describe_other); DBOS: ${R[dbos.busy]:--}/${R[dbos.other]:--}.
$([ -z "${FX_CHANGED:-}" ] || printf '\n**The installed fx changed while fx was measured** (a make install elsewhere): binary, script and library sha256 are now %s; the client backends that started after the change loaded the new library.\n' "$FX_CHANGED")
$(if [ -s "$WORK/failures.md" ]; then echo; echo "### Failures"; echo; cat "$WORK/failures.md"; fi)

### Commands

\`\`\`
$(awk '!seen[$0]++' "$WORK/commands.txt")
\`\`\`
EOF
}

write_results() {
	mkdir -p "$(dirname "$RESULTS")"
	section | cat -s >"$WORK/section.md"
	cp "$WORK/section.md" "$RESULTS"
}

# The fx under test: the worker binary, the extension's script and library
# (sha256, 12 digits), which a make install elsewhere could replace.
EXT_FILES=("$(pg_config --sharedir)/extension/fx--0.1.sql" "$(pg_config --pkglibdir)/fx.so")
fx_shas() { sha256sum "$FX" "${EXT_FILES[@]}" 2>/dev/null | cut -c1-12 | tr '\n' ' '; }

# --- main ----------------------------------------------------------------------

step "setup: PostgreSQL, DBOS (npm ci), the functions, one worker"
cmd_note "QUICK=$QUICK N=$N WARMUP=$WARMUP SLEEP_N=$SLEEP_N SLEEP_MS=$SLEEP_MS LONG_SLEEP_MS=$LONG_SLEEP_MS GRACE_MS=$GRACE_MS GAP_MS=$GAP_MS FX_CONC=$FX_CONC bench/workflow.sh"
log "work directory $WORK; results to $RESULTS"
FX_REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
read -r -a FX_SHA <<<"$(fx_shas)"
cp "$ROOT"/bench/peers/package.json "$ROOT"/bench/peers/package-lock.json "$ROOT"/bench/peers/*.js \
	"$ROOT"/bench/wf/client.js "$WORK/peers/"
if system dbos || system fx; then
	(cd "$WORK/peers" && npm ci --no-audit --no-fund --loglevel=error >"$WORK/log/npm.log" 2>&1) ||
		{ cat "$WORK/log/npm.log" >&2; die "npm ci failed in bench/peers"; }
	cmd_note "cd bench/peers && npm ci   (package-lock.json pins every version)"
fi
pg_start
cmd_note "initdb -D DIR -U postgres --auth=trust; pg_ctl -D DIR -o \"-p PORT -k SOCKDIR -c listen_addresses=127.0.0.1\" start   (as postgres)"
log "PostgreSQL on port $PORT, socket $SOCK"
fx_setup

step "fx: $FX_MEASURES ($N samples each, $SLEEP_N per sleep)"
if system fx; then
	fx_start
	fx_run_all
	stop_pid "$FX_WPID" 30
	if [ "$(fx_shas)" != "${FX_SHA[*]} " ]; then
		FX_CHANGED=$(fx_shas)
		log "  WARNING: the installed fx changed during the fx measures (sha256 now: $FX_CHANGED)"
	fi
else
	log "  skipped (SYSTEMS=\"$SYSTEMS\")"
fi

step "DBOS Transact: the same, in bench/peers/dbos-wf.js"
if system dbos; then
	dbos_run
else
	log "  skipped (SYSTEMS=\"$SYSTEMS\")"
fi

step "writing $RESULTS"
derive
write_results
log "done: $RESULTS"
