#!/usr/bin/env bash
# 30_rootless.sh: a worker run by an ordinary user (no root, no cgroup
# delegation) still sandboxes functions with user namespaces, says once
# that it runs without cgroup limits, and serves simple and session modes.
source "$(dirname "$0")/../lib.sh"
fx_pg_start

user=fx-rootless
id "$user" >/dev/null 2>&1 || useradd --system --no-create-home "$user"
chmod 755 "$FX_TEST_DIR/run"			# let the user reach the socket
mkdir -p "$FX_TEST_DIR/rl"
chown "$user" "$FX_TEST_DIR/rl"
make -s -C "$FX_ROOT/examples/hello-c" >/dev/null

fx_deploy hello "$FX_ROOT/examples/hello" --cmd ./main
fx_deploy hello-c "$FX_ROOT/examples/hello-c" --cmd ./hello --mode session
mkdir -p "$FX_TEST_DIR/probe"
cat >"$FX_TEST_DIR/probe/main" <<'EOT'
#!/bin/sh
cat >/dev/null
caps=$(grep CapEff /proc/self/status | cut -f2)
pid1=hidden; [ -e /proc/1 ] && pid1=visible
echo "{\"uid\": \"$(id -u)\", \"host\": \"$(hostname)\", \"caps\": \"$caps\", \"pid1\": \"$pid1\"}"
EOT
chmod 755 "$FX_TEST_DIR/probe" "$FX_TEST_DIR/probe/main"
fx_deploy probe "$FX_TEST_DIR/probe"

# The checkout may be unreadable to other users (a mode-700 clone): run a copy.
install -m 755 "$FX_BIN" "$FX_TEST_DIR/rl/fx"
runuser -u "$user" -- $FX_WORKER_WRAPPER "$FX_TEST_DIR/rl/fx" worker --db "$FX_DB" \
	--cache "$FX_TEST_DIR/rl/cache" --poll-ms 200 >>"$FX_TEST_DIR/rootless.log" 2>&1 &
FX_PIDS+=("$!")
connected() { [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fx-%'")" -ge 1 ]; }
wait_for "the rootless worker is connected" 20 connected
check "the worker process runs as $user, not root" pgrep -u "$user" -f "worker --db"
check_eq "simple mode works" '{"greeting": "hello rootless"}' "$("$FX_BIN" invoke hello '{"name":"rootless"}' 2>&1)"
check "session mode works" grep -q '"lang": "c"' <<<"$("$FX_BIN" invoke hello-c '{"name":"rl"}' 2>&1)"
probe=$("$FX_BIN" invoke probe 2>&1)
check_eq "inside: uid 1000, hostname fx, no capabilities, PID 1 hidden" \
	'1000|fx|0000000000000000|hidden' \
	"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["uid"], d["host"], d["caps"], d["pid1"], sep="|")' "$probe" 2>&1)"
check "it said once that there are no cgroup limits" \
	test "$(grep -c 'no writable cgroup hierarchy' "$FX_TEST_DIR/rootless.log")" = 1
check_eq "attempts ran as the user's sandboxes" 3 \
	"$(q "SELECT count(*) FROM fx.invocation WHERE status = 'succeeded' AND worker LIKE 'fx-%'")"
