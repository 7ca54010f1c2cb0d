#!/usr/bin/env bash
# 95_http.sh: fx worker --http: function URLs behind bearer tokens (sync
# calls and their timeout, async invocations and their status), the status
# code of every kind of refusal, request limits, keep-alive and pipelining,
# a slow client that blocks no one, a call that outlives the loss of the
# server's database session, /metrics, and a secret that never reaches a log.
source "$(dirname "$0")/../lib.sh"


fx_pg_start

# mkfn NAME: a bundle directory whose main is read from stdin.
mkfn() {
	mkdir -p "$FX_TEST_DIR/fn/$1"
	cat >"$FX_TEST_DIR/fn/$1/main"
	chmod +x "$FX_TEST_DIR/fn/$1/main"
	echo "$FX_TEST_DIR/fn/$1"
}

fx_deploy echo "$(mkfn echo <<'EOF'
#!/bin/sh
cat
EOF
)" --timeout 10s
fx_deploy fail "$(mkfn fail <<'EOF'
#!/bin/sh
echo "fail: the disk is on fire" >&2
exit 3
EOF
)" --timeout 10s --retries 2
fx_deploy slow "$(mkfn slow <<'EOF'
#!/bin/sh
sleep 20
echo '"late"'
EOF
)" --timeout 30s --retries 0
fx_deploy nap "$(mkfn nap <<'EOF'
#!/bin/sh
sleep 2
cat
EOF
)" --timeout 10s --retries 0

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
fx_worker_start A --http "127.0.0.1:$port" --log-level debug
wait_for "the worker serves HTTP on 127.0.0.1:$port" 15 curl -sf "$base/metrics"

secret=$(q "SELECT fx_token_create('ci')")
other=$(q "SELECT fx_token_create('other-only', ARRAY['other'])")
check "fx_token_create returns a secret (fx_ and 64 hex digits)" \
	grep -qE '^fx_[0-9a-f]{64}$' <<<"$secret"
check_eq "only the secret's sha256 is stored" "1|0" \
	"$(q "SELECT count(*) FILTER (WHERE hash = encode(sha256('$secret'::bytea), 'hex')),
	             count(*) FILTER (WHERE hash = '$secret' OR hash LIKE '%$secret%')
	        FROM fx.token")"

# req [curl args]: the status code; the body in $FX_TEST_DIR/body, headers in .../headers.
req() {
	curl -s -o "$FX_TEST_DIR/body" -D "$FX_TEST_DIR/headers" -w '%{http_code}' "$@"
}
body() { cat "$FX_TEST_DIR/body"; }
header() { tr -d '\r' <"$FX_TEST_DIR/headers" | sed -n "s/^$1: //Ip" | head -1; }
auth=(-H "Authorization: Bearer $secret")
echo_ok=0

# --- synchronous calls
check_eq "POST /fn/echo: 200" 200 "$(req "${auth[@]}" -d '{"a": [1, 2]}' "$base/fn/echo")"
json_eq "POST /fn/echo: the result is the body" '{"a": [1, 2]}' "$(body)"
check_eq "POST /fn/echo: Content-Type is JSON" "application/json" "$(header Content-Type)"
echo_ok=$((echo_ok + 1))
check_eq "POST /fn/echo with no body: 200" 200 "$(req "${auth[@]}" -X POST "$base/fn/echo")"
json_eq "an empty body is {}" '{}' "$(body)"
echo_ok=$((echo_ok + 1))
check_eq "a body that is not JSON: 400" 400 "$(req "${auth[@]}" -d '{"a": ' "$base/fn/echo")"
json_has "400 says why" "$(body)" '{"error": "invalid input syntax for type json"}'
check_eq "an unknown function: 404" 404 "$(req "${auth[@]}" -d '{}' "$base/fn/nosuch")"
json_has "404 names it" "$(body)" '{"error": "function \"nosuch\" is not deployed"}'
check_eq "no token: 401" 401 "$(req -d '{}' "$base/fn/echo")"
check_eq "401 asks for a bearer token" 'Bearer realm="fx"' "$(header WWW-Authenticate)"
check_eq "a wrong token: 401" 401 "$(req -H "Authorization: Bearer fx_${secret:3:10}nope" -d '{}' "$base/fn/echo")"
check_eq "a token for another function: 403" 403 \
	"$(req -H "Authorization: Bearer $other" -d '{}' "$base/fn/echo")"
check_eq "a failing function: 502" 502 "$(req "${auth[@]}" -d '{}' "$base/fn/fail")"
json_has "502 carries its error" "$(body)" '{"error": "function \"fail\" failed: exit status 3"}'
fail_id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["invocation"])' <"$FX_TEST_DIR/body" 2>/dev/null)
check_eq "a synchronous call is not retried (as fx_call): failed after 1 attempt" "failed|1" \
	"$(q "SELECT status, attempts FROM fx.invocation WHERE id = ${fail_id:-0}")"

# --- timeout: 504 and the invocation is cancelled
t0=$SECONDS
check_eq "?timeout=1 on a slow function: 504" 504 "$(req "${auth[@]}" -d '{}' "$base/fn/slow?timeout=1")"
check "504 comes after about 1 s (took $((SECONDS - t0)) s)" test $((SECONDS - t0)) -le 4
slow_id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["invocation"])' <"$FX_TEST_DIR/body" 2>/dev/null)
check_eq "the timed-out invocation is cancelled" cancelled \
	"$(q "SELECT status FROM fx.invocation WHERE id = ${slow_id:-0}")"
check_eq "a bad timeout: 400" 400 "$(req "${auth[@]}" -d '{}' "$base/fn/echo?timeout=abc")"

# --- asynchronous invocations
check_eq "POST /fn/echo?async=1: 202" 202 "$(req "${auth[@]}" -d '{"later": true}' "$base/fn/echo?async=1")"
loc=$(header Location)
id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["invocation"])' <"$FX_TEST_DIR/body" 2>/dev/null)
check_eq "202 has Location: /invocations/ID" "/invocations/${id:-?}" "$loc"
echo_ok=$((echo_ok + 1))
async_done() {
	[ "$(req "${auth[@]}" "$base$loc")" = 200 ] && grep -q '"status": "succeeded"' "$FX_TEST_DIR/body"
}
wait_for "GET /invocations/ID: succeeded" 10 async_done
json_has "GET /invocations/ID: its fields" "$(body)" "{\"id\": ${id:-0}, \"fn\": \"echo\", \"result\": {\"later\": true}, \"error\": null}"
check "GET /invocations/ID: created_at and finished_at" \
	python3 -c 'import json, sys; d = json.load(sys.stdin); sys.exit(not (d["created_at"] and d["finished_at"]))' \
	<"$FX_TEST_DIR/body"
check_eq "GET /invocations/ID of none: 404" 404 "$(req "${auth[@]}" "$base/invocations/999999")"
check_eq "GET /invocations/ID without a token: 401" 401 "$(req "$base$loc")"
check_eq "GET /invocations/ID with a token for another function: 403" 403 \
	"$(req -H "Authorization: Bearer $other" "$base$loc")"

# --- methods, paths, limits
check_eq "GET /fn/echo: 405" 405 "$(req "${auth[@]}" "$base/fn/echo")"
check_eq "405 says Allow: POST" POST "$(header Allow)"
check_eq "POST /metrics: 405" 405 "$(req -d '' "$base/metrics")"
check_eq "an unknown path: 404" 404 "$(req "${auth[@]}" "$base/nowhere")"
head -c $((7 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$FX_TEST_DIR/big.json"
check_eq "a 7 MB body (over fx.max_payload_size): 413" 413 \
	"$(req "${auth[@]}" --data-binary @"$FX_TEST_DIR/big.json" "$base/fn/echo")"
check_eq "the same without Expect: 100-continue: 413" 413 \
	"$(req "${auth[@]}" -H 'Expect:' --data-binary @"$FX_TEST_DIR/big.json" "$base/fn/echo")"
check_eq "20 KiB of headers: 431" 431 \
	"$(req "${auth[@]}" -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' x)" -d '{}' "$base/fn/echo")"

# --- keep-alive: two requests on one connection
out=$(curl -sv --max-time 10 -o /dev/null -o /dev/null "${auth[@]}" -d '1' "$base/fn/echo" \
	--next "${auth[@]}" -d '2' "$base/fn/echo" 2>&1)
check_eq "keep-alive: both requests answered 200" 2 "$(grep -c '^< HTTP/1.1 200' <<<"$out")"
check "keep-alive: the second re-used the connection" grep -qi 're-using existing connection' <<<"$out"
echo_ok=$((echo_ok + 2))

# --- pipelining: two requests in one write, two answers in order
pipelined=$(python3 - "$port" "$secret" <<'EOF'
import socket, sys
port, secret = int(sys.argv[1]), sys.argv[2]
def request(body):
    return ("POST /fn/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Length: %d\r\n\r\n%s" % (secret, len(body), body)).encode()
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.sendall(request('"first"') + request('"second"'))
data, bodies = b"", []
while len(bodies) < 2:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
    while b"\r\n\r\n" in data:
        head, rest = data.split(b"\r\n\r\n", 1)
        length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
        if len(rest) < length:
            break
        bodies.append(head.split(b" ")[1].decode() + " " + rest[:length].decode())
        data = rest[length:]
print("|".join(bodies))
EOF
)
check_eq "pipelining: two answers, in order" '200 "first"|200 "second"' "$pipelined"
echo_ok=$((echo_ok + 2))

# --- a slow client that never finishes its headers blocks no one
exec 7<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /fn/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bear' >&7
t0=$SECONDS
check_eq "while a client holds half a request, another is answered" 200 \
	"$(req --max-time 10 "${auth[@]}" -d '"meanwhile"' "$base/fn/echo")"
check "and at once ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -le 3
echo_ok=$((echo_ok + 1))
exec 7>&-

# --- the server's database session is lost while a call waits: it still ends
req "${auth[@]}" -d '"through"' "$base/fn/nap" >"$FX_TEST_DIR/nap.code" &
nap_pid=$!
nap_runs() { [ "$(q "SELECT status FROM fx.invocation WHERE fn = 'nap' AND args = '\"through\"'")" = running ]; }
wait_for "a call waits for its invocation" 10 nap_runs
check_eq "the HTTP session is cut mid-call" t \
	"$(q "SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'http/fx-%'")"
wait "$nap_pid"
check_eq "the call is answered after the reconnect: 200" 200 "$(cat "$FX_TEST_DIR/nap.code")"
json_eq "with its result" '"through"' "$(body)"

# --- a client that leaves mid-call, and many at once
check_eq "a client that gives up mid-call" 000 "$(req --max-time 0.5 "${auth[@]}" -d '"gone"' "$base/fn/nap")"
burst() {
	seq 1 40 | xargs -P 10 -I{} curl -s -o /dev/null -w '%{http_code}\n' \
		-H "Authorization: Bearer $secret" -d '{}' "$base/fn/echo" | sort | uniq -c | awk '{print $2 ":" $1}'
}
check_eq "40 calls, 10 at a time: all 200" "200:40" "$(burst)"
echo_ok=$((echo_ok + 40))
sleep 2	# the nap the client left ends meanwhile

# --- metrics
check_eq "GET /metrics: 200" 200 "$(req "$base/metrics")"
check "GET /metrics: Prometheus text format" grep -q 'text/plain; version=0.0.4' <<<"$(header Content-Type)"
m=$(body)
check_eq "fx_invocations_total counts echo's attempts" \
	"fx_invocations_total{fn=\"echo\",outcome=\"succeeded\"} $echo_ok" \
	"$(grep '^fx_invocations_total{fn="echo",outcome="succeeded"}' <<<"$m")"
check_eq "fx_invocations_total counts the failed one" \
	'fx_invocations_total{fn="fail",outcome="failed"} 1' \
	"$(grep '^fx_invocations_total{fn="fail",outcome="failed"}' <<<"$m")"
check_eq "the duration histogram: +Inf bucket = count = $echo_ok" \
	"fx_invocation_duration_seconds_bucket{fn=\"echo\",le=\"+Inf\"} $echo_ok|fx_invocation_duration_seconds_count{fn=\"echo\"} $echo_ok" \
	"$(grep -E '^fx_invocation_duration_seconds_(bucket\{fn="echo",le="\+Inf"\}|count\{fn="echo"\})' <<<"$m" | paste -sd'|')"
check "the histogram's buckets are cumulative" python3 -c '
import re, sys
v = [int(x) for x in re.findall(r"^fx_invocation_duration_seconds_bucket\{fn=\"echo\",le=\"[^\"]+\"\} (\d+)$", sys.stdin.read(), re.M)]
sys.exit(not (len(v) == 11 and v == sorted(v)))' <<<"$m"
check "# TYPE fx_invocation_duration_seconds histogram" grep -q '^# TYPE fx_invocation_duration_seconds histogram$' <<<"$m"
check "fx_cold_starts_total for echo" grep -qE '^fx_cold_starts_total\{fn="echo"\} [1-9]' <<<"$m"
check "gauge fx_running" grep -qE '^fx_running [0-9]+$' <<<"$m"
check "gauge fx_warm_sandboxes" grep -qE '^fx_warm_sandboxes [0-9]+$' <<<"$m"
q "SELECT fx_invoke('echo', '1', delay => '1 hour'), fx_invoke('echo', '2', delay => '1 hour')" >/dev/null
req "$base/metrics" >/dev/null
check_eq "fx_queue_depth from the database" "fx_queue_depth 2" "$(grep '^fx_queue_depth ' "$FX_TEST_DIR/body")"

# --- revoking
check_eq "fx_token_revoke" t "$(q "SELECT fx_token_revoke('ci')")"
check_eq "a revoked token: 401" 401 "$(req "${auth[@]}" -d '{}' "$base/fn/echo")"
check_eq "fx_token_create is for administrators only" f \
	"$(q "SELECT has_function_privilege('public', 'fx_token_create(text, text[])', 'EXECUTE')" 2>&1 || true)"

# --- the secret stays secret
check "the secret is not in the worker's log" bash -c "! grep -qF -- '$secret' '$FX_TEST_DIR/A.log'"
check "nor in the server's log" bash -c "! grep -qF -- '$secret' '$FX_TEST_DIR/run/pg.log'"

# --- an address in use: the worker says so and exits
"$FX_BIN" worker --cache "$FX_TEST_DIR/cache" --http "127.0.0.1:$port" >"$FX_TEST_DIR/B.log" 2>&1
check_eq "a worker whose --http address is taken exits 1" 1 "$?"
check "and says why" grep -q "cannot listen on 127.0.0.1:$port: address already in use" "$FX_TEST_DIR/B.log"

fx_worker_stop A
check "the worker stopped cleanly" bash -c "! kill -0 $(fx_worker_pid A) 2>/dev/null"

exit $FX_FAILED
