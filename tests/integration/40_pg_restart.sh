#!/usr/bin/env bash
# 40_pg_restart.sh: PostgreSQL restarts (immediate shutdown, crash recovery)
# while a worker runs invocations: every one of them still ends succeeded,
# once, and the worker carries on.
source "$(dirname "$0")/../lib.sh"


fx_pg_start

# nap: logs a line, sleeps about 0.5 s, answers its args.  Its sleep has an
# argument unique to this test run, to find it in the host's process list.
nap="sleep 0.5$$$RANDOM"
mkdir -p "$FX_TEST_DIR/fn/nap"
cat >"$FX_TEST_DIR/fn/nap/main" <<EOF
#!/bin/sh
args=\$(cat)
echo "nap: invocation \$FX_INVOCATION_ID attempt \$FX_ATTEMPT" >&2
$nap
echo "\$args"
EOF
chmod +x "$FX_TEST_DIR/fn/nap/main"
# No retries: an attempt that the restart costs must not be charged to the
# function (lost leases are re-adopted, attempts that could not start are
# given back), so every invocation must still succeed.
fx_deploy nap "$FX_TEST_DIR/fn/nap" --timeout 10s --retries 0

fx_worker_start A
worker_pid=$(fx_worker_pid A)

all_succeeded() {
	[ "$(q "SELECT count(*) FROM fx.invocation WHERE status = 'succeeded'")" = 20 ]
}
some_running() {
	[ "$(q "SELECT count(*) FROM fx.invocation WHERE status = 'running'")" -gt 0 ] &&
		pgrep -f "$nap" >/dev/null
}

q "SELECT fx_invoke('nap', to_jsonb(i)) FROM generate_series(1, 20) i" >/dev/null
wait_for "invocations are running" 5 some_running
echo "# at the restart: $(q "SELECT string_agg(status || ' ' || n, ', ') FROM
	(SELECT status, count(*) n FROM fx.invocation GROUP BY 1 ORDER BY 1) s")"
if fx_pg_ctl restart -m immediate; then ok "PostgreSQL restarted (-m immediate)"
else not_ok "PostgreSQL restarted (-m immediate)"; fi

finished() {
	[ "$(q "SELECT count(*) FROM fx.invocation WHERE status NOT IN ('queued', 'running')")" = 20 ]
}
wait_for "all 20 end within 30 s" 30 finished
wait_for "all 20 end succeeded" 1 all_succeeded
q "SELECT id, status, attempts, lost, error FROM fx.invocation WHERE status <> 'succeeded' ORDER BY id" |
	sed 's/^/# not succeeded: /'
check_eq "none lost or duplicated: 20 rows, 20 distinct ids, all succeeded" "20|20|20" \
	"$(q "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE status = 'succeeded') FROM fx.invocation")"
check_eq "each succeeded result is its own args" 0 \
	"$(q "SELECT count(*) FROM fx.invocation WHERE status = 'succeeded' AND result IS DISTINCT FROM args")"
check_eq "no attempt was counted as lost: the worker re-adopted its leases" 0 \
	"$(q "SELECT coalesce(sum(lost), 0) FROM fx.invocation")"
check_eq "no attempt was charged to the function: attempts = 1 everywhere" 0 \
	"$(q "SELECT count(*) FROM fx.invocation WHERE attempts <> 1")"
echo "# attempts: $(q "SELECT string_agg(attempts || ' x' || n, ', ') FROM
	(SELECT attempts, count(*) n FROM fx.invocation GROUP BY 1 ORDER BY 1) s"),
# log lines kept (one per attempt that completed): $(q "SELECT count(*) FROM fx.log")"
check "the worker is still alive" kill -0 "$worker_pid"
out=$(q "SELECT fx_call('nap', '{\"after\": \"restart\"}', '10s')" 2>&1)
check_eq "the worker serves a new fx_call afterwards" '{"after": "restart"}' "$out"

exit $FX_FAILED
