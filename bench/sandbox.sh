#!/usr/bin/env bash
# bench/sandbox.sh: fx's sandboxes against bubblewrap and runc, in one run.
#
# Cold start, prewarmed start, warm round trip against a bare socket and
# sandboxes created per second, all timed by `fx bench-sandbox` (the
# worker's own launch code on a libuv loop; bwrap and runc are run by the
# same timer as plain processes), with hyperfine as a cross-check.  Writes
# the "Sandboxes" section of bench/RESULTS.md.  Run as root; about 2-4
# minutes.  Knobs (environment): N, N_RUNC, RT, RATE_S, FX_BENCH_DIR,
# RESULTS, QUIET_BUDGET (seconds spent waiting for other load to pass),
# STEP_TIMEOUT (seconds before a measurement counts as hung),
# FX_REV (build the worker of that git revision instead of the work tree).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${FX_BENCH_DIR:-/tmp/fx-bench-sandbox}
N=${N:-400}
N_RUNC=${N_RUNC:-200}
RT=${RT:-10000}
RATE_S=${RATE_S:-5}
RESULTS=${RESULTS:-$ROOT/bench/RESULTS.md}
QUIET_BUDGET=${QUIET_BUDGET:-90}
STEP_TIMEOUT=${STEP_TIMEOUT:-120}
B=$WORK/bundle

if [ "$(id -u)" != 0 ]; then
	echo "bench/sandbox.sh: run it as root" >&2
	exit 2
fi

log() { printf '== %s\n' "$*" >&2; }

# --- tools ---------------------------------------------------------------

apt_updated=
need() {	# command package
	command -v "$1" >/dev/null 2>&1 && return 0
	log "installing $2"
	if [ -z "$apt_updated" ]; then
		apt-get update -qq >/dev/null
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need bwrap bubblewrap
need runc runc
need hyperfine hyperfine || log "no hyperfine: skipping the cross-check"
need python3 python3

# --- build ---------------------------------------------------------------

rm -rf "$WORK"
mkdir -p "$WORK" "$B"
chmod 755 "$WORK" "$B"

# fx with bench-sandbox, built into $WORK: worker/ is not touched.  Until
# main.c dispatches bench-sandbox, a two-line main calls it directly.
build_fx() {
	local db srcs pkgs src=$ROOT
	FX_AT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
	if [ -n "${FX_REV:-}" ]; then
		src=$WORK/src
		mkdir -p "$src"
		git -C "$ROOT" archive "$FX_REV" worker include sdk | tar -x -C "$src"
		FX_AT=$(git -C "$ROOT" rev-parse --short "$FX_REV")
		if [ ! -f "$src/worker/fx_bench.c" ]; then
			cp "$ROOT/worker/fx_bench.c" "$ROOT/worker/fx_bench.h" "$src/worker/"
			FX_AT="$FX_AT + worker/fx_bench.c of the work tree"
		fi
	fi
	db=$(make -s -C "$src/worker" -pn 2>/dev/null)
	srcs=$(sed -n 's/^SRCS = //p' <<<"$db")
	pkgs=$(sed -n 's/^PKGS = //p' <<<"$db")
	case " $srcs " in *" fx_bench.c "*) ;; *) srcs="$srcs fx_bench.c" ;; esac
	if ! make -s -C "$src/worker" BUILD="$WORK/obj" SRCS="$srcs" >"$WORK/build.log" 2>&1; then
		cat "$WORK/build.log" >&2
		echo "bench/sandbox.sh: cannot build the worker (FX_REV=HEAD builds the last commit)" >&2
		exit 1
	fi
	if "$WORK/obj/fx" bench-sandbox --help >/dev/null 2>&1; then
		FX=("$WORK/obj/fx" bench-sandbox)
		FX_SHOWN="fx bench-sandbox"
		return
	fi
	cat >"$WORK/bench_main.c" <<'EOF'
int fx_cli_bench_sandbox(int argc, char **argv);
int main(int argc, char **argv);
int main(int argc, char **argv) { return fx_cli_bench_sandbox(argc, argv); }
EOF
	local objs=() o
	for o in "$WORK"/obj/*.o; do
		[ "${o##*/}" = main.o ] || objs+=("$o")
	done
	# shellcheck disable=SC2046,SC2086
	cc -O2 -o "$WORK/fx-bench" "$WORK/bench_main.c" "${objs[@]}" $(pkg-config --libs $pkgs)
	FX=("$WORK/fx-bench")
	FX_SHOWN="fx bench-sandbox"
}
log "building fx, true and echo in $WORK"
build_fx
if cc -O2 -static -o "$B/true" "$ROOT/bench/true.c" 2>/dev/null; then
	TRUE_KIND="static"
else
	cc -O2 -o "$B/true" "$ROOT/bench/true.c"
	TRUE_KIND="dynamic"
fi
cc -O2 -Wall -I"$ROOT/include" -o "$B/echo" "$ROOT/bench/echo.c" -lcjson

# runc bundles: the spec `runc spec` writes, with no terminal, a read-only
# root holding only true (and its libraries if it is dynamic), and a second
# one adding user and cgroup namespaces, for parity with fx.
make_runc_bundles() {
	mkdir -p "$WORK/runc/rootfs" "$WORK/runc-userns"
	cp "$B/true" "$WORK/runc/rootfs/true"
	if [ "$TRUE_KIND" = dynamic ]; then
		ldd "$B/true" | grep -o '/[^ ]*' | xargs -I{} cp --parents -L {} "$WORK/runc/rootfs/"
	fi
	(cd "$WORK/runc" && rm -f config.json && runc spec)
	python3 - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
with open(work + "/runc/config.json") as f:
    c = json.load(f)
c["process"]["terminal"] = False
c["process"]["args"] = ["/true"]
c["root"]["readonly"] = True
with open(work + "/runc/config.json", "w") as f:
    json.dump(c, f, indent=1)
c["root"]["path"] = work + "/runc/rootfs"
c["linux"]["namespaces"] += [{"type": "user"}, {"type": "cgroup"}]
c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
with open(work + "/runc-userns/config.json", "w") as f:
    json.dump(c, f, indent=1)
EOF
}
make_runc_bundles

# runc refuses some cgroup layouts: try once, keep the error for the report.
runc_probe() {	# label bundle
	if runc run -b "$2" "fxbench-probe-$1" </dev/null >"$WORK/probe.$1" 2>&1; then
		echo ok
	else
		tr '\n' ' ' <"$WORK/probe.$1" | cut -c1-300
	fi
}
RUNC_STATUS=$(runc_probe runc "$WORK/runc")
RUNC_U_STATUS=$(runc_probe runc-userns "$WORK/runc-userns")
log "runc: $RUNC_STATUS; runc with user namespace: $RUNC_U_STATUS"

BWRAP=(bwrap --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/sbin /sbin
	--symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev
	--tmpfs /tmp --unshare-pid --unshare-ipc --unshare-uts --unshare-net
	--unshare-user --die-with-parent --new-session --cap-drop ALL
	--ro-bind "$B" /fn /fn/true)

# --- measuring -----------------------------------------------------------

# Percent of all CPUs busy over half a second (other people's load).
cpu_busy() {
	local a b
	a=$(head -1 /proc/stat)
	sleep 0.5
	b=$(head -1 /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); t = 0
		for (i = 2; i <= 9; i++) t += y[i] - x[i]
		idle = y[5] - x[5] + y[6] - x[6]
		printf "%d", t ? 100 * (t - idle) / t : 0 }'
}

# Wait (within QUIET_BUDGET seconds overall) until the machine is idle.
quiet_left=$QUIET_BUDGET
wait_quiet() {
	local busy
	busy=$(cpu_busy)
	while [ "$busy" -gt 15 ] && [ "$quiet_left" -gt 0 ]; do
		sleep 1
		quiet_left=$((quiet_left - 2))
		busy=$(cpu_busy)
	done
	echo "$busy"
}

alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }

# step NAME COMMAND...: run it in a process group of its own, at most
# STEP_TIMEOUT seconds, then SIGKILL the group: a sandbox's PID 1 ignores
# SIGTERM, and one stuck before its exec would outlive the timer.  0 if it
# ended by itself.
step() {
	local name=$1 pid ticks=0 rc=0
	shift
	setsid "$@" >"$WORK/out.$name" 2>"$WORK/err.$name" &
	pid=$!
	while alive "$pid"; do
		if [ "$ticks" -ge $((STEP_TIMEOUT * 5)) ]; then
			rc=1
			break
		fi
		sleep 0.2
		ticks=$((ticks + 1))
	done
	kill -9 -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	return "$rc"
}

# measure NAME COMMAND...: the result lines go to $WORK/res.NAME, the
# command to $WORK/cmd.NAME, other load before it to $WORK/busy.NAME; a
# run that hangs is noted in $WORK/hung.NAME and tried once more.
measure() {
	local name=$1 try before after
	shift
	printf '%s\n' "$*" | sed "s|${FX[*]}|$FX_SHOWN|; s|$WORK|\$W|g" >"$WORK/cmd.$name"
	log "$name: $(cat "$WORK/cmd.$name")"
	for try in 1 2 3; do
		before=$(wait_quiet)
		if ! step "$name" "$@"; then
			echo "attempt $try hung (no result after $STEP_TIMEOUT s)" >>"$WORK/hung.$name"
			log "$name: attempt $try hung"
			[ "$try" -lt 2 ] && continue
			break
		fi
		after=$(cpu_busy)
		echo "$before/$after" >"$WORK/busy.$name"
		# Load that began during the run shows up just after it: run it again.
		if [ "$after" -le 30 ] || [ "$quiet_left" -le 0 ] || [ "$try" -eq 3 ]; then
			break
		fi
		log "$name: the machine got busy ($after%), measuring again"
		quiet_left=$((quiet_left - 10))
	done
	grep '^result ' "$WORK/out.$name" >"$WORK/res.$name" || true
	sed 's/^/   /' "$WORK/res.$name" >&2
}

measure fx-cold "${FX[@]}" -n "$N" --prewarm 0 --bundle "$B" --label fx-cold /fn/true
measure fx-prewarmed "${FX[@]}" -n "$N" --prewarm 2 --bundle "$B" --label fx-prewarmed /fn/true
measure fx-deferred "${FX[@]}" -n "$N" --prewarm 2 --defer-refill --bundle "$B" \
	--label fx-prewarmed-deferred /fn/true
measure bare "${FX[@]}" -n "$N" --no-sandbox --bundle "$B" --label bare /fn/true
measure bwrap "${FX[@]}" -n "$N" --no-sandbox --label bwrap -- "${BWRAP[@]}"
if [ "$RUNC_STATUS" = ok ]; then
	measure runc "${FX[@]}" -n "$N_RUNC" --no-sandbox --label runc -- runc run -b "$WORK/runc" fxbench
fi
if [ "$RUNC_U_STATUS" = ok ]; then
	measure runc-userns "${FX[@]}" -n "$N_RUNC" --no-sandbox --label runc-userns -- \
		runc run -b "$WORK/runc-userns" fxbench-u
fi
measure roundtrip "${FX[@]}" --roundtrip "$RT" --bundle "$B" --label fx /fn/echo
RATES="1:0 2:0 2:4 4:8"
for r in $RATES; do
	measure "rate-c${r%:*}-k${r#*:}" "${FX[@]}" --rate "$RATE_S" -c "${r%:*}" --prewarm "${r#*:}" \
		--bundle "$B" --label fx /fn/true
done
measure rate-bwrap "${FX[@]}" --rate "$RATE_S" -c 2 --no-sandbox --label bwrap -- "${BWRAP[@]}"

HF=
if command -v hyperfine >/dev/null; then
	wait_quiet >/dev/null
	log "hyperfine cross-check"
	hf=(hyperfine -N --style basic -w 20 -r 200 --export-json "$WORK/hf.json"
		-n bare "$B/true" -n bwrap "${BWRAP[*]}")
	[ "$RUNC_STATUS" = ok ] && hf+=(-n runc "runc run -b $WORK/runc fxbench-hf")
	for a in "${hf[@]}"; do
		case $a in *" "*) printf "'%s' " "$a" ;; *) printf '%s ' "$a" ;; esac
	done | sed "s|$WORK|\$W|g; s/ $//" >"$WORK/cmd.hyperfine"
	echo >>"$WORK/cmd.hyperfine"
	if "${hf[@]}" >"$WORK/hf.log" 2>&1; then
		HF=$(python3 - "$WORK/hf.json" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    t = sorted(r["times"])
    print("| %s | %.2f ± %.2f | %.2f | %.2f |" % (r["command"], r["mean"] * 1e3,
          r["stddev"] * 1e3, r["median"] * 1e3, t[int(0.99 * len(t)) - 1] * 1e3))
EOF
)
	fi
fi

# --- report --------------------------------------------------------------

# kv NAME KEY [FILTER]: a value from NAME's result lines (matching FILTER).
kv() {
	grep -- "${3:-}" "$WORK/res.$1" 2>/dev/null | head -1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}
busy() { sed 's|/|% / |; s|$|%|' "$WORK/busy.$1" 2>/dev/null || true; }
hung_note() {	# NAME: "hung N times" if it did
	[ -f "$WORK/hung.$1" ] && echo "**hung $(wc -l <"$WORK/hung.$1")x**"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a <= b) }'; }
met() { if le "$1" "$2"; then echo "met"; else echo "**not met**"; fi; }

cold=$(kv fx-cold p50_ms)
warm=$(kv fx-prewarmed p50_ms)
row() {	# name description
	local p50
	p50=$(kv "$1" p50_ms)
	if [ -z "$p50" ]; then
		echo "| $2 | $(hung_note "$1" || echo "failed: $(tail -1 "$WORK/err.$1" 2>/dev/null)")" \
			"| | | | | | | $(busy "$1") |"
		return
	fi
	echo "| $2$(hung_note "$1" | sed 's/^/ /') | $p50 | $(kv "$1" p99_ms) | $(kv "$1" mean_ms) | $(kv "$1" max_ms)" \
		"| $(kv "$1" exec_p50_ms) | $(ratio "$cold" "$p50") | $(ratio "$warm" "$p50")" \
		"| $(busy "$1") |"
}
rt_row() {	# placement
	local f="variant=fx cpu=$1 " b="variant=bare cpu=$1 " o="overhead variant=fx cpu=$1 "
	echo "| $1 | $(kv roundtrip p50_us "$b") | $(kv roundtrip mean_us "$b")" \
		"| $(kv roundtrip p99_us "$b") | $(kv roundtrip p50_us "$f") | $(kv roundtrip mean_us "$f")" \
		"| $(kv roundtrip p99_us "$f") | $(kv roundtrip mean_us "$o") | $(kv roundtrip p50_us "$o") |"
}
rate_row() {	# name variant concurrency prewarm
	echo "| $2$(hung_note "$1" | sed 's/^/ /') | $3 | $4 | $(kv "$1" per_second) | $(kv "$1" n) | $(kv "$1" p50_ms)" \
		"| $(kv "$1" p99_ms) | $(kv "$1" failures) | $(busy "$1") |"
}

overhead_max=$(grep -h 'roundtrip-overhead' "$WORK/res.roundtrip" | grep -v 'cpu=any' |
	tr ' ' '\n' | sed -n 's/^mean_us=//p' | sort -g | tail -1)
best_rate=$(cat "$WORK"/res.rate-c* | tr ' ' '\n' | sed -n 's/^per_second=//p' | sort -g | tail -1)
best_rate_neg=$(awk -v r="$best_rate" 'BEGIN { print -r }')
cgroups=$(kv fx-cold cgroups)

# A note when a measurement hung.
hangs() {
	local f n=0
	for f in "$WORK"/hung.*; do
		[ -f "$f" ] && n=$((n + $(wc -l <"$f")))
	done
	[ "$n" -gt 0 ] || return 0
	cat <<EOF
### Hangs

$n measurement attempt(s) hung: $(for f in "$WORK"/hung.*; do
	[ -f "$f" ] && printf '%s (%s) ' "${f##*/hung.}" "$(wc -l <"$f")"
done)- a launch never returned because the sandbox's PID 1 was stuck
before starting the function, and \`fx_sandbox_launch()\` waits for it without a time
limit. Seen while writing this benchmark: the stuck PID 1 sits in glibc's
\`__malloc_fork_lock_parent\`, i.e. in the \`fork()\` that \`child_main()\` (worker/fx_sandbox.c)
calls inside a process made by a raw \`clone3\` of the multi-threaded worker: glibc's fork
takes every malloc arena lock, and one that another thread held at the moment of the
clone3 is never released in the copy. It needs prewarming (stems made on the thread pool
while the loop thread allocates). The rows above come from the attempt that finished.
EOF
}

cgroup_layout() {
	local v1 v2
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		echo "cgroup v2 only (controllers: $(cat /sys/fs/cgroup/cgroup.controllers))"
		return
	fi
	v1=$(awk '$3 == "cgroup" { n = split($2, p, "/"); print p[n] }' /proc/mounts | paste -sd, -)
	v2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	echo "hybrid: cgroup v1 hierarchies $v1; cgroup2 at ${v2:-none}" \
		"(controllers: $(cat "$v2/cgroup.controllers" 2>/dev/null || true))"
}

section() {
	cat <<EOF
## Sandboxes

Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/sandbox.sh\` (N=$N launches per variant,
$N_RUNC for runc, $RT round trips per placement, $RATE_S s per throughput run), fx at
\`$FX_AT\`.

* Machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)),
  $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r);
  $(cgroup_layout). fx's sandboxes used cgroup **$cgroups**.
* Versions: $(bwrap --version), $(runc --version | head -1),
  $(hyperfine --version 2>/dev/null || echo "no hyperfine"), $(cc --version | head -1), libuv $(pkg-config --modversion libuv).
* The function: \`bench/true.c\` (\`int main(void) { return 0; }\`, $TRUE_KIND), the same
  binary in every variant; \`bench/echo.c\` (C SDK, session mode) for round trips.
* Timer: every row is timed by \`fx bench-sandbox\` (worker/fx_bench.c) through the
  worker's own path: \`fx_proc_start()\` (fx_sandbox underneath, or a plain process for
  bare/bwrap/runc) on a libuv loop, from the call to \`on_exit\` (exit reaped, stdout and
  stderr at end of file). "until exec" is the part of it until fx_sandbox_launch() returns
  (the function is running); for plain rows it is the launcher's own exec. "CPU busy" is
  the share of both CPUs in use just before / just after the row (0.5 s each; this machine
  is shared: a row after which it was over 30% busy was measured again).

### Cold start (ms, launch → exit reaped)

| variant | p50 | p99 | mean | max | until exec p50 | fx cold ÷ this (p50) | fx prewarmed ÷ this (p50) | CPU busy |
|---|---|---|---|---|---|---|---|---|
$(row fx-cold "**fx cold** (\`--prewarm 0\`: stem made on the spot)")
$(row fx-prewarmed "**fx prewarmed** (\`--prewarm 2\`; the refill runs beside the launch, as in the worker)")
$(row fx-deferred "fx prewarmed, refill held until the launch is timed (\`--defer-refill\`)")
$(row bare "bare exec (plain process, same timer)")
$(row bwrap "bubblewrap (pid, ipc, uts, mount, **net, user** ns)")
$([ "$RUNC_STATUS" = ok ] && row runc "runc (\`runc spec\`: pid, net, ipc, uts, mount ns, cgroups)" ||
	echo "| runc | failed: $RUNC_STATUS | | | | | | | |")
$([ "$RUNC_U_STATUS" = ok ] && row runc-userns "runc + user and cgroup ns" ||
	echo "| runc + user and cgroup ns | failed: $RUNC_U_STATUS | | | | | | | |")

fx's sandbox does more than bwrap here: user, PID, mount, UTS, IPC, network and cgroup
namespaces, a cgroup per sandbox with memory, pids and CPU limits (cgroup $cgroups), a read-only
root with /usr, /fn, a 64 MB /tmp, /proc and /dev, a PID-1 reaper, uid 1000 with no
capabilities, no_new_privs and a seccomp filter. bwrap has no cgroups, no seccomp filter
and no reaper here; runc's default spec gives cgroups (a device list, no limits), masked
and read-only /proc paths and three capabilities to root inside, and no seccomp profile.
EOF
	if [ -n "$HF" ]; then
		cat <<EOF

Cross-check with hyperfine (\`-N -w 20 -r 200\`, its own fork/exec timer, ms):

| command | mean ± σ | median | p99 |
|---|---|---|---|
${HF//$WORK/\$W}
EOF
	fi
	cat <<EOF

### Warm round trip (µs per invoke → result, $RT each)

One session-mode echo (\`bench/echo.c\`) answering invoke messages over the protocol
socket, driven by the worker's code (\`fx_proc_send\`, libuv reads): in a prewarmed
sandbox, and the same program as a plain process on a bare socketpair. "same" pins both
sides to CPU 0, "cross" the echo to CPU 1, "any" leaves placement to the scheduler.

| placement | bare p50 | bare mean | bare p99 | fx p50 | fx mean | fx p99 | overhead (mean) | overhead (p50) |
|---|---|---|---|---|---|---|---|---|
$(rt_row same)
$(rt_row cross)
$(rt_row any)

### Sandboxes created per second ($(nproc) CPUs, $RATE_S s each)

Launch, run \`true\`, reap, as fast as possible with C launches in flight; prewarm K stems
refilled on libuv's thread pool.

| variant | C | K | per second | launches | p50 ms | p99 ms | failures | CPU busy |
|---|---|---|---|---|---|---|---|---|
$(for r in $RATES; do rate_row "rate-c${r%:*}-k${r#*:}" fx "${r%:*}" "${r#*:}"; done)
$(rate_row rate-bwrap bwrap 2 -)

$(hangs)

### Targets

| target | measured | |
|---|---|---|
| full-isolation cold start p50 ≤ 2 ms | ${cold:-?} ms | $(met "$cold" 2) |
| prewarmed start p50 ≤ 1 ms | ${warm:-?} ms ($(kv fx-deferred p50_ms) ms with the refill deferred) | $(met "$warm" 1) |
| warm round trip overhead ≤ 50 µs (worst pinned placement, mean) | ${overhead_max:-?} µs | $(met "$overhead_max" 50) |
| ≥ 500 sandboxes created per second | ${best_rate:-?} /s (best) | $(met "$best_rate_neg" -500) |

### Commands

\`\$W\` is the scratch directory ($WORK); \`\$W/bundle\` holds \`true\` and \`echo\`.

\`\`\`
$(for f in fx-cold fx-prewarmed fx-deferred bare bwrap runc runc-userns roundtrip \
	$(for r in $RATES; do echo "rate-c${r%:*}-k${r#*:}"; done) rate-bwrap hyperfine; do
	[ -f "$WORK/cmd.$f" ] && cat "$WORK/cmd.$f"
done)
\`\`\`
runc bundles: \`runc spec\` in \`\$W/runc\`, then \`process.terminal=false\`,
\`process.args=["/true"]\`, \`root.readonly=true\`, rootfs holding only \`/true\`;
\`\$W/runc-userns\` adds user and cgroup namespaces mapped to 100000-165535. runc probe:
$RUNC_STATUS; with user namespace: $RUNC_U_STATUS.
EOF
}

# Replace the "## Sandboxes" section of RESULTS.md, keep the others.
write_results() {
	local new=$WORK/section.md
	section >"$new"
	if [ ! -f "$RESULTS" ]; then
		printf '# Benchmark results\n\nWritten by the scripts in bench/ (see bench/README.md).\n\n' >"$RESULTS"
	fi
	awk -v new="$new" '
		function emit() { while ((getline l < new) > 0) print l; done = 1 }
		/^## / { if (skip) skip = 0 }
		/^## Sandboxes *$/ { emit(); skip = 1; next }
		!skip { print }
		END { if (!done) { print ""; emit() } }' "$RESULTS" >"$WORK/RESULTS.md"
	cat -s "$WORK/RESULTS.md" >"$RESULTS"
}
write_results
log "wrote $RESULTS"
sed -n '/^## Sandboxes/,/^### Commands/p' "$RESULTS"
