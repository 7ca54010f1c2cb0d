#!/usr/bin/env bash
# 99_roles.sh: the security model with real logins and a real worker that
# is not a superuser (README.md, "Security model").  The worker logs in as
# a member of fx_worker; alice (fx_deployer) deploys with the CLI; bob and
# carol (fx_invoker) call through fx_call, whose loopback session logs in as
# them.  Checked: bob is refused until alice grants him the function, then
# his calls run and he reads his logs; carol sees none of it; a workflow's
# child is invoked for the workflow's invoker, so it needs its own grant; a
# function's sql runs as its role, not the worker's.
source "$(dirname "$0")/../lib.sh"

fx_pg_start

q "CREATE ROLE fxw LOGIN IN ROLE fx_worker;
   CREATE ROLE alice LOGIN IN ROLE fx_deployer;
   CREATE ROLE bob LOGIN IN ROLE fx_invoker;
   CREATE ROLE carol LOGIN IN ROLE fx_invoker;
   CREATE ROLE shop_fn LOGIN;
   GRANT shop_fn TO alice;
   CREATE TABLE sale (id int GENERATED ALWAYS AS IDENTITY, who text DEFAULT current_user, item text);
   GRANT INSERT, SELECT ON sale TO shop_fn" >/dev/null

db() { echo "host=$FX_TEST_DIR/run port=5432 dbname=fx user=$1"; }
# as ROLE SQL: run SQL logged in as ROLE; prints the output, or the error.
as() { "$PG_BIN/psql" -X -qAt -d "$(db "$1")" -c "$2" 2>&1; }

mkdir -p "$FX_TEST_DIR/fn/hello" "$FX_TEST_DIR/fn/wf" "$FX_TEST_DIR/fn/shop"
cat >"$FX_TEST_DIR/fn/hello/main" <<'EOF'
#!/bin/sh
echo "hello log line" >&2
echo '{"hello": "world"}'
EOF
chmod +x "$FX_TEST_DIR/fn/hello/main"
cat >"$FX_TEST_DIR/fn/wf/main.py" <<'EOF'
import fx

def handler(args, ctx):
    return {"child": ctx.step("hello", {})}

fx.run(handler)
EOF
cat >"$FX_TEST_DIR/fn/shop/main.py" <<'EOF'
import fx

def handler(args, ctx):
    ctx.sql("INSERT INTO sale (item) VALUES ($1)", args["item"])
    return {"sold": args["item"]}

fx.run(handler)
EOF

FX_DB=$(db fxw) fx_worker_start W
check_eq "the worker's session is a member of fx_worker, not a superuser" "fxw false" \
	"$(q "SELECT a.usename || ' ' || r.rolsuper FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename
	       WHERE a.application_name LIKE 'fx-%' LIMIT 1")"

# --- alice deploys with the CLI, as herself, and owns what she deploys
check "alice deploys hello" env FX_DB="$(db alice)" "$FX_BIN" deploy hello "$FX_TEST_DIR/fn/hello"
check "alice deploys wf" env FX_DB="$(db alice)" "$FX_BIN" deploy wf "$FX_TEST_DIR/fn/wf" \
	--cmd "python3 main.py" --mode session
check "alice deploys shop with her role shop_fn" env FX_DB="$(db alice)" "$FX_BIN" deploy shop \
	"$FX_TEST_DIR/fn/shop" --cmd "python3 main.py" --mode session --role shop_fn
check_eq "the functions are alice's" "alice alice alice" \
	"$(q "SELECT string_agg(owner, ' ' ORDER BY name) FROM fx.function")"
out=$(env FX_DB="$(db bob)" "$FX_BIN" deploy bobs "$FX_TEST_DIR/fn/hello" 2>&1)
check "bob (not a deployer) cannot deploy: '$out'" grep -q "permission denied for function fx_deploy" <<<"$out"

# --- fx_call as alice (her own), as bob (refused, then granted)
check_eq "alice calls her function through the non-superuser worker" '{"hello": "world"}' \
	"$(as alice "SELECT fx_call('hello')")"
out=$(as bob "SELECT fx_call('hello')")
check "bob is refused without a grant: '$out'" grep -q 'permission denied to invoke function "hello"' <<<"$out"
check "the refusal names the grant that would allow it" grep -q "fx_grant('hello', 'bob')" <<<"$out"
check_eq "alice grants hello to bob" "" "$(as alice "SELECT fx_grant('hello', 'bob')")"
check_eq "bob's fx_call runs" '{"hello": "world"}' "$(as bob "SELECT fx_call('hello')")"
out=$(env FX_DB="$(db bob)" "$FX_BIN" invoke hello 2>&1)
check "bob's fx invoke runs: '$out'" grep -q '"hello"' <<<"$out"
bob_id=$(q "SELECT max(id) FROM fx.invocation WHERE invoker = 'bob'::regrole")
check_eq "bob reads his invocation's logs" "hello log line" \
	"$(as bob "SELECT line FROM fx_logs($bob_id) WHERE stream = 'stderr'")"
check_eq "bob sees only his invocations" "2 2" \
	"$(as bob "SELECT count(*) || ' ' || count(*) FILTER (WHERE invoker = 'bob'::regrole) FROM fx.invocation")"

# --- carol sees nothing of it, and cannot call
out=$(as carol "SELECT fx_status($bob_id)")
check "carol: bob's invocation does not exist for her: '$out'" grep -q "invocation $bob_id does not exist" <<<"$out"
out=$(env FX_DB="$(db carol)" "$FX_BIN" logs "$bob_id" 2>&1)
check "carol: fx logs of bob's invocation fails: '$out'" grep -q "does not exist" <<<"$out"
check_eq "carol sees no invocation" 0 "$(as carol "SELECT count(*) FROM fx.invocation")"
out=$(as carol "SELECT fx_call('hello')")
check "carol is refused: '$out'" grep -q 'permission denied to invoke function "hello"' <<<"$out"
check "alice sees every invocation of her function" test \
	"$(as alice "SELECT count(*) FROM fx.invocation")" -ge 3

# --- a workflow's child is invoked for the workflow's invoker
as alice "SELECT fx_grant('wf', 'carol')" >/dev/null
out=$(as carol "SELECT fx_call('wf')")
check "carol's workflow may not start hello for her: '$out'" \
	grep -q 'permission denied to invoke function \\"hello\\"\|permission denied to invoke function "hello"' <<<"$out"
as alice "SELECT fx_grant('hello', 'carol')" >/dev/null
check_eq "granted hello too, carol's workflow runs its child" '{"child": {"hello": "world"}}' \
	"$(as carol "SELECT fx_call('wf')")"
check_eq "the child is carol's" "carol" \
	"$(q "SELECT invoker FROM fx.invocation WHERE parent IS NOT NULL ORDER BY id DESC LIMIT 1")"

# --- a function's sql runs as its role, not the worker's
as alice "SELECT fx_grant('shop', 'bob')" >/dev/null
check_eq "bob calls shop" '{"sold": "tea"}' "$(as bob "SELECT fx_call('shop', '{\"item\": \"tea\"}')")"
check_eq "its sql ran as shop_fn" "shop_fn tea" "$(q "SELECT who || ' ' || item FROM sale")"

fx_cleanup
