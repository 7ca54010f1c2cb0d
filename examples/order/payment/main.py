"""payment: the card charge of examples/order, run as a child step.

Args {"order": 7, "amount": 10, "card": "4242"}.  The card "0000" is
declined (not retried); any other card is charged.  A real one would call
a payment provider with ctx.idempotency_key, which stays the same on every
attempt and on every replay of the parent's step, so the provider charges
once.
"""

import fx


def handler(args, ctx):
    if args.get("card") == "0000":
        raise fx.Error("card declined", "card 0000 is always declined", retryable=False)
    return {"charged": args["amount"], "ref": "pay-%s" % ctx.idempotency_key}


fx.run(handler)
