#!/usr/bin/env bash
# 40_protocol.sh: what a function sends back, against the worker.
#
# Strict JSON: text that cJSON takes but PostgreSQL's jsonb refuses (01,
# raw control bytes, \u0000, an unpaired surrogate, invalid UTF-8, a number
# numeric cannot hold, a second value after the first) fails only the
# attempt that sent it, with a reason, whether it is a simple-mode stdout,
# a session result, a state.set value or a sql parameter; the attempts
# finished with it (one fx.cycle batch) succeed.  Log lines that are not
# UTF-8 are kept, made valid.
#
# Hostile protocol peers (session mode): an endless stream of messages that
# are not a result (unknown kinds without a "seq", requests whose replies
# it never reads, requests it never waits for, requests it does wait for),
# a function that never answers, a socket closed in the middle of a
# message's length or body, a frame just over the limit and one at it, and
# gigabytes on stdout.  Each fails its attempt with a reason naming what
# happened, a well-behaved invocation running at the same time on the same
# worker succeeds, the worker's peak memory (VmHWM) stays bounded, and the
# worker serves a normal call right after.
source "$(dirname "$0")/../lib.sh"

fx_pg_start

fx_worker_start A --concurrency 24
fx_deploy_ok

dir=$FX_TEST_DIR/fn
mkdir -p "$dir/peer"

# peer/main.py MODE: a session function speaking the protocol by hand.
cat >"$dir/peer/main.py" <<'EOF'
import json, os, struct, sys, time

fd = int(os.environ["FX_SOCKET_FD"])
mode = sys.argv[1]


def frame(body):
    return struct.pack(">I", len(body)) + body


def send(body):
    data = frame(body)
    while data:
        data = data[os.write(fd, data):]


def read(n):
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def recv():
    (n,) = struct.unpack(">I", read(4))
    return json.loads(read(n))


def until(at):
    time.sleep(max(0.0, at - time.time()))


send(b'{"type":"ready","protocol":1}')
while True:
    msg = recv()
    i, args = msg["id"], msg["args"]
    if mode == "echo":
        # the value given as hex, as written, after an optional wait
        until(args.get("at", 0))
        send(b'{"type":"result","id":%d,"value":%s}' % (i, bytes.fromhex(args["hex"])))
    elif mode == "state":
        send(b'{"type":"state.set","seq":1,"value":%s}' % bytes.fromhex(args["hex"]))
        reply = recv()
        send(b'{"type":"result","id":%d,"value":%s}' % (i, json.dumps(reply).encode()))
    elif mode == "param":
        send(b'{"type":"sql","seq":1,"query":"SELECT $1::text AS t","params":[%s]}'
             % bytes.fromhex(args["hex"]))
        reply = recv()
        send(b'{"type":"result","id":%d,"value":%s}' % (i, json.dumps(reply).encode()))
    elif mode == "logs":
        # stderr that is not UTF-8, a 20 KB line of two-byte characters
        os.write(2, b"bad \xff\xfe bytes, a NUL \x00 and a cut \xc3\n")
        os.write(1, "\u00e9".encode() * 10000 + b"\n")
        time.sleep(0.5)  # the lines are read before the result
        send(b'{"type":"result","id":%d,"value":{"logged":true}}' % i)
    elif mode == "steady":
        time.sleep(args.get("ms", 0) / 1000)
        send(b'{"type":"result","id":%d,"value":{"steady":%d}}' % (i, args.get("n", 0)))
    elif mode == "chatter":
        # valid messages that are not a result, for ever: a kind it
        # makes up, without a seq
        while True:
            send(b'{"type":"log","line":"still working"}')
    elif mode == "deaf":
        # requests for ever, never reading a reply
        data = frame(b'{"type":"progress","seq":1,"pct":50}') * 1000
        while True:
            os.write(fd, data)
    elif mode == "impatient":
        # requests that wait for the database, never waiting for them
        n = 0
        while True:
            n += 1
            send(b'{"type":"sql","seq":%d,"query":"SELECT pg_sleep(0.01)"}' % n)
    elif mode == "pingpong":
        # requests for ever, each answered and read: until its timeout
        n = 0
        while True:
            n += 1
            send(b'{"type":"progress","seq":%d}' % n)
            recv()
    elif mode == "mute":
        time.sleep(3600)
    elif mode == "half-length":
        os.write(fd, b"\x00\x00")
        os.close(fd)
        time.sleep(3600)
    elif mode == "half-body":
        os.write(fd, struct.pack(">I", 100) + b'{"type":"result","id":%d,' % i)
        os.close(fd)
        time.sleep(3600)
    elif mode == "half-exit":
        os.write(fd, struct.pack(">I", 100) + b'{"type":"result","id":%d,' % i)
        sys.exit(0)
    elif mode == "over":
        # a length of 64 MiB + 1, then the body starts
        os.write(fd, struct.pack(">I", (64 << 20) + 1) + b'{"type":"result","id":%d,"value":"' % i)
        time.sleep(3600)
    elif mode == "at-limit":
        # one frame of exactly 64 MiB: a result of 33 million numbers
        head = b'{"type":"result","id":%d,"value":[0' % i
        n = (64 << 20) - len(head) - 2  # the numbers and spaces
        os.write(fd, struct.pack(">I", 64 << 20) + head)
        chunk = b",0" * (1 << 19)
        for _ in range(n // len(chunk)):
            os.write(fd, chunk)
        rest = n % len(chunk)
        os.write(fd, b",0" * (rest // 2) + b" " * (rest % 2) + b"]}")
        time.sleep(3600)
    elif mode == "flood":
        # gigabytes on stdout, then a result
        chunk = b"x" * 65535 + b"\n"
        total = args["mb"] << 20
        sent = 0
        while sent < total:
            sent += os.write(1, chunk)
        send(b'{"type":"result","id":%d,"value":{"wrote":%d}}' % (i, sent))
EOF
for m in echo state param logs steady chatter deaf impatient pingpong mute half-length \
	half-body half-exit over at-limit flood; do
	fx_deploy "peer-$m" "$dir/peer" --cmd "python3 main.py $m" --mode session --timeout 10s --retries 0
done
q "CREATE ROLE fx_param LOGIN" >/dev/null
q "SELECT fx_deploy('peer-impatient', (SELECT bundle FROM fx.version WHERE fn = 'peer-impatient' LIMIT 1),
	'{python3,main.py,impatient}', '{\"mode\": \"session\", \"role\": \"fx_param\", \"retries\": 0, \"timeout_ms\": 3000}')" >/dev/null
q "SELECT fx_deploy('peer-param', (SELECT bundle FROM fx.version WHERE fn = 'peer-param' LIMIT 1),
	'{python3,main.py,param}', '{\"mode\": \"session\", \"role\": \"fx_param\", \"retries\": 0}')" >/dev/null
# short timeouts, but time enough to write 64 MiB under a memory checker
for m in mute pingpong chatter deaf half-length half-body half-exit over at-limit; do
	ms=3000
	[ $m = at-limit ] && ms=20000
	q "SELECT fx_deploy('peer-$m', (SELECT bundle FROM fx.version WHERE fn = 'peer-$m' LIMIT 1),
		'{python3,main.py,$m}', '{\"mode\": \"session\", \"retries\": 0, \"timeout_ms\": $ms}')" >/dev/null
done

# simple/main.py: prints the hex it is given, at the time it is given.
mkdir -p "$dir/simple"
cat >"$dir/simple/main.py" <<'EOF'
import json, os, sys, time
args = json.load(sys.stdin)
time.sleep(max(0.0, args.get("at", 0) - time.time()))
os.write(1, bytes.fromhex(args["hex"]))
EOF
fx_deploy simple "$dir/simple" --cmd "python3 main.py" --timeout 20s --retries 0

hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
# hwm_below WHAT KB: the worker's peak RSS so far is under KB.
hwm_below() {
	local peak
	peak=$(hwm)
	if ! checked_memory; then
		ok "$1: the worker's peak RSS stayed bounded # SKIP under a memory checker (${peak} kB)"
	else
		check "$1: the worker's peak RSS stayed bounded (${peak} kB < $2 kB)" test "${peak:-99999999}" -lt "$2"
	fi
}
# check_like DESC GLOB ACTUAL
check_like() {
	# shellcheck disable=SC2053
	if [[ $3 == $2 ]]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi
}
batch_failures() { grep -c "recording finished invocations and claiming failed" "$FX_TEST_DIR/A.log"; }

check_eq "a normal function works" '{"ok": true}' "$(q "SELECT fx_call('ok', '{}', '10s')")"

# --- strict JSON: one batch of good and bad results, simple and session mode
# name|value as written|what the error says
bad_cases=(
	'nul|{"s": "a\u0000b"}|\u0000 in a string'
	'zero|{"n": 01}|a number with a leading zero'
	'point|[1.]|a number without digits after its point'
	'surrogate|["\ud800"]|an unpaired UTF-16 surrogate escape in a string'
	'control|["a'$'\x01''b"]|a control character in a string'
	'range|[1e131072]|a number out of the range of numeric'
	'utf8|["'$'\xff''"]|invalid UTF-8 in a string'
)
good_value='{"big": 12345678901234567890123456789, "s": "\u00e9\ud83d\ude00", "f": 1.50}'
at=$(($(date +%s) + 4))
good_ids=()
bad_ids=()
bad_names=()
for mode in simple session; do
	fn=simple
	[ $mode = session ] && fn=peer-echo
	for i in 1 2 3; do
		good_ids+=("$(q "SELECT fx_invoke('$fn', '{\"at\": $at, \"hex\": \"$(hex "$good_value")\"}')")")
	done
	for c in "${bad_cases[@]}"; do
		IFS='|' read -r name value _ <<<"$c"
		bad_ids+=("$(q "SELECT fx_invoke('$fn', '{\"at\": $at, \"hex\": \"$(hex "$value")\"}')")")
		bad_names+=("$mode $name")
	done
done
# simple mode only: a second value after the first
bad_ids+=("$(q "SELECT fx_invoke('simple', '{\"at\": $at, \"hex\": \"$(hex '{"a": 1}
{"b": 2}')\"}')")")
bad_names+=("simple second")
bad_cases+=('second|x|text after the value')
all_done() { for id in "${good_ids[@]}" "${bad_ids[@]}"; do finished "$id" || return 1; done; }
wait_for "strict: all ${#good_ids[@]} good and ${#bad_ids[@]} bad results end (together, at one time)" 30 all_done
for id in "${good_ids[@]}"; do
	r=$(col "$id" "status || ' ' || coalesce(result::text, error)")
	check_eq "strict: good invocation $id succeeded, its numbers as written" \
		'succeeded {"f": 1.50, "s": "é😀", "big": 12345678901234567890123456789}' "$r"
done
for k in "${!bad_ids[@]}"; do
	name=${bad_names[$k]}
	for c in "${bad_cases[@]}"; do
		[ "${c%%|*}" = "${name#* }" ] && want=${c##*|}
	done
	want="failed bad output: result is not valid JSON for PostgreSQL: ${want//\\/\\\\} at byte [0-9]*"
	check_like "strict: $name fails only itself, saying why" "$want" \
		"$(col "${bad_ids[$k]}" "status || ' ' || coalesce(error, '')")"
done
check_eq "strict: no batch of finished invocations was refused by PostgreSQL" 0 "$(batch_failures)"

# state.set and sql parameters: an error reply (22P02); the function goes on
id=$(q "SELECT fx_invoke('peer-state', '{\"hex\": \"$(hex '{"s": "\u0000"}')\"}', key => 'k1')")
wait_for "strict: the state.set invocation ends" 15 finished "$id"
check_like "strict: state.set of \\u0000 gets an error reply, the invocation goes on" \
	'succeeded|22P02|request is not valid JSON for PostgreSQL: \\u0000 in a string at byte [0-9]*' \
	"$(col "$id" "status || '|' || (result->>'code') || '|' || (result->>'error')")"
check_eq "strict: no state was stored" 0 "$(q "SELECT count(*) FROM fx.state WHERE fn = 'peer-state'")"
id=$(q "SELECT fx_invoke('peer-state', '{\"hex\": \"$(hex '{"n": 123456789012345678901234567890}')\"}', key => 'k1')")
wait_for "strict: a good state.set ends" 15 finished "$id"
check_eq "strict: a good state.set is stored as written" '{"n": 123456789012345678901234567890}' \
	"$(q "SELECT value FROM fx.state WHERE fn = 'peer-state' AND key = 'k1'")"
id=$(q "SELECT fx_invoke('peer-param', '{\"hex\": \"$(hex '"DROP\u0000"')\"}')")
wait_for "strict: the sql invocation ends" 15 finished "$id"
check_like "strict: a sql parameter holding \\u0000 gets an error reply (not a cut string)" \
	'succeeded|22P02|request is not valid JSON for PostgreSQL: \\u0000 in a string at byte [0-9]*' \
	"$(col "$id" "status || '|' || (result->>'code') || '|' || (result->>'error')")"
id=$(q "SELECT fx_invoke('peer-param', '{\"hex\": \"$(hex '"caf\u00e9"')\"}')")
wait_for "strict: a good sql invocation ends" 15 finished "$id"
check_eq "strict: a good sql parameter passes" 'succeeded|café' \
	"$(col "$id" "status || '|' || (result->'value'->'rows'->0->>'t')")"

# log lines that are not UTF-8 (and a long line of two-byte characters)
id=$(q "SELECT fx_invoke('peer-logs')")
wait_for "logs: the invocation ends" 15 finished "$id"
check_eq "logs: it succeeded" 'succeeded' "$(col "$id" status)"
check_eq "logs: the bytes that are not UTF-8 became U+FFFD" 'bad �� bytes, a NUL � and a cut �' \
	"$(q "SELECT line FROM fx_logs($id) WHERE stream = 'stderr'")"
check_eq "logs: the 20 KB line was split between characters" '3|10000|0' \
	"$(q "SELECT count(*), sum(length(line)), count(*) FILTER (WHERE line ~ '[^é]')
	      FROM fx_logs($id) WHERE stream = 'stdout'")"
check_eq "logs: still no batch refused" 0 "$(batch_failures)"
serves "strict JSON"

# --- hostile peers.  each: invoke a steady function (1.5 s), then the
# hostile one, check both.
steady_n=0
# hostile NAME WANT [SECONDS]: run peer-NAME next to a steady invocation;
# its error must contain WANT.
hostile() {
	local name=$1 want=$2 secs=${3:-15} sid id s
	steady_n=$((steady_n + 1))
	sid=$(q "SELECT fx_invoke('peer-steady', '{\"ms\": 1500, \"n\": $steady_n}')")
	id=$(q "SELECT fx_invoke('peer-$name', '{}', key => 'k-$name')")
	wait_for "$name: the invocation ends" "$secs" finished "$id"
	s=$(col "$id" "status || ' ' || coalesce(error, '')")
	# shellcheck disable=SC2053
	if [[ $s == failed* && $s == *$want* ]]; then
		ok "$name: it failed, saying '${s#failed }'"
	else
		not_ok "$name: it failed with '$want' (got '$s')"
	fi
	wait_for "$name: the steady invocation next to it ends" 15 finished "$sid"
	check_eq "$name: the steady invocation next to it succeeded" "succeeded {\"steady\": $steady_n}" \
		"$(col "$sid" "status || ' ' || coalesce(result::text, error)")"
	serves "$name"
}
hostile chatter 'protocol error: unexpected message "log"'
hostile deaf 'protocol error: the session process does not read its replies (more than 8 MiB of them unread)'
hwm_below "deaf" 102400
hostile impatient 'protocol error: more than 64 requests waiting for their replies'
hostile pingpong 'timed out after 3000 ms'
hostile mute 'timed out after 3000 ms'
hostile half-length 'protocol error: the session process closed its socket in the middle of a message (2 of the 4 bytes of its length)'
hostile half-body 'protocol error: the session process closed its socket in the middle of a message (2? of its 100 bytes)'
hostile half-exit 'session process ended: exit status 0 in the middle of a message (2? of its 100 bytes)'
hostile over 'protocol error: message larger than 64 MiB'
hwm_below "over" 102400
t0=$SECONDS
sid=$(q "SELECT fx_invoke('peer-steady', '{\"ms\": 3000, \"n\": 100}')")
id=$(q "SELECT fx_invoke('peer-flood', '{\"mb\": 2048}')")
wait_for "flood: the invocation ends" 40 finished "$id"
check_eq "flood: 2 GiB on stdout, then its result: it succeeded" "succeeded {\"wrote\": $((2048 << 20))}" \
	"$(col "$id" "status || ' ' || coalesce(result::text, error)")"
echo "# flood: $(($SECONDS - t0)) s for 2 GiB"
check_eq "flood: its log ends with one '[log truncated]'" "1|[log truncated]" \
	"$(q "SELECT count(*) FILTER (WHERE line = '[log truncated]') FROM fx_logs($id)")|$(q "SELECT line FROM fx_logs($id)" | tail -n 1)"
wait_for "flood: the steady invocation next to it ends" 15 finished "$sid"
check_eq "flood: the steady invocation next to it succeeded" 'succeeded {"steady": 100}' \
	"$(col "$sid" "status || ' ' || coalesce(result::text, error)")"
hwm_below "flood" 102400
serves "flood"
# last, as it raises the peak: a frame of exactly 64 MiB, 33 million
# numbers, is held (64 MiB) but never made into 33 million cJSON items
hostile at-limit 'bad output: result is larger than 6291456 bytes' 30
hwm_below "at-limit" 262144

exit $FX_FAILED
