#!/usr/bin/env python3
"""Play the fx worker's side of docs/protocol.md against the SDKs.

Run from the repository root (tests/sdk/run.sh does):

    fake_worker.py simple                 every example once in simple mode
    fake_worker.py session EXAMPLE        hello-c or hello-py in session mode
    fake_worker.py errors EXAMPLE         protocol errors make it exit non-zero
    fake_worker.py valgrind EXAMPLE       the session checks under valgrind
    fake_worker.py sdk LANG PROGRAM...    context and failures, c or py
    fake_worker.py requests LANG PROGRAM...  state and sql requests

An "sdk" PROGRAM is an echo function (run.sh writes one per SDK): args
"null" make it return null, args "boom" make it fail retryably (C: with
fx_fail "boom", detail "a detail"; Python: by dividing by zero), Python's
args "set" return a set, any other args give {"id", "attempt",
"idempotency_key", "key", "deadline", "fn", "args"} from its context.

A "requests" PROGRAM is tests/sdk/requests.c or requests.py: args
{"op": ...} make it send state and sql requests (see requests.c), which
the Requests class below answers.

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
    elif argv and argv[0] in suites:
        suites[argv[0]](*argv[1:])
    else:
        sys.exit(__doc__)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
