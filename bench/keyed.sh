#!/usr/bin/env bash
# bench/keyed.sh: keyed functions and co-located SQL, against fx's own
# unkeyed no-op, in one run on one private PostgreSQL 15.
#
#   bench/keyed.sh            the full run (a few minutes)
#   QUICK=1 bench/keyed.sh    a short smoke run (under a minute)
#
# It starts its own PostgreSQL 15 (initdb defaults: fsync and
# synchronous_commit on) in a temporary directory as the postgres user,
# builds three C functions (bench/noop/noop.c, bench/keyed/counter.c,
# bench/keyed/sql1.c), deploys them as session functions, sql1 with the role
# bench_fn, starts one `fx worker --concurrency 32`, and measures:
#
#   throughput  N invocations enqueued in one statement, until all
#               succeeded: the unkeyed no-op (the baseline), the counter on
#               one hot key, the counter spread over KEYS keys, and sql1
#               (one `SELECT 1` through fx_sql); the counters' states are
#               checked to add up to N
#   latency     fx_call round trips in one psql session, the no-op, the
#               counter on one key and sql1 taking turns
#
# Then writes the "Keyed functions and co-located SQL" section of $RESULTS
# (bench/RESULTS.md for a full run, replacing that section and keeping the
# others; a QUICK run writes /tmp/fx-bench-keyed-results.quick.md unless
# RESULTS is set).  Progress goes to stderr; everything it starts is stopped
# on exit, Ctrl-C included.
#
# Knobs (environment): QUICK, N (invocations per throughput run, 5000),
# ROUNDS (2), KEYS (1000), LAT_N (round trips per function, 300), FX_CONC
# (32), POLL_MS (50), TIMEOUT_S (per run, 600), QUIET_BUDGET (seconds it
# may wait in all for other load on the machine to pass), FX (the fx binary,
# default: the one on PATH, as installed by make install), BENCH_DIR
# (/tmp/fx-bench-keyed), KEEP=1 (keep the work directory and its logs),
# RESULTS.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"

case "${QUICK:-0}" in 0 | "" | no | false) QUICK=0 ;; *) QUICK=1 ;; esac
if [ "$QUICK" = 1 ]; then
	: "${N:=1000}" "${ROUNDS:=1}" "${LAT_N:=100}" "${QUIET_BUDGET:=5}" "${RETRIES:=0}"
	: "${RESULTS:=${TMPDIR:-/tmp}/fx-bench-keyed-results.quick.md}"
else
	: "${N:=5000}" "${ROUNDS:=2}" "${LAT_N:=300}" "${QUIET_BUDGET:=60}" "${RETRIES:=1}"
	: "${RESULTS:=$ROOT/bench/RESULTS.md}"
fi
: "${KEYS:=1000}" "${FX_CONC:=32}" "${POLL_MS:=50}" "${TIMEOUT_S:=600}"
: "${OTHER_MAX:=20}" "${WARM:=200}"
QUIET_LEFT=$QUIET_BUDGET
SECTION="## Keyed functions and co-located SQL"

# --- preflight -----------------------------------------------------------

PGBIN=$(pg_config --bindir 2>/dev/null) || die "pg_config not found: run scripts/deps.sh"
FX=${FX:-$(command -v fx || true)}
[ -x "$FX" ] || die "no fx binary: run make install (or set FX)"
[ -f "$(pg_config --sharedir)/extension/fx.control" ] || die "the fx extension is not installed: run make install"
for tool in cc psql "$PGBIN/initdb"; do
	command -v "$tool" >/dev/null || die "$tool not found: run scripts/deps.sh"
done
[ "$(id -u)" != 0 ] || command -v runuser >/dev/null || die "runuser not found"

mkdir -p "${BENCH_DIR:=/tmp/fx-bench-keyed}"
chmod 755 "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/log" "$WORK/cache" "$WORK/fn"
: >"$WORK/commands.txt"

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

# fxq SQL: one value (or rows) from the fx database.
fxq() { q fx "$1"; }

# The WAL position everything committed so far is flushed up to.
lsn_now() { q postgres "SELECT pg_current_wal_flush_lsn()"; }

# commits_between LSN0 LSN1: commit records in the WAL between the two (every
# transaction that wrote, so every fsync'ed commit), from pg_walinspect; -
# without it.  Exact, unlike pg_stat_database, which backends report late.
commits_between() {
	[ -n "$WALINSPECT" ] || { echo -; return; }
	q postgres "SELECT coalesce(sum(count), 0) FROM pg_get_wal_stats('$1', '$2', true)
		WHERE \"resource_manager/record_type\" LIKE 'Transaction/COMMIT%'"
}

# --- fx ----------------------------------------------------------------------

FXDB=
FXDB_SHOWN="host=SOCKDIR port=PORT user=postgres dbname=fx"
CFLAGS_FN="-O2 -Wall -Wextra -Werror"

# build_fn NAME SOURCE: a bundle directory $WORK/fn/NAME holding ./NAME.
build_fn() {
	mkdir -p "$WORK/fn/$1"
	# shellcheck disable=SC2086
	cc $CFLAGS_FN -I"$ROOT/include" -o "$WORK/fn/$1/$1" "$ROOT/$2" -lcjson ||
		die "cannot build $2"
	cmd_note "cc $CFLAGS_FN -I include -o $1 $2 -lcjson"
}

deploy() {	# NAME
	"$FX" deploy "$1" "$WORK/fn/$1" --cmd "./$1" --mode session --db "$FXDB" >/dev/null ||
		die "fx deploy $1 failed"
	cmd_note "fx deploy $1 DIR --cmd ./$1 --mode session --db \"$FXDB_SHOWN\""
}

fx_setup() {
	q postgres "CREATE DATABASE fx" >/dev/null
	q fx "CREATE EXTENSION fx" >/dev/null
	q postgres "CREATE ROLE bench_fn LOGIN" >/dev/null
	WALINSPECT=
	if q postgres "CREATE EXTENSION pg_walinspect" >/dev/null 2>&1; then
		WALINSPECT=1
	else
		log "no pg_walinspect (postgresql-contrib): commits per invocation not counted"
	fi
	cmd_note "CREATE DATABASE fx; CREATE EXTENSION fx; CREATE ROLE bench_fn LOGIN; CREATE EXTENSION pg_walinspect (in postgres, to count commits)"
	FXDB="host=$SOCK port=$PORT user=postgres dbname=fx"
	build_fn noop bench/noop/noop.c
	build_fn counter bench/keyed/counter.c
	build_fn sql1 bench/keyed/sql1.c
	deploy noop
	deploy counter
	deploy sql1
	fxq "SELECT fx_deploy('sql1', fx.bundle('sql1', 1), ARRAY['./sql1'],
		'{\"mode\": \"session\", \"role\": \"bench_fn\"}')" >/dev/null
	cmd_note "SELECT fx_deploy('sql1', fx.bundle('sql1', 1), ARRAY['./sql1'], '{\"mode\": \"session\", \"role\": \"bench_fn\"}')   (version 2: its sql runs as bench_fn)"
}

fx_start() {
	local sessions=$((FX_CONC * 2 > 64 ? FX_CONC * 2 : 64))
	spawn "$WORK/log/fx-worker.log" "$FX" worker --db "$FXDB" --concurrency "$FX_CONC" \
		--max-sessions "$sessions" --cache "$WORK/cache"
	FX_WPID=$SPAWNED
	wait_for_line "$WORK/log/fx-worker.log" "connected to the database" 30 "$FX_WPID" ||
		{ cat "$WORK/log/fx-worker.log" >&2; die "fx worker did not start"; }
	cmd_note "fx worker --db \"$FXDB_SHOWN\" --concurrency $FX_CONC --max-sessions $sessions --cache DIR"
}

# The queue empty and analysed again; the counter's states gone.
fx_reset() {
	fxq "TRUNCATE fx.invocation, fx.log" >/dev/null
	fxq "DELETE FROM fx.state" >/dev/null
	fxq "VACUUM ANALYZE fx.invocation" >/dev/null
	fxq "VACUUM fx.state" >/dev/null
}

# The statement that enqueues N invocations of a variant.
enqueue_sql() {	# VARIANT N
	case $1 in
		noop) echo "SELECT count(fx_invoke('noop', '{}')) FROM generate_series(1, $2)" ;;
		hot) echo "SELECT count(fx_invoke('counter', '{}', key => 'hot')) FROM generate_series(1, $2)" ;;
		spread) echo "SELECT count(fx_invoke('counter', '{}', key => (i % $KEYS)::text)) FROM generate_series(1, $2) i" ;;
		sql1) echo "SELECT count(fx_invoke('sql1', '{}')) FROM generate_series(1, $2)" ;;
		warm-counter) echo "SELECT count(fx_invoke('counter', '{}', key => 'warm-' || i)) FROM generate_series(1, $2) i" ;;
		*) die "unknown variant $1" ;;
	esac
}

# drain LABEL N ENQUEUE_SQL: enqueue N in one statement, then poll every
# POLL_MS until all of them succeeded, all in one psql session (one
# PL/pgSQL block that commits the enqueue and between polls, so it holds
# no snapshot).  Sets WALL_MS (enqueue statement sent -> the poll that saw
# all N succeeded), ENQ_MS (the enqueue statement with its commit) and
# FIRST_ID (the ids of the run are above it).
drain() {
	local label=$1 n=$2 enq=$3 out
	out=$(psql -X -q -At -v ON_ERROR_STOP=1 -d fx 2> >(sed -u 's/^.*NOTICE:  /  /' >&2) <<EOF
DO \$do\$
DECLARE
	first_id bigint;
	t0 timestamptz;
	t1 timestamptz;
	t timestamptz;
	last timestamptz;
	done bigint;
	bad bigint;
	polls int := 0;
BEGIN
	SELECT coalesce(max(id), 0) INTO first_id FROM fx.invocation;
	COMMIT;
	t0 := clock_timestamp();
	EXECUTE \$q\$$enq\$q\$;
	COMMIT;
	t1 := clock_timestamp();
	last := t1;
	LOOP
		SELECT count(*) FILTER (WHERE status = 'succeeded'),
			   count(*) FILTER (WHERE status IN ('failed', 'dead', 'cancelled'))
		  INTO done, bad
		  FROM fx.invocation WHERE id > first_id;
		polls := polls + 1;
		t := clock_timestamp();
		EXIT WHEN done >= $n;
		IF bad > 0 THEN
			RAISE EXCEPTION '%: % invocation(s) failed', '$label', bad;
		END IF;
		IF t - t0 > interval '$TIMEOUT_S s' THEN
			RAISE EXCEPTION '%: timed out with % of % succeeded', '$label', done, $n;
		END IF;
		IF t - last > interval '3 s' THEN
			RAISE NOTICE '%: %/% succeeded, % s', '$label', done, $n,
				round(extract(epoch FROM t - t0)::numeric, 1);
			last := t;
		END IF;
		COMMIT;
		PERFORM pg_sleep($POLL_MS / 1000.0);
	END LOOP;
	PERFORM set_config('bench.drain', format('%s %s %s %s',
		round(extract(epoch FROM t - t0) * 1000, 1),
		round(extract(epoch FROM t1 - t0) * 1000, 1), polls, first_id), false);
END
\$do\$;
SELECT current_setting('bench.drain');
EOF
) || die "$label: the run failed (worker log: $WORK/log/fx-worker.log)"
	read -r WALL_MS ENQ_MS _ FIRST_ID <<<"$out"
}

# warm VARIANT: start the function's session processes (and sql1's
# connections), outside the timing.
warm() {
	drain "$1 warm-up" "$WARM" "$(enqueue_sql "$1" "$WARM")"
}

# A measured result: R[variant.round.field].
declare -A R

# run_once VARIANT ROUND: one measured run.
run_once() {
	local v=$1 r=$2 fn x l0 l1 stats
	fx_reset
	case $v in
		hot | spread) warm warm-counter; fxq "DELETE FROM fx.state" >/dev/null ;;
		*) warm "$v" ;;
	esac
	q postgres "CHECKPOINT" >/dev/null
	wait_quiet
	l0=$(lsn_now)
	cpu_mark
	drain "$v" "$N" "$(enqueue_sql "$v" "$N")"
	cpu_other
	l1=$(lsn_now)
	R[$v.$r.commits]=$(awk -v c="$(commits_between "$l0" "$l1")" -v n="$N" 'BEGIN {
		if (c == "-") print "-"; else printf "%.3f", c / n }')
	R[$v.$r.wal]=$(q postgres "SELECT round(pg_wal_lsn_diff('$l1', '$l0') / $N)")
	R[$v.$r.per_s]=$(awk -v n="$N" -v ms="$WALL_MS" 'BEGIN { printf "%.1f", n / (ms / 1000) }')
	R[$v.$r.wall_s]=$(awk -v ms="$WALL_MS" 'BEGIN { printf "%.2f", ms / 1000 }')
	R[$v.$r.enq_s]=$(awk -v ms="$ENQ_MS" 'BEGIN { printf "%.2f", ms / 1000 }')
	R[$v.$r.busy]=$BUSY
	R[$v.$r.other]=$OTHER
	stats=$(fxq "SELECT round(($N / extract(epoch FROM max(finished_at) - min(created_at)))::numeric, 1),
			round((percentile_cont(0.5) WITHIN GROUP (ORDER BY wall_ms))::numeric, 2),
			round((percentile_cont(0.5) WITHIN GROUP (ORDER BY
				extract(epoch FROM finished_at - created_at) * 1000))::numeric, 1),
			sum(attempts)
		FROM fx.invocation WHERE id > $FIRST_ID")
	IFS='|' read -r "R[$v.$r.db_per_s]" "R[$v.$r.attempt_ms]" "R[$v.$r.done_ms]" "R[$v.$r.attempts]" <<<"$stats"
	# jobs/s over the first and the last tenth of the run, by finish times
	IFS='|' read -r "R[$v.$r.first10]" "R[$v.$r.last10]" <<<"$(fxq "WITH f AS (
			SELECT finished_at AS t, row_number() OVER (ORDER BY finished_at) AS n
			  FROM fx.invocation WHERE id > $FIRST_ID)
		SELECT round(($N / 10) / extract(epoch FROM
				   (SELECT t FROM f WHERE n = $N / 10 + 1) - (SELECT t FROM f WHERE n = 1))::numeric, 1),
			   round(($N / 10) / extract(epoch FROM
				   (SELECT t FROM f WHERE n = $N) - (SELECT t FROM f WHERE n = $N - $N / 10))::numeric, 1)")"
	case $v in
		hot | spread) fn=counter ;;
		*) fn=$v ;;
	esac
	if [ "$fn" = counter ]; then
		IFS='|' read -r "R[$v.$r.sum]" "R[$v.$r.nkeys]" "R[$v.$r.kmin]" "R[$v.$r.kmax]" <<<"$(fxq "SELECT
			sum((value)::bigint), count(*), min((value)::bigint), max((value)::bigint)
			FROM fx.state WHERE fn = 'counter'")"
		x=${R[$v.$r.sum]}
		[ "$x" = "$N" ] || log "  WARNING: the counters add up to $x, not $N"
	fi
	log "  $v, round $r: $(fmt_int "${R[$v.$r.per_s]}")/s ($(fmt_int "${R[$v.$r.db_per_s]}")/s by the rows' timestamps)$(
		[ "$fn" = counter ] && echo ", counters add up to ${R[$v.$r.sum]} over ${R[$v.$r.nkeys]} key(s)")$(
		[ "${OTHER:-0}" -ge 5 ] && echo " (other processes: $OTHER% of the CPUs)")"
}

# measured VARIANT ROUND: run again (at most RETRIES times) when other
# processes took OTHER_MAX% or more of the CPUs; the last run counts.
measured() {
	local i
	for ((i = 0; ; i++)); do
		run_once "$1" "$2"
		[ "$OTHER" -lt "$OTHER_MAX" ] && return 0
		[ "$i" -lt "$RETRIES" ] || return 0
		log "  other processes used ${OTHER}% of the CPUs during that run: running it again"
	done
}

# latency: LAT_N fx_call round trips per function in one psql session, the
# functions taking turns, each call timed with clock_timestamp() around it.
latency() {
	local out
	fx_reset
	wait_quiet
	cpu_mark
	out=$(psql -X -q -At -F ' ' -v ON_ERROR_STOP=1 -d fx <<EOF
CREATE TEMP TABLE lat (fn text, ms float8);
DO \$do\$
DECLARE
	fns text[] := ARRAY['noop', 'counter', 'sql1'];
	keys text[] := ARRAY[NULL, 'lat', NULL];
	ms float8[] := '{}';
	names text[] := '{}';
	t timestamptz;
BEGIN
	FOR i IN 1..(20 + $LAT_N) LOOP
		FOR j IN 1..3 LOOP
			t := clock_timestamp();
			PERFORM fx_call(fns[j], '{}', key => keys[j]);
			IF i > 20 THEN
				ms := ms || extract(epoch FROM clock_timestamp() - t)::float8 * 1000;
				names := names || fns[j];
			END IF;
			COMMIT;
		END LOOP;
	END LOOP;
	INSERT INTO lat SELECT * FROM unnest(names, ms);
END
\$do\$;
SELECT fn, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
	   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
	   round(avg(ms)::numeric, 2), round(min(ms)::numeric, 2), count(*)
  FROM lat GROUP BY fn;
EOF
) || die "the fx_call round trips failed (worker log: $WORK/log/fx-worker.log)"
	cpu_other
	LAT_OTHER=$OTHER
	LAT_BUSY=$BUSY
	while read -r fn p50 p99 mean min n; do
		R[lat.$fn.p50]=$p50
		R[lat.$fn.p99]=$p99
		R[lat.$fn.mean]=$mean
		R[lat.$fn.min]=$min
		R[lat.$fn.n]=$n
		log "  fx_call $fn: p50 $p50 ms, p99 $p99 ms, mean $mean ms ($n calls)"
	done <<<"$out"
	cmd_note "psql, one session: DO block calling fx_call('noop', '{}'), fx_call('counter', '{}', key => 'lat'), fx_call('sql1', '{}') in turn, 20 + $LAT_N times each (the first 20 not counted), clock_timestamp() around each call, COMMIT after each"
}

# --- report ------------------------------------------------------------------

VARIANTS="noop hot spread sql1"

describe() {
	case $1 in
		noop) echo "unkeyed no-op (\`bench/noop\`): the baseline" ;;
		hot) echo "counter, all on one hot key (\`key => 'hot'\`)" ;;
		spread) echo "counter, spread over $(fmt_int "$KEYS") keys (\`key => (i % $KEYS)::text\`)" ;;
		sql1) echo "sql1: one \`SELECT 1\` through \`fx_sql\`, unkeyed" ;;
	esac
}

# rat A B: A/B, with more digits below 0.1 (a hot key is far below 1).
rat() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) { print "-"; exit }
		r = a / b; printf (r >= 0.1 ? "%.2f" : r >= 0.01 ? "%.3f" : "%.4f"), r }'
}

sub() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print "-"; else printf "%+.2f", a - b }'; }

tp_row() {	# VARIANT ROUND
	local v=$1 r=$2
	echo "| $(describe "$v") | $r | **$(fmt_int "${R[$v.$r.per_s]}")** | $(rat "${R[$v.$r.per_s]}" "${R[noop.$r.per_s]}")" \
		"| $(fmt_int "${R[$v.$r.db_per_s]}") | ${R[$v.$r.wall_s]} | ${R[$v.$r.enq_s]} | ${R[$v.$r.commits]}" \
		"| $(fmt_int "${R[$v.$r.wal]}") | ${R[$v.$r.attempt_ms]} | $(fmt_int "${R[$v.$r.done_ms]}")" \
		"| ${R[$v.$r.busy]} | ${R[$v.$r.other]} |"
}

lat_row() {	# FN DESCRIPTION
	echo "| $2 | ${R[lat.$1.p50]} | ${R[lat.$1.p99]} | ${R[lat.$1.mean]} | ${R[lat.$1.min]}" \
		"| $(sub "${R[lat.$1.p50]}" "${R[lat.noop.p50]}") | $(sub "${R[lat.$1.mean]}" "${R[lat.noop.mean]}") |"
}

sums() {
	local v r
	for v in hot spread; do
		for ((r = 1; r <= ROUNDS; r++)); do
			printf -- '- %s, round %d: `SELECT sum((value)::bigint) FROM fx.state WHERE fn = '"'counter'"'` = %s (N = %s) over %s key(s), %s to %s per key: %s.\n' \
				"$v" "$r" "${R[$v.$r.sum]}" "$N" "${R[$v.$r.nkeys]}" "${R[$v.$r.kmin]}" "${R[$v.$r.kmax]}" \
				"$([ "${R[$v.$r.sum]}" = "$N" ] && echo "every increment counted once" || echo "**MISMATCH**")"
		done
	done
}

# mean VARIANT FIELD [DECIMALS]: the mean of a field over the rounds, - if
# a round has none.
mean() {
	local r s=""
	for ((r = 1; r <= ROUNDS; r++)); do
		s+="${R[$1.$r.$2]:--} "
	done
	awk -v s="$s" -v d="${3:-1}" 'BEGIN { n = split(s, x); t = 0
		for (i = 1; i <= n; i++) { if (x[i] == "-" || x[i] == "") { print "-"; exit } t += x[i] }
		printf "%." d "f", n ? t / n : 0 }'
}

summary_row() {	# VARIANT
	local p
	p=$(mean "$1" per_s)
	echo "| $(describe "$1") | **$(fmt_int "$p")** | $(rat "$p" "$(mean noop per_s)")" \
		"| $(rat "$(mean noop per_s)" "$p") | $(mean "$1" commits 3) | $(mean "$1" attempt_ms 2)" \
		"| $(fmt_int "$(mean "$1" first10)") | $(fmt_int "$(mean "$1" last10)") |"
}

# What the table shows, in numbers of this run.
notes() {
	local hot noop
	hot=$(mean hot per_s)
	noop=$(mean noop per_s)
	cat <<EOF
- **One hot key** runs one invocation at a time (a key's invocations run in enqueue order,
  one at a time: the state has a single writer), so its jobs/s is 1 / the time per
  invocation: $(awk -v p="$hot" 'BEGIN { printf "%.1f", p ? 1000 / p : 0 }') ms here, against an attempt (start to answer) of
  $(mean hot attempt_ms 2) ms. The rest is the worker's round trips between one invocation and the next,
  $(mean hot commits 3) commits per invocation, and a cost that grows with the key's backlog: the first
  tenth of the run went at $(fmt_int "$(mean hot first10)")/s with $(fmt_int "$N") queued, the last tenth at
  $(fmt_int "$(mean hot last10)")/s.
- **$(fmt_int "$KEYS") keys** keep up to $FX_CONC running at once, $(rat "$(mean spread per_s)" "$noop")× the no-op; each
  invocation reads its state (\`fx_state_get\`) through the worker's one database connection,
  behind the worker's own claim and finish queries, before it can answer, which shows in its
  attempt p50 ($(mean spread attempt_ms 2) ms against the no-op's $(mean noop attempt_ms 2) ms).
- **sql1** commits $(mean sql1 commits 3) times per invocation against the no-op's $(mean noop commits 3): an
  invocation that ran SQL is finished in its own transaction (\`fx.finish_tx\`), while the
  no-op's completions share one \`fx.cycle\` commit per batch; it reaches $(rat "$(mean sql1 per_s)" "$noop")× the no-op.
EOF
}

section() {
	local v r pg settings
	pg=$(q postgres "SELECT version()" | sed 's/ on .*//')
	settings=$(q postgres "SELECT string_agg(name || ' ' || current_setting(name), ', ' ORDER BY ord)
		FROM unnest(ARRAY['fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes',
			'commit_delay', 'shared_buffers', 'max_connections']) WITH ORDINALITY AS s(name, ord)")
	cat <<EOF
$SECTION

Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/keyed.sh\` (N = $(fmt_int "$N") invocations per
throughput run, $ROUNDS round(s), $LAT_N round trips per function), fx at \`$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)\`.
fx only: every ratio is against fx's own unkeyed no-op measured in the same run (same
worker, same round).

* Machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo),
  kernel $(uname -r); the client, the worker, its sandboxes and PostgreSQL share them.
* $pg, a private cluster with initdb's defaults ($settings).
* One \`fx worker --concurrency $FX_CONC\`; the functions are C (\`include/fx.h\`, $(cc --version | head -1),
  cJSON $(pkg-config --modversion libcjson 2>/dev/null || echo "?"), libuv $(pkg-config --modversion libuv 2>/dev/null || echo "?")) run as session functions in fx's sandboxes. \`counter\`
  (\`bench/keyed/counter.c\`) reads its key's state with \`fx_state_get\`, adds 1 and writes
  it with \`fx_state_set\`; \`sql1\` (\`bench/keyed/sql1.c\`) runs \`SELECT 1\` through \`fx_sql\`
  in the invocation's own transaction, as the role \`bench_fn\`, committed with its completion.

### Throughput: $(fmt_int "$N") invocations enqueued in one statement, until all succeeded

One statement enqueues all of them (e.g. \`$(enqueue_sql spread N)\`), after a
warm-up of $WARM; one psql session then polls every $POLL_MS ms until all have succeeded.
**jobs/s = N / (enqueue statement sent → the poll that saw all succeeded)**. **÷ no-op** =
the row's jobs/s ÷ the unkeyed no-op's jobs/s in the same round: **above 1 the variant is
faster than the no-op, below 1 slower** (0.50 = half the no-op's throughput). "database" is
N / (last finished − first created) from the rows; commits (COMMIT records in the WAL, i.e.
transactions that wrote and waited for their fsync) and WAL bytes are per invocation over the run; "attempt p50" is the worker's time from starting an
attempt to its answer (\`fx.invocation.wall_ms\`), "done p50" enqueue → finished. CPU busy
before / other load: % of the CPUs, as in the queue scenarios.

| variant | round | jobs/s | ÷ no-op | database jobs/s | wall s | enqueue s | commits/job | WAL bytes/job | attempt p50 ms | done p50 ms | CPU busy before % | other load % |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
$(for ((r = 1; r <= ROUNDS; r++)); do for v in $VARIANTS; do tp_row "$v" "$r"; done; done)

Means over the rounds (**÷ no-op above 1 favours the variant**; "times slower" is its inverse):

| variant | jobs/s | ÷ no-op | times slower than the no-op | commits/job | attempt p50 ms | jobs/s, first tenth of the run | jobs/s, last tenth |
|---|---|---|---|---|---|---|---|
$(for v in $VARIANTS; do summary_row "$v"; done)

$(notes)

The counters after each keyed run:

$(sums)

### Round trip of one \`fx_call\` (ms)

One psql session calls the three functions in turn, $LAT_N times each after 20 uncounted
rounds, and times each call with \`clock_timestamp()\` around it: enqueue through fx_call's
loopback connection, claim, run, completion, NOTIFY back. The difference to the no-op is
what the row's work adds to a call; for sql1 that is opening the invocation's transaction
(BEGIN and a savepoint on a pooled connection of \`bench_fn\`), one statement, and committing
it together with the completion (\`fx.finish_tx\`) instead of in the worker's batched
\`fx.cycle\`. CPU busy before: ${LAT_BUSY}%; other load during: ${LAT_OTHER}%.

| function | p50 | p99 | mean | min | p50 − no-op p50 | mean − no-op mean |
|---|---|---|---|---|---|---|
$(lat_row noop "no-op (\`fx_call('noop', '{}')\`)")
$(lat_row counter "counter on one key (\`fx_call('counter', '{}', key => 'lat')\`): state get + set")
$(lat_row sql1 "sql1 (\`fx_call('sql1', '{}')\`): one \`SELECT 1\` through \`fx_sql\`")

### Commands

\`\`\`
$(awk '!seen[$0]++' "$WORK/commands.txt")
\`\`\`
EOF
}

# Replace the section in RESULTS (or add it at the end), keep the others.
write_results() {
	local new=$WORK/section.md
	section >"$new"
	mkdir -p "$(dirname "$RESULTS")"
	[ -f "$RESULTS" ] || : >"$RESULTS"
	awk -v new="$new" -v head="$SECTION" '
		function emit() { while ((getline l < new) > 0) print l; done = 1 }
		/^## / { if (skip) skip = 0 }
		$0 == head { emit(); skip = 1; next }
		!skip { print }
		END { if (!done) { print ""; emit() } }' "$RESULTS" >"$WORK/RESULTS.md"
	cat -s "$WORK/RESULTS.md" | sed '/./,$!d' >"$RESULTS"
}

# --- main ----------------------------------------------------------------------

step "setup: PostgreSQL, the functions, one worker"
cmd_note "QUICK=$QUICK N=$N ROUNDS=$ROUNDS KEYS=$KEYS LAT_N=$LAT_N FX_CONC=$FX_CONC bench/keyed.sh"
log "work directory $WORK; results to $RESULTS"
pg_start
cmd_note "initdb -D DIR -U postgres --auth=trust; pg_ctl -D DIR -o \"-p PORT -k SOCKDIR -c listen_addresses=127.0.0.1\" start   (as postgres)"
log "PostgreSQL on port $PORT, socket $SOCK"
fx_setup
fx_start

step "throughput: $N invocations enqueued in one statement, to all succeeded ($ROUNDS round(s) of: $VARIANTS)"
for v in $VARIANTS; do
	cmd_note "$(enqueue_sql "$v" N)"
done
cmd_note "then, in the same psql session (a DO block), every $POLL_MS ms: SELECT count(*) FILTER (WHERE status = 'succeeded') FROM fx.invocation WHERE id > START"
for ((r = 1; r <= ROUNDS; r++)); do
	for v in $VARIANTS; do
		measured "$v" "$r"
	done
done

step "latency: fx_call round trips, $LAT_N per function"
latency

step "writing $RESULTS"
write_results
log "done: $RESULTS"
