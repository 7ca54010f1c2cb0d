"""hello-py: a session-mode fx function in Python, using sdk/python/fx.py.

Args {"name": "x"} give {"greeting": "hello x", "lang": "python",
"count": N}, where N counts the invocations this process has served: it
grows while the worker reuses the warm process and restarts at 1 in a new
one.  Args with "fail" make the invocation fail without retries.  Each
invocation logs one line on stderr.

    fx deploy hello-py examples/hello-py --cmd "python3 main.py" --mode session
    fx invoke hello-py '{"name":"x"}'

The worker puts fx.py on PYTHONPATH; by hand, run
PYTHONPATH=../../sdk/python python3 main.py <<< '{"name":"x"}'.
"""

import sys

import fx

count = 0


def hello(args, ctx):
    global count
    count += 1
    if not isinstance(args, dict):
        args = {}
    name = args.get("name", "world")
    print(f"hello-py: invocation {ctx.id} attempt {ctx.attempt} "
          f"for {name} (call {count} in this process)", file=sys.stderr)
    if args.get("fail"):
        raise fx.Error("asked to fail", detail='The args had "fail".',
                       retryable=False)
    return {"greeting": f"hello {name}", "lang": "python", "count": count}


if __name__ == "__main__":
    fx.run(hello)
