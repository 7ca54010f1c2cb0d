#!/usr/bin/env bash
# 97_dashboard.sh: the dashboard of fx worker --http, end to end.
#
# A function that logs a line is deployed and invoked (three calls succeed,
# one fails) and a workflow is left sleeping; then headless Chromium loads
# GET / and the checks read what a person would see in the rendered page:
# the function in the functions table, a succeeded and a failed invocation,
# the sleeping workflow, the worker, the throughput; the detail view
# (#inv=ID) with the log line and the result or the error; the sign-in form
# without a token or with a wrong one.  The /api JSON behind it is checked
# with curl (tokens, scoping to a token's functions, errors), and a
# screenshot is saved as build/check/dashboard.png.
source "$(dirname "$0")/../lib.sh"

chrome=$(command -v chromium || true)
if [ -z "$chrome" ]; then
	not_ok "chromium is not installed (scripts/deps.sh installs Debian's chromium)"
	exit 1
fi

fx_pg_start

mkdir -p "$FX_TEST_DIR/fn/greet" "$FX_TEST_DIR/fn/napper"
cat >"$FX_TEST_DIR/fn/greet/main" <<'EOF'
#!/bin/sh
args=$(cat)
echo "greet: hello from the dashboard test" >&2
case "$args" in
*fail*) echo "greet: asked to fail" >&2; exit 3 ;;
esac
echo '{"greeting": "hi dashboard"}'
EOF
chmod +x "$FX_TEST_DIR/fn/greet/main"
cat >"$FX_TEST_DIR/fn/napper/main.py" <<'EOF'
import fx

def handler(args, ctx):
    ctx.run("prepare", lambda: "ready")
    ctx.sleep(600)
    return "woke"

fx.run(handler)
EOF
check "deploy greet" fx_deploy greet "$FX_TEST_DIR/fn/greet" --timeout 10s --retries 0
check "deploy napper (a workflow)" \
	fx_deploy napper "$FX_TEST_DIR/fn/napper" --cmd "python3 main.py" --mode session

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
fx_worker_start A --http "127.0.0.1:$port"
wait_for "the worker serves HTTP on 127.0.0.1:$port" 15 curl -sf "$base/metrics"

secret=$(q "SELECT fx_token_create('dashboard')")
other=$(q "SELECT fx_token_create('other-only', ARRAY['other'])")
auth=(-H "Authorization: Bearer $secret")

# req [curl args]: the status code; the body in $FX_TEST_DIR/body, headers in .../headers.
req() {
	curl -s -o "$FX_TEST_DIR/body" -D "$FX_TEST_DIR/headers" -w '%{http_code}' "$@"
}
body() { cat "$FX_TEST_DIR/body"; }
header() { tr -d '\r' <"$FX_TEST_DIR/headers" | sed -n "s/^$1: //Ip" | head -1; }
# jq_py EXPR: evaluate a Python expression over the JSON body (as d).
jq_py() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)" <"$FX_TEST_DIR/body"; }

# --- invocations to show
for i in 1 2 3; do
	req "${auth[@]}" -d '{"n": '$i'}' "$base/fn/greet" >/dev/null
done
check_eq "a call that fails: 502" 502 "$(req "${auth[@]}" -d '{"fail": true}' "$base/fn/greet")"
ok_id=$(q "SELECT max(id) FROM fx.invocation WHERE fn = 'greet' AND status = 'succeeded'")
bad_id=$(q "SELECT max(id) FROM fx.invocation WHERE fn = 'greet' AND status = 'failed'")
check_eq "three greet calls succeeded, one failed" "succeeded:3 failed:1" \
	"$(q "SELECT string_agg(status || ':' || n, ' ' ORDER BY status)
	        FROM (SELECT status, count(*) AS n FROM fx.invocation WHERE fn = 'greet' GROUP BY 1) s")"
check_eq "greet's line is in its logs" "greet: hello from the dashboard test" \
	"$(q "SELECT line FROM fx_logs(${ok_id:-0})")"
wf=$(q "SELECT fx_invoke('napper', '{}')")
sleeping() { [ "$(q "SELECT count(*) FROM fx.step WHERE invocation_id = $wf AND kind = 'sleep'")" = 1 ]; }
wait_for "workflow $wf sleeps" 20 sleeping

# --- the page and its files
check_eq "GET /: 200" 200 "$(req "$base/")"
check "GET /: HTML" grep -q '^text/html' <<<"$(header Content-Type)"
check "GET /: the page" grep -q '<title>fx dashboard</title>' "$FX_TEST_DIR/body"
check "GET /: a Content-Security-Policy that allows no other origin" \
	grep -q "default-src 'none'; script-src 'self'" <<<"$(header Content-Security-Policy)"
check_eq "GET /dashboard.js: 200" 200 "$(req "$base/dashboard.js")"
check "GET /dashboard.js: JavaScript" grep -q '^text/javascript' <<<"$(header Content-Type)"
check_eq "GET /dashboard.css: 200" 200 "$(req "$base/dashboard.css")"
local_only() { ! curl -s "$base/" "$base/dashboard.js" "$base/dashboard.css" | grep -qE '(https?:)?//[a-z0-9]|url\('; }
check "the page loads nothing from elsewhere" local_only
check_eq "POST /: 405" 405 "$(req -d '' "$base/")"
# The checks below read the DOM, where a view is switched off with the
# hidden attribute: the style must not override it (display: grid would).
check "the style keeps hidden elements hidden" \
	grep -qE '^\[hidden\] \{ display: none !important; \}' "$FX_ROOT/worker/dashboard.css"

# --- the JSON behind it
check_eq "GET /api/functions without a token: 401" 401 "$(req "$base/api/functions")"
check_eq "with a wrong token: 401" 401 "$(req -H "Authorization: Bearer fx_nope" "$base/api/functions")"
check_eq "GET /api/functions: 200" 200 "$(req "${auth[@]}" "$base/api/functions")"
check_eq "/api/functions: greet, live version 1, simple, 4 invocations, 1 error" "greet 1 simple 4 1" \
	"$(jq_py '" ".join(str(f[k]) for f in d if f["name"] == "greet" for k in ("name", "version", "mode", "invocations", "errors"))')"
check_eq "GET /api/invocations?fn=greet&limit=2: the newest two" "$bad_id failed" \
	"$(req "${auth[@]}" "$base/api/invocations?fn=greet&limit=2" >/dev/null; jq_py '"%d %s" % (d[0]["id"], d[0]["status"]) if len(d) == 2 else d')"
check_eq "a bad limit: 400" 400 "$(req "${auth[@]}" "$base/api/invocations?limit=0")"
check_eq "GET /api/invocations/ID: 200" 200 "$(req "${auth[@]}" "$base/api/invocations/$ok_id")"
check_eq "/api/invocations/ID: status, result and the log line" \
	'succeeded|{"greeting": "hi dashboard"}|greet: hello from the dashboard test' \
	"$(jq_py '"|".join((d["status"], json.dumps(d["result"]), d["logs"][0]["line"]))')"
check_eq "GET /api/invocations/ID of none: 404" 404 "$(req "${auth[@]}" "$base/api/invocations/999999")"
check_eq "a token for other functions sees none of greet's invocations: 403" 403 \
	"$(req -H "Authorization: Bearer $other" "$base/api/invocations/$ok_id")"
req -H "Authorization: Bearer $other" "$base/api/functions" >/dev/null
check_eq "... nor greet in /api/functions" "[]" "$(body)"
req -H "Authorization: Bearer $other" "$base/api/invocations" >/dev/null
check_eq "... nor in /api/invocations" "[]" "$(body)"
check_eq "GET /api/workflows: 200" 200 "$(req "${auth[@]}" "$base/api/workflows")"
check_eq "/api/workflows: the sleeping workflow, waiting for its sleep" "$wf napper sleep" \
	"$(jq_py '" ".join("%d %s %s" % (w["id"], w["fn"], w["waiting"]) for w in d)')"
check_eq "GET /api/workers: 200" 200 "$(req "${auth[@]}" "$base/api/workers")"
check_eq "/api/workers: this worker, with its HTTP session, in database fx" "1 True fx" \
	"$(jq_py '"%d %s %s" % (len([w for w in d["workers"] if w["self"]]), all(w["http"] for w in d["workers"] if w["self"]), d["database"])')"
throughput() {
	[ "$(req "${auth[@]}" "$base/api/throughput?seconds=60")" = 200 ] &&
		[ "$(jq_py '"%d %s %s" % (len(d["succeeded"]), sum(d["succeeded"]) >= 3, sum(d["failed"]) >= 1)')" = "60 True True" ]
}
wait_for "/api/throughput: 60 seconds, with the 3 calls that succeeded and the failed one" 5 throughput
check_eq "a bad seconds: 400" 400 "$(req "${auth[@]}" "$base/api/throughput?seconds=100000")"
check_eq "an unknown /api path: 404" 404 "$(req "${auth[@]}" "$base/api/nosuch")"
check_eq "POST /api/functions: 405" 405 "$(req "${auth[@]}" -d '' "$base/api/functions")"
check_eq "the dashboard reads on a session of its own" 1 \
	"$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'dash/fx-%'")"
check_eq "that session is cut" t \
	"$(q "SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'dash/fx-%'")"
check_eq "the next /api request is answered after the reconnect: 200" 200 \
	"$(req --max-time 10 "${auth[@]}" "$base/api/functions")"

# --- what a person sees, in headless Chromium
# visible FILE text ID | rows ID | shown ID: the text of element ID that is
# not hidden (hidden elements, their children, scripts and styles are not
# seen), one line per block; the rows of table ID's body, cells joined by
# "|"; or whether ID is shown at all (exit status).
cat >"$FX_TEST_DIR/visible.py" <<'EOF'
import re, sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
BLOCK = {"div", "p", "tr", "li", "h1", "h2", "h3", "dt", "dd", "pre", "section", "header", "main", "table"}

class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack = []          # (tag, id, hidden)
        self.text = {}           # id -> text seen inside it
        self.rows = {}           # table id -> [[cell text]]
        self.shown = set()

    def hidden(self):
        return any(h for _, _, h in self.stack)

    def ids(self):
        return [i for _, i, _ in self.stack if i]

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        a = dict(attrs)
        self.stack.append((tag, a.get("id"), "hidden" in a or tag in ("head", "script", "style")))
        if self.hidden():
            return
        if a.get("id"):
            self.shown.add(a["id"])
        if tag in BLOCK:
            for i in self.ids():
                self.text[i] = self.text.get(i, "") + "\n"
        table = next((i for t, i, _ in reversed(self.stack) if t == "table"), None)
        in_body = any(t == "tbody" for t, _, _ in self.stack)
        if table and in_body and tag == "tr":
            self.rows.setdefault(table, []).append([])
        elif table and in_body and tag == "td" and self.rows.get(table):
            self.rows[table][-1].append("")

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self.hidden():
            return
        for i in self.ids():
            self.text[i] = self.text.get(i, "") + data
        table = next((i for t, i, _ in reversed(self.stack) if t == "table"), None)
        if table and any(t == "td" for t, _, _ in self.stack) and self.rows.get(table):
            self.rows[table][-1][-1] += data

p = Page()
p.feed(open(sys.argv[1], encoding="utf-8").read())
what, id_ = sys.argv[2], sys.argv[3]
if what == "shown":
    sys.exit(0 if id_ in p.shown else 1)
if what == "text":
    for line in p.text.get(id_, "").split("\n"):
        line = re.sub(r"\s+", " ", line).strip()
        if line:
            print(line)
else:
    for row in p.rows.get(id_, []):
        print("|".join(re.sub(r"\s+", " ", c).strip() for c in row))
EOF
# browse NAME URL: the DOM of URL after 5 s of the page's time, in NAME.html;
# the page's console (and Chromium's noise) in chromium.err.
browse() {
	timeout 90 "$chrome" --headless --no-sandbox --disable-gpu --user-data-dir="$FX_TEST_DIR/chromium" \
		--enable-logging=stderr --virtual-time-budget=5000 --dump-dom "$2" \
		>"$FX_TEST_DIR/$1.html" 2>>"$FX_TEST_DIR/chromium.err"
}
text() { python3 "$FX_TEST_DIR/visible.py" "$FX_TEST_DIR/$1.html" text "$2"; }
rows() { python3 "$FX_TEST_DIR/visible.py" "$FX_TEST_DIR/$1.html" rows "$2"; }
shown() { python3 "$FX_TEST_DIR/visible.py" "$FX_TEST_DIR/$1.html" shown "$2"; }
not_shown() { ! shown "$@"; }
# has TEXT STRING...: TEXT holds every STRING (fixed strings).
has() {
	local t=$1
	shift
	for s in "$@"; do grep -qF -- "$s" <<<"$t" || return 1; done
}

check "Chromium renders the dashboard" browse overview "$base/#token=$secret"
check "the overview is shown" shown overview overview
check "the sign-in form is not" not_shown overview login
check "the header names the worker and the database" \
	grep -qE '^worker fx-[^ ]+ · database fx · PostgreSQL ' <<<"$(text overview where)"
check "the header says it is live" grep -qx 'live' <<<"$(text overview conn)"
check "the functions table lists greet: live version 1, simple, 4 invocations, 1 error" \
	grep -qE '^greet\|1\|simple\|4\|1\|[0-9.]+ ms\|[0-9.]+ ms\|[0-9]+ s ago$' <<<"$(rows overview functions)"
check "and napper, a session function" grep -qE '^napper\|1\|session\|' <<<"$(rows overview functions)"
inv_rows=$(rows overview invocations)
check "the invocations table shows greet's call $ok_id: succeeded, with its duration" \
	grep -qE "^$ok_id\|greet:1\|succeeded\|1\|[0-9]+ s ago\|[0-9.]+ m?s\|(cold|prewarmed|warm)\|fx-" <<<"$inv_rows"
check "and the failed call $bad_id with its error" \
	grep -qE "^$bad_id\|greet:1\|failed\|1\|.*\|exit status 3" <<<"$inv_rows"
check_eq "four greet rows: 3 succeeded, 1 failed" "3 1" \
	"$(grep -c '|greet:1|succeeded|' <<<"$inv_rows") $(grep -c '|greet:1|failed|' <<<"$inv_rows")"
check "the running workflows table shows napper sleeping" \
	grep -qE "^$wf\|napper\|(queued|running)\|1 / 2\|sleep \(sleep\)\|sleep until " <<<"$(rows overview workflows)"
check "the workers table shows this worker, with HTTP" \
	grep -qE '^fx-[^|]+ \(this worker\)\|local\|[0-9]+ s ago\|[a-z ]*\|[0-9]+\|yes$' <<<"$(rows overview workers)"
check "the throughput says how many finished in the last 60 s, and that 1 failed" \
	grep -qE '/s in the last second · [4-9][0-9]* in the last 60 s, 1 failed' <<<"$(text overview rate)"
check "the throughput chart is drawn" grep -q '<canvas id="chart"' "$FX_TEST_DIR/overview.html"

check "Chromium renders the detail view of $ok_id (#inv=$ok_id)" browse detail "$base/#token=$secret&inv=$ok_id"
check "the detail view is shown" shown detail detail
check "the overview is not" not_shown detail overview
check "its title: the invocation, its function and status" \
	grep -qx "Invocation $ok_id · greet:1 succeeded" <<<"$(text detail detail-title)"
check "its log line" grep -qE '^[0-9:.]+ greet: hello from the dashboard test$' <<<"$(text detail detail-logs)"
check_eq "its result" "Result" "$(text detail detail-outcome-title)"
check "the result itself" grep -qF '"greeting": "hi dashboard"' <<<"$(text detail detail-outcome)"
check "its arguments" grep -qF '"n": 3' <<<"$(text detail detail-args)"
check "its fields: attempts, duration, start, worker" \
	has "$(text detail detail-fields)" Attempts "1 of 1" Duration Start Worker fx-

browse failed "$base/#token=$secret&inv=$bad_id"
check_eq "the failed invocation's detail shows its error" "Error" "$(text failed detail-outcome-title)"
check "the error itself" grep -q '^exit status 3' <<<"$(text failed detail-outcome)"
check "and both its log lines" \
	has "$(text failed detail-logs)" "greet: hello from the dashboard test" "greet: asked to fail"

browse wfdetail "$base/#token=$secret&inv=$wf"
check "the workflow's detail lists its steps" \
	grep -qE '^1\|prepare\|run\|yes\|.*"ready"' <<<"$(rows wfdetail detail-steps)"
check "and the sleep it waits in" grep -qE '^2\|sleep\|sleep\|waiting\|' <<<"$(rows wfdetail detail-steps)"

browse notoken "$base/"
check "without a token the page asks for one" shown notoken login
check "and shows no data" not_shown notoken overview
check_eq "no function rows" "" "$(rows notoken functions)"
browse badtoken "$base/#token=fx_wrong"
check "a wrong token is refused, visibly" grep -q '^The token was refused: invalid token.$' <<<"$(text badtoken login-error)"
browse scoped "$base/#token=$other"
scoped=$(text scoped overview)
check "a token for other functions shows none of greet" \
	eval 'has "$scoped" "No functions that this token may see." && ! has "$scoped" greet' 

check "no page had a JavaScript error" bash -c "! grep -E 'Uncaught|SyntaxError|TypeError|ReferenceError' '$FX_TEST_DIR/chromium.err'"

# --- screenshots, kept in build/check/
# screenshot NAME URL: a 1280x900 PNG of URL, checked and copied to build/check/NAME.png.
screenshot() {
	local shot=$FX_TEST_DIR/$1.png size
	timeout 90 "$chrome" --headless --no-sandbox --disable-gpu --user-data-dir="$FX_TEST_DIR/chromium" \
		--virtual-time-budget=5000 --hide-scrollbars --window-size=1280,900 --screenshot="$shot" \
		"$2" >>"$FX_TEST_DIR/chromium.err" 2>&1
	check "$1.png is a PNG" test "$(head -c 8 "$shot" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a
	size=$(stat -c %s "$shot" 2>/dev/null || echo 0)
	check "$1.png has more than 20 KB (a drawn page, not a blank one: $size bytes)" test "$size" -gt 20000
	mkdir -p "$FX_ROOT/build/check"
	cp "$shot" "$FX_ROOT/build/check/$1.png" 2>/dev/null && echo "# screenshot: $FX_ROOT/build/check/$1.png"
}
screenshot dashboard "$base/#token=$secret"
screenshot dashboard-invocation "$base/#token=$secret&inv=$bad_id"

check "the secret is not in the worker's log" bash -c "! grep -qF -- '$secret' '$FX_TEST_DIR/A.log'"
fx_worker_stop A
check "the worker stopped cleanly" bash -c "! kill -0 $(fx_worker_pid A) 2>/dev/null"

exit $FX_FAILED
