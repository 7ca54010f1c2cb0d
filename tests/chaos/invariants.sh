# tests/chaos/invariants.sh: the invariants of the chaos suite (bash,
# sourced after tests/lib.sh by tests/chaos/run.sh and by
# tests/chaos/cells/lib.sh, so that each check is written once).
#
# Both run the bank of tests/chaos/fn/chaos.py on the tables chaos_account
# and chaos_history, with ACCOUNTS accounts of START_BALANCE each (the
# caller's variables), and check, once every invocation has ended: nothing
# lost, nothing applied twice.
#   - each counter's state is the number of its succeeded invocations, in
#     enqueue order (expect_counters);
#   - balances add up, each balance is its start plus its history
#     (expect_balances);
#   - each succeeded transfer is in the history exactly once (two rows) and
#     no other one is (expect_transfers).
# What else counts as a violation differs (run.sh allows failed and dead
# invocations, the cells do not), so those checks stay with their caller,
# written with expect.
#
# tests/check.sh counts the lines the checks print, and the two callers
# print them a little differently: the cells set, after sourcing this file
# (run.sh keeps the defaults, empty):
#   EXPECT_PREFIX    put before each check's description ("$CELL: " in the
#                    cells, nothing in run.sh)
#   EXPECT_NO_COUNT  said in place of the count when the query gave none
#                    ("query failed" in the cells, nothing in run.sh)
# VIOLATIONS adds up the violations found, for the caller's last line.

EXPECT_PREFIX=
EXPECT_NO_COUNT=
VIOLATIONS=0

# pending: invocations queued or running.
pending() { q "SELECT count(*) FROM fx.invocation WHERE status IN ('queued', 'running')"; }

# settled: none is queued or running (for wait_for).
settled() { [ "$(pending 2>/dev/null)" = 0 ]; }

# expect DESC QUERY: the query counts violations; 0 is ok.
expect() {
	local n
	n=$(q "$2")
	if [ "$n" = 0 ]; then
		ok "$EXPECT_PREFIX$1"
	else
		not_ok "$EXPECT_PREFIX$1 (${n:-$EXPECT_NO_COUNT} violations)"
		VIOLATIONS=$((VIOLATIONS + ${n:-1}))
	fi
}

# expect_counters: each counter (fx.state of fn counter) counted each of
# its succeeded invocations once, and in the order they were enqueued
# (chaos.py counts a "disorder" when one runs after a later one of its key).
expect_counters() {
	expect "each counter equals the number of its succeeded invocations" \
		"SELECT count(*) FROM (SELECT key, count(*) n FROM fx.invocation
		                        WHERE fn = 'counter' AND status = 'succeeded' GROUP BY key) i
		   FULL JOIN fx.state s ON s.fn = 'counter' AND s.key = i.key
		  WHERE coalesce((s.value->>'n')::bigint, 0) IS DISTINCT FROM coalesce(i.n, 0)"
	expect "no counter invocation ran after a later one of its key" \
		"SELECT coalesce(sum((value->>'disorder')::int), 0) FROM fx.state WHERE fn = 'counter'"
}

# expect_balances: transfers move money, never make or lose it, and every
# change of a balance is in the history.
expect_balances() {
	expect "the sum of all balances is unchanged" \
		"SELECT abs(sum(balance) - $ACCOUNTS * $START_BALANCE) FROM chaos_account"
	expect "each balance is its start plus its history" \
		"SELECT count(*) FROM chaos_account a
		  WHERE a.balance <> $START_BALANCE + coalesce((SELECT sum(delta) FROM chaos_history h
		                                               WHERE h.account = a.id), 0)"
}

# expect_transfers: the history holds the two rows of each succeeded
# transfer, once, and nothing of an attempt that did not succeed.
expect_transfers() {
	expect "each succeeded transfer is in the history exactly once" \
		"SELECT count(*) FROM fx.invocation i
		  WHERE i.fn = 'transfer' AND i.status = 'succeeded'
		    AND (SELECT count(*) FROM chaos_history h WHERE h.transfer = (i.args->>'id')::bigint) <> 2"
	expect "no other transfer is in the history" \
		"SELECT count(*) FROM chaos_history h
		  WHERE NOT EXISTS (SELECT 1 FROM fx.invocation i
		                     WHERE i.fn = 'transfer' AND i.status = 'succeeded'
		                       AND (i.args->>'id')::bigint = h.transfer)"
}
