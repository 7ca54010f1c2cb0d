#!/usr/bin/env python3
"""Play the fx worker's side of docs/protocol.md against the SDKs.

Run from the repository root (tests/sdk/run.sh does):

    fake_worker.py simple                 every example once in simple mode
    fake_worker.py session EXAMPLE        hello-c or hello-py in session mode
    fake_worker.py errors EXAMPLE         protocol errors make it exit non-zero
    fake_worker.py valgrind EXAMPLE       the session checks under valgrind
    fake_worker.py sdk LANG PROGRAM...    context and failures, c or py
    fake_worker.py requests LANG PROGRAM...  state and sql requests
    fake_worker.py workflows LANG PROGRAM... workflow steps

An "sdk" PROGRAM is an echo function (run.sh writes one per SDK): args
"null" make it return null, args "boom" make it fail retryably (C: with
fx_fail "boom", detail "a detail"; Python: by dividing by zero), Python's
args "set" return a set, any other args give {"id", "attempt",
"idempotency_key", "key", "deadline", "fn", "args"} from its context.

A "requests" PROGRAM is tests/sdk/requests.c or requests.py: args
{"op": ...} make it send state and sql requests (see requests.c), which
the Requests class below answers.

A "workflows" PROGRAM is tests/sdk/workflows.c or workflows.py: args
{"op": ...} make it record workflow steps (see workflows.c), which the
Journal class below answers.

Prints one line per check, "ok - ..." or "not ok - ...", and exits 1 if
any check failed.
"""

import json
import os
import socket
import struct
import subprocess
import sys
import tempfile

ROOT = os.getcwd()
SDK_PY = os.path.join(ROOT, "sdk", "python")
EXAMPLES = {
    "hello": ("examples/hello", ["./main"]),
    "hello-c": ("examples/hello-c", ["./hello"]),
    "hello-py": ("examples/hello-py", ["python3", "main.py"]),
}
VALGRIND = ["valgrind", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=all", "--show-leak-kinds=all", "-q"]
DEADLINE = 1795000000000

failures = 0


def check(ok, name, why=""):
    global failures
    if ok:
        print("ok - %s" % name)
    else:
        failures += 1
        print("not ok - %s%s" % (name, ": " + why if why else ""))
    sys.stdout.flush()
    return ok


def base_env(mode, fn):
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("FX_"):
            del env[name]
    env.update(FX_MODE=mode, FX_FN=fn, FX_VERSION="1", PYTHONPATH=SDK_PY)
    return env


class Session:
    """One function process in session mode, on fd 3 of a socketpair."""

    def __init__(self, fn, cwd, argv, timeout=10.0):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        child_fd = theirs.fileno()
        env = base_env("session", fn)
        env.update(FX_SOCKET_FD="3", FX_BUNDLE=os.path.abspath(cwd))
        self.log = tempfile.TemporaryFile()

        def to_fd3():
            if child_fd == 3:
                os.set_inheritable(3, True)
            else:
                os.dup2(child_fd, 3)

        # Our end stays close-on-exec, so closing it gives the child EOF.
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     close_fds=False, preexec_fn=to_fd3)
        theirs.close()
        self.sock = ours
        self.sock.settimeout(timeout)
        self.timeout = timeout

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, msg):
        data = json.dumps(msg).encode()
        self.send_raw(struct.pack(">I", len(data)) + data)

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def recv(self):
        """Next message as a dict; None at EOF; raises on a timeout."""
        header = self._read(4)
        if header is None:
            return None
        (n,) = struct.unpack(">I", header)
        data = self._read(n)
        return None if data is None else json.loads(data)

    def invoke(self, inv_id, args, **fields):
        msg = {"type": "invoke", "id": inv_id, "fn": "test", "version": 1,
               "attempt": 1, "args": args, "key": None,
               "idempotency_key": "fx-%d" % inv_id, "deadline": DEADLINE}
        msg.update(fields)
        self.send(msg)
        return self.recv()

    def serve(self, requests, inv_id, args, key=None, **fields):
        """invoke(), answering the function's requests with requests (a
        Requests) until its result or error, which is returned (None at
        EOF)."""
        requests.begin()
        msg = self.invoke(inv_id, args, key=key, **fields)
        while isinstance(msg, dict) and msg.get("type") not in ("result",
                                                                "error"):
            self.send(requests.answer(msg, key))
            msg = self.recv()
        requests.end(is_result(msg, inv_id))
        return msg

    def close(self):
        """Close our end and return the exit status (None if it hangs)."""
        self.sock.close()
        try:
            return self.proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


class Refused(Exception):
    """An error reply: Refused(message, sqlstate)."""


class Requests:
    """The worker's side of state and sql requests, as docs/protocol.md
    describes it: state per key, null until set, kept by an invocation that
    succeeds and dropped by one that fails; "sql" echoes its query and
    params back as its one row, except that a query containing "fail" gets
    the error a missing table gives (42P01).  script maps a request type to
    a function(msg, key) returning the message to send instead.  seen is
    every request received, in order."""

    def __init__(self, **script):
        self.committed = {}
        self.pending = {}
        self.seen = []
        self.script = script

    def begin(self):
        self.pending = dict(self.committed)

    def end(self, succeeded):
        if succeeded:
            self.committed = self.pending

    def answer(self, msg, key):
        self.seen.append(msg)
        if msg.get("type") in self.script:
            return self.script[msg["type"]](msg, key)
        reply = {"type": "reply", "seq": msg.get("seq")}
        try:
            reply["value"] = self.value(msg, key)
        except Refused as e:
            reply.update(error=e.args[0], code=e.args[1])
        return reply

    def value(self, msg, key):
        kind = msg.get("type")
        if kind in ("state.get", "state.set", "state.delete") and key is None:
            raise Refused("state needs a keyed invocation", "55000")
        if kind == "state.get":
            return self.pending.get(key)
        if kind == "state.set":
            self.pending[key] = msg.get("value")
            return None
        if kind == "state.delete":
            self.pending.pop(key, None)
            return None
        if kind == "sql" and "fail" in msg.get("query", ""):
            raise Refused('relation "fail" does not exist', "42P01")
        if kind == "sql":
            return {"rows": [{"query": msg.get("query"),
                              "params": msg.get("params")}],
                    "count": 1, "command": "SELECT"}
        raise Refused('unsupported request "%s"' % kind, "0A000")


class Journal:
    """The worker's side of workflow steps, as docs/protocol.md describes
    it, in memory: every invocation's steps are recorded by number and a
    replay (the same invocation id again) gets the recorded outcomes.  An
    inline step is recorded by its step.done, whose output may have at most
    1000 bytes of JSON (else the error reply 54000).  A child (call, start)
    of "double" gives args.n * 2, of "fail" the error "child failed" (detail
    "fail: asked to"); start gives the child id 500 + step; recv on topic
    "late" times out (null), on any other gives {"topic", "step"}; sleep,
    send and set_event give null.  A step reached with another kind or name
    than the recorded one gets the error reply FXW01; a step in evict, a
    set of (invocation, step), gets FXW02 once, and is not recorded.  script
    maps a request type to a function(msg) returning the message to send
    instead.  seen is the requests received since the last take(), seqs
    the seq numbers of all of them."""

    KINDS = ("step", "step.done", "call", "start", "await", "sleep", "recv",
             "send", "set_event")

    def __init__(self, **script):
        self.steps = {}  # (invocation, step) -> (kind, name, outcome)
        self.begun = {}  # (invocation, step) -> name of a running "step"
        self.children = {}  # child id -> its outcome
        self.evict = set()
        self.script = script
        self.seen = []
        self.seqs = []
        self.inv = None

    def serve(self, session, inv_id, args):
        """Invoke, answering the steps until the result or error, which is
        returned (None at EOF)."""
        self.inv = inv_id
        msg = session.invoke(inv_id, args)
        while isinstance(msg, dict) and msg.get("type") not in ("result",
                                                                "error"):
            session.send(self.answer(msg))
            msg = session.recv()
        return msg

    def take(self):
        """The requests seen since the last take(), without their seq."""
        seen, self.seen = self.seen, []
        return [{k: v for k, v in m.items() if k != "seq"} for m in seen]

    def answer(self, msg):
        self.seen.append(msg)
        self.seqs.append(msg.get("seq"))
        if msg.get("type") in self.script:
            return self.script[msg["type"]](msg)
        reply = {"type": "reply", "seq": msg.get("seq")}
        try:
            reply["value"] = self.outcome(msg)
        except Refused as e:
            reply.update(error=e.args[0], code=e.args[1])
        return reply

    @staticmethod
    def child(fn, args):
        if fn == "double":
            return {"done": True, "output": args["n"] * 2}
        return {"done": True, "error": "child failed",
                "detail": "%s: asked to" % fn}

    def outcome(self, msg):
        kind = msg.get("type")
        if kind not in self.KINDS:
            raise Refused('unsupported request "%s"' % kind, "0A000")
        n = msg.get("step")
        at = (self.inv, n)
        label = "run" if kind == "step" else kind
        name = msg.get("name", msg.get("fn", kind))
        if kind == "step.done":
            if self.begun.get(at) != name:
                raise Refused("step %s was not begun" % n, "XX000")
            if "error" in msg:
                outcome = {"done": True, "error": msg["error"],
                           "detail": msg.get("detail")}
            else:
                size = len(json.dumps(msg.get("output"),
                                      separators=(",", ":")))
                if size > 1000:
                    raise Refused("step output of %d bytes exceeds the limit"
                                  " of 1000 bytes" % size, "54000")
                outcome = {"done": True, "output": msg.get("output")}
            del self.begun[at]
            self.steps[at] = ("run", name, outcome)
            return outcome
        if at in self.steps:
            was_label, was_name, outcome = self.steps[at]
            if (was_label, was_name) != (label, name):
                raise Refused('nondeterministic workflow: step %s is "%s" '
                              '(%s) now but was recorded as "%s" (%s)'
                              % (n, name, label, was_name, was_label),
                              "FXW01")
            return outcome
        if at in self.evict:
            self.evict.discard(at)
            raise Refused("workflow evicted while waiting", "FXW02")
        if kind == "step":
            self.begun[at] = name
            return {"done": False}
        if kind == "call":
            outcome = self.child(msg.get("fn"), msg.get("args"))
        elif kind == "start":
            self.children[500 + n] = self.child(msg.get("fn"),
                                                msg.get("args"))
            outcome = {"done": True, "output": 500 + n}
        elif kind == "await":
            outcome = self.children[msg.get("child")]
        elif kind == "recv" and msg.get("topic") != "late":
            outcome = {"done": True,
                       "output": {"topic": msg.get("topic"), "step": n}}
        else:
            outcome = {"done": True, "output": None}
        self.steps[at] = (label, name, outcome)
        return outcome


def is_result(reply, inv_id):
    return (isinstance(reply, dict) and reply.get("type") == "result"
            and reply.get("id") == inv_id and "value" in reply)


def expect_greeting(lang, reply, inv_id, name, count):
    if lang == "hello-c":
        want = {"greeting": "hello " + name, "lang": "c",
                "invocation": inv_id}
    else:
        want = {"greeting": "hello " + name, "lang": "python",
                "count": count}
    return is_result(reply, inv_id) and reply["value"] == want


def session_checks(example, prefix=(), timeout=10.0, tag=""):
    """The session conversation with hello-c or hello-py; returns the exit
    status at EOF (None if it did not exit)."""
    cwd, argv = EXAMPLES[example]
    t = "%s%s session: " % (example, tag)
    s = Session(example, cwd, list(prefix) + argv, timeout)
    try:
        ready = s.recv()
        check(ready == {"type": "ready", "protocol": 1}, t + "sends ready",
              repr(ready))
        s.send({"type": "ping"})
        s.send({"type": "reply", "seq": 1, "value": None})
        r = s.invoke(101, {"name": "alice"})
        check(expect_greeting(example, r, 101, "alice", 1),
              t + "skips unknown messages, answers invoke", repr(r))
        r = s.invoke(102, {})
        check(expect_greeting(example, r, 102, "world", 2),
              t + "warm process answers a second invoke", repr(r))
        r = s.invoke(103, {"name": "bob", "fail": True})
        check(isinstance(r, dict) and r.get("type") == "error"
              and r.get("id") == 103 and r.get("retryable") is False
              and r.get("message") == "asked to fail"
              and isinstance(r.get("detail"), str),
              t + "fail gives a non-retryable error", repr(r))
        big = "x" * (3 << 20)
        r = s.invoke(104, {"name": big})
        check(expect_greeting(example, r, 104, big, 4),
              t + "3 MiB args and result survive short reads and writes",
              repr(r)[:200])
        r = s.invoke(1 << 40, {"name": "big id"})
        check(expect_greeting(example, r, 1 << 40, "big id", 5),
              t + "64-bit invocation id", repr(r))
        s.send_raw(b"".join(
            struct.pack(">I", len(m)) + m for m in
            (json.dumps({"type": "invoke", "id": i, "attempt": 1,
                         "args": {"name": "p%d" % i}}).encode()
             for i in (201, 202))))
        r1, r2 = s.recv(), s.recv()
        check(expect_greeting(example, r1, 201, "p201", 6)
              and expect_greeting(example, r2, 202, "p202", 7),
              t + "pipelined invokes answered in order", repr((r1, r2)))
    except Exception as e:
        check(False, t + "conversation", "%s: %s" % (type(e).__name__, e))
    status = s.close()
    check(status == 0, t + "exits 0 at end of file",
          "status %r; output:\n%s" % (status, s.output()[-2000:]))
    logs = [line for line in s.output().splitlines()
            if line.startswith(example + ": invocation")]
    check(len(logs) >= 7, t + "logs a stderr line per invocation",
          "%d lines" % len(logs))
    return status


def suite_session(example):
    session_checks(example)


def suite_valgrind(example):
    status = session_checks(example, VALGRIND, 120.0, " (valgrind)")
    check(status == 0, "%s session under valgrind: no errors, no leaks"
          % example, "exit status %r (99 means valgrind errors)" % status)


def suite_errors(example):
    cwd, argv = EXAMPLES[example]
    t = "%s errors: " % example
    bad = {
        "a message over 64 MiB": struct.pack(">I", (64 << 20) + 1),
        "a message that is not a JSON object": b"\0\0\0\x03[1]",
        "an invoke without an id": b"\0\0\0\x11{\"type\":\"invoke\"}",
        "end of file inside a message": b"\0\0\0\x10{\"type\"",
    }
    for what, data in bad.items():
        s = Session(example, cwd, argv)
        try:
            s.recv()
            s.send_raw(data)
            if what.startswith("end of file"):
                s.sock.shutdown(socket.SHUT_WR)
            eof = s.recv() is None
        except Exception as e:
            eof = "%s: %s" % (type(e).__name__, e)
        status = s.close()
        check(eof is True and status not in (0, None),
              t + "exits non-zero after " + what,
              "eof %r, status %r" % (eof, status))


def run_simple(fn, cwd, argv, stdin, **env_extra):
    env = base_env("simple", fn)
    env.update(FX_BUNDLE=os.path.abspath(cwd), FX_INVOCATION_ID="7",
               FX_ATTEMPT="2", FX_IDEMPOTENCY_KEY="idem-7",
               FX_DEADLINE_MS=str(DEADLINE))
    env.update(env_extra)
    try:
        p = subprocess.run(argv, cwd=cwd, env=env, input=stdin.encode(),
                           capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None, None, "timed out"
    try:
        value = json.loads(p.stdout) if p.returncode == 0 else None
    except ValueError:
        value = "bad output: %r" % p.stdout
    return p.returncode, value, p.stderr.decode(errors="replace")


def suite_simple():
    want = {
        "hello": {"greeting": "hello x"},
        "hello-c": {"greeting": "hello x", "lang": "c", "invocation": 7},
        "hello-py": {"greeting": "hello x", "lang": "python", "count": 1},
    }
    for example, (cwd, argv) in EXAMPLES.items():
        rc, value, err = run_simple(example, cwd, argv, '{"name":"x"}')
        check(rc == 0 and value == want[example] and err.strip() != "",
              "%s simple: result on stdout, log on stderr" % example,
              "rc %r value %r stderr %r" % (rc, value, err))
    rc, value, err = run_simple("hello", *EXAMPLES["hello"], "")
    check(rc == 0 and value == {"greeting": "hello world"},
          "hello simple: empty stdin greets the world", repr(value))
    for example in ("hello-c", "hello-py"):
        rc, value, err = run_simple(example, *EXAMPLES[example],
                                    '{"fail":true}')
        check(rc == 1 and "asked to fail" in err,
              "%s simple: fail exits 1 with the message on stderr" % example,
              "rc %r stderr %r" % (rc, err))


def ctx_want(inv_id, args, attempt, idem, key):
    return {"id": inv_id, "attempt": attempt, "idempotency_key": idem,
            "key": key, "deadline": DEADLINE, "fn": "test", "args": args}


def sdk_session(lang, argv):
    t = "sdk %s session: " % lang
    s = Session("test", ".", argv)
    try:
        check(s.recv() == {"type": "ready", "protocol": 1}, t + "ready")
        args = {"name": "caf\u00e9 \u2603", "n": [1, 2.5, None, True]}
        r = s.invoke(5, args, attempt=3, key="user-1",
                     idempotency_key="caller-key")
        check(is_result(r, 5) and r["value"] == ctx_want(
            5, args, 3, "caller-key", "user-1"),
            t + "context and unicode args", repr(r))
        r = s.invoke(6, {})
        check(is_result(r, 6) and r["value"] == ctx_want(6, {}, 1, "fx-6",
                                                         None),
              t + "null key", repr(r))
        msg = {"type": "invoke", "id": 7, "fn": "test", "attempt": 1,
               "idempotency_key": "fx-7", "deadline": DEADLINE}
        s.send(msg)
        r = s.recv()
        check(is_result(r, 7) and r["value"].get("args") is None,
              t + "missing args are null", repr(r))
        r = s.invoke(8, "null")
        check(is_result(r, 8) and r["value"] is None,
              t + "returning nothing gives a null value", repr(r))
        r = s.invoke(9, "boom")
        check(isinstance(r, dict) and r.get("type") == "error"
              and r.get("id") == 9 and r.get("retryable") is True
              and "message" in r and "detail" in r,
              t + "failure is retryable by default", repr(r))
        if lang == "c":
            check(r.get("message") == "boom" and r.get("detail") == "a detail",
                  t + "the last fx_fail wins", repr(r))
        if lang == "py":
            check("ZeroDivisionError" in (r.get("detail") or "")
                  and r.get("message") == "division by zero",
                  t + "exception text and traceback", repr(r))
            r = s.invoke(10, "set")
            check(isinstance(r, dict) and r.get("type") == "error"
                  and r.get("retryable") is False,
                  t + "unserialisable result is an error", repr(r))
        r = s.invoke(11, {"after": "errors"})
        check(is_result(r, 11), t + "still serving after errors", repr(r))
    except Exception as e:
        check(False, t + "conversation", "%s: %s" % (type(e).__name__, e))
    status = s.close()
    check(status == 0, t + "exits 0 at end of file",
          "status %r; output:\n%s" % (status, s.output()[-2000:]))


def sdk_simple(lang, argv):
    t = "sdk %s simple: " % lang
    rc, value, err = run_simple("test", ".", argv, '{"a":[1,"\u00e9"]}',
                                FX_KEY="k")
    check(rc == 0 and value == ctx_want(7, {"a": [1, "\u00e9"]}, 2, "idem-7",
                                        "k"),
          t + "context from the environment", "rc %r value %r stderr %r"
          % (rc, value, err))
    rc, value, err = run_simple("test", ".", argv, "")
    check(rc == 0 and isinstance(value, dict) and "args" in value
          and value["args"] is None and value.get("key", 0) is None,
          t + "empty stdin is null args", "rc %r value %r" % (rc, value))
    rc, value, err = run_simple("test", ".", argv, '"null"')
    check(rc == 0 and value is None, t + "null result", repr((rc, value)))
    rc, value, err = run_simple("test", ".", argv, '"boom"')
    check(rc == 1 and err.strip() != "", t + "failure exits 1",
          repr((rc, err)))
    rc, value, err = run_simple("test", ".", argv, '{"bad json')
    check(rc != 0 and err.strip() != "", t + "bad args JSON exits non-zero",
          repr((rc, err)))


def echo_row(query, params):
    return {"query": query, "params": params}


def requests_session(lang, argv, t):
    """The requests conversation; returns the Requests that answered."""
    w = Requests()
    s = Session("test", ".", argv, 60.0 if argv[0] == "valgrind" else 10.0)
    try:
        check(s.recv() == {"type": "ready", "protocol": 1}, t + "ready")
        r1 = s.serve(w, 1, {"op": "counter"}, key="cart-1")
        r2 = s.serve(w, 2, {"op": "counter"}, key="cart-1")
        check(is_result(r1, 1) and r1["value"] == 0 and is_result(r2, 2)
              and r2["value"] == 1 and w.committed == {"cart-1": 2},
              t + "a counter sees 0 then 1", repr((r1, r2, w.committed)))
        check([m.get("value") for m in w.seen if m["type"] == "state.set"]
              == [1, 2], t + "state.set sends the value", repr(w.seen))
        params = [10, "acc-1", None, True, {"a": [1, 2.5]}]
        r = s.serve(w, 3, {"op": "sql", "query": "select $1", "params":
                           params})
        row = echo_row("select $1", params)
        check(is_result(r, 3) and r["value"] == {
            "rows": [row], "result": {"rows": [row], "count": 1,
                                      "command": "SELECT"}},
            t + "sql returns the rows and the whole reply", repr(r))
        r = s.serve(w, 4, {"op": "sql", "query": "select 2"})
        row = echo_row("select 2", [])
        check(is_result(r, 4) and r["value"]["rows"] == [row],
              t + "sql without params sends []", repr(r))
        r = s.serve(w, 5, {"op": "catch"})
        check(is_result(r, 5) and r["value"] == {
            "null": True, "error": 'relation "fail" does not exist',
            "sqlstate": "42P01", "then": [echo_row("select 1", [])],
            "cleared": True},
            t + "an sql error reply is caught, then sql goes on", repr(r))
        r = s.serve(w, 6, {"op": "uncaught"})
        check(isinstance(r, dict) and r.get("type") == "error"
              and r.get("id") == 6 and r.get("retryable") is True
              and r.get("message") == 'relation "fail" does not exist',
              t + "an uncaught sql error fails the invocation", repr(r))
        r = s.serve(w, 7, {"op": "delete"}, key="cart-1")
        r2 = s.serve(w, 8, {"op": "counter"}, key="cart-1")
        check(is_result(r, 7) and r["value"] is None and is_result(r2, 8)
              and r2["value"] == 0, t + "state.delete, then null",
              repr((r, r2)))
        r = s.serve(w, 9, {"op": "all"})
        keyless = [False, "state needs a keyed invocation", "55000"]
        check(is_result(r, 9) and r["value"] == [keyless] * 3
              + [[True, None, None]],
              t + "state errors without a key", repr(r))
        if lang == "py":
            r = s.serve(w, 10, {"op": "stale"})
            check(is_result(r, 10) and r["value"] == [
                False, "the invocation has ended", "55000"],
                t + "a context after its invocation sends nothing",
                repr(r))
        seqs = [m.get("seq") for m in w.seen]
        check(seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 19,
              t + "seq numbers count from 1 across invocations", repr(seqs))
    except Exception as e:
        check(False, t + "conversation", "%s: %s" % (type(e).__name__, e))
    status = s.close()
    check(status == 0, t + "exits 0 at end of file",
          "status %r; output:\n%s" % (status, s.output()[-2000:]))


def requests_broken(lang, argv, t):
    """A reply that breaks the protocol makes the function exit 70."""
    def wrong_seq(msg, key):
        return {"type": "reply", "seq": msg["seq"] + 1, "value": None}

    def invoke(msg, key):
        return {"type": "invoke", "id": 99, "args": {"op": "counter"}}

    def empty(msg, key):
        return {"type": "reply", "seq": msg["seq"]}

    for what, answer in (("a reply with the wrong seq", wrong_seq),
                         ("an invoke instead of the reply", invoke),
                         ("a reply without value or error", empty)):
        s = Session("test", ".", argv)
        try:
            s.recv()
            r = s.serve(Requests(**{"state.get": answer}), 1,
                        {"op": "counter"}, key="k")
        except Exception as e:
            r = "%s: %s" % (type(e).__name__, e)
        status = s.close()
        check(r is None and status == 70
              and "fx: no valid reply to request 1" in s.output(),
              t + "exits 70 after " + what, "answer %r, status %r, output %r"
              % (r, status, s.output()[-500:]))


def requests_simple(lang, argv, t):
    rc, value, err = run_simple("test", ".", argv, '{"op":"all"}',
                                FX_KEY="k")
    why = [False, "state and sql need session mode", "0A000"]
    check(rc == 0 and value == [why] * 4, t + "requests fail with 0A000",
          "rc %r value %r stderr %r" % (rc, value, err))
    rc, value, err = run_simple("test", ".", argv, '{"op":"uncaught"}')
    check(rc == 1 and "state and sql need session mode" in err,
          t + "an uncaught request error exits 1", repr((rc, err)))


def suite_requests(lang, argv):
    tag = " (valgrind)" if argv[0] == "valgrind" else ""
    requests_session(lang, argv, "requests %s session%s: " % (lang, tag))
    # valgrind counts what exit() leaves allocated as leaks
    if not tag:
        requests_broken(lang, argv, "requests %s session: " % lang)
    requests_simple(lang, argv, "requests %s simple%s: " % (lang, tag))


def mixed_requests(fresh):
    """What the "mixed" op sends; its inline step's step.done only when it
    runs the code."""
    requests = [{"type": "step", "step": 1, "name": "add"}]
    if fresh:
        requests.append({"type": "step.done", "step": 1, "name": "add",
                         "output": {"sum": 21}})
    return requests + [
        {"type": "call", "step": 2, "fn": "double", "args": {"n": 21}},
        {"type": "start", "step": 3, "fn": "double", "args": {"n": 5}},
        {"type": "sleep", "step": 4, "ms": 1500},
        {"type": "recv", "step": 5, "topic": "paid", "timeout_ms": 2500},
        {"type": "recv", "step": 6, "topic": "late", "timeout_ms": 250},
        {"type": "recv", "step": 7, "topic": "paid", "timeout_ms": None},
        {"type": "send", "step": 8, "to": 77, "topic": "paid",
         "payload": {"x": 1}},
        {"type": "set_event", "step": 9, "key": "status",
         "value": "shipped"},
        {"type": "await", "step": 10, "child": 503}]


def mixed_result(inv_id):
    return {"add": {"sum": 21}, "call": 42, "child": 503,
            "recv": {"topic": "paid", "step": 5}, "timeout": None,
            "forever": {"topic": "paid", "step": 7}, "awaited": 10,
            "workflow_id": inv_id}


def is_error(reply, inv_id, message, detail, retryable):
    return reply == {"type": "error", "id": inv_id, "message": message,
                     "detail": detail, "retryable": retryable}


def evicted(inv_id):
    return {"type": "error", "id": inv_id, "message": "evicted",
            "retryable": True}


def workflows_session(lang, argv, t):
    j = Journal()
    s = Session("test", ".", argv, 60.0 if argv[0] == "valgrind" else 10.0)
    py = lang == "py"
    try:
        check(s.recv() == {"type": "ready", "protocol": 1}, t + "ready")

        args = {"op": "run", "a": 2, "b": 3}
        r = j.serve(s, 1, args)
        check(is_result(r, 1) and r["value"] == {"output": {"sum": 5},
                                                 "ran": 1},
              t + "a fresh inline step runs its code once, returns its "
              "output", repr(r))
        seen = j.take()
        check(seen == [{"type": "step", "step": 1, "name": "add"},
                       {"type": "step.done", "step": 1, "name": "add",
                        "output": {"sum": 5}}],
              t + "a fresh inline step sends step, then step.done with the "
              "output", repr(seen))
        r = j.serve(s, 1, args)
        seen = j.take()
        check(is_result(r, 1) and r["value"] == {"output": {"sum": 5},
                                                 "ran": 0}
              and seen == [{"type": "step", "step": 1, "name": "add"}],
              t + "a recorded inline step returns its output without "
              "running the code", repr((r, seen)))
        r = j.serve(s, 1, {"op": "other", "a": 2, "b": 3})
        seen = j.take()
        check(is_error(r, 1, 'nondeterministic workflow: step 1 is "other" '
                       '(run) now but was recorded as "add" (run)',
                       "SQLSTATE FXW01", False)
              and seen == [{"type": "step", "step": 1, "name": "other"}],
              t + "FXW01 fails the invocation, not retryable",
              repr((r, seen)))

        r = j.serve(s, 2, {"op": "fail"})
        want = {"error": "card declined", "detail": "ValueError",
                "sqlstate": None, "ran": 1}
        if py:
            want["cause"] = "ValueError"
        seen = j.take()
        check(is_result(r, 2) and r["value"] == want,
              t + "a failing inline step fails the step, not the invocation",
              repr(r))
        check(seen == [{"type": "step", "step": 1, "name": "charge"},
                       {"type": "step.done", "step": 1, "name": "charge",
                        "error": "card declined", "detail": "ValueError"}],
              t + "step.done records the failure and its detail",
              repr(seen))
        r = j.serve(s, 2, {"op": "fail"})
        want.update(ran=0)
        if py:
            want["cause"] = None
        seen = j.take()
        check(is_result(r, 2) and r["value"] == want
              and seen == [{"type": "step", "step": 1, "name": "charge"}],
              t + "a recorded failure is raised again without running the "
              "code", repr((r, seen)))

        r = j.serve(s, 3, {"op": "null"})
        seen = j.take()
        check(is_result(r, 3) and r["value"] == {"is_null": True, "ran": 1}
              and seen[-1] == {"type": "step.done", "step": 1,
                               "name": "nothing", "output": None},
              t + "a null output is recorded as null", repr((r, seen)))
        r = j.serve(s, 3, {"op": "null"})
        check(is_result(r, 3) and r["value"] == {"is_null": True, "ran": 0},
              t + "a recorded null output comes back as null", repr(r))
        j.take()

        r = j.serve(s, 4, {"op": "mixed"})
        seen = j.take()
        check(is_result(r, 4) and r["value"] == mixed_result(4),
              t + "run, call, start, sleep, recv, send, set_event, await "
              "return their outputs (recv timeout: null)", repr(r))
        check(seen == mixed_requests(True),
              t + "every kind of step sends its fields, numbered 1 to 10",
              repr(seen))
        r = j.serve(s, 5, {"op": "mixed"})
        seen = j.take()
        check(is_result(r, 5) and r["value"] == mixed_result(5)
              and seen == mixed_requests(True),
              t + "step numbers restart at 1 with the next invocation",
              repr((r, seen)))
        r = j.serve(s, 4, {"op": "mixed"})
        seen = j.take()
        check(is_result(r, 4) and r["value"] == mixed_result(4)
              and seen == mixed_requests(False),
              t + "a replay gets every recorded outcome, runs no code",
              repr((r, seen)))

        r = j.serve(s, 6, {"op": "call_fail"})
        seen = j.take()
        check(is_result(r, 6) and r["value"] == ["child failed",
                                                 "fail: asked to"]
              and seen == [{"type": "call", "step": 1, "fn": "fail",
                            "args": None}],
              t + "a failed child's error and detail, null args",
              repr((r, seen)))
        r = j.serve(s, 7, {"op": "big"})
        j.take()
        check(is_result(r, 7) and r["value"] == [
            "step output of 2002 bytes exceeds the limit of 1000 bytes",
            "54000"],
            t + "an error reply to step.done is an error with its SQLSTATE",
            repr(r))

        j.evict.add((8, 1))
        r = j.serve(s, 8, {"op": "evict"})
        seen = j.take()
        check(r == evicted(8) and seen == [{"type": "sleep", "step": 1,
                                            "ms": 60000}],
              t + "FXW02: the invocation is answered \"evicted\", "
              "whatever the handler returns", repr((r, seen)))
        r = j.serve(s, 9, {"op": "notes"})
        j.take()
        check(is_result(r, 9) and r["value"] == [
            ["workflow evicted while waiting", "FXW02"]] * 3,
            t + "after FXW02 (not caught by except Exception) requests fail "
            "at once without being sent", repr(r))
        j.evict.add((10, 1))
        r = j.serve(s, 10, {"op": "evict_plain"})
        r2 = j.serve(s, 10, {"op": "evict_plain"})
        seen = j.take()
        check(r == evicted(10) and is_result(r2, 10) and r2["value"] == "woke"
              and seen == [{"type": "sleep", "step": 1, "ms": 60000}] * 2,
              t + "an uncaught eviction, then the next invocation is served",
              repr((r, r2, seen)))
        check(j.seqs == list(range(1, len(j.seqs) + 1))
              and len(j.seqs) == 48,
              t + "seq numbers go on counting across workflow requests",
              repr(j.seqs))
    except Exception as e:
        check(False, t + "conversation", "%s: %s" % (type(e).__name__, e))
    status = s.close()
    check(status == 0, t + "exits 0 at end of file",
          "status %r; output:\n%s" % (status, s.output()[-2000:]))


def workflows_broken(lang, argv, t):
    """A step reply that is not an outcome makes the function exit 70."""
    def number(msg):
        return {"type": "reply", "seq": msg["seq"], "value": 5}

    def not_done(msg):
        return {"type": "reply", "seq": msg["seq"], "value": {"done": False}}

    for what, script in (("a step reply that is not an outcome",
                          {"sleep": number}),
                         ("{\"done\":false} for a sleep",
                          {"sleep": not_done})):
        s = Session("test", ".", argv)
        try:
            s.recv()
            r = Journal(**script).serve(s, 1, {"op": "evict_plain"})
        except Exception as e:
            r = "%s: %s" % (type(e).__name__, e)
        status = s.close()
        check(r is None and status == 70
              and "fx: no valid reply to request 1" in s.output(),
              t + "exits 70 after " + what, "answer %r, status %r, output %r"
              % (r, status, s.output()[-500:]))


def workflows_simple(lang, argv, t):
    rc, value, err = run_simple("test", ".", argv, '{"op":"simple"}')
    check(rc == 0 and value == ["workflows need session mode", "0A000", 0],
          t + "steps fail with 0A000 without running code",
          "rc %r value %r stderr %r" % (rc, value, err))
    rc, value, err = run_simple("test", ".", argv, '{"op":"evict_plain"}')
    check(rc == 1 and "workflows need session mode" in err,
          t + "an uncaught step error exits 1", repr((rc, err)))


def suite_workflows(lang, argv):
    tag = " (valgrind)" if argv[0] == "valgrind" else ""
    workflows_session(lang, argv, "workflows %s session%s: " % (lang, tag))
    if not tag:
        workflows_broken(lang, argv, "workflows %s session: " % lang)
    workflows_simple(lang, argv, "workflows %s simple%s: " % (lang, tag))


def suite_sdk(lang, argv):
    sdk_session(lang, argv)
    sdk_simple(lang, argv)


def main(argv):
    suites = {"simple": suite_simple, "session": suite_session,
              "errors": suite_errors, "valgrind": suite_valgrind}
    if len(argv) >= 3 and argv[0] == "sdk":
        suite_sdk(argv[1], argv[2:])
    elif len(argv) >= 3 and argv[0] == "requests":
        suite_requests(argv[1], argv[2:])
    elif len(argv) >= 3 and argv[0] == "workflows":
        suite_workflows(argv[1], argv[2:])
    elif argv and argv[0] in suites:
        suites[argv[0]](*argv[1:])
    else:
        sys.exit(__doc__)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
