#!/usr/bin/env bash
# 80_workflow.sh: durable workflows with real workers killed with SIGKILL.
#
# A 5-step workflow whose steps each write a row through ctx.sql has its
# worker killed at every step boundary (before a step's work, during it with
# the work uncommitted, and after the last checkpoint): it completes on
# another worker, and every step's row exists exactly once.  Then: a durable
# sleep across a worker restart, send/recv and events across restarts,
# cancel/resume/fork, the nondeterminism error, and examples/order (reserve,
# charge through a child, ship; a declined card compensates).
source "$(dirname "$0")/../lib.sh"


fx_pg_start

finished() { q "SELECT fx_status($1) IN ('succeeded', 'failed', 'dead', 'cancelled')" | grep -qx t; }
status_is() { [ "$(q "SELECT status FROM fx.invocation WHERE id = $1")" = "$2" ]; }
workers_are() { [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fx-%'")" = "$1" ]; }
# at_gate NAME: a workflow's sql session is polling gate NAME.
at_gate() {
	[ "$(q "SELECT count(*) FROM pg_stat_activity
	         WHERE usename = 'wf_fn' AND query LIKE '%gate = ''$1''%'")" -ge 1 ]
}

q "CREATE ROLE wf_fn LOGIN;
   CREATE TABLE effect (workflow bigint NOT NULL, step int NOT NULL, at timestamptz DEFAULT now());
   CREATE TABLE gate (name text PRIMARY KEY, closed boolean NOT NULL);
   GRANT INSERT, SELECT ON effect TO wf_fn;
   GRANT SELECT ON gate TO wf_fn" >/dev/null

# five: five steps; step K writes effect (workflow, K) and returns K * 10.
# gate(NAME) waits while gate NAME is closed: "Ka" before step K's write,
# "Kb" after it (the write not yet committed), "6" after the last step.
mkdir -p "$FX_TEST_DIR/fn/five"
cat >"$FX_TEST_DIR/fn/five/main.py" <<'EOF'
import time
import fx

def gate(ctx, name):
    # the comment shows the gate in pg_stat_activity, where the test looks
    query = "SELECT 1 FROM gate WHERE closed AND name = $1 /* gate = '%s' */" % name
    while ctx.sql(query, name):
        time.sleep(0.02)

def handler(args, ctx):
    wf = ctx.workflow_id
    outs = []
    for k in range(1, 6):
        def step(k=k):
            gate(ctx, "%da" % k)
            ctx.sql("INSERT INTO effect (workflow, step) VALUES ($1, $2)", wf, k)
            gate(ctx, "%db" % k)
            return k * 10
        outs.append(ctx.run("s%d" % k, step))
    gate(ctx, "6")
    return outs

fx.run(handler)
EOF
check "deploy five (session, role wf_fn)" \
	fx_deploy five "$FX_TEST_DIR/fn/five" --cmd "python3 main.py" --mode session --role wf_fn --timeout 60s

# --- kill the worker at every step boundary -----------------------------
n=0
for g in 1a 1b 2a 2b 3a 3b 4a 4b 5a 5b 6; do
	n=$((n + 1))
	q "INSERT INTO gate VALUES ('$g', true)" >/dev/null
	fx_worker_start "K$n"
	id=$(q "SELECT fx_invoke('five', '{}')")
	if ! wait_for "workflow $id waits at gate $g" 20 at_gate "$g"; then
		continue
	fi
	kill -KILL "$(fx_worker_pid "K$n")"
	wait "$(fx_worker_pid "K$n")" 2>/dev/null
	q "UPDATE gate SET closed = false WHERE name = '$g'" >/dev/null
	fx_worker_start "R$n"
	wait_for "killed at gate $g: workflow $id finishes on another worker" 30 finished "$id"
	json_eq "killed at gate $g: result of all five steps" '[10, 20, 30, 40, 50]' \
		"$(q "SELECT result FROM fx.invocation WHERE id = $id")"
	check_eq "killed at gate $g: each step's row exists once" "1 2 3 4 5" \
		"$(q "SELECT string_agg(step::text, ' ' ORDER BY step) FROM effect WHERE workflow = $id")"
	check_eq "killed at gate $g: five steps recorded, done" "5 5" \
		"$(q "SELECT count(*) || ' ' || count(*) FILTER (WHERE done) FROM fx.step WHERE invocation_id = $id")"
	fx_worker_stop "R$n"
done
# What was recorded before the kill was not run again: after a kill at
# "4b", steps 1-3 kept their first records (started before the kill).
check_eq "no workflow ran a step twice (effect rows = 5 per workflow)" "0" \
	"$(q "SELECT count(*) FROM (SELECT workflow, step FROM effect GROUP BY 1, 2 HAVING count(*) > 1) d")"

fx_worker_start A
wait_for "worker A is connected" 10 workers_are 1

# --- durable sleep across a worker restart -------------------------------
mkdir -p "$FX_TEST_DIR/fn/napper"
cat >"$FX_TEST_DIR/fn/napper/main.py" <<'EOF'
import time
import fx

def handler(args, ctx):
    began = ctx.run("began", time.time)
    ctx.sleep(args["seconds"])
    return {"slept": round(ctx.run("woke", time.time) - began, 3)}

fx.run(handler)
EOF
fx_deploy napper "$FX_TEST_DIR/fn/napper" --cmd "python3 main.py" --mode session
fx_worker_stop A
fx_worker_start B --wait-grace-ms 300
id=$(q "SELECT fx_invoke('napper', '{\"seconds\": 3}')")
evicted() { [ "$(q "SELECT status || ' ' || replay FROM fx.invocation WHERE id = $id")" = "queued true" ]; }
wait_for "a 3 s sleep gives its sandbox up after the grace (queued to replay)" 5 evicted
kill -KILL "$(fx_worker_pid B)"
wait "$(fx_worker_pid B)" 2>/dev/null
fx_worker_start C --wait-grace-ms 300
wait_for "the sleeper finishes on a new worker" 15 finished "$id"
slept=$(q "SELECT (result->>'slept')::float FROM fx.invocation WHERE id = $id")
check "it slept 3 s in all, not 3 s again after the restart (slept ${slept}s)" \
	awk -v s="$slept" 'BEGIN { exit !(s >= 3 && s < 4.5) }'
check_eq "the sleep step is recorded once, done" "1 true" \
	"$(q "SELECT count(*) || ' ' || bool_and(done) FROM fx.step WHERE invocation_id = $id AND kind = 'sleep'")"

# --- send/recv and events across restarts --------------------------------
mkdir -p "$FX_TEST_DIR/fn/waiter"
cat >"$FX_TEST_DIR/fn/waiter/main.py" <<'EOF'
import fx

def handler(args, ctx):
    ctx.set_event("stage", "waiting")
    first = ctx.recv("go", timeout=args.get("timeout", 60))
    ctx.set_event("stage", "got one")
    second = ctx.recv("go", timeout=0.5)
    return {"first": first, "second": second}

fx.run(handler)
EOF
fx_deploy waiter "$FX_TEST_DIR/fn/waiter" --cmd "python3 main.py" --mode session
id=$(q "SELECT fx_invoke('waiter', '{}')")
json_eq "fx_get_event waits for the event" '"waiting"' "$(q "SELECT fx_get_event($id, 'stage', '10s')")"
kill -KILL "$(fx_worker_pid C)"
wait "$(fx_worker_pid C)" 2>/dev/null
json_eq "events are still there with no worker" '"waiting"' "$(q "SELECT fx_get_event($id, 'stage')")"
check "fx_send with no worker running" q "SELECT fx_send($id, 'go', '{\"n\": 1}')"
check "another message on another topic" q "SELECT fx_send($id, 'other', '1')"
fx_worker_start D --wait-grace-ms 300
wait_for "the waiter finishes with its message" 15 finished "$id"
json_eq "recv got the message once, the second recv timed out" '{"first": {"n": 1}, "second": null}' \
	"$(q "SELECT result FROM fx.invocation WHERE id = $id")"
check_eq "the message was taken by step 2, the other topic's is left" "go:2 other:" \
	"$(q "SELECT string_agg(topic || ':' || coalesce(taken_step::text, ''), ' ' ORDER BY id) FROM fx.message WHERE workflow_id = $id")"
json_eq "the last event" '"got one"' "$(q "SELECT fx_get_event($id, 'stage')")"
# A message sent while the workflow waits, evicted, wakes it at once.
id=$(q "SELECT fx_invoke('waiter', '{\"timeout\": 60}')")
json_eq "second waiter waits" '"waiting"' "$(q "SELECT fx_get_event($id, 'stage', '10s')")"
wait_for "it is evicted while it waits" 5 evicted
q "SELECT fx_send($id, 'go', '\"late\"')" >/dev/null
wait_for "the send wakes it: it finishes within seconds" 5 finished "$id"
json_eq "it got the late message" '{"first": "late", "second": null}' \
	"$(q "SELECT result FROM fx.invocation WHERE id = $id")"

# --- cancel, resume, fork ---------------------------------------------------
id=$(q "SELECT fx_invoke('waiter', '{}')")
json_eq "a third waiter waits" '"waiting"' "$(q "SELECT fx_get_event($id, 'stage', '10s')")"
check_eq "fx_workflow_cancel cancels it" "1" "$(q "SELECT fx_workflow_cancel($id)")"
wait_for "it is cancelled" 5 status_is "$id" cancelled
check_eq "fx_workflow_resume queues it again" "$id" "$(q "SELECT fx_workflow_resume($id)")"
json_eq "resumed, it waits again" '"waiting"' "$(q "SELECT fx_get_event($id, 'stage', '10s')")"
q "SELECT fx_send($id, 'go', '\"resumed\"')" >/dev/null
wait_for "the resumed workflow finishes" 15 finished "$id"
json_eq "with the message sent after the resume" '{"first": "resumed", "second": null}' \
	"$(q "SELECT result FROM fx.invocation WHERE id = $id")"
check_eq "step 1 (set_event) was recorded once, before the cancel" "1" \
	"$(q "SELECT count(*) FROM fx.step WHERE invocation_id = $id AND step = 1")"

done5=$(q "SELECT max(id) FROM fx.invocation WHERE fn = 'five' AND status = 'succeeded'")
fork=$(q "SELECT fx_workflow_fork($done5, 4)")
wait_for "fork of five from step 4 finishes" 20 finished "$fork"
json_eq "the fork's result" '[10, 20, 30, 40, 50]' "$(q "SELECT result FROM fx.invocation WHERE id = $fork")"
check_eq "the fork ran steps 4 and 5 only: its own rows" "4 5" \
	"$(q "SELECT string_agg(step::text, ' ' ORDER BY step) FROM effect WHERE workflow = $fork")"

# --- a workflow timeout (fx_invoke's timeout) --------------------------------
id=$(q "SELECT fx_invoke('waiter', '{\"timeout\": 60}', timeout => '2 s')")
wait_for "a workflow waiting past its timeout ends" 8 finished "$id"
check_eq "it failed with the timeout error" "failed timed out: not finished within 2 s of its enqueue" \
	"$(q "SELECT status || ' ' || error FROM fx.invocation WHERE id = $id")"
took=$(q "SELECT extract(epoch FROM finished_at - created_at) FROM fx.invocation WHERE id = $id")
check "... at its deadline, 2 s after its enqueue (${took}s)" \
	awk -v s="$took" 'BEGIN { exit !(s >= 2 && s < 4) }'
fx_worker_stop D
id=$(q "SELECT fx_invoke('waiter', '{}', timeout => '1 s')")
sleep 1.5
fx_worker_start E --wait-grace-ms 300
wait_for "one still queued past its timeout fails without running" 5 finished "$id"
check_eq "with the timeout error, no attempt made" "failed 0 timed out: not finished within 1 s of its enqueue" \
	"$(q "SELECT status || ' ' || attempts || ' ' || error FROM fx.invocation WHERE id = $id")"

# --- nondeterminism ---------------------------------------------------------
mkdir -p "$FX_TEST_DIR/fn/fickle"
cat >"$FX_TEST_DIR/fn/fickle/main.py" <<'EOF'
import fx

def handler(args, ctx):
    ctx.run("first" if ctx.attempt == 1 else "other", lambda: 1)
    if ctx.attempt == 1:
        raise fx.Error("fail once")
    return "unreachable"

fx.run(handler)
EOF
fx_deploy fickle "$FX_TEST_DIR/fn/fickle" --cmd "python3 main.py" --mode session --retries 2
id=$(q "SELECT fx_invoke('fickle', '{}')")
wait_for "the fickle workflow ends" 15 finished "$id"
check_eq "a replay reaching another step fails it, not retried" "failed 2" \
	"$(q "SELECT status || ' ' || attempts FROM fx.invocation WHERE id = $id")"
check_eq "the error names both steps" \
	'nondeterministic workflow: step 1 is "other" (run) now but was recorded as "first" (run)' \
	"$(q "SELECT error FROM fx.invocation WHERE id = $id")"

# --- the same from C (include/fx.h) ----------------------------------------
mkdir -p "$FX_TEST_DIR/fn/cwf" "$FX_TEST_DIR/fn/kid"
cat >"$FX_TEST_DIR/fn/kid/main.py" <<'EOF'
import fx

def handler(args, ctx):
    if args.get("fail"):
        raise fx.Error("kid refused", retryable=False)
    return {"kid": args.get("n")}

fx.run(handler)
EOF
fx_deploy kid "$FX_TEST_DIR/fn/kid" --cmd "python3 main.py" --mode session
cat >"$FX_TEST_DIR/fn/cwf/cwf.c" <<'EOF'
#include <fx.h>

static cJSON *
twice(fx_ctx *ctx, void *arg)
{
	(void) ctx;
	return cJSON_CreateNumber(2 * *(int *) arg);
}

static cJSON *
handler(fx_ctx *ctx, const cJSON *args)
{
	int			n = 21;
	cJSON	   *doubled = fx_run(ctx, "twice", twice, &n);
	cJSON	   *kid_args = cJSON_Parse("{\"n\": 7}");
	cJSON	   *bad_args = cJSON_Parse("{\"fail\": true}");
	cJSON	   *kid = fx_step(ctx, "kid", kid_args);
	long long	started = fx_start(ctx, "kid", bad_args);
	cJSON	   *awaited = fx_await(ctx, started);
	cJSON	   *out = cJSON_CreateObject();
	cJSON	   *msg;

	(void) args;
	cJSON_AddItemToObject(out, "kid", kid ? kid : cJSON_CreateString(fx_error(ctx)));
	cJSON_AddStringToObject(out, "awaited", awaited ? "no error" : fx_error(ctx));
	cJSON_Delete(awaited);
	cJSON_Delete(kid_args);
	cJSON_Delete(bad_args);
	if (!fx_sleep(ctx, 50) || !fx_set_event(ctx, "stage", doubled))
		return NULL;
	msg = fx_recv(ctx, "go", 200);
	cJSON_AddItemToObject(out, "doubled", doubled);
	cJSON_AddItemToObject(out, "msg", msg ? msg : cJSON_CreateString("error"));
	cJSON_AddNumberToObject(out, "workflow", (double) fx_workflow_id(ctx));
	return out;
}

int
main(void)
{
	return fx_main(handler);
}
EOF
check "a C workflow builds" cc -Wall -Wextra -Werror -O2 -I"$FX_ROOT/include" \
	-o "$FX_TEST_DIR/fn/cwf/cwf" "$FX_TEST_DIR/fn/cwf/cwf.c" -lcjson
rm -f "$FX_TEST_DIR/fn/cwf/cwf.c"
fx_deploy cwf "$FX_TEST_DIR/fn/cwf" --cmd ./cwf --mode session
out=$(q "SELECT fx_call('cwf', '{}')" 2>&1)
json_has "the C workflow ran its steps" "$out" \
	'{"doubled": 42, "kid": {"kid": 7}, "awaited": "kid refused", "msg": null}'
cid=$(q "SELECT (\$j\$$out\$j\$::jsonb->>'workflow')")
check_eq "its steps: run, call, start, await, sleep, set_event, recv" \
	"twice:run kid:call kid:start await:await sleep:sleep set_event:set_event recv:recv" \
	"$(q "SELECT string_agg(name || ':' || kind, ' ' ORDER BY step) FROM fx.step WHERE invocation_id = $cid")"
json_eq "its event, set from C" '42' "$(q "SELECT fx_get_event($cid, 'stage')")"

# --- examples/order, as its README says -------------------------------------
ex=$FX_ROOT/examples/order
check "setup.sql" q "\\i $ex/setup.sql"
check "deploy payment" fx_deploy payment "$ex/payment" --cmd "python3 main.py" --mode session
check "deploy order" fx_deploy order "$ex" --cmd "python3 main.py" --mode session --role order_fn
out=$("$FX_BIN" invoke order '{"item": "widget", "qty": 2, "card": "4242"}')
json_has "an order is reserved, charged and shipped" "$out" '{"status": "shipped", "charged": 10}'
oid=$(q "SELECT (\$j\$$out\$j\$::jsonb->>'order')")
check_eq "its row is shipped with a tracking number" "shipped 10 T-$oid" \
	"$(q "SELECT status || ' ' || charged || ' ' || tracking FROM orders WHERE id = $oid")"
json_eq "its status event" '"shipped"' "$(q "SELECT fx_get_event($oid, 'status')")"
check_eq "its steps" "reserve set_event payment ship set_event" \
	"$(q "SELECT string_agg(name, ' ' ORDER BY step) FROM fx.step WHERE invocation_id = $oid")"
out=$("$FX_BIN" invoke order '{"item": "widget", "qty": 3, "card": "0000"}')
json_has "a declined card cancels the order" "$out" '{"status": "cancelled", "reason": "card declined"}'
check_eq "the compensation gave the stock back" "98" \
	"$(q "SELECT available FROM stock WHERE item = 'widget'")"
out=$("$FX_BIN" invoke order '{"item": "gadget", "qty": 6, "card": "4242"}')
json_has "an order for more than the stock is refused" "$out" '{"status": "refused"}'
check_eq "and takes nothing" "5" "$(q "SELECT available FROM stock WHERE item = 'gadget'")"
check "fx wf show lists the order's steps" bash -c "'$FX_BIN' wf show $oid | grep -q 'payment'"
