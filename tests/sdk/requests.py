"""tests/sdk/requests.py: tests/sdk/requests.c in Python (see there).

One op more, "stale": a request through the previous invocation's context,
which has ended, returned as [ok, error, sqlstate].
"""

import fx


def counter(args, ctx):
    n = ctx.state.get() or 0
    ctx.state.set(n + 1)
    return n


def delete(args, ctx):
    ctx.state.delete()
    return ctx.state.get()


def sql(args, ctx):
    params = args.get("params") or []
    return {"rows": ctx.sql(args["query"], *params),
            "result": ctx.sql_result(args["query"], *params)}


def catch(args, ctx):
    try:
        ctx.sql("select * from fail")
    except fx.SQLError as e:
        assert isinstance(e, fx.Error) and e.retryable is True
        caught = {"null": True, "error": e.message, "sqlstate": e.sqlstate}
    else:
        caught = {"null": False}
    caught.update(then=ctx.sql("select 1"), cleared=True)
    return caught


def uncaught(args, ctx):
    return ctx.sql("select * from fail")


def outcome(request, *params):
    try:
        request(*params)
    except fx.SQLError as e:
        return [False, e.message, e.sqlstate]
    return [True, None, None]


def all_requests(args, ctx):
    return [outcome(ctx.state.get), outcome(ctx.state.set, {}),
            outcome(ctx.state.delete), outcome(ctx.sql, "select 1")]


def stale(args, ctx):
    return outcome(previous[0].state.get)


OPS = {"counter": counter, "delete": delete, "sql": sql, "catch": catch,
       "uncaught": uncaught, "all": all_requests, "stale": stale}
previous = [None]


def requests(args, ctx):
    if args.get("op") not in OPS:
        raise fx.Error("unknown op", args.get("op"), retryable=False)
    try:
        return OPS[args["op"]](args, ctx)
    finally:
        previous[0] = ctx


fx.run(requests)
