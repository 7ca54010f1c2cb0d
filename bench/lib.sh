# shellcheck shell=bash
# bench/lib.sh: helpers for bench/run.sh (sourced, not run).
#
# Logging with elapsed time, the processes run.sh starts (each tracked by
# pid and stopped on exit), the private PostgreSQL server, psql shortcuts,
# resident memory and commit counters, and markdown output.  Every process
# started here goes through spawn() so that cleanup() can stop it, Ctrl-C
# included.

BENCH_START=$(date +%s%N)
PIDS=()							# every process spawn() started and not yet stopped

elapsed() {
	local now
	now=$(date +%s%N)
	printf '%d:%02d' $(((now - BENCH_START) / 60000000000)) $(((now - BENCH_START) / 1000000000 % 60))
}

log() { printf '[%s] %s\n' "$(elapsed)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Run a command as the PostgreSQL user: postgres when we are root, else us.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# --- processes -------------------------------------------------------------

# spawn LOG CMD...: start CMD in the background, output to LOG; $SPAWNED is
# its pid.  (Not through $(...): the process must be our own child.)
spawn() {
	local out=$1
	shift
	"$@" >"$out" 2>&1 </dev/null &
	SPAWNED=$!
	PIDS+=("$SPAWNED")
}

forget_pid() {
	local p keep=()
	for p in "${PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# All descendants of a pid, children first order not guaranteed.
descendants() {
	local p kids
	kids=$(ps -o pid= --ppid "$1" 2>/dev/null) || true
	for p in $kids; do
		echo "$p"
		descendants "$p"
	done
}

# stop_pid PID [SECONDS]: SIGTERM, then after SECONDS (default 10) SIGINT
# (fx worker: a second signal gives running invocations back and exits),
# then SIGKILL; descendants that outlive it are killed too.
stop_pid() {
	local pid=$1 wait_s=${2:-10} kids i
	if ! kill -0 "$pid" 2>/dev/null; then
		forget_pid "$pid"
		wait "$pid" 2>/dev/null || true
		return 0
	fi
	kids=$(descendants "$pid")
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < wait_s * 20; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -INT "$pid" 2>/dev/null || true
		sleep 1
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	for i in $kids; do
		kill -KILL "$i" 2>/dev/null || true
	done
	forget_pid "$pid"
	return 0
}

stop_all() {
	local p
	for ((p = ${#PIDS[@]} - 1; p >= 0; p--)); do
		stop_pid "${PIDS[p]}" "${1:-10}"
	done
}

# wait_for_line FILE PATTERN SECONDS [PID]: until FILE has a line matching
# PATTERN; fails on timeout or when PID exits first.
wait_for_line() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then
			return 1
		fi
		sleep 0.05
	done
	return 1
}

# --- PostgreSQL ------------------------------------------------------------

free_port() {
	local p
	for p in $(seq $((54400 + RANDOM % 500)) 54999); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
		[ -e "/tmp/.s.PGSQL.$p" ] && continue
		echo "$p"
		return 0
	done
	return 1
}

# pg_start: a new cluster with initdb's defaults in $WORK/pgdata, listening
# on 127.0.0.1:$PORT and a Unix socket in $SOCK.
pg_start() {
	PGDATA_DIR=$WORK/pgdata
	SOCK=$WORK/sock
	mkdir -p "$SOCK"
	[ "$(id -u)" = 0 ] && chown postgres: "$SOCK" "$WORK"
	as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust >"$WORK/initdb.log" 2>&1 ||
		{ cat "$WORK/initdb.log" >&2; die "initdb failed"; }
	PORT=$(free_port) || die "no free port"
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$WORK/postgresql.log" -w -t 60 \
		-o "-p $PORT -k $SOCK -c listen_addresses=127.0.0.1" start >/dev/null ||
		{ tail -20 "$WORK/postgresql.log" >&2; die "PostgreSQL did not start"; }
	PG_STARTED=1
	export PGHOST=$SOCK PGPORT=$PORT PGUSER=postgres
	unset PGDATABASE PGSERVICE PGPASSWORD PGOPTIONS
}

pg_stop() {
	[ -n "${PG_STARTED:-}" ] || return 0
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 30 stop >/dev/null 2>&1 ||
		as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w stop >/dev/null 2>&1
	PG_STARTED=
}

# q DB SQL: one value (or rows, |-separated) from psql.
q() {
	PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

# commits DB: xact_commit of DB, read from another database so the reading
# transaction is not counted.
commits() {
	q postgres "SET stats_fetch_consistency = none;
		SELECT xact_commit FROM pg_stat_database WHERE datname = '$1'"
}

# commit_rate DB SECONDS: commits per second on DB over a window.
commit_rate() {
	local c0 c1 t0 t1
	c0=$(commits "$1")
	t0=$(date +%s%N)
	sleep "$2"
	c1=$(commits "$1")
	t1=$(date +%s%N)
	awk -v c="$((c1 - c0))" -v ns="$((t1 - t0))" 'BEGIN { printf "%.1f", c / (ns / 1e9) }'
}

# --- other load on the machine -----------------------------------------------
#
# The machine may be shared: cpu_mark before a measured run and cpu_other
# after it give OTHER, the percentage of all CPUs that processes other than
# ours (this script's process tree and the PostgreSQL server's) used in
# between.  Processes of ours that exit meanwhile are counted through their
# parent's cutime/cstime once reaped.

our_jiffies() {
	local pm
	pm=$(head -1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || echo 0)
	ps -eo pid=,ppid= | awk -v a="$$" -v b="$pm" '
		{ parent[$1] = $2; pid[NR] = $1 }
		END {
			for (i = 1; i <= NR; i++) {
				q = pid[i]
				for (n = 0; q > 1 && n < 100; n++) {
					if (q == a || q == b) { print pid[i]; break }
					q = parent[q]
				}
			}
		}' | while read -r p; do
		cat "/proc/$p/stat" 2>/dev/null || true
	done | awk '{ sub(/^.*\) /, ""); t += $12 + $13 + $14 + $15 } END { print t + 0 }'
}

machine_jiffies() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# cpu_groups PID...: "PG WORKERS BELOW", the CPU milliseconds used so far by
# the PostgreSQL server's processes, by the processes PID... themselves, and
# by their descendants (fx's sandboxes), each with what it has reaped.  Live
# processes are read in nanoseconds (schedstat, every thread), since /proc's
# clock ticks round a sandbox's few milliseconds down to nothing.
cpu_groups() {
	local pm cls
	pm=$(head -1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || echo 0)
	cls=$(ps -eo pid=,ppid= | awk -v pm="$pm" -v ws=" $* " '
		{ parent[$1] = $2; pid[NR] = $1 }
		END {
			for (i = 1; i <= NR; i++) {
				p = pid[i]; c = ""; n = 0
				if (index(ws, " " p " ")) c = "w"
				for (q = p; c == "" && q > 1 && n++ < 100; q = parent[q]) {
					if (q == pm) c = "pg"
					else if (q != p && index(ws, " " q " ")) c = "k"
				}
				if (c != "") print c, p
			}
		}')
	{
		echo "$cls"
		echo --
		# shellcheck disable=SC2046	# the globs are meant to expand
		[ -z "$cls" ] || grep -H . $(awk '{ printf "/proc/%s/stat /proc/%s/task/*/schedstat\n", $2, $2 }' \
			<<<"$cls") 2>/dev/null
	} | awk -v hz="$(getconf CLK_TCK)" '
		!files { if ($0 == "--") files = 1; else cls[$2] = $1; next }
		{
			f = substr($0, 1, index($0, ":") - 1); rest = substr($0, length(f) + 2)
			n = split(f, part, "/"); c = cls[part[3]]
			if (part[n] == "schedstat") { split(rest, v, " "); ms[c] += v[1] / 1e6; next }
			sub(/^.*\) /, "", rest); split(rest, v, " ")
			ms[c == "w" ? "k" : c] += (v[14] + v[15]) * 1000 / hz	# reaped children
		}
		END { printf "%.1f %.1f %.1f\n", ms["pg"], ms["w"], ms["k"] }'
}

# cpu_mark [PID...] before a measured run, cpu_other after it: OTHER (see
# above), and CPU_SPLIT, the CPU milliseconds that PostgreSQL, the workers
# PID... and their descendants used in between, as "PG WORKERS BELOW".
cpu_mark() {
	MARK_PIDS="$*"
	# shellcheck disable=SC2086	# a list of pids
	[ -z "$MARK_PIDS" ] || MARK_GROUPS=$(cpu_groups $MARK_PIDS)
	MARK_OURS=$(our_jiffies)
	MARK_BUSY=$(machine_jiffies)
	MARK_NS=$(date +%s%N)
}

cpu_other() {
	local busy ours ns
	busy=$(machine_jiffies)
	ours=$(our_jiffies)
	ns=$(date +%s%N)
	# shellcheck disable=SC2034	# read by run.sh
	OTHER=$(awk -v b="$((busy - MARK_BUSY))" -v o="$((ours - MARK_OURS))" -v ns="$((ns - MARK_NS))" \
		-v hz="$(getconf CLK_TCK)" -v n="$(nproc)" 'BEGIN {
		cap = ns / 1e9 * hz * n; x = cap > 0 ? 100 * (b - o) / cap : 0;
		printf "%.0f", (x < 0 ? 0 : x) }')
	[ -n "$MARK_PIDS" ] || return 0
	# shellcheck disable=SC2086,SC2034	# a list of pids; read by run.sh
	CPU_SPLIT=$(printf '%s %s\n' "$MARK_GROUPS" "$(cpu_groups $MARK_PIDS)" |
		awk '{ printf "%.1f %.1f %.1f", $4 - $1, $5 - $2, $6 - $3 }')
}

# --- memory ----------------------------------------------------------------

# rss_kb PID: VmRSS in kB (0 if gone).
rss_kb() {
	awk '/^VmRSS:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# tree_mem PID: "count rss_kb pss_kb" over the descendants of PID.
tree_mem() {
	local p n=0 rss=0 pss=0 r s
	for p in $(descendants "$1"); do
		r=$(rss_kb "$p")
		s=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
		n=$((n + 1))
		rss=$((rss + r))
		pss=$((pss + ${s:-0}))
	done
	echo "$n $rss $pss"
}

pss_kb() {
	awk '/^Pss:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0
}

# --- numbers and markdown --------------------------------------------------

# ratio A B: A/B with two decimals, or - when either is missing or zero.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0 || a + 0 == 0) print "-";
		else printf "%.2f", a / b }'
}

# fmt_int N: 12345.6 -> 12,346 (thin grouping for tables)
fmt_int() {
	awk -v n="$1" 'BEGIN {
		if (n == "" || n == "-") { print "-"; exit }
		s = sprintf("%.0f", n); out = "";
		neg = (substr(s, 1, 1) == "-"); if (neg) s = substr(s, 2);
		while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
		print (neg ? "-" : "") s out }'
}

# json_get JSON KEY: a top-level number or string from one line of JSON.
json_get() {
	node -e 'const o = JSON.parse(process.argv[1]); const v = o[process.argv[2]];
		console.log(v === undefined || v === null ? "-" : v)' "$1" "$2"
}

md() { printf '%s\n' "$*" >>"$OUT"; }

# cmd_note TEXT: one line for the "Commands" section of the results.
cmd_note() { printf '%s\n' "$*" >>"$WORK/commands.txt"; }

# --- a quiet machine ---------------------------------------------------------

# Percent of all CPUs busy over one second.
cpu_busy() {
	local a b
	read -r -a a </proc/stat
	sleep 1
	read -r -a b </proc/stat
	awk -v u0="${a[1]}" -v n0="${a[2]}" -v s0="${a[3]}" -v i0="${a[4]}" -v w0="${a[5]}" \
		-v q0="${a[6]}" -v sq0="${a[7]}" -v st0="${a[8]}" \
		-v u1="${b[1]}" -v n1="${b[2]}" -v s1="${b[3]}" -v i1="${b[4]}" -v w1="${b[5]}" \
		-v q1="${b[6]}" -v sq1="${b[7]}" -v st1="${b[8]}" 'BEGIN {
		busy = (u1 - u0) + (n1 - n0) + (s1 - s0) + (q1 - q0) + (sq1 - sq0) + (st1 - st0);
		all = busy + (i1 - i0) + (w1 - w0);
		printf "%.0f", (all > 0 ? 100 * busy / all : 0) }'
}

# Before a measured run: wait (within QUIET_BUDGET seconds in all) until
# less than 25% of the CPUs are busy; $BUSY is the last reading.
wait_quiet() {
	while :; do
		BUSY=$(cpu_busy)
		[ "$BUSY" -lt 25 ] && return 0
		[ "$QUIET_LEFT" -le 0 ] && { log "  measuring anyway with ${BUSY}% CPU busy"; return 0; }
		log "  ${BUSY}% CPU busy before a measured run: waiting"
		QUIET_LEFT=$((QUIET_LEFT - 3))
		sleep 2
	done
}
