#!/usr/bin/env bash
# bench/run.sh: fx side by side with graphile-worker and DBOS Transact, and
# PostgreSQL's own ceiling for the same work, on one private PostgreSQL 15.
#
#   bench/run.sh            the full run (about 15-25 minutes)
#   QUICK=1 bench/run.sh    a short smoke run (about 3-5 minutes)
#
# It starts its own PostgreSQL 15 (initdb defaults: fsync and
# synchronous_commit on) in a temporary directory as the postgres user,
# installs the peers from the npm registry at the versions pinned in
# bench/peers/package-lock.json (npm ci, into the temporary directory), builds
# the no-op function (bench/noop), and runs every scenario for fx and each
# peer against that server:
#
#   ceiling     pgbench: claim-and-complete in raw SQL, single-row and batched
#   throughput  N no-ops enqueued in one statement, until all are done
#   latency     fx_call round trip; enqueue -> start with idle workers
#   cold        first invocation of a newly deployed function; new processes
#   idle        commits per second and resident memory of an idle system
#   scaling     throughput with 1, 2 and 4 worker processes
#   snapshot    throughput while another session holds a snapshot open
#
# Then writes the tables to $RESULTS (bench/queue-results.md for a full run;
# a QUICK run writes /tmp/fx-bench-queue-results.quick.md unless RESULTS is
# set, so that smoke numbers never replace the reference ones).  Everything
# it starts is stopped on exit, Ctrl-C included.
#
# Knobs (environment): QUICK, N (invocations per throughput run), ROUNDS,
# FX_CONC ("16 32 64 128": --concurrency values tried), DBOS_VARIANTS
# ("c50 wc50 unlimited"), LAT_N (latency samples), COLD_N, COLD_PROC_N,
# IDLE_S (seconds per idle window), IDLE_WINDOWS, WARM_FNS (100), SCALE
# ("1 2 4"), PGB_T (seconds per pgbench run), PGB_CLIENTS ("1 4 16"),
# PEERS ("graphile dbos"), SCENARIOS (the list above), FX (the fx binary,
# default: the one on PATH, as installed by make install), BENCH_DIR
# (/tmp/fx-bench-queue), KEEP=1 (keep the work directory and its logs),
# QUIET_BUDGET (seconds it may wait in all for other load on the machine
# to pass), RESULTS.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"

case "${QUICK:-0}" in 0 | "" | no | false) QUICK=0 ;; *) QUICK=1 ;; esac
if [ "$QUICK" = 1 ]; then
	: "${N:=2000}" "${ROUNDS:=1}" "${FX_CONC:=16 64}" "${DBOS_VARIANTS:=c50 unlimited}"
	: "${LAT_N:=100}" "${COLD_N:=5}" "${COLD_PROC_N:=2}" "${IDLE_S:=5}" "${IDLE_WINDOWS:=1}"
	: "${SETTLE_S:=2}" "${SCALE:=1 2}" "${PGB_T:=2}" "${PGB_CLIENTS:=1 4}" "${QUIET_BUDGET:=10}"
	: "${RESULTS:=${TMPDIR:-/tmp}/fx-bench-queue-results.quick.md}"
else
	: "${N:=20000}" "${ROUNDS:=2}" "${FX_CONC:=16 32 64 128}" "${DBOS_VARIANTS:=c50 wc50 unlimited}"
	: "${LAT_N:=1000}" "${COLD_N:=20}" "${COLD_PROC_N:=5}" "${IDLE_S:=10}" "${IDLE_WINDOWS:=3}"
	: "${SETTLE_S:=5}" "${SCALE:=1 2 4}" "${PGB_T:=10}" "${PGB_CLIENTS:=1 4 16}" "${QUIET_BUDGET:=300}"
	: "${RESULTS:=$ROOT/bench/queue-results.md}"
fi
: "${WARM_FNS:=100}" "${PGB_BATCH:=100}" "${RETRIES:=2}" "${OTHER_MAX:=20}"
: "${PEERS:=graphile dbos}" "${SCENARIOS:=ceiling throughput latency cold idle scaling snapshot}"
QUIET_LEFT=$QUIET_BUDGET

peer() { [[ " $PEERS " == *" $1 "* ]]; }

# --- preflight -----------------------------------------------------------

PGBIN=$(pg_config --bindir 2>/dev/null) || die "pg_config not found: run scripts/deps.sh"
FX=${FX:-$(command -v fx || true)}
[ -x "$FX" ] || die "no fx binary: run make install (or set FX)"
[ -f "$(pg_config --sharedir)/extension/fx.control" ] || die "the fx extension is not installed: run make install"
for tool in node npm cc psql "$PGBIN/pgbench"; do
	command -v "$tool" >/dev/null || die "$tool not found: run scripts/deps.sh"
done
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 18 ] || die "node $(node --version) is too old for the peers: 18 or later"
[ "$NODE_MAJOR" -ge 20 ] ||
	log "warning: node $(node --version): the peers declare node >= 20 (DBOS) and >= 22.18 (graphile-worker); they run on 18 and 20 here"
[ "$(id -u)" != 0 ] || command -v runuser >/dev/null || die "runuser not found"

mkdir -p "${BENCH_DIR:=/tmp/fx-bench-queue}"
chmod 755 "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/log" "$WORK/cache"
JSONL=$WORK/results.jsonl
: >"$JSONL"
: >"$WORK/commands.txt"
HOLD_OPEN=
FX_WPIDS=()
PEER_PIDS=()

cleanup() {
	local rc=$? left
	trap - EXIT INT TERM
	trap '' PIPE	# a closed pipe (make bench | tee, then Ctrl-C) must not stop the cleanup
	set +e
	[ -n "$HOLD_OPEN" ] && exec 7>&-
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
STEPS=$(($(wc -w <<<"$SCENARIOS") + 2))
step() {
	STEP=$((STEP + 1))
	log "[$STEP/$STEPS] $*"
}

# emit key=value...: one JSON line of results.  Values that look like
# numbers, objects or arrays go in as they are, the rest as strings.
emit() {
	local kv k v out="" sep=""
	for kv in "$@"; do
		k=${kv%%=*}
		v=${kv#*=}
		if ! [[ $v =~ ^-?[0-9]+(\.[0-9]+)?$ || $v == \{* || $v == \[* ]]; then
			v="\"${v//\"/\\\"}\""
		fi
		out+="$sep\"$k\":$v"
		sep=,
	done
	printf '{%s}\n' "$out" >>"$JSONL"
}

other_note() {
	[ "${OTHER:-0}" -lt 5 ] || printf ' (other processes: %s%% of the CPUs)' "$OTHER"
}

# measured CMD...: a measured run, run again (at most RETRIES times) when
# other processes took $OTHER_MAX% or more of the CPUs during it; every run
# is recorded, and the report prefers the clean ones.
measured() {
	local i
	for ((i = 0; ; i++)); do
		"$@"
		[ "$OTHER" -lt "$OTHER_MAX" ] && return 0
		[ "$i" -lt "$RETRIES" ] || return 0
		log "  other processes used ${OTHER}% of the CPUs during that run: running it again"
	done
}

checkpoint() { q postgres "CHECKPOINT" >/dev/null; }

# snap DB, then unsnap N at the end of a run and unsnap_commits DB N once
# its workers have stopped: commits and WAL bytes per job over the run.  A
# busy backend reports its commits to pg_stat_database at most once a
# second, and one that just did may keep the rest for 10 s while idle, so
# commits are read only after the workers' backends have exited (exit
# reports them all).
snap() {
	SNAP_C=$(commits "$1")
	SNAP_L=$(q postgres "SELECT pg_current_wal_lsn()")
}
unsnap() {
	PER_JOB_WAL=$(q postgres "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$SNAP_L') / $1)")
}
unsnap_commits() {
	local c i
	for ((i = 0; i < 50; i++)); do
		[ "$(q postgres "SELECT count(*) FROM pg_stat_activity
			WHERE datname = '$1' AND backend_type = 'client backend'")" = 0 ] && break
		sleep 0.1
	done
	c=$(commits "$1")
	PER_JOB_COMMITS=$(awk -v d="$((c - SNAP_C))" -v n="$2" 'BEGIN { printf "%.3f", d / n }')
}

# drain DB N ENQUEUE_SQL COUNT_SQL LABEL: sets DRAIN_JSON.
drain() {
	DRAIN_JSON=$(node "$WORK/peers/drain.js" --db "$1" --target "$2" --enqueue "$3" --count "$4" \
		--label "$5" --timeout-s $((120 + $2 / 50)))
}

# --- the held snapshot -------------------------------------------------------

hold_start() {	# DB
	local i
	rm -f "$WORK/hold.fifo"
	mkfifo "$WORK/hold.fifo"
	spawn "$WORK/log/hold.log" env PGAPPNAME=fx-bench-hold psql -X -q -d "$1" -f "$WORK/hold.fifo"
	HOLD_PID=$SPAWNED
	exec 7>"$WORK/hold.fifo"
	HOLD_OPEN=1
	echo "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;" >&7
	for ((i = 0; i < 100; i++)); do
		[ "$(q postgres "SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'fx-bench-hold' AND backend_xmin IS NOT NULL")" = 1 ] && return 0
		sleep 0.05
	done
	die "the snapshot holder did not start"
}

hold_stop() {
	exec 7>&-
	HOLD_OPEN=
	stop_pid "$HOLD_PID" 5
}

# --- fx ----------------------------------------------------------------------

FXDB=
fx_setup() {
	q postgres "CREATE DATABASE fx" >/dev/null
	q fx "CREATE EXTENSION fx" >/dev/null
	FXDB="host=$SOCK port=$PORT user=postgres dbname=fx"
	FXDB_SHOWN="host=SOCKDIR port=PORT user=postgres dbname=fx"
	mkdir -p "$WORK/noop"
	cc -Wall -Wextra -Werror -O2 -I"$ROOT/include" -o "$WORK/noop/noop" "$ROOT/bench/noop/noop.c" -lcjson
	cmd_note "cc -Wall -Wextra -Werror -O2 -Iinclude -o noop bench/noop/noop.c -lcjson"
	"$FX" deploy noop "$WORK/noop" --cmd ./noop --mode session --db "$FXDB" >/dev/null
	cmd_note "fx deploy noop DIR --cmd ./noop --mode session --db \"$FXDB_SHOWN\""
	NOOP_BUNDLE_SQL="(SELECT bundle FROM fx.version WHERE fn = 'noop' AND version = 1)"
	fx_prime
}

# Statistics as a queue in use has them: analyzed once while N jobs wait.
# Column statistics outlive TRUNCATE, DELETE and an ANALYZE of the empty
# table, which every run starts from; without them a planner takes the
# queue for empty.  graphile-worker's claims ran at half speed on such
# statistics (12,000/s against 19,000-22,000/s), and the first runs of a
# benchmark had them while later ones, after autovacuum had come by, did
# not.  fx's plans do not depend on them (fx.claim), but it gets the same.
fx_prime() {
	q fx "SELECT count(fx_invoke('noop', '{}')) FROM generate_series(1, $N)" >/dev/null
	q fx "ANALYZE fx.invocation" >/dev/null
	q fx "TRUNCATE fx.invocation, fx.log" >/dev/null
	cmd_note "fx: SELECT count(fx_invoke('noop', '{}')) FROM generate_series(1, N); ANALYZE fx.invocation; TRUNCATE fx.invocation, fx.log   (no worker running)"
}

# fx_start W C [SESSIONS]: W workers with --concurrency C.
fx_start() {
	local i sessions=${3:-$(($2 > 64 ? $2 : 64))}
	FX_WPIDS=()
	for ((i = 1; i <= $1; i++)); do
		spawn "$WORK/log/fx-worker.$i.log" "$FX" worker --db "$FXDB" --concurrency "$2" \
			--max-sessions "$sessions" --cache "$WORK/cache/$i"
		FX_WPIDS+=("$SPAWNED")
		wait_for_line "$WORK/log/fx-worker.$i.log" "connected to the database" 30 "$SPAWNED" ||
			{ cat "$WORK/log/fx-worker.$i.log" >&2; die "fx worker $i did not start"; }
	done
	cmd_note "fx worker --db \"$FXDB_SHOWN\" --concurrency $2 --max-sessions $sessions --cache DIR   (x$1)"
}

fx_stop() {
	local p
	for p in "${FX_WPIDS[@]}"; do
		stop_pid "$p" 30
	done
	FX_WPIDS=()
}

fx_reset() {
	q fx "TRUNCATE fx.invocation, fx.log" >/dev/null
	q fx "VACUUM ANALYZE fx.invocation" >/dev/null
}

# FX_ENQ N: the batch enqueue (fx_invoke_all), as graphile-worker's add_jobs;
# FX_ENQ_ROWS N: fx_invoke once per row, measured too in scenario 1.
FX_ENQ() { echo "SELECT cardinality(fx_invoke_all('noop', array_fill('{}'::jsonb, ARRAY[$1])))"; }
FX_ENQ_ROWS() { echo "SELECT count(fx_invoke('noop', '{}')) FROM generate_series(1, $1)"; }
# FX_LEFT N START: the poll, N minus those still queued or running, as
# graphile-worker's counts the jobs left: an index probe each (the queued
# and running rows have partial indexes), where counting the succeeded
# ones read the whole run's rows every 50 ms, a load fx was measured with.
FX_LEFT() {
	echo "SELECT $1 - (SELECT count(*) FROM fx.invocation WHERE id > $2 AND status = 'queued' AND NOT blocked)
		- (SELECT count(*) FROM fx.invocation WHERE id > $2 AND status = 'running')
		- (SELECT count(*) FROM fx.invocation WHERE id > $2 AND blocked)"
}

# fx_started ID: how many invocations after ID started a new sandbox.
fx_started() {
	q fx "SELECT count(*) FROM fx.invocation WHERE id > $1 AND start_kind <> 'warm'"
}

# fx_throughput SCENARIO W C [hold] [rows]: one measured run; sets
# LAST_PER_S.  rows: enqueued with fx_invoke per row, not fx_invoke_all.
fx_throughput() {
	local s=$1 w=$2 c=$3 hold=${4:-} rows=${5:-} warm start db ok i started enq=FX_ENQ cfg="--concurrency $3"
	[ -n "$rows" ] && enq=FX_ENQ_ROWS cfg="--concurrency $3, fx_invoke per row"
	fx_reset
	fx_start "$w" "$c"
	# The run is through warm sandboxes, every worker's: warm-up rounds of
	# ten times all the slots, so that every worker has all of its slots
	# busy at once, until a round starts no new sandbox (a round of twice
	# the slots left a quarter of four workers' sandboxes to start in the
	# measured run).
	warm=$((w * c * 10 > 200 ? w * c * 10 : 200))
	for ((i = 1; i <= 5; i++)); do
		start=$(q fx "SELECT coalesce(max(id), 0) FROM fx.invocation")
		drain fx "$warm" "$(FX_ENQ "$warm")" \
			"SELECT count(*) FROM fx.invocation WHERE id > $start AND status = 'succeeded'" "fx warm-up"
		[ "$(fx_started "$start")" = 0 ] && break
	done
	start=$(q fx "SELECT coalesce(max(id), 0) FROM fx.invocation")
	cmd_note "node bench/peers/drain.js --db fx --target N --enqueue \"$($enq N)\" --count \"$(FX_LEFT N START)\""
	checkpoint
	[ -n "$hold" ] && hold_start fx
	wait_quiet
	snap fx
	cpu_mark "${FX_WPIDS[@]}"
	drain fx "$N" "$($enq "$N")" "$(FX_LEFT "$N" "$start")" "fx ($w x $cfg)"
	cpu_other
	unsnap "$N"
	[ -n "$hold" ] && hold_stop
	fx_stop
	unsnap_commits fx "$N"
	ok=$(q fx "SELECT count(*) FROM fx.invocation WHERE id > $start AND status = 'succeeded'")
	[ "$ok" = "$N" ] || die "fx: $ok of $N invocations succeeded"
	started=$(fx_started "$start")
	db=$(q fx "SELECT round(($N / extract(epoch FROM max(finished_at) - min(created_at)))::numeric, 1)
		FROM fx.invocation WHERE id > $start")
	LAST_PER_S=$(json_get "$DRAIN_JSON" per_s)
	emit s="$s" sys=fx cfg="$cfg" rows="${rows:+1}" workers="$w" round="${ROUND:-1}" r="$DRAIN_JSON" \
		db_per_s="$db" commits_per_job="$PER_JOB_COMMITS" wal_per_job="$PER_JOB_WAL" busy="$BUSY" other="$OTHER" \
		cpu_ms="[${CPU_SPLIT// /,}]" started="$started"
	log "  fx, $w worker(s) x $cfg: $(fmt_int "$LAST_PER_S")/s (database timestamps: $(fmt_int "$db")/s)$(other_note)"
}

# --- graphile-worker ---------------------------------------------------------

GW_ENV="GW_CONCURRENCY=10 GW_LOCAL_QUEUE=50 GW_COMPLETE_BATCH_MS=0"
GW_ENQ() {
	echo "SELECT count(*) FROM graphile_worker.add_jobs(array(SELECT json_populate_record(null::graphile_worker.job_spec, json_build_object('identifier', 'noop', 'payload', '{}'::json)) FROM generate_series(1, $1)))"
}

gw_start() {	# W
	local i
	PEER_PIDS=()
	for ((i = 1; i <= $1; i++)); do
		# shellcheck disable=SC2086
		spawn "$WORK/log/graphile.$i.log" env GW_DB=graphile $GW_ENV node "$WORK/peers/graphile.js" worker
		PEER_PIDS+=("$SPAWNED")
		wait_for_line "$WORK/log/graphile.$i.log" "^ready" 60 "$SPAWNED" ||
			{ cat "$WORK/log/graphile.$i.log" >&2; die "graphile-worker $i did not start"; }
	done
	cmd_note "env GW_DB=graphile $GW_ENV node bench/peers/graphile.js worker   (x$1)"
}

peers_stop() {
	local p
	for p in "${PEER_PIDS[@]}"; do
		stop_pid "$p" 30
	done
	PEER_PIDS=()
}

# The same priming as fx_prime, once, with no worker running (the first
# start creates graphile-worker's tables).
GW_PRIMED=0
gw_prime() {
	[ "$GW_PRIMED" = 1 ] && return 0
	gw_start 1
	peers_stop
	q graphile "$(GW_ENQ "$N")" >/dev/null
	q graphile "ANALYZE graphile_worker._private_jobs" >/dev/null
	q graphile "DELETE FROM graphile_worker._private_jobs" >/dev/null
	q graphile "VACUUM graphile_worker._private_jobs" >/dev/null
	cmd_note "graphile-worker: $(GW_ENQ N); ANALYZE graphile_worker._private_jobs; DELETE FROM graphile_worker._private_jobs; VACUUM graphile_worker._private_jobs   (no worker running)"
	GW_PRIMED=1
}

gw_throughput() {	# SCENARIO W [hold]
	local s=$1 w=$2 hold=${3:-}
	gw_prime
	gw_start "$w"
	q graphile "VACUUM ANALYZE graphile_worker._private_jobs" >/dev/null
	drain graphile 200 "$(GW_ENQ 200)" "SELECT 200 - count(*) FROM graphile_worker._private_jobs" "graphile warm-up"
	cmd_note "node bench/peers/drain.js --db graphile --target N --enqueue \"$(GW_ENQ N)\" --count \"SELECT N - count(*) FROM graphile_worker._private_jobs\""
	checkpoint
	[ -n "$hold" ] && hold_start graphile
	wait_quiet
	snap graphile
	cpu_mark "${PEER_PIDS[@]}"
	drain graphile "$N" "$(GW_ENQ "$N")" "SELECT $N - count(*) FROM graphile_worker._private_jobs" \
		"graphile-worker ($w worker(s))"
	cpu_other
	unsnap "$N"
	[ -n "$hold" ] && hold_stop
	peers_stop
	unsnap_commits graphile "$N"
	LAST_PER_S=$(json_get "$DRAIN_JSON" per_s)
	emit s="$s" sys=graphile cfg="concurrency 10, localQueue 50, completeJobBatchDelay 0" workers="$w" \
		round="${ROUND:-1}" r="$DRAIN_JSON" commits_per_job="$PER_JOB_COMMITS" wal_per_job="$PER_JOB_WAL" \
		busy="$BUSY" other="$OTHER" cpu_ms="[${CPU_SPLIT// /,}]"
	log "  graphile-worker, $w worker(s): $(fmt_int "$LAST_PER_S")/s$(other_note)"
}

# --- DBOS --------------------------------------------------------------------

dbos_env() {	# VARIANT
	case $1 in
		c50) echo "DBOS_GLOBAL_CONCURRENCY=50 DBOS_POLL_MS=10" ;;
		wc50) echo "DBOS_GLOBAL_CONCURRENCY=0 DBOS_WORKER_CONCURRENCY=50 DBOS_POLL_MS=10" ;;
		unlimited) echo "DBOS_GLOBAL_CONCURRENCY=0 DBOS_POLL_MS=10" ;;
		default) echo "DBOS_GLOBAL_CONCURRENCY=0 DBOS_POLL_MS=1000" ;;
		*) die "unknown DBOS variant $1" ;;
	esac
}
dbos_describe() {
	case $1 in
		c50) echo "globalConcurrency 50, minPollingIntervalMs 10" ;;
		wc50) echo "workerConcurrency 50, minPollingIntervalMs 10" ;;
		unlimited) echo "no concurrency limit, minPollingIntervalMs 10" ;;
		default) echo "no concurrency limit, minPollingIntervalMs 1000 (default)" ;;
	esac
}
DBOS_ENQ() {
	echo "SELECT count(dbos.enqueue_workflow('noop', 'bench', ARRAY[]::json[], app_version => 'fx-bench')) FROM generate_series(1, $1)"
}

# A new system database for every run: no queue row, workflow or
# application version of an earlier run is left to be polled or pinned.
dbos_reset() {
	q postgres "DROP DATABASE IF EXISTS dbos WITH (FORCE)" >/dev/null
	q postgres "CREATE DATABASE dbos" >/dev/null
}

dbos_start() {	# W VARIANT
	local i env
	env=$(dbos_env "$2")
	PEER_PIDS=()
	for ((i = 1; i <= $1; i++)); do
		# shellcheck disable=SC2086
		spawn "$WORK/log/dbos.$i.log" env DBOS_DB=dbos DBOS__VMID="bench-$i" $env \
			node "$WORK/peers/dbos.js" worker
		PEER_PIDS+=("$SPAWNED")
		wait_for_line "$WORK/log/dbos.$i.log" "^ready" 90 "$SPAWNED" ||
			{ cat "$WORK/log/dbos.$i.log" >&2; die "DBOS process $i did not start"; }
	done
	cmd_note "env DBOS_DB=dbos DBOS__VMID=bench-I $env node bench/peers/dbos.js worker   (x$1)"
}

dbos_throughput() {	# SCENARIO W VARIANT [hold]
	local s=$1 w=$2 v=$3 hold=${4:-} mark db
	dbos_reset
	dbos_start "$w" "$v"
	drain dbos 200 "$(DBOS_ENQ 200)" "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'" "DBOS warm-up"
	mark=$(q dbos "SELECT max(created_at) FROM dbos.workflow_status")
	cmd_note "node bench/peers/drain.js --db dbos --target N --enqueue \"$(DBOS_ENQ N)\" --count \"SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS' AND created_at > WARMUP_END\""
	checkpoint
	[ -n "$hold" ] && hold_start dbos
	wait_quiet
	snap dbos
	cpu_mark "${PEER_PIDS[@]}"
	drain dbos "$N" "$(DBOS_ENQ "$N")" \
		"SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS' AND created_at > $mark" \
		"DBOS ($w process(es), $v)"
	cpu_other
	unsnap "$N"
	[ -n "$hold" ] && hold_stop
	peers_stop
	unsnap_commits dbos "$N"
	db=$(q dbos "SELECT round($N / ((max(updated_at) - min(created_at)) / 1000.0), 1)
		FROM dbos.workflow_status WHERE created_at > $mark")
	LAST_PER_S=$(json_get "$DRAIN_JSON" per_s)
	emit s="$s" sys=dbos cfg="$(dbos_describe "$v")" variant="$v" workers="$w" round="${ROUND:-1}" \
		r="$DRAIN_JSON" db_per_s="$db" commits_per_job="$PER_JOB_COMMITS" wal_per_job="$PER_JOB_WAL" \
		busy="$BUSY" other="$OTHER" cpu_ms="[${CPU_SPLIT// /,}]"
	log "  DBOS, $w process(es), $v: $(fmt_int "$LAST_PER_S")/s$(other_note)"
}

# --- scenarios ---------------------------------------------------------------

best_of() {	# "key value" lines -> the key with the largest value
	sort -k2,2 -g | tail -1 | cut -d' ' -f1
}

scenario_ceiling() {
	local script c out tps jobs left rows per_tx mode
	step "PostgreSQL's ceiling: claim-and-complete in raw SQL (pgbench, ${PGB_T} s runs)"
	q postgres "CREATE DATABASE ceiling" >/dev/null
	for script in enqueue1 claim1-one-tx claim1-complete1 claimN-completeN; do
		for c in $PGB_CLIENTS; do
			per_tx=1
			rows=$((6000 * PGB_T * (c > 4 ? 4 : c) + 20000))
			if [ "$script" = claimN-completeN ]; then
				per_tx=$PGB_BATCH
				rows=$((150000 * PGB_T + 50000))
			fi
			[ "$script" = enqueue1 ] && { [ "$c" = 1 ] || continue; rows=0; }
			psql -X -q -v ON_ERROR_STOP=1 -v rows="$rows" -d ceiling -f "$ROOT/bench/pgbench/schema.sql" >/dev/null 2>&1
			wait_quiet
			mode="-M prepared"
			cmd_note "pgbench -n $mode -c $c -j $((c < 2 ? c : 2)) -T $PGB_T -D batch=$PGB_BATCH -f bench/pgbench/$script.sql ceiling   (after psql -v rows=$rows -f bench/pgbench/schema.sql)"
			# shellcheck disable=SC2086
			out=$("$PGBIN/pgbench" -n $mode -c "$c" -j $((c < 2 ? c : 2)) -T "$PGB_T" -D batch="$PGB_BATCH" \
				-f "$ROOT/bench/pgbench/$script.sql" ceiling 2>&1) || { echo "$out" >&2; die "pgbench failed"; }
			tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")
			jobs=$(awk -v t="$tps" -v b="$per_tx" 'BEGIN { printf "%.1f", t * b }')
			left=$(q ceiling "SELECT count(*) FROM job WHERE status = 'queued'")
			emit s=ceiling sys=pgbench script="$script" clients="$c" tps="$tps" per_s="$jobs" \
				per_tx="$per_tx" left="$left" rows="$rows" busy="$BUSY"
			log "  $script, $c client(s): $(fmt_int "$jobs") jobs/s"
		done
	done
	q postgres "DROP DATABASE ceiling" >/dev/null
}

scenario_throughput() {
	local c r v lines
	step "1. throughput: $N no-ops enqueued in one statement, to all done (x$ROUNDS)"
	lines=
	for c in $FX_CONC; do
		for ((r = 1; r <= ROUNDS; r++)); do
			ROUND=$r measured fx_throughput throughput 1 "$c"
			lines+="$c $LAST_PER_S"$'\n'
		done
	done
	FX_C=$(printf '%s' "$lines" | best_of)
	emit s=chosen sys=fx value="$FX_C"
	log "  fx: best --concurrency $FX_C, used from here on"
	for ((r = 1; r <= ROUNDS; r++)); do
		ROUND=$r measured fx_throughput throughput 1 "$FX_C" "" rows
	done
	if peer graphile; then
		for ((r = 1; r <= ROUNDS; r++)); do
			ROUND=$r measured gw_throughput throughput 1
		done
	fi
	if peer dbos; then
		lines=
		for v in $DBOS_VARIANTS; do
			for ((r = 1; r <= ROUNDS; r++)); do
				ROUND=$r measured dbos_throughput throughput 1 "$v"
				lines+="$v $LAST_PER_S"$'\n'
			done
		done
		DBOS_V=$(printf '%s' "$lines" | best_of)
		emit s=chosen sys=dbos value="$DBOS_V"
		log "  DBOS: best variant $DBOS_V, used from here on"
	fi
}

scenario_latency() {
	local out
	step "2. latency: fx_call round trip, enqueue -> start with idle workers ($LAT_N samples)"
	fx_reset
	fx_start 1 "$FX_C"
	cmd_note "node bench/peers/fxclient.js call --n $LAT_N;  node bench/peers/fxclient.js invoke --n $LAT_N"
	wait_quiet
	cpu_mark
	out=$(FX_DB_NAME=fx node "$WORK/peers/fxclient.js" call --n "$LAT_N")
	cpu_other
	emit s=latency sys=fx what=call r="$out" other="$OTHER"
	log "  fx_call round trip: p50 $(json_get "$out" p50) ms, p99 $(json_get "$out" p99) ms"
	cpu_mark
	out=$(FX_DB_NAME=fx node "$WORK/peers/fxclient.js" invoke --n "$LAT_N")
	cpu_other
	emit s=latency sys=fx what=start r="$out" other="$OTHER"
	log "  fx_invoke -> start: p50 $(json_get "$out" p50) ms, p99 $(json_get "$out" p99) ms"
	fx_stop
	if peer graphile; then
		wait_quiet
		cmd_note "env GW_DB=graphile $GW_ENV node bench/peers/graphile.js latency --n $LAT_N"
		cpu_mark
		# shellcheck disable=SC2086
		out=$(env GW_DB=graphile $GW_ENV node "$WORK/peers/graphile.js" latency --n "$LAT_N")
		cpu_other
		emit s=latency sys=graphile what=start r="$out" other="$OTHER"
		log "  graphile add_job -> start: p50 $(json_get "$out" p50) ms, p99 $(json_get "$out" p99) ms"
	fi
	if peer dbos; then
		dbos_reset
		wait_quiet
		cmd_note "env DBOS_DB=dbos DBOS__VMID=bench-1 $(dbos_env "$DBOS_V") node bench/peers/dbos.js latency --n $LAT_N"
		cpu_mark
		# shellcheck disable=SC2046
		out=$(env DBOS_DB=dbos DBOS__VMID=bench-1 $(dbos_env "$DBOS_V") node "$WORK/peers/dbos.js" latency --n "$LAT_N")
		cpu_other
		emit s=latency sys=dbos what=start variant="$DBOS_V" r="$out" other="$OTHER"
		log "  DBOS enqueue_workflow -> start: p50 $(json_get "$out" p50) ms, p99 $(json_get "$out" p99) ms"
	fi
}

# wait_start LOG PID: the microsecond time a "start US" line in LOG gives.
wait_start() {
	wait_for_line "$1" "^start " 120 "$2" || { cat "$1" >&2; die "no start line in $1"; }
	sed -n 's/^start \([0-9.]*\).*/\1/p' "$1" | head -1
}

scenario_cold() {
	local k mode fns out t0 t id lat dir
	step "3. cold start: first invocation of a newly deployed function ($COLD_N each), new processes ($COLD_PROC_N each)"
	fx_reset
	fx_start 1 "$FX_C"
	for mode in session simple; do
		fns=
		for ((k = 1; k <= COLD_N; k++)); do
			dir=$WORK/cold/$mode-$k
			mkdir -p "$dir"
			cp "$WORK/noop/noop" "$dir/"
			echo "$mode $k $$" >"$dir/stamp"	# a bundle of its own: fetched and unpacked on first use
			"$FX" deploy "cold-$mode-$k" "$dir" --cmd ./noop --mode "$mode" --db "$FXDB" >/dev/null
			fns+="${fns:+,}cold-$mode-$k"
		done
		wait_quiet
		out=$(FX_DB_NAME=fx node "$WORK/peers/fxclient.js" cold --fns "$fns")
		emit s=cold sys=fx what="new_fn_$mode" r="$out"
		log "  fx, new $mode function, first fx_call: p50 $(json_get "$out" p50) ms, max $(json_get "$out" max) ms"
	done
	cmd_note "fx deploy cold-MODE-K DIR --cmd ./noop --mode MODE; node bench/peers/fxclient.js cold --fns cold-MODE-1,..."
	fx_stop

	# A new process: for the peers that is how new code is deployed.
	out=
	wait_quiet
	for ((k = 1; k <= COLD_PROC_N; k++)); do
		id=$(q fx "SELECT fx_invoke('noop', '{\"t\": true}')")
		t0=$(date +%s%6N)
		fx_start 1 "$FX_C"
		t=$(q fx "SELECT fx_result($id, '60s')->>'t'")
		fx_stop
		lat=$(awk -v a="$t" -v b="$t0" 'BEGIN { printf "%.0f", a - b }')
		out+="${out:+,}$lat"
	done
	emit s=cold sys=fx what=new_process us="[$out]"
	cmd_note "fx_invoke('noop', '{\"t\": true}'), then start fx worker; time to the function's start"
	if peer graphile; then
		out=
		gw_start 1	# the schema first, outside the timing
		peers_stop
		for ((k = 1; k <= COLD_PROC_N; k++)); do
			q graphile "SELECT graphile_worker.add_job('noop', '{}')" >/dev/null
			t0=$(date +%s%6N)
			# shellcheck disable=SC2086
			spawn "$WORK/log/graphile-cold.log" env GW_DB=graphile $GW_ENV node "$WORK/peers/graphile.js" cold
			t=$(wait_start "$WORK/log/graphile-cold.log" "$SPAWNED")
			stop_pid "$SPAWNED" 30
			out+="${out:+,}$(awk -v a="$t" -v b="$t0" 'BEGIN { printf "%.0f", a - b }')"
		done
		emit s=cold sys=graphile what=new_process us="[$out]"
		cmd_note "SELECT graphile_worker.add_job('noop', '{}'), then node bench/peers/graphile.js cold"
	fi
	if peer dbos; then
		out=
		dbos_reset
		dbos_start 1 "$DBOS_V"	# migrations and the queue row first, outside the timing
		peers_stop
		for ((k = 1; k <= COLD_PROC_N; k++)); do
			q dbos "$(DBOS_ENQ 1)" >/dev/null
			t0=$(date +%s%6N)
			# shellcheck disable=SC2046
			spawn "$WORK/log/dbos-cold.$k.log" env DBOS_DB=dbos DBOS__VMID=bench-1 $(dbos_env "$DBOS_V") \
				node "$WORK/peers/dbos.js" cold
			t=$(wait_start "$WORK/log/dbos-cold.$k.log" "$SPAWNED")
			stop_pid "$SPAWNED" 30
			out+="${out:+,}$(awk -v a="$t" -v b="$t0" 'BEGIN { printf "%.0f", a - b }')"
		done
		emit s=cold sys=dbos what=new_process us="[$out]"
		cmd_note "SELECT dbos.enqueue_workflow(...), then node bench/peers/dbos.js cold"
	fi
}

# idle_windows DB: "r1,r2,..." commits per second over IDLE_WINDOWS windows.
idle_windows() {
	local i out=
	for ((i = 1; i <= IDLE_WINDOWS; i++)); do
		out+="${out:+,}$(commit_rate "$1" "$IDLE_S")"
	done
	echo "$out"
}

# A backend reports its counters (pg_stat_database's commits) when idle,
# at most once a second, else up to 10 s after its last report: what a
# system did just before its idle windows could be counted in the first.
idle_settle() { sleep "$((SETTLE_S > 11 ? SETTLE_S : 11))"; }

scenario_idle() {
	local rates mem pid sessions v
	step "4. idle load: commits per second ($IDLE_WINDOWS x $IDLE_S s windows) and resident memory"
	fx_reset
	sessions=$((WARM_FNS + 28 > 128 ? WARM_FNS + 28 : 128))
	fx_start 1 "$FX_C" "$sessions"
	pid=${FX_WPIDS[0]}
	idle_settle
	rates=$(idle_windows fx)
	mem=$(tree_mem "$pid")
	emit s=idle sys=fx state=idle rates="[$rates]" rss_kb="$(rss_kb "$pid")" pss_kb="$(pss_kb "$pid")" \
		procs="${mem%% *}" tree_rss_kb="$(cut -d' ' -f2 <<<"$mem")" tree_pss_kb="$(cut -d' ' -f3 <<<"$mem")"
	log "  fx idle: $rates commits/s, worker RSS $(($(rss_kb "$pid") / 1024)) MB"
	q fx "SELECT count(fx_deploy('warm-' || i, $NOOP_BUNDLE_SQL, ARRAY['./noop'], '{\"mode\": \"session\"}'))
		FROM generate_series(1, $WARM_FNS) i" >/dev/null
	drain fx "$WARM_FNS" "SELECT count(fx_invoke('warm-' || i, '{}')) FROM generate_series(1, $WARM_FNS) i" \
		"SELECT count(*) FROM fx.invocation WHERE fn LIKE 'warm-%' AND status = 'succeeded'" "fx warm functions"
	cmd_note "fx_deploy('warm-I', <noop's bundle>, ARRAY['./noop'], '{\"mode\": \"session\"}') and one fx_invoke each, I = 1..$WARM_FNS"
	idle_settle
	rates=$(idle_windows fx)
	mem=$(tree_mem "$pid")
	emit s=idle sys=fx state=warm rates="[$rates]" rss_kb="$(rss_kb "$pid")" pss_kb="$(pss_kb "$pid")" \
		procs="${mem%% *}" tree_rss_kb="$(cut -d' ' -f2 <<<"$mem")" tree_pss_kb="$(cut -d' ' -f3 <<<"$mem")" \
		warm_fns="$WARM_FNS"
	log "  fx with $WARM_FNS warm sandboxes: $rates commits/s, worker RSS $(($(rss_kb "$pid") / 1024)) MB, $((${mem%% *})) processes under it"
	fx_stop
	if peer graphile; then
		gw_start 1
		pid=${PEER_PIDS[0]}
		idle_settle
		rates=$(idle_windows graphile)
		emit s=idle sys=graphile state=idle rates="[$rates]" rss_kb="$(rss_kb "$pid")" pss_kb="$(pss_kb "$pid")"
		log "  graphile-worker idle: $rates commits/s, RSS $(($(rss_kb "$pid") / 1024)) MB"
		peers_stop
	fi
	if peer dbos; then
		for v in "$DBOS_V" default; do
			dbos_reset
			dbos_start 1 "$v"
			pid=${PEER_PIDS[0]}
			idle_settle
			rates=$(idle_windows dbos)
			emit s=idle sys=dbos state=idle variant="$v" cfg="$(dbos_describe "$v")" rates="[$rates]" \
				rss_kb="$(rss_kb "$pid")" pss_kb="$(pss_kb "$pid")"
			log "  DBOS idle ($v): $rates commits/s, RSS $(($(rss_kb "$pid") / 1024)) MB"
			peers_stop
			[ "$v" = default ] && break
		done
	fi
}

scenario_scaling() {
	local w r
	step "5. scaling: throughput with $SCALE worker processes (x$ROUNDS)"
	for ((r = 1; r <= ROUNDS; r++)); do
		for w in $SCALE; do
			ROUND=$r measured fx_throughput scaling "$w" "$FX_C"
			if peer graphile; then ROUND=$r measured gw_throughput scaling "$w"; fi
			if peer dbos; then ROUND=$r measured dbos_throughput scaling "$w" "$DBOS_V"; fi
		done
	done
}

scenario_snapshot() {
	step "6. throughput while another session holds a REPEATABLE READ snapshot"
	cmd_note "psql: BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;   held open in the same database for the whole run"
	measured fx_throughput snapshot 1 "$FX_C" hold
	if peer graphile; then measured gw_throughput snapshot 1 hold; fi
	if peer dbos; then measured dbos_throughput snapshot 1 "$DBOS_V" hold; fi
}

# --- main ----------------------------------------------------------------------

step "setup: PostgreSQL, the peers (npm ci), the no-op function"
cmd_note "QUICK=$QUICK N=$N ROUNDS=$ROUNDS FX_CONC=\"$FX_CONC\" DBOS_VARIANTS=\"$DBOS_VARIANTS\" LAT_N=$LAT_N COLD_N=$COLD_N COLD_PROC_N=$COLD_PROC_N IDLE_S=$IDLE_S IDLE_WINDOWS=$IDLE_WINDOWS WARM_FNS=$WARM_FNS SCALE=\"$SCALE\" PGB_T=$PGB_T PGB_CLIENTS=\"$PGB_CLIENTS\" bench/run.sh"
log "work directory $WORK; results to $RESULTS"
mkdir -p "$WORK/peers"
cp "$ROOT"/bench/peers/package.json "$ROOT"/bench/peers/package-lock.json "$ROOT"/bench/peers/*.js "$WORK/peers/"
(cd "$WORK/peers" && npm ci --no-audit --no-fund --loglevel=error >"$WORK/log/npm.log" 2>&1) ||
	{ cat "$WORK/log/npm.log" >&2; die "npm ci failed in bench/peers"; }
cmd_note "cd bench/peers && npm ci   (package-lock.json pins every version)"
pg_start
cmd_note "initdb -D DIR -U postgres --auth=trust; pg_ctl -D DIR -o \"-p PORT -k SOCKDIR -c listen_addresses=127.0.0.1\" start   (as postgres)"
log "PostgreSQL on port $PORT, socket $SOCK"
fx_setup
q postgres "CREATE DATABASE graphile" >/dev/null

# Used when the throughput scenario, which picks them, does not run.
FX_C=${FX_CONCURRENCY:-64}
DBOS_V=${DBOS_VARIANT:-$(awk '{ print $1 }' <<<"$DBOS_VARIANTS")}

META=$WORK/meta.json
node "$WORK/peers/report.js" meta >"$META" \
	--quick "$QUICK" --n "$N" --rounds "$ROUNDS" --lat-n "$LAT_N" --cold-n "$COLD_N" \
	--cold-proc-n "$COLD_PROC_N" --idle-s "$IDLE_S" --idle-windows "$IDLE_WINDOWS" --pgb-t "$PGB_T" \
	--fx "$FX" --root "$ROOT" --pgbin "$PGBIN" --peers "$PEERS" --scenarios "$SCENARIOS"

for sc in $SCENARIOS; do
	case $sc in
		ceiling | throughput | latency | cold | idle | scaling | snapshot) "scenario_$sc" ;;
		*) die "unknown scenario $sc" ;;
	esac
done

step "writing $RESULTS"
mkdir -p "$(dirname "$RESULTS")"
awk '!seen[$0]++' "$WORK/commands.txt" >"$WORK/commands.uniq"
node "$WORK/peers/report.js" render "$META" "$JSONL" "$WORK/commands.uniq" >"$WORK/results.md"
cp "$WORK/results.md" "$RESULTS"
log "done: $RESULTS"
