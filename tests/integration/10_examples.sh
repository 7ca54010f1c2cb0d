#!/usr/bin/env bash
# 10_examples.sh: the examples deploy and run as examples/README.md says,
# from the CLI and from SQL, the CLI reports bad input clearly, and functions
# run sandboxed (uid 1000, hostname fx, a root of their own, /fn read-only).
source "$(dirname "$0")/../lib.sh"


fx_pg_start

# cli_fails DESC PATTERN CMD...: CMD exits non-zero, prints nothing on stdout
# and PATTERN (extended regexp, case-insensitive) on stderr.
cli_fails() {
	local desc=$1 pat=$2
	shift 2
	local out err rc
	out=$("$@" 2>"$FX_TEST_DIR/err.txt")
	rc=$?
	err=$(cat "$FX_TEST_DIR/err.txt")
	if [ $rc -ne 0 ] && [ -z "$out" ] && grep -qiE "$pat" <<<"$err"; then
		ok "$desc (exit $rc: $(head -n1 <<<"$err"))"
	else
		not_ok "$desc (exit $rc, stdout '$out', stderr '$err', wanted /$pat/)"
	fi
}

ex=$FX_ROOT/examples
make -s -C "$ex/hello-c" >/dev/null || not_ok "make -C examples/hello-c"
fx_worker_start A

check "deploy hello (simple)" fx_deploy hello "$ex/hello" --cmd ./main
check "deploy hello-c (session)" fx_deploy hello-c "$ex/hello-c" --cmd ./hello --mode session
check "deploy hello-py (session)" fx_deploy hello-py "$ex/hello-py" --cmd "python3 main.py" --mode session

# fx invoke, each example
out=$("$FX_BIN" invoke hello '{"name":"x"}')
json_eq "fx invoke hello" '{"greeting": "hello x"}' "$out"
out=$("$FX_BIN" invoke hello-c '{"name":"x"}')
json_has "fx invoke hello-c" "$out" '{"greeting": "hello x", "lang": "c"}'
inv=$(q "SELECT max(id) FROM fx.invocation WHERE fn = 'hello-c'")
json_has "hello-c result carries its invocation id" "$out" "{\"invocation\": $inv}"
out=$("$FX_BIN" invoke hello-py '{"name":"x"}')
json_eq "fx invoke hello-py: first call of a cold process" \
	'{"greeting": "hello x", "lang": "python", "count": 1}' "$out"
out=$("$FX_BIN" invoke hello-py '{"name":"y"}')
json_eq "fx invoke hello-py again: served warm by the same process (count 2)" \
	'{"greeting": "hello y", "lang": "python", "count": 2}' "$out"
out=$("$FX_BIN" invoke hello-c '{"name":"z"}')
json_has "fx invoke hello-c again (warm)" "$out" '{"greeting": "hello z", "lang": "c"}'

# from SQL
out=$(q "SELECT fx_call('hello', '{\"name\":\"x\"}')")
check_eq "SELECT fx_call('hello', ...)" '{"greeting": "hello x"}' "$out"
out=$(q "SELECT fx_call('hello-c', '{\"name\":\"sql\"}')")
json_has "SELECT fx_call('hello-c', ...)" "$out" '{"greeting": "hello sql"}'
id=$(q "SELECT fx_invoke('hello', '{\"name\":\"async\"}')")
out=$(q "SELECT fx_result($id, '5s')")
json_eq "fx_invoke + fx_result(id, '5s')" '{"greeting": "hello async"}' "$out"
check_eq "fx_status of it" succeeded "$(q "SELECT fx_status($id)")"
id2=$("$FX_BIN" invoke hello '{"name":"cli-async"}' --async)
out=$(q "SELECT fx_result(${id2:-0}, '5s')")
json_eq "fx invoke --async prints an id whose result comes" '{"greeting": "hello cli-async"}' "$out"

# logs
out=$("$FX_BIN" logs "$id")
if grep -q "stderr: hello: invocation $id attempt 1" <<<"$out"; then
	ok "fx logs shows the stderr line"
else
	not_ok "fx logs shows the stderr line (got '$out')"
fi
check_eq "fx_logs has exactly that line" "1|stderr|hello: invocation $id attempt 1" \
	"$(q "SELECT attempt, stream, line FROM fx_logs($id)" | tr '\n' ';' | sed 's/;$//')"

# ls and ps
out=$("$FX_BIN" ls)
for f in hello hello-c hello-py; do
	if grep -qE "^$f +1 " <<<"$out"; then ok "fx ls lists $f"; else not_ok "fx ls lists $f (got '$out')"; fi
done
check_eq "fx ls lists three functions" 3 "$(tail -n +2 <<<"$out" | grep -c .)"
out=$("$FX_BIN" ps)
if grep -qE "^$id +hello:1 +succeeded +1 " <<<"$out"; then
	ok "fx ps shows succeeded rows"
else
	not_ok "fx ps shows succeeded rows (got '$out')"
fi

# CLI errors
cli_fails "unknown function" 'nope.*(not deployed|does not exist|unknown)' \
	"$FX_BIN" invoke nope '{}'
cli_fails "invalid JSON args" 'json' "$FX_BIN" invoke hello '{bad'
cli_fails "invalid JSON args with --async" 'json' "$FX_BIN" invoke hello '{bad' --async
cli_fails "deploy of a missing DIR" "$FX_TEST_DIR/missing" \
	"$FX_BIN" deploy ghost "$FX_TEST_DIR/missing" --cmd ./main
cli_fails "unknown option" '(unrecognized|unknown).*bogus|bogus.*(unrecognized|unknown)' \
	"$FX_BIN" invoke hello --bogus
cli_fails "unknown option to deploy" '(unrecognized|unknown).*frobnicate' \
	"$FX_BIN" deploy hello "$ex/hello" --frobnicate
cli_fails "fx invoke hello-c '{\"fail\":true}' reports the function's error" 'asked to fail' \
	"$FX_BIN" invoke hello-c '{"fail":true}'
check_eq "nothing half-written: no function ghost" 0 "$(q "SELECT count(*) FROM fx.function WHERE name = 'ghost'")"
check_eq "the failed hello-c invocation is failed after 1 attempt" "failed|1" \
	"$(q "SELECT status, attempts FROM fx.invocation WHERE fn = 'hello-c' ORDER BY id DESC LIMIT 1")"

# fx_call of a failing function raises SQLSTATE 38000
err=$("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -c '\set VERBOSITY verbose' \
	-c "SELECT fx_call('hello-c', '{\"fail\":true}')" 2>&1)
if grep -q "ERROR:  38000: .*asked to fail" <<<"$err"; then
	ok "fx_call of a failing function raises SQLSTATE 38000 with its message"
else
	not_ok "fx_call of a failing function raises SQLSTATE 38000 (got '$err')"
fi
out=$(q "DO \$\$
BEGIN
	PERFORM fx_call('hello-py', '{\"fail\":true}');
	RAISE NOTICE 'no error';
EXCEPTION WHEN SQLSTATE '38000' THEN
	RAISE NOTICE 'caught %', SQLERRM;
END \$\$" 2>&1)
if grep -q "caught .*asked to fail" <<<"$out"; then
	ok "a DO block catches SQLSTATE 38000 from fx_call('hello-py', fail)"
else
	not_ok "a DO block catches SQLSTATE 38000 from fx_call('hello-py', fail) (got '$out')"
fi
out=$(q "SELECT fx_call('hello-py', '{\"name\":\"after\"}')")
json_has "hello-py still serves after a failed invocation" "$out" '{"greeting": "hello after"}'

# the examples run sandboxed: a simple-mode probe deployed the same way
# reports what it sees
probe=$(mktemp -d "$FX_TEST_DIR/probe.XXXXXX")
cat >"$probe/main" <<'EOF'
#!/bin/sh
if echo x >/fn/written 2>/dev/null; then fn_w=yes; else fn_w=no; fi
if echo x >/tmp/written 2>/dev/null; then tmp_w=yes; else tmp_w=no; fi
printf '{"uid": "%s", "hostname": "%s", "root": " %s ", "fn_write": "%s", "tmp_write": "%s"}\n' \
	"$(id -u)" "$(hostname)" "$(ls / | tr '\n' ' ')" "$fn_w" "$tmp_w"
EOF
chmod +x "$probe/main"
check "deploy probe (simple) from a temp dir" fx_deploy probe "$probe" --cmd ./main
out=$("$FX_BIN" invoke probe '{}')
echo "# probe: $out"
pr() { q "SELECT \$j\$$out\$j\$::jsonb ->> '$1'" 2>/dev/null; }
check_eq "sandbox: id -u is 1000" 1000 "$(pr uid)"
check_eq "sandbox: hostname is fx" fx "$(pr hostname)"
root=$(pr root)
if grep -q ' usr ' <<<"$root" && grep -q ' fn ' <<<"$root" && ! grep -qE ' (home|root) ' <<<"$root"; then
	ok "sandbox: ls / has usr and fn, no home or root ($root)"
else
	not_ok "sandbox: ls / has usr and fn, no home or root (got '$root')"
fi
check_eq "sandbox: writing to /fn fails (and to /tmp works)" "no|yes" "$(pr fn_write)|$(pr tmp_write)"
check "sandbox: nothing appeared in the deployed directory" test ! -e "$probe/written"

exit $FX_FAILED
