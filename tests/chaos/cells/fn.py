"""The functions of the chaos cells (tests/chaos/cells.sh) beside those of
tests/chaos/fn/chaos.py.

    python3 fn.py mark    writes one row (its invocation id) to cell_mark
                          through sql: the row commits with the invocation's
                          success, once
    python3 fn.py storm   writes the same row, then fails (retryable): the
                          row must never commit
    python3 fn.py ping    answers its args at once

mark and storm sleep up to "nap" ms (default 10) before writing.
"""
import random
import sys
import time

import fx


def nap(args):
    time.sleep(random.uniform(0, args.get("nap", 10)) / 1000)


def mark(args, ctx):
    nap(args)
    ctx.sql("INSERT INTO cell_mark (inv, fn) VALUES ($1, 'mark')", ctx.id)
    return {"mark": ctx.id}


def storm(args, ctx):
    nap(args)
    ctx.sql("INSERT INTO cell_mark (inv, fn) VALUES ($1, 'storm')", ctx.id)
    raise fx.Error("storm: this function always fails", retryable=True)


def ping(args, ctx):
    return args


fx.run({"mark": mark, "storm": storm, "ping": ping}[sys.argv[1]])
