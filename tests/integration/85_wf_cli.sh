#!/usr/bin/env bash
# 85_wf_cli.sh: fx wf ls, show, cancel, resume and fork, over workflows made
# by hand: no worker runs, the test plays one with fx.claim and the step
# functions a worker calls (as tests/regress/sql/workflow.sql does).  Then
# the errors: an unknown id, a workflow that cannot be resumed, a fork from
# a step not reached (exit 1, PostgreSQL's message on stderr), and usage
# errors (exit 2, usage on stderr).
source "$(dirname "$0")/../lib.sh"


fx_pg_start

if [ "$(q "SELECT count(*) FROM pg_proc WHERE proname = 'fx_workflow_steps'")" = 0 ]; then
	not_ok "the installed extension has fx_workflow_steps (install the repository's first)"
	exit 1
fi

# run CMD...: run CMD, keeping its stdout in $out, stderr in $err, status in $rc.
run() {
	out=$("$@" 2>"$FX_TEST_DIR/stderr")
	rc=$?
	err=$(cat "$FX_TEST_DIR/stderr")
}

# has_line DESC REGEXP TEXT: some line of TEXT matches REGEXP (extended).
has_line() {
	if grep -qE -- "$2" <<<"$3"; then ok "$1"
	else not_ok "$1 (no line matching /$2/ in:"$'\n'"$3)"; fi
}

# fails DESC RC PATTERN CMD...: CMD exits RC with PATTERN on stderr and
# nothing on stdout.
fails() {
	local desc=$1 want=$2 pat=$3
	shift 3
	run "$@"
	if [ "$rc" = "$want" ] && [ -z "$out" ] && grep -qE -- "$pat" <<<"$err"; then
		ok "$desc (exit $rc: $(head -n1 <<<"$err"))"
	else
		not_ok "$desc (exit $rc, wanted $want; stdout '$out'; stderr '$err', wanted /$pat/)"
	fi
}

# claim OWNER: claim one invocation; prints "ID EPOCH TOKEN".
claim() { q "SELECT id || ' ' || epoch || ' ' || token FROM fx.claim('$1', 1)"; }
# finish OWNER ID EPOCH TOKEN JSON: finish an attempt with the fields of JSON.
finish() {
	q "SELECT count(*) FROM fx.finish('$1', jsonb_build_array(
	     '$5'::jsonb || jsonb_build_object('id', $2, 'epoch', $3, 'token', '$4')))"
}

q "SELECT fx_deploy('wf', 'true', options => '{\"retries\": 1}'),
          fx_deploy('wf-child', 'true'), fx_deploy('other', 'true')" >/dev/null

# --- other (o): a workflow of one step that succeeded, with a long output
o=$(q "SELECT fx_invoke('other', '{}')")
read -r id ep tok <<<"$(claim w1)"
check_eq "claimed other" "$o" "$id"
long=$(printf 'x%.0s' $(seq 100))
q "SELECT fx.step_done('w1', '$tok', $o, 1, 'build', 'run', '{\"note\": \"$long\"}')" >/dev/null
finish w1 "$o" "$ep" "$tok" '{"ok": true, "result": {"built": true}}' >/dev/null

# --- plain (p): an invocation of wf that failed without recording a step
p=$(q "SELECT fx_invoke('wf', '{}')")
read -r id ep tok <<<"$(claim w1)"
finish w1 "$p" "$ep" "$tok" '{"ok": false, "error": "boom", "retryable": false}' >/dev/null
check_eq "plain invocation failed" failed "$(q "SELECT status FROM fx.invocation WHERE id = $p")"

# --- w: steps done, failed, a child called, a child started, then a sleep
# it is evicted from until an hour from now: waiting
w=$(q "SELECT fx_invoke('wf', '{\"order\": 7}')")
read -r id ep tok <<<"$(claim w1)"
check_eq "claimed the workflow" "$w" "$id"
q "SELECT fx.step_done('w1', '$tok', $w, 1, 'reserve', 'run', '{\"stock\": 3}'),
          fx.step_done('w1', '$tok', $w, 2, 'charge', 'run', NULL, 'card declined', 'PaymentError')" \
	>/dev/null
c=$(q "SELECT fx.start_child('w1', '$tok', $w, 3, 'call', 'wf-child', '{\"n\": 1}', NULL)")
read -r id cep ctok <<<"$(claim w2)"
check_eq "claimed the child" "$c" "$id"
finish w2 "$c" "$cep" "$ctok" '{"ok": true, "result": {"charged": 5}}' >/dev/null
q "SELECT status FROM fx.await_child('w1', '$tok', $w, 3, 'call', $c, NULL)" >/dev/null
c2=$(q "SELECT fx.start_child('w1', '$tok', $w, 4, 'start', 'wf-child', '{\"n\": 2}', NULL)")
q "SELECT fx.step_wait('w1', '$tok', $w, 5, 'sleep', now() + interval '1 hour'),
          fx.evict('w1', '$tok', $w, now() + interval '1 hour', NULL, NULL)" >/dev/null
check_eq "the workflow is queued to replay in an hour" "queued|t|t" \
	"$(q "SELECT status, replay, not_before > now() FROM fx.invocation WHERE id = $w")"

# --- fx wf ls
run "$FX_BIN" wf ls
check_eq "fx wf ls exits 0" 0 "$rc"
has_line "ls: a header" '^id +function +status +steps +age +took$' "$out"
has_line "ls: the waiting workflow, 4 of 5 steps done" \
	"^$w +wf:1 +waiting +4/5 +[0-9.]+m?s *\$" "$out"
has_line "ls: the succeeded one, 1/1, with how long it took" \
	"^$o +other:1 +succeeded +1/1 +[0-9.]+m?s +[0-9.]+m?s\$" "$out"
check_eq "ls: workflows only (not the plain invocation or the children), newest first" \
	"$w $o" "$(tail -n +2 <<<"$out" | awk '{print $1}' | xargs)"
run "$FX_BIN" wf ls --status waiting
check_eq "ls --status waiting: only the waiting one" "$w" "$(tail -n +2 <<<"$out" | awk '{print $1}' | xargs)"
run "$FX_BIN" wf ls --status queued
check_eq "ls --status queued: none (the waiting one is not listed as queued)" "" \
	"$(tail -n +2 <<<"$out" | awk '{print $1}' | xargs)"
run "$FX_BIN" wf ls --fn other
check_eq "ls --fn other: only other's" "$o" "$(tail -n +2 <<<"$out" | awk '{print $1}' | xargs)"
run "$FX_BIN" wf ls --fn wf --status succeeded
check_eq "ls --fn wf --status succeeded: header only" 1 "$(wc -l <<<"$out")"
run "$FX_BIN" wf ls --limit 1
check_eq "ls --limit 1: the newest" "$w" "$(tail -n +2 <<<"$out" | awk '{print $1}' | xargs)"

# --- fx wf show
run "$FX_BIN" wf show "$w"
check_eq "fx wf show exits 0" 0 "$rc"
has_line "show: the id" "^workflow +$w\$" "$out"
has_line "show: function:version" '^function +wf:1$' "$out"
has_line "show: waiting, until when" '^status +waiting \(until [0-9-]+ [0-9:]+\)$' "$out"
has_line "show: attempts (the eviction did not count one)" '^attempts +0 of 2$' "$out"
has_line "show: created" '^created +[0-9-]+ [0-9:]+$' "$out"
has_line "show: a steps header" '^step +kind +name +state +ms +child +output$' "$out"
has_line "show: step 1 done with its output" '^1 +run +reserve +done +[0-9]+\.[0-9] +\{"stock": 3\}$' "$out"
has_line "show: step 2 failed with its error" '^2 +run +charge +failed +[0-9]+\.[0-9] +error: card declined$' "$out"
has_line "show: step 3 called the child and has its result" \
	"^3 +call +wf-child +done +[0-9]+\\.[0-9] +$c +\\{\"charged\": 5\\}\$" "$out"
has_line "show: step 4 started a child, its output the child's id" \
	"^4 +start +wf-child +done +[0-9]+\\.[0-9] +$c2 +$c2\$" "$out"
has_line "show: step 5 waiting, no ms, no output" '^5 +sleep +sleep +waiting *$' "$out"
check_eq "show: five steps, in order" "1 2 3 4 5" \
	"$(sed -n '/^step /,$p' <<<"$out" | tail -n +2 | awk '{print $1}' | xargs)"
run "$FX_BIN" wf show "$o"
has_line "show: succeeded, with the result" '^result +\{"built": true\}$' "$out"
has_line "show: finished, with how long it took" '^finished +[0-9-]+ [0-9:]+ \(took [0-9.]+m?s\)$' "$out"
has_line "show: a long output is cut to 60 characters with ..." \
	'^1 +run +build +done +[0-9]+\.[0-9] +\{"note": "x{47}\.\.\.$' "$out"
run "$FX_BIN" wf show "$p"
check_eq "show of an invocation without steps exits 0" 0 "$rc"
has_line "show: its error" '^error +boom$' "$out"
has_line "show: no steps recorded" '^no steps recorded$' "$out"
fails "show of an unknown id: exit 1, PostgreSQL's error" 1 'invocation 999999 does not exist' \
	"$FX_BIN" wf show 999999

# --- fx wf cancel
run "$FX_BIN" wf cancel "$w"
check_eq "cancel: the workflow and its started child" "0|cancelled 2 invocation(s)" "$rc|$out"
check_eq "both are cancelled, the called child stays succeeded" "cancelled succeeded cancelled" \
	"$(q "SELECT string_agg(status::text, ' ' ORDER BY id) FROM fx.invocation WHERE id IN ($w, $c, $c2)")"
run "$FX_BIN" wf cancel "$w"
check_eq "cancel again: nothing to cancel" "0|cancelled 0 invocation(s)" "$rc|$out"
run "$FX_BIN" wf ls --status cancelled
check_eq "ls --status cancelled lists it" "$w" "$(tail -n +2 <<<"$out" | awk '{print $1}' | xargs)"
fails "cancel of an unknown id: exit 1" 1 'workflow 999999 does not exist' "$FX_BIN" wf cancel 999999

# --- fx wf resume
run "$FX_BIN" wf resume "$w"
check_eq "resume prints the workflow" "0|resumed workflow $w" "$rc|$out"
check_eq "queued again, and so is the child cancelled with it" "queued queued" \
	"$(q "SELECT string_agg(status::text, ' ' ORDER BY id) FROM fx.invocation WHERE id IN ($w, $c2)")"
run "$FX_BIN" wf ls --status queued
check_eq "ls: resumed, it is queued (due now), not waiting" "$w" \
	"$(tail -n +2 <<<"$out" | awk '{print $1}' | xargs)"
fails "resume of a queued workflow: exit 1, error and hint" 1 \
	"is queued, not cancelled, failed or dead" "$FX_BIN" wf resume "$w"
has_line "... the hint is shown" '^HINT: Only a workflow that ended without succeeding' "$err"
fails "resume of an unknown id: exit 1" 1 'workflow 999999 does not exist' "$FX_BIN" wf resume 999999

# --- fx wf fork
run "$FX_BIN" wf fork "$w" --from-step 3
f=$out
if [ "$rc" = 0 ] && [[ $f =~ ^[0-9]+$ ]] && [ "$f" != "$w" ]; then
	ok "fork --from-step 3 prints the new id alone ($f)"
else
	not_ok "fork --from-step 3 prints the new id alone (exit $rc, stdout '$out', stderr '$err')"
	f=0
fi
check_eq "the fork: wf with the same args, queued to replay" 'wf|{"order": 7}|queued|t' \
	"$(q "SELECT fn, args, status, replay FROM fx.invocation WHERE id = $f")"
check_eq "the fork has steps 1 and 2 copied" "1|reserve|t|{\"stock\": 3} 2|charge|t|card declined" \
	"$(q "SELECT string_agg(concat_ws('|', step, name, done, output, error), ' ' ORDER BY step) FROM fx.step WHERE invocation_id = $f")"
run "$FX_BIN" wf show "$f"
has_line "show of the fork: step 2 failed, as copied" '^2 +run +charge +failed +[0-9]+\.[0-9] +error: card declined$' "$out"
check_eq "show of the fork: two steps" 2 "$(sed -n '/^step /,$p' <<<"$out" | tail -n +2 | wc -l)"
run "$FX_BIN" wf ls --limit 1
has_line "ls: the fork is the newest, 2/2, queued" "^$f +wf:1 +queued +2/2 " "$out"
run "$FX_BIN" wf fork "$w" --from-step 1 --version 1
if [ "$rc" = 0 ] && [[ $out =~ ^[0-9]+$ ]]; then
	check_eq "fork --from-step 1 --version 1: no steps copied, version 1" "1|0" \
		"$(q "SELECT version, (SELECT count(*) FROM fx.step WHERE invocation_id = $out) FROM fx.invocation WHERE id = $out")"
else
	not_ok "fork --from-step 1 --version 1 (exit $rc, stdout '$out', stderr '$err')"
fi
fails "fork from a step after a waiting one: exit 1, error and detail" 1 \
	"workflow $w has not recorded every step before step 6" "$FX_BIN" wf fork "$w" --from-step 6
has_line "... the detail is shown" '^DETAIL: It recorded 4 finished steps\.$' "$err"
fails "fork --from-step 0: exit 1" 1 'from_step must be 1 or more' "$FX_BIN" wf fork "$w" --from-step 0
fails "fork of a version that does not exist: exit 1" 1 '.' "$FX_BIN" wf fork "$w" --from-step 1 --version 99
fails "fork of an unknown id: exit 1" 1 'workflow 999999 does not exist' \
	"$FX_BIN" wf fork 999999 --from-step 1

# --- usage errors: exit 2, usage on stderr
fails "fx wf: exit 2 with the usage" 2 '^usage: fx wf ls' "$FX_BIN" wf
fails "fx wf with an unknown subcommand: exit 2" 2 'unknown wf command "frob"' "$FX_BIN" wf frob
fails "fx wf show with a non-numeric id: exit 2" 2 'a workflow id is a number, not "abc"' \
	"$FX_BIN" wf show abc
fails "fx wf show without an id: exit 2" 2 '^usage: fx wf' "$FX_BIN" wf show
fails "fx wf fork without --from-step: exit 2" 2 'needs --from-step' "$FX_BIN" wf fork "$w"
fails "fx wf fork with a non-numeric --from-step: exit 2" 2 'from-step must be a whole number' \
	"$FX_BIN" wf fork "$w" --from-step two
fails "fx wf ls with an unknown status: exit 2" 2 'unknown status "sleeping"' \
	"$FX_BIN" wf ls --status sleeping
fails "fx wf ls --limit 0: exit 2" 2 'limit must be a positive' "$FX_BIN" wf ls --limit 0
fails "fx wf cancel with an option it does not take: exit 2" 2 'takes no --from-step' \
	"$FX_BIN" wf cancel "$w" --from-step 1
run "$FX_BIN" wf --help
check "fx wf --help: the usage on stdout, exit 0" test "$rc" = 0 -a -n "$out"
run "$FX_BIN" --help
has_line "fx --help lists wf" '^  wf ' "$out"

exit $FX_FAILED
