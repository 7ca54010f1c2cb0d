# tests/lib.sh: helpers for the worker and integration tests (bash).
#
# Each test file sources this, calls fx_pg_start, starts workers with
# fx_worker_start and reports with ok/not_ok/check/wait_for, one TAP-like
# line per check ("ok - ..." or "not ok - ...").  Everything a test starts
# is stopped by the EXIT trap.  At the end, what the tests of one worker
# started as A share (tests/sandbox): the function ok (fx_deploy_ok), which
# serves calls after each attack, and helpers over invocations (finished,
# run, res, col) and over A's memory (hwm, checked_memory).
#
# Environment:
#   FX_BIN             the fx binary (default: worker/fx of this checkout)
#   FX_WORKER_WRAPPER  a command to run workers under, e.g. "valgrind -q"
#   FX_KEEP            keep the test directory after the run

set -u
FX_ROOT=${FX_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
FX_BIN=${FX_BIN:-$FX_ROOT/worker/fx}
FX_WORKER_WRAPPER=${FX_WORKER_WRAPPER:-}
PG_BIN=${PG_BIN:-$(pg_config --bindir)}
FX_FAILED=0
FX_PIDS=()

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; FX_FAILED=1; }

# check DESC CMD...: ok if CMD succeeds.
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# check_eq DESC EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi
}

# wait_for DESC SECONDS CMD...: ok once CMD succeeds, not ok after SECONDS.
wait_for() {
	local desc=$1 secs=$2
	shift 2
	local end=$((SECONDS + secs))
	while [ $SECONDS -lt $end ]; do
		if "$@" >/dev/null 2>&1; then ok "$desc"; return 0; fi
		sleep 0.1
	done
	not_ok "$desc (not within ${secs}s)"
	return 1
}

# psql against the test database: q "SELECT ..." prints unaligned tuples.
q() { "$PG_BIN/psql" -X -qAt -v ON_ERROR_STOP=1 -c "$@"; }

# json_eq DESC EXPECTED ACTUAL: equal as jsonb.
json_eq() {
	local r
	r=$(q "SELECT \$j\$$2\$j\$::jsonb = \$j\$$3\$j\$::jsonb" 2>&1)
	if [ "$r" = t ]; then ok "$1"; else not_ok "$1 (expected $2, got '$3')"; fi
}

# json_has DESC ACTUAL CONTAINED: ACTUAL @> CONTAINED as jsonb.
json_has() {
	local r
	r=$(q "SELECT \$j\$$2\$j\$::jsonb @> \$j\$$3\$j\$::jsonb" 2>&1)
	if [ "$r" = t ]; then ok "$1"; else not_ok "$1 (expected to contain $3, got '$2')"; fi
}

fx_pg_start() {
	FX_TEST_DIR=$(mktemp -d /tmp/fx-test.XXXXXX)
	chmod 755 "$FX_TEST_DIR"
	mkdir -p "$FX_TEST_DIR/data" "$FX_TEST_DIR/run" "$FX_TEST_DIR/cache"
	chown postgres "$FX_TEST_DIR/data" "$FX_TEST_DIR/run"
	runuser -u postgres -- "$PG_BIN/initdb" -D "$FX_TEST_DIR/data" -U postgres -A trust \
		--no-sync >"$FX_TEST_DIR/initdb.log" 2>&1 || { cat "$FX_TEST_DIR/initdb.log"; exit 1; }
	fx_pg_ctl start || { echo "not ok - PostgreSQL did not start"; cat "$FX_TEST_DIR/run/pg.log"; exit 1; }
	export PGHOST=$FX_TEST_DIR/run PGUSER=postgres PGDATABASE=postgres PGPORT=5432
	"$PG_BIN/psql" -X -q -c "CREATE DATABASE fx" >/dev/null
	export PGDATABASE=fx
	export FX_DB="host=$FX_TEST_DIR/run port=5432 dbname=fx user=postgres"
	q "SET client_min_messages = warning; CREATE EXTENSION fx" >/dev/null
	trap fx_cleanup EXIT
}

# fx_pg_ctl start|stop|restart [pg_ctl options]
fx_pg_ctl() {
	local action=$1
	shift
	runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$FX_TEST_DIR/data" -l "$FX_TEST_DIR/run/pg.log" -w \
		-o "-k $FX_TEST_DIR/run -c listen_addresses= -p 5432 -c fsync=off" "$@" "$action" >/dev/null
}

# fx_worker_start NAME [worker options]: start a worker in the background.
fx_worker_start() {
	local name=$1
	shift
	$FX_WORKER_WRAPPER "$FX_BIN" worker --cache "$FX_TEST_DIR/cache" --poll-ms 200 \
		--backoff-ms 100 "$@" >>"$FX_TEST_DIR/$name.log" 2>&1 &
	local pid=$!
	FX_PIDS+=("$pid")
	eval "FX_WORKER_$name=$pid"
	# wait until its session is there
	local end=$((SECONDS + 20))
	while [ $SECONDS -lt $end ]; do
		[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fx-%'" 2>/dev/null)" -ge 1 ] 2>/dev/null && break
		sleep 0.05
	done
}

fx_worker_pid() { eval "echo \${FX_WORKER_$1}"; }

# fx_worker_stop NAME [SIGNAL]: signal the worker and wait for it to exit.
fx_worker_stop() {
	local pid
	pid=$(fx_worker_pid "$1")
	kill -"${2:-TERM}" "$pid" 2>/dev/null
	local end=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.05; done
	wait "$pid" 2>/dev/null
}

fx_cleanup() {
	local rc=$?
	# Workers still running get SIGTERM first, so that sanitizers and
	# valgrind see a normal exit and report leaks.
	for pid in "${FX_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	local end=$((SECONDS + 20))
	for pid in "${FX_PIDS[@]}"; do
		while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.05; done
		kill -KILL "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	for f in "$FX_TEST_DIR"/*.log "$FX_TEST_DIR"/run/*.log; do
		if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:|ERROR SUMMARY: [1-9]|definitely lost: [1-9]' "$f" 2>/dev/null; then
			not_ok "memory checker report in $(basename "$f")"
			grep -E -A 25 'AddressSanitizer|LeakSanitizer|runtime error:|ERROR SUMMARY|definitely lost' "$f" | head -60 | sed 's/^/# /' >&2
		fi
	done
	fx_pg_ctl stop -m immediate 2>/dev/null
	if [ "$FX_FAILED" != 0 ] || [ -n "${FX_KEEP:-}" ]; then
		echo "# test directory kept: $FX_TEST_DIR" >&2
		for f in "$FX_TEST_DIR"/*.log "$FX_TEST_DIR"/run/*.log; do
			echo "# --- $f (last 30 lines)" >&2
			tail -n 30 "$f" | sed 's/^/# /' >&2
		done
	else
		rm -rf "$FX_TEST_DIR"
	fi
	exit $((rc != 0 || FX_FAILED != 0))
}

# fx_deploy NAME DIR [options]: deploy with the CLI, quietly.
fx_deploy() { "$FX_BIN" deploy "$@" >/dev/null; }

# --- worker A, function ok, invocations (the sandbox tests) ------------------

# mkfn NAME FILE: a bundle directory holding FILE (read from stdin), executable.
mkfn() {
	mkdir -p "$FX_TEST_DIR/fn/$1"
	cat >"$FX_TEST_DIR/fn/$1/$2"
	chmod +x "$FX_TEST_DIR/fn/$1/$2"
	echo "$FX_TEST_DIR/fn/$1"
}

# fx_deploy_ok: deploy function ok, which prints {"ok": true}: what serves
# calls.
fx_deploy_ok() {
	mkdir -p "$FX_TEST_DIR/fn/ok"
	cat >"$FX_TEST_DIR/fn/ok/main" <<'EOF'
#!/bin/sh
echo '{"ok": true}'
EOF
	chmod +x "$FX_TEST_DIR/fn/ok/main"
	fx_deploy ok "$FX_TEST_DIR/fn/ok" --timeout 10s --retries 0
}

# serves WHAT: the worker A is alive and a normal call works right after.
serves() {
	local out
	out=$(q "SELECT fx_call('ok', '{}', '10s')" 2>&1)
	if kill -0 "$FX_WORKER_A" 2>/dev/null && [ "$out" = '{"ok": true}' ]; then
		ok "$1: the worker still serves"
	else
		not_ok "$1: the worker still serves (fx_call('ok') gave '$out')"
	fi
}

# finished ID: the invocation has ended, one way or another.
finished() {
	case "$(q "SELECT status FROM fx.invocation WHERE id = $1")" in
	succeeded | failed | dead | cancelled) return 0 ;;
	esac
	return 1
}

# run NAME [ARGS] [SECONDS]: invoke NAME, wait until it has finished, print its id.
run() {
	local args=${2-} secs=${3:-20} id end
	[ -n "$args" ] || args='{}'
	id=$(q "SELECT fx_invoke('$1', \$j\$$args\$j\$)")
	end=$((SECONDS + secs))
	while ! finished "$id" && [ $SECONDS -lt $end ]; do sleep 0.05; done
	echo "$id"
}

# res ID KEY: a field of the invocation's result, as text.
res() { q "SELECT result->>'$2' FROM fx.invocation WHERE id = $1"; }
# col ID EXPR: an expression over the invocation's row.
col() { q "SELECT $2 FROM fx.invocation WHERE id = $1"; }

# hwm: the worker A's peak resident memory so far (VmHWM), in kB.
hwm() { grep VmHWM "/proc/$FX_WORKER_A/status" | tr -dc 0-9; }

# checked_memory: that peak means something: A runs under neither
# FX_WORKER_WRAPPER (valgrind) nor ASan, which both add their own.
checked_memory() {
	[ -z "$FX_WORKER_WRAPPER" ] && ! grep -q libasan "/proc/$FX_WORKER_A/maps" 2>/dev/null
}
