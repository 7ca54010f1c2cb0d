"""bank: a transfer between two accounts, in SQL run by the function.

Args {"from": "alice", "to": "bob", "amount": 10} move 10 from alice to
bob.  The statements go through ctx.sql, so they run in the invocation's
own transaction, as the role the function was deployed with (bank_fn, see
setup.sql), and commit with its result: a failed attempt leaves nothing
behind, and a transfer that succeeds is applied exactly once.

The two account rows are locked in id order, whichever way the money goes,
so two opposite transfers wait for each other instead of deadlocking.
Insufficient funds (the CHECK on account.balance, SQLSTATE 23514), an
unknown account or bad args fail the invocation without retries.  Each
transfer is logged under the invocation's idempotency key, which is the
same on every attempt: should the key come again, the transfer is
reported, not applied twice.

For tests only: {"fail_after": true} raises after the money has moved and
the log row is written, to show that none of it commits.

    fx psql -f examples/bank/setup.sql
    fx deploy bank examples/bank --cmd "python3 main.py" --mode session --role bank_fn
    fx invoke bank '{"from":"alice","to":"bob","amount":10}'
"""

import fx

INSUFFICIENT_FUNDS = "23514"  # check_violation: balance >= 0


def refuse(message, detail=None):
    return fx.Error(message, detail=detail, retryable=False)


def parse(args):
    if not isinstance(args, dict):
        raise refuse("args must be an object",
                     'E.g. {"from": "alice", "to": "bob", "amount": 10}.')
    src, dst, amount = args.get("from"), args.get("to"), args.get("amount")
    if not isinstance(src, str) or not isinstance(dst, str):
        raise refuse('"from" and "to" must be account ids')
    if src == dst:
        raise refuse("cannot transfer from an account to itself")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise refuse('"amount" must be a positive integer')
    return src, dst, amount


def lock_accounts(ctx, src, dst):
    """Lock both rows, lower id first; return {id: balance}."""
    rows = ctx.sql("SELECT id, balance FROM account WHERE id IN ($1, $2)"
                   " ORDER BY id FOR NO KEY UPDATE", src, dst)
    found = {r["id"]: r["balance"] for r in rows}
    for acc in (src, dst):
        if acc not in found:
            raise refuse('account "%s" does not exist' % acc)
    return found


def logged(ctx, src, dst, amount):
    """Log the transfer; return its id, or None if the key has one."""
    rows = ctx.sql("INSERT INTO transfer_log"
                   " (idempotency_key, from_id, to_id, amount, invocation_id)"
                   " VALUES ($1, $2, $3, $4, $5)"
                   " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                   ctx.idempotency_key, src, dst, amount, ctx.id)
    return rows[0]["id"] if rows else None


def move(ctx, src, dst, amount, balances):
    try:
        ctx.sql("UPDATE account SET balance = balance - $2 WHERE id = $1",
                src, amount)
    except fx.SQLError as e:
        if e.sqlstate != INSUFFICIENT_FUNDS:
            raise
        raise refuse("insufficient funds",
                     'Account "%s" has %d, the transfer needs %d.'
                     % (src, balances[src], amount)) from None
    ctx.sql("UPDATE account SET balance = balance + $2 WHERE id = $1",
            dst, amount)


def transfer(args, ctx):
    src, dst, amount = parse(args)
    balances = lock_accounts(ctx, src, dst)
    log_id = logged(ctx, src, dst, amount)
    if log_id is None:
        row = ctx.sql("SELECT id, from_id, to_id, amount FROM transfer_log"
                      " WHERE idempotency_key = $1", ctx.idempotency_key)[0]
        return {"transfer": row["id"], "from": row["from_id"],
                "to": row["to_id"], "amount": row["amount"], "replayed": True}
    move(ctx, src, dst, amount, balances)
    if args.get("fail_after"):
        raise fx.Error("failing after the transfer, as asked",
                       detail='The args had "fail_after" (for tests).',
                       retryable=False)
    after = ctx.sql("SELECT id, balance FROM account WHERE id IN ($1, $2)",
                    src, dst)
    return {"transfer": log_id, "from": src, "to": dst, "amount": amount,
            "balances": {r["id"]: r["balance"] for r in after}}


if __name__ == "__main__":
    fx.run(transfer)
