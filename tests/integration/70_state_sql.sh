#!/usr/bin/env bash
# 70_state_sql.sh: state and co-located SQL, through examples/cart and
# examples/bank deployed as their READMEs say.  Keyed invocations of one key
# run one at a time in enqueue order (20 of them over two workers end with
# updates = 20); a transfer moves money and logs it once, also when its first
# attempt fails after its UPDATE; an overdraft, or a function failing after
# its UPDATE, leaves balances as they were; opposite transfers do not
# deadlock; sql without a role, and deploys naming a superuser or a missing
# role, get the engine's errors.
source "$(dirname "$0")/../lib.sh"


fx_pg_start

# fails_with DESC PATTERN CMD...: CMD exits non-zero with PATTERN
# (extended regexp) on stderr.
fails_with() {
	local desc=$1 pat=$2 err rc
	shift 2
	err=$("$@" 2>&1 >/dev/null)
	rc=$?
	if [ $rc -ne 0 ] && grep -qE "$pat" <<<"$err"; then
		ok "$desc ($(head -n1 <<<"$err"))"
	else
		not_ok "$desc (exit $rc, stderr '$err', wanted /$pat/)"
	fi
}

# finished ID: the invocation has ended, whichever way.
finished() { q "SELECT fx_status($1) IN ('succeeded', 'failed', 'dead', 'cancelled')" | grep -qx t; }
# none_left FN: no invocation of FN is queued or running.
none_left() {
	[ "$(q "SELECT count(*) FROM fx.invocation WHERE fn = '$1' AND status IN ('queued', 'running')")" = 0 ]
}
balances() { q "SELECT string_agg(id || '=' || balance, ' ' ORDER BY id) FROM account"; }
log_rows() { q "SELECT count(*) FROM transfer_log"; }

ex=$FX_ROOT/examples
# A small state limit (the worker reads it when it connects).
q "ALTER DATABASE fx SET fx.max_state_size = '2kB'" >/dev/null
fx_worker_start A

# --- examples/cart: per-key state
check "deploy cart (session)" fx_deploy cart "$ex/cart" --cmd "python3 main.py" --mode session
out=$("$FX_BIN" invoke cart '{"add":"apple","qty":2}' --key cart-42)
json_eq "cart-42: add 2 apples" '{"items": {"apple": 2}, "updates": 1}' "$out"
out=$("$FX_BIN" invoke cart '{"add":"pear"}' --key cart-42)
json_eq "cart-42: add a pear" '{"items": {"apple": 2, "pear": 1}, "updates": 2}' "$out"
out=$("$FX_BIN" invoke cart '{"add":"apple"}' --key cart-42)
json_eq "cart-42: add an apple" '{"items": {"apple": 3, "pear": 1}, "updates": 3}' "$out"
out=$("$FX_BIN" invoke cart '{"remove":"pear"}' --key cart-42)
json_eq "cart-42: remove the pear" '{"items": {"apple": 3}, "updates": 4}' "$out"
out=$("$FX_BIN" invoke cart '{"remove":"apple","qty":1}' --key cart-42)
json_eq "cart-42: remove one apple" '{"items": {"apple": 2}, "updates": 5}' "$out"
out=$("$FX_BIN" invoke cart '{}' --key cart-42)
json_eq "cart-42: {} shows the cart and changes nothing" '{"items": {"apple": 2}, "updates": 5}' "$out"
json_eq "fx_state('cart', 'cart-42') is the cart" '{"items": {"apple": 2}, "updates": 5}' \
	"$(q "SELECT fx_state('cart', 'cart-42')")"
big=$(printf 'x%.0s' $(seq 3000))
out=$(q "SELECT fx_call('cart', '{\"add\": \"$big\"}', key => 'cart-big')" 2>&1)
case $out in
*"exceeds the limit of 2048 bytes (fx.max_state_size)"*) ok "a state over fx.max_state_size is refused with a clear error" ;;
*) not_ok "a state over fx.max_state_size is refused with a clear error (got: ${out:0:300})" ;;
esac
check_eq "and nothing was stored" "" "$(q "SELECT fx_state('cart', 'cart-big')")"
id=$(q "SELECT fx_invoke('cart', '{\"add\":\"fig\",\"qty\":3}', key => 'cart-42')")
json_eq "fx_invoke(..., key => 'cart-42') + fx_result" \
	'{"items": {"apple": 2, "fig": 3}, "updates": 6}' "$(q "SELECT fx_result($id, '10s')")"
out=$(q "SELECT fx_call('cart', '{\"clear\":true}', key => 'cart-42')")
json_eq "fx_call(..., key => 'cart-42') clears it" '{"items": {}, "updates": 7}' "$out"
check_eq "a cart never changed has no state (NULL)" "" "$(q "SELECT fx_state('cart', 'cart-7')")"
out=$("$FX_BIN" invoke cart '{}' --key cart-7)
json_eq "cart-7: {} shows an empty cart" '{"items": {}, "updates": 0}' "$out"
check_eq "... and writes no state" "" "$(q "SELECT fx_state('cart', 'cart-7')")"
fails_with "cart without a key fails" 'cart needs a key' "$FX_BIN" invoke cart '{"add":"apple"}'
id=$(q "SELECT fx_invoke('cart', '{\"add\":\"apple\",\"qty\":0}', key => 'cart-42')")
wait_for "bad qty: the invocation ends" 10 finished "$id"
check_eq "bad qty: failed after one attempt (not retryable)" "failed|1|qty must be a positive integer" \
	"$(q "SELECT status, attempts, error FROM fx.invocation WHERE id = $id")"
json_eq "bad qty: the state is as it was" '{"items": {}, "updates": 7}' \
	"$(q "SELECT fx_state('cart', 'cart-42')")"
fails_with "fx_state of a function that is not deployed" 'function "nope" is not deployed' \
	q "SELECT fx_state('nope', 'k')"

# --- 20 invocations of one key over two workers: one at a time, in order
fx_worker_start B
q "SELECT fx_invoke('cart', '{\"add\":\"x\"}', key => 'k20') FROM generate_series(1, 20)" >/dev/null
wait_for "20 keyed invocations finish" 60 none_left cart
check_eq "all 20 succeeded" 20 \
	"$(q "SELECT count(*) FROM fx.invocation WHERE fn = 'cart' AND key = 'k20' AND status = 'succeeded'")"
json_eq "fx_state('cart', 'k20'): updates = 20" '{"items": {"x": 20}, "updates": 20}' \
	"$(q "SELECT fx_state('cart', 'k20')")"
# Had two run at once, both would have read the same cart: a number would
# repeat and the last would be below 20.
check_eq "each saw the one enqueued before it: updates 1..20 in id order" "$(seq -s, 1 20)" \
	"$(q "SELECT string_agg(result->>'updates', ',' ORDER BY id) FROM fx.invocation WHERE fn = 'cart' AND key = 'k20'")"
echo "# k20 ran on $(q "SELECT count(DISTINCT worker) FROM fx.invocation WHERE fn = 'cart' AND key = 'k20'") worker(s)"

# --- examples/bank: sql in the invocation's transaction
cd "$FX_ROOT" || exit 1
check "fx psql -f examples/bank/setup.sql" "$FX_BIN" psql -X -q -f examples/bank/setup.sql
check "setup.sql runs again without error" "$FX_BIN" psql -X -q -f examples/bank/setup.sql
check "fx deploy bank --role bank_fn" \
	fx_deploy bank examples/bank --cmd "python3 main.py" --mode session --role bank_fn --retries 2
check_eq "bank's version names the role" bank_fn \
	"$(q "SELECT options->>'role' FROM fx.version WHERE fn = 'bank' ORDER BY version DESC LIMIT 1")"
check_eq "sample accounts" "alice=100 bob=50" "$(balances)"

out=$("$FX_BIN" invoke bank '{"from":"alice","to":"bob","amount":10}')
json_has "fx invoke bank: alice pays bob 10" "$out" \
	'{"from": "alice", "to": "bob", "amount": 10, "balances": {"alice": 90, "bob": 60}}'
check_eq "balances moved" "alice=90 bob=60" "$(balances)"
id=$(q "SELECT max(id) FROM fx.invocation WHERE fn = 'bank'")
check_eq "one log row, under the invocation's idempotency key" "1|fx-$id|alice|bob|10" \
	"$(q "SELECT count(*) OVER (), idempotency_key, from_id, to_id, amount FROM transfer_log")"
out=$(q "SELECT fx_call('bank', '{\"from\":\"bob\",\"to\":\"alice\",\"amount\":5}')")
json_has "SELECT fx_call('bank', ...): bob pays alice 5" "$out" '{"balances": {"alice": 95, "bob": 55}}'
check_eq "two log rows" 2 "$(log_rows)"

id=$(q "SELECT fx_invoke('bank', '{\"from\":\"alice\",\"to\":\"bob\",\"amount\":1}', idempotency_key => 'pay-1')")
id2=$(q "SELECT fx_invoke('bank', '{\"from\":\"alice\",\"to\":\"bob\",\"amount\":1}', idempotency_key => 'pay-1')")
check_eq "fx_invoke with one idempotency key twice: one invocation" "$id" "$id2"
json_has "it succeeds" "$(q "SELECT fx_result($id, '10s')")" '{"balances": {"alice": 94, "bob": 56}}'
check_eq "logged once under pay-1" 1 "$(q "SELECT count(*) FROM transfer_log WHERE idempotency_key = 'pay-1'")"
check_eq "money moved once" "alice=94 bob=56" "$(balances)"

# a log row under the key already: reported, not applied again
q "INSERT INTO transfer_log (idempotency_key, from_id, to_id, amount, invocation_id)
   VALUES ('pay-2', 'alice', 'bob', 7, 0)" >/dev/null
id=$(q "SELECT fx_invoke('bank', '{\"from\":\"alice\",\"to\":\"bob\",\"amount\":7}', idempotency_key => 'pay-2')")
json_has "a key already logged is replayed, not applied" "$(q "SELECT fx_result($id, '10s')")" \
	'{"replayed": true, "amount": 7}'
check_eq "balances unchanged by the replay" "alice=94 bob=56" "$(balances)"

# overdraft: the CHECK fails, the function says not retryable
before=$(balances)
nlog=$(log_rows)
id=$(q "SELECT fx_invoke('bank', '{\"from\":\"bob\",\"to\":\"alice\",\"amount\":1000}')")
wait_for "overdraft: the invocation ends" 10 finished "$id"
check_eq "overdraft: failed after one attempt, insufficient funds" "failed|1|insufficient funds" \
	"$(q "SELECT status, attempts, error FROM fx.invocation WHERE id = $id")"
check_eq "overdraft: the detail says why" 'Account "bob" has 56, the transfer needs 1000.' \
	"$(q "SELECT error_detail FROM fx.invocation WHERE id = $id")"
check_eq "overdraft: balances unchanged" "$before" "$(balances)"
check_eq "overdraft: nothing logged" "$nlog" "$(log_rows)"
fails_with "overdraft through fx invoke reports insufficient funds" 'insufficient funds' \
	"$FX_BIN" invoke bank '{"from":"bob","to":"alice","amount":1000}'
fails_with "unknown account" 'account "carol" does not exist' \
	"$FX_BIN" invoke bank '{"from":"alice","to":"carol","amount":1}'

# the function raises after its UPDATEs and its log row: none of it commits
id=$(q "SELECT fx_invoke('bank', '{\"from\":\"alice\",\"to\":\"bob\",\"amount\":3,\"fail_after\":true}')")
wait_for "fail_after: the invocation ends" 10 finished "$id"
check_eq "fail_after: failed with the function's error" "failed|failing after the transfer, as asked" \
	"$(q "SELECT status, error FROM fx.invocation WHERE id = $id")"
check_eq "fail_after: balances unchanged" "$before" "$(balances)"
check_eq "fail_after: nothing logged" "$nlog" "$(log_rows)"

# a retried attempt: the first fails after its UPDATE, the second succeeds;
# the money moves once
mkdir -p "$FX_TEST_DIR/fn/flaky" "$FX_TEST_DIR/fn/probe"
cat >"$FX_TEST_DIR/fn/flaky/main.py" <<'EOF'
import fx

def flaky(args, ctx):
    ctx.sql("UPDATE account SET balance = balance - 1 WHERE id = 'alice'")
    ctx.sql("UPDATE account SET balance = balance + 1 WHERE id = 'bob'")
    if ctx.attempt == 1:
        raise fx.Error("first attempt fails after its UPDATEs")
    return ctx.attempt

fx.run(flaky)
EOF
q "SELECT fx_deploy('flaky', \$s\$$(cat "$FX_TEST_DIR/fn/flaky/main.py")\$s\$, '{python3,main}',
                    '{\"mode\": \"session\", \"role\": \"bank_fn\", \"retries\": 2}')" >/dev/null
id=$(q "SELECT fx_invoke('flaky')")
wait_for "flaky: the invocation ends" 20 finished "$id"
check_eq "flaky: succeeded on attempt 2" "succeeded|2|2" \
	"$(q "SELECT status, attempts, result FROM fx.invocation WHERE id = $id")"
check_eq "flaky: the first attempt's UPDATEs rolled back, the second's applied" \
	"alice=93 bob=57" "$(balances)"

# opposite transfers at once, over two workers: no deadlock
before=$(q "SELECT sum(balance) FROM account")
nlog=$(log_rows)
q "SELECT fx_invoke('bank', jsonb_build_object('from', CASE WHEN i % 2 = 0 THEN 'alice' ELSE 'bob' END,
                                               'to', CASE WHEN i % 2 = 0 THEN 'bob' ELSE 'alice' END,
                                               'amount', 1))
     FROM generate_series(1, 40) i" >/dev/null
wait_for "40 opposite transfers finish" 60 none_left bank
check_eq "all 40 succeeded, each on its first attempt" "40|40" \
	"$(q "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE attempts = 1)
	        FROM (SELECT * FROM fx.invocation WHERE fn = 'bank' ORDER BY id DESC LIMIT 40) s")"
check_eq "40 more log rows" $((nlog + 40)) "$(log_rows)"
check_eq "the total is the same" "$before" "$(q "SELECT sum(balance) FROM account")"
check_eq "alice and bob are where they were" "alice=93 bob=57" "$(balances)"
check "no deadlock in the server log" bash -c "! grep -q 'deadlock detected' '$FX_TEST_DIR/run/pg.log'"

# --- what a function's sql may do, and errors
# probe: runs {"sql": QUERY} or {"state": true} and answers the rows or the
# error reply it got
cat >"$FX_TEST_DIR/fn/probe/main.py" <<'EOF'
import fx

def probe(args, ctx):
    try:
        if "sql" in args:
            return {"rows": ctx.sql(args["sql"])}
        return {"state": ctx.state.get()}
    except fx.SQLError as e:
        return {"error": e.message, "code": e.sqlstate}

fx.run(probe)
EOF
probe_src=$(cat "$FX_TEST_DIR/fn/probe/main.py")
q "SELECT fx_deploy('probe', \$s\$$probe_src\$s\$, '{python3,main}', '{\"mode\": \"session\"}')" >/dev/null
q "SELECT fx_deploy('probe-bank', \$s\$$probe_src\$s\$, '{python3,main}',
                    '{\"mode\": \"session\", \"role\": \"bank_fn\"}')" >/dev/null
probe() { q "SELECT fx_call('$1', \$j\$$2\$j\$)"; }

json_eq "no role: sql gets the error reply 'sql needs a role' (42501)" \
	'{"error": "sql needs a role: deploy the function with the option \"role\" naming the role its sql runs as", "code": "42501"}' \
	"$(probe probe '{"sql": "SELECT 1"}')"
json_has "unkeyed: state gets 'state needs a keyed invocation' (55000)" \
	"$(probe probe '{"state": true}')" '{"code": "55000"}'
json_eq "with role bank_fn: sql runs as bank_fn" '{"rows": [{"current_user": "bank_fn"}]}' \
	"$(probe probe-bank '{"sql": "SELECT current_user"}')"
json_has "bank_fn cannot read fx's tables" \
	"$(probe probe-bank '{"sql": "SELECT count(*) FROM fx.invocation"}')" '{"code": "42501"}'
json_has "transaction control is refused (25000)" "$(probe probe-bank '{"sql": "COMMIT"}')" '{"code": "25000"}'

fails_with "deploy with a superuser role fails" 'role "postgres" is a superuser' \
	q "SELECT fx_deploy('bad', 'x', NULL, '{\"mode\": \"session\", \"role\": \"postgres\"}')"
fails_with "deploy with a missing role fails" 'role "nobody" does not exist' \
	q "SELECT fx_deploy('bad', 'x', NULL, '{\"mode\": \"session\", \"role\": \"nobody\"}')"
q "CREATE ROLE no_login" >/dev/null
fails_with "deploy with a role that cannot log in fails" 'role "no_login" cannot log in' \
	q "SELECT fx_deploy('bad', 'x', NULL, '{\"mode\": \"session\", \"role\": \"no_login\"}')"
check_eq "no function bad was made" 0 "$(q "SELECT count(*) FROM fx.function WHERE name = 'bad'")"

exit $FX_FAILED
