"""tests/sdk/workflows.py: tests/sdk/workflows.c in Python (see there).

Python's answers differ in two ops: "fail" adds "cause", the class name of
the StepError's __cause__ (the exception fn raised; None on a replay),
and "evict" notes whether ``except Exception`` caught the eviction.
"""

import fx

ran = [0]  # how often step code really ran, in this process
notes = []


def add(a, b):
    ran[0] += 1
    return {"sum": a + b}


def decline():
    ran[0] += 1
    raise ValueError("card declined")


def nothing():
    ran[0] += 1


def counted(op):
    def wrapper(args, ctx):
        before = ran[0]
        result = op(args, ctx)
        result["ran"] = ran[0] - before
        return result
    return wrapper


@counted
def run(args, ctx):
    return {"output": ctx.run("add", add, args["a"], b=args["b"])}


@counted
def other(args, ctx):
    return {"output": ctx.run("other", add, args["a"], b=args["b"])}


@counted
def fail(args, ctx):
    try:
        ctx.run("charge", decline)
    except fx.StepError as e:
        assert isinstance(e, fx.Error) and e.retryable is False
        return {"error": e.message, "detail": e.detail,
                "sqlstate": getattr(e, "sqlstate", None),
                "cause": type(e.__cause__).__name__ if e.__cause__ else None}
    return {"error": None}


@counted
def null(args, ctx):
    return {"is_null": ctx.run("nothing", nothing) is None}


def mixed(args, ctx):
    out = {"add": ctx.run("add", add, 20, b=1),
           "call": ctx.call("double", {"n": 21})}
    child = ctx.start("double", {"n": 5})
    out["child"] = child.id
    ctx.sleep(1.5)
    out["recv"] = ctx.recv("paid", timeout=2.5)
    out["timeout"] = ctx.recv("late", timeout=0.25)
    out["forever"] = ctx.recv("paid")
    ctx.send(77, "paid", {"x": 1})
    ctx.set_event("status", "shipped")
    out["awaited"] = child.result()
    out["workflow_id"] = ctx.workflow_id
    return out


def call_fail(args, ctx):
    try:
        ctx.call("fail")
    except fx.StepError as e:
        return [e.message, e.detail]
    return None


def big(args, ctx):
    try:
        ctx.run("big", lambda: "x" * 2000)
    except fx.StepError:
        return "a step error"
    except fx.SQLError as e:
        return [e.message, e.sqlstate]
    return None


def evict(args, ctx):
    del notes[:]
    try:
        try:
            ctx.sleep(60)
        except Exception:
            notes.append("caught by except Exception")
            raise
    except fx.Evicted as e:
        notes.append([e.message, e.sqlstate])
        try:
            ctx.set_event("after", 1)
        except fx.Evicted as again:
            notes.append([again.message, again.sqlstate])
        try:
            ctx.sql("select 1")
        except fx.Evicted as again:
            notes.append([again.message, again.sqlstate])
    return "ignored"


def evict_plain(args, ctx):
    ctx.sleep(60)
    return "woke"


def get_notes(args, ctx):
    return notes


def simple(args, ctx):
    before = ran[0]
    try:
        ctx.run("add", add, 1, b=2)
    except fx.Error as e:
        return [e.message, getattr(e, "sqlstate", None), ran[0] - before]
    return None


OPS = {"run": run, "other": other, "fail": fail, "null": null,
       "mixed": mixed, "call_fail": call_fail, "big": big, "evict": evict,
       "evict_plain": evict_plain, "notes": get_notes, "simple": simple}


def workflows(args, ctx):
    if args.get("op") not in OPS:
        raise fx.Error("unknown op", args.get("op"), retryable=False)
    return OPS[args["op"]](args, ctx)


fx.run(workflows)
