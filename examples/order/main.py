"""order: an order-processing workflow, with a compensation on failure.

Args {"item": "widget", "qty": 2, "card": "4242"} take an order through
three steps, each recorded when it ends (docs/protocol.md, "Workflows"):

1. reserve: take the stock and write the order (ctx.sql inside ctx.run, so
   both commit with the step's record, exactly once);
2. charge: the payment function, run as a child invocation (ctx.step): its
   own sandbox, its own retries;
3. ship: mark the order shipped with its tracking number.

A declined card (the card "0000") fails the charge; the workflow then
compensates: it gives the stock back and marks the order cancelled, in a
step of its own.  The workflow publishes its progress as the event
"status" (reserved, shipped, cancelled), readable from SQL with
fx_get_event(id, 'status').

Whatever crashes on the way (the worker killed, PostgreSQL restarted), the
workflow runs again from the start and every finished step returns its
recorded outcome, so stock is taken once and the card charged once.

    fx psql -f examples/order/setup.sql
    fx deploy payment examples/order/payment --cmd "python3 main.py" --mode session
    fx deploy order examples/order --cmd "python3 main.py" --mode session --role order_fn
    fx invoke order '{"item": "widget", "qty": 2, "card": "4242"}'
    fx wf show ID
"""

import fx


def handler(args, ctx):
    order = ctx.workflow_id
    item = args.get("item")
    qty = args.get("qty", 1)
    if not isinstance(item, str) or not isinstance(qty, int) or qty < 1:
        raise fx.Error("bad order", 'want {"item": NAME, "qty": N >= 1, "card": NUMBER}',
                       retryable=False)

    def reserve():
        rows = ctx.sql("UPDATE stock SET available = available - $1"
                       " WHERE item = $2 AND available >= $1 RETURNING available", qty, item)
        if not rows:
            raise fx.Error("not enough %s in stock" % item)
        ctx.sql("INSERT INTO orders (id, item, qty, status) VALUES ($1, $2, $3, 'reserved')",
                order, item, qty)
        return rows[0]["available"]

    try:
        left = ctx.run("reserve", reserve)
    except fx.StepError as e:
        ctx.set_event("status", "refused")
        return {"order": order, "status": "refused", "reason": e.message}
    ctx.set_event("status", "reserved")

    try:
        payment = ctx.step("payment", {"order": order, "amount": qty * 5,
                                       "card": args.get("card")})
    except fx.StepError as e:
        def release():
            ctx.sql("UPDATE stock SET available = available + $1 WHERE item = $2", qty, item)
            ctx.sql("UPDATE orders SET status = 'cancelled', updated_at = now() WHERE id = $1",
                    order)
        ctx.run("release", release)
        ctx.set_event("status", "cancelled")
        return {"order": order, "status": "cancelled", "reason": e.message}

    def ship():
        tracking = "T-%d" % order
        ctx.sql("UPDATE orders SET status = 'shipped', charged = $2, tracking = $3,"
                " updated_at = now() WHERE id = $1", order, payment["charged"], tracking)
        return tracking

    tracking = ctx.run("ship", ship)
    ctx.set_event("status", "shipped")
    return {"order": order, "status": "shipped", "tracking": tracking,
            "charged": payment["charged"], "left_in_stock": left}


fx.run(handler)
