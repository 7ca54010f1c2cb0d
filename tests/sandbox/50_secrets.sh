#!/usr/bin/env bash
# 50_secrets.sh: secrets reach the functions they are granted to as files
# /run/secrets/NAME (0400, the function's uid, on a read-only mount), never
# on a command line or in an environment; the worker redacts them from the
# logs, errors and details it stores and from its own log; a new value
# reaches the next invocation of a warm session function, a revoked one is
# gone.  And the worker's credentials: --db refuses a password, --db-file
# refuses one that others can read.
source "$(dirname "$0")/../lib.sh"

fx_pg_start

tag=$$$RANDOM
value="s3cr3t-$tag-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
value2="n3w-$tag-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

fx_worker_start A --log-level debug

# --- delivery: a granted function reads its file --------------------------
dir=$(mkfn reader main.py <<'EOF'
import hashlib, json, os, stat, sys

out = {"uid": os.getuid(), "gid": os.getgid()}
try:
    with open("/run/secrets/api_key", "rb") as f:
        v = f.read()
    st = os.stat("/run/secrets/api_key")
    d = os.stat("/run/secrets")
    out.update(len=len(v), sha256=hashlib.sha256(v).hexdigest(),
               mode=oct(stat.S_IMODE(st.st_mode)), owner=st.st_uid,
               dir_mode=oct(stat.S_IMODE(d.st_mode)), dir_owner=d.st_uid,
               files=sorted(os.listdir("/run/secrets")))
    # read-only: no new file, no chmod, no writing the old one
    refused = []
    for what, fn in (("create", lambda: open("/run/secrets/new", "w")),
                     ("write", lambda: open("/run/secrets/api_key", "w")),
                     ("chmod", lambda: os.chmod("/run/secrets/api_key", 0o644)),
                     ("remove", lambda: os.unlink("/run/secrets/api_key"))):
        try:
            fn()
        except OSError:
            refused.append(what)
    out["refused"] = refused
    with open("/proc/self/mountinfo") as f:
        opts = [l.split()[5] for l in f if l.split()[4] == "/run"]
    out["run_mount"] = opts[0] if opts else ""
    # the value is on no command line and in no environment in the sandbox
    seen = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for what in ("cmdline", "environ"):
                try:
                    with open(f"/proc/{pid}/{what}", "rb") as f:
                        if v in f.read():
                            seen.append(f"{pid}/{what}")
                except OSError:
                    pass
    out["seen"] = seen
    out["in_env"] = any(v.decode() in e for e in os.environ.values())
except OSError as e:
    out["error"] = str(e)
print(json.dumps(out))
EOF
)
fx_deploy reader "$dir" --cmd "python3 main.py" --timeout 10s --retries 0
q "SELECT fx_secret_set('api_key', '$value')" >/dev/null
q "SELECT fx_secret_grant('api_key', 'reader')" >/dev/null

id=$(run reader)
check_eq "delivery: the function ran" succeeded "$(col "$id" status)"
check_eq "delivery: /run/secrets/api_key holds the value (length, sha256)" \
	"${#value} $(sha "$value")" "$(res "$id" len) $(res "$id" sha256)"
check_eq "delivery: the file is 0400, owned by the function's uid (1000)" \
	"0o400 1000 1000" "$(res "$id" mode) $(res "$id" owner) $(res "$id" uid)"
check_eq "delivery: /run/secrets is 0500, the function's, and holds only the granted secret" \
	'0o500 1000 ["api_key"]' "$(res "$id" dir_mode) $(res "$id" dir_owner) $(q "SELECT result->'files' FROM fx.invocation WHERE id = $id")"
check_eq "delivery: creating, writing, chmod and removing are refused" \
	'["create", "write", "chmod", "remove"]' "$(q "SELECT result->'refused' FROM fx.invocation WHERE id = $id")"
check "delivery: /run is mounted read-only ($(res "$id" run_mount))" \
	grep -q '^ro,' <<<"$(res "$id" run_mount)"
check_eq "delivery: the value is in no cmdline or environ inside the sandbox" \
	'[] false' "$(q "SELECT result->'seen' FROM fx.invocation WHERE id = $id") $(res "$id" in_env)"

# --- a function without the grant has no such file ------------------------
dir=$(mkfn other main <<'EOF'
#!/bin/sh
cat >/dev/null
if [ -e /run/secrets/api_key ]; then f=true; else f=false; fi
if [ -e /run/secrets ]; then d=true; else d=false; fi
echo "{\"file\": $f, \"dir\": $d}"
EOF
)
fx_deploy other "$dir" --timeout 10s --retries 0
id=$(run other)
check_eq "no grant: no /run/secrets/api_key, no /run/secrets" \
	"succeeded false false" "$(col "$id" status) $(res "$id" file) $(res "$id" dir)"

# --- redaction: printed on stdout and stderr, in the error ----------------
# Simple mode: stderr is the log, and stdout that is not JSON is quoted in
# the error's detail.
dir=$(mkfn leaky main <<'EOF'
#!/bin/sh
cat >/dev/null
v=$(cat /run/secrets/api_key)
echo "stdout says $v here"
echo "stderr says $v here" >&2
# a line longer than the log's line buffer, the value across its cut
awk -v v="$v" 'BEGIN { s = ""; for (i = 0; i < 8180; i++) s = s "x"; print s v "tail" }' >&2
EOF
)
fx_deploy leaky "$dir" --timeout 10s --retries 0
q "SELECT fx_secret_grant('api_key', 'leaky')" >/dev/null
dir=$(mkfn leaky-py main.py <<'EOF'
import sys
import fx

def handler(args, ctx):
    v = open("/run/secrets/api_key").read()
    print("session stdout " + v, flush=True)
    print("session stderr " + v, file=sys.stderr)
    raise fx.Error("cannot log in with " + v, detail="the key was " + v, retryable=False)

fx.run(handler)
EOF
)
fx_deploy leaky-py "$dir" --cmd "python3 main.py" --mode session --timeout 10s --retries 0
q "SELECT fx_secret_grant('api_key', 'leaky-py')" >/dev/null

id1=$(run leaky)
id2=$(run leaky-py)
check "redaction: both failed" grep -qxE "(failed|dead) (failed|dead)" <<<"$(col "$id1" status) $(col "$id2" status)"
stored=$(q "SELECT string_agg(line, E'\n') FROM fx.log WHERE invocation_id IN ($id1, $id2)")
stored+=$'\n'$(q "SELECT concat_ws(E'\n', error, error_detail) FROM fx.invocation WHERE id IN ($id1, $id2)")
stored+=$'\n'$("$FX_BIN" logs "$id1" 2>&1; "$FX_BIN" logs "$id2" 2>&1)
stored+=$'\n'$(q "SELECT string_agg(line, E'\n') FROM fx_logs($id1)")
check "redaction: the value is nowhere in the logs, errors and details stored" \
	bash -c '! grep -qF -- "$1" <<<"$2"' _ "$value" "$stored"
check "redaction: nor its first half (the long line's cut)" \
	bash -c '! grep -qF -- "${1:0:$(( ${#1} / 2 ))}" <<<"$2"' _ "$value" "$stored"
check_eq "redaction: the stderr line says [redacted]" "stderr says [redacted] here" \
	"$(q "SELECT string_agg(line, '|') FROM fx.log WHERE invocation_id = $id1 AND line LIKE '%says%'")"
check "redaction: the long line's pieces say [redacted]" \
	test "$(q "SELECT count(*) FROM fx.log WHERE invocation_id = $id1 AND line LIKE '%x[redacted]%' OR invocation_id = $id1 AND line LIKE '[redacted]tail%'")" -ge 1
check_eq "redaction: the session function's error and detail" \
	"cannot log in with [redacted]|the key was [redacted]" \
	"$(q "SELECT error || '|' || error_detail FROM fx.invocation WHERE id = $id2")"
check_eq "redaction: the session function's stdout and stderr lines" \
	"stdout session stdout [redacted]|stderr session stderr [redacted]" \
	"$(q "SELECT string_agg(stream || ' ' || line, '|' ORDER BY stream DESC) FROM fx.log WHERE invocation_id = $id2 AND line LIKE 'session%'")"
check "redaction: the simple function's error detail (its stdout) says [redacted]" \
	grep -qF "stdout says [redacted] here" <<<"$(col "$id1" error_detail)"

# --- a warm session function gets a new value; a revoked one is gone -----
dir=$(mkfn warm main.py <<'EOF'
import hashlib, os
import fx

def handler(args, ctx):
    try:
        with open("/run/secrets/api_key", "rb") as f:
            return {"sha256": hashlib.sha256(f.read()).hexdigest(), "pid": os.getpid()}
    except OSError:
        return {"sha256": None, "pid": os.getpid()}

fx.run(handler)
EOF
)
fx_deploy warm "$dir" --cmd "python3 main.py" --mode session --timeout 10s --retries 0
q "SELECT fx_secret_grant('api_key', 'warm')" >/dev/null
a=$(run warm)
b=$(run warm)
check_eq "warm: the second invocation reused the session process" \
	"warm $(res "$a" pid)" "$(col "$b" start_kind) $(res "$b" pid)"
check_eq "warm: it reads the value" "$(sha "$value")" "$(res "$b" sha256)"

# While it is warm: its value is on no command line and in no environment
# on the host either (every process, the worker and the sandbox included).
# (The pattern is read from a file: grep's own command line must not hold it.)
printf '%s\n' "$value" >"$FX_TEST_DIR/pattern"
host_seen=$(grep -lsF -f "$FX_TEST_DIR/pattern" /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null | tr '\n' ' ')
check_eq "host: the value is in no process's cmdline or environ" "" "$host_seen"

q "SELECT fx_secret_set('api_key', '$value2')" >/dev/null
c=$(run warm)
check_eq "update: the next invocation reads the new value" "$(sha "$value2")" "$(res "$c" sha256)"
check "update: in a new session process" test "$(res "$c" pid)" != "$(res "$b" pid)" -o \
	"$(col "$c" start_kind)" != warm
q "SELECT fx_secret_revoke('api_key', 'warm')" >/dev/null
d=$(run warm)
check_eq "revoke: the next invocation has no file" "succeeded " "$(col "$d" status) $(res "$d" sha256)"

# --- the worker's own log ------------------------------------------------
check "worker log: it ran at debug level (lines to search)" grep -q "fx debug" "$FX_TEST_DIR/A.log"
check "worker log: its line about the failed attempt says [redacted]" \
	grep -qF "cannot log in with [redacted]" "$FX_TEST_DIR/A.log"
check "worker log: neither value appears in it" \
	bash -c '! grep -qF -e "$1" -e "$2" "$3"' _ "$value" "$value2" "$FX_TEST_DIR/A.log"

# --- the worker's credentials ------------------------------------------------
out=$("$FX_BIN" worker --db "host=$FX_TEST_DIR/run dbname=fx password=x$tag" 2>&1)
rc=$?
check_eq "--db with password=: exit status 2" 2 "$rc"
check "--db with password=: says why, and where a password goes" \
	bash -c 'grep -q "must not contain a password" <<<"$1" && grep -q PGPASSWORD <<<"$1" && grep -q -- --db-file <<<"$1"' _ "$out"
out=$("$FX_BIN" worker --db "postgresql://postgres:x$tag@localhost/fx" 2>&1)
check_eq "--db with a URI user:password@: exit status 2" 2 "$?"
out=$("$FX_BIN" ls --db "host=$FX_TEST_DIR/run dbname=fx password=x$tag" 2>&1)
check_eq "fx ls --db with a password: exit status 2" 2 "$?"

dbfile=$FX_TEST_DIR/db.conf
echo "host=$FX_TEST_DIR/run port=5432 dbname=fx user=postgres password=x$tag" >"$dbfile"
chmod 644 "$dbfile"
out=$("$FX_BIN" worker --db-file "$dbfile" --cache "$FX_TEST_DIR/cache2" 2>&1)
rc=$?
check_eq "--db-file 0644 with a password: refused, exit status 2" 2 "$rc"
check "--db-file 0644: says why" grep -q "other users can read it" <<<"$out"
chmod 600 "$dbfile"
"$FX_BIN" worker --db-file "$dbfile" --cache "$FX_TEST_DIR/cache" --poll-ms 200 \
	--prewarm 0 >>"$FX_TEST_DIR/B.log" 2>&1 &
FX_PIDS+=("$!")
FX_WORKER_B=$!
connected_b() { [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fx-%'")" -ge 2 ]; }
wait_for "--db-file 0600 with a password: the worker connects" 20 connected_b
fx_worker_stop A
check_eq "--db-file: that worker serves" '{"dir": false, "file": false}' \
	"$(q "SELECT fx_call('other', '{}', '20s')" 2>&1)"
printf 'password=x%s\n' "$tag" >"$FX_TEST_DIR/pattern"
check "--db-file: the password is on no command line" \
	bash -c '! grep -qsF -f "$1" /proc/[0-9]*/cmdline' _ "$FX_TEST_DIR/pattern"
