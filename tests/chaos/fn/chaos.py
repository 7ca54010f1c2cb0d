"""The functions of the chaos suite (tests/chaos/run.sh), one file, two roles.

    python3 chaos.py transfer   keyed by the source account: moves "amount"
                                from "from" to "to" through sql, and writes
                                one history row per account
    python3 chaos.py counter    keyed by the counter: adds one to its state,
                                and notes if an invocation of the key ever
                                ran after a later one (order violation)

Both sleep a little ("nap" ms) so that kills land in the middle of them.
"""
import random
import sys
import time

import fx


def nap(args):
    time.sleep(random.uniform(0, args.get("nap", 20)) / 1000)


def transfer(args, ctx):
    nap(args)
    # One UPDATE locks both rows in index order: no deadlocks between
    # transfers in opposite directions.
    ctx.sql("UPDATE chaos_account SET balance = balance"
            " + CASE WHEN id = $1 THEN -$3::bigint ELSE $3::bigint END"
            " WHERE id IN ($1, $2)", args["from"], args["to"], args["amount"])
    nap(args)
    ctx.sql("INSERT INTO chaos_history (transfer, account, delta)"
            " VALUES ($1, $2, -$4::bigint), ($1, $3, $4::bigint)",
            args["id"], args["from"], args["to"], args["amount"])
    return {"transfer": args["id"]}


def counter(args, ctx):
    nap(args)
    state = ctx.state.get() or {"n": 0, "last": 0, "disorder": 0}
    if ctx.id < state["last"]:
        state["disorder"] += 1
    state["n"] += 1
    state["last"] = ctx.id
    ctx.state.set(state)
    nap(args)
    return state["n"]


fx.run({"transfer": transfer, "counter": counter}[sys.argv[1]])
