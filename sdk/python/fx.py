"""Python SDK for fx functions (standard library only).

A function is a program the fx worker runs (see docs/protocol.md).  The
program hands a handler to ``fx.run()``, which speaks whichever mode the
worker started it in:

session
    ``FX_MODE=session``: one process serves many invocations.  ``run`` sends
    ``{"type":"ready","protocol":1}`` on the socket in ``$FX_SOCKET_FD``,
    then calls the handler once per ``invoke`` message and answers each with
    a ``result`` or ``error`` message; other message types are skipped.  The
    process exits 0 when the worker closes the socket.
simple
    anything else (also ``FX_MODE`` unset, e.g. run by hand): stdin is the
    args JSON (empty means ``None``), the handler runs once and its result
    is printed on stdout (exit 0); on an error the message and detail go to
    stderr (exit 1).

``handler(args, ctx)`` gets the decoded args and a ``Context`` and returns a
JSON-serialisable value.  To fail, raise ``fx.Error(message, detail=None,
retryable=True)``; a non-retryable error is not retried by the invocation's
retry policy.  Any other exception fails the attempt too, with its text as
the message and the traceback as the detail, and is retryable.  Lines
written to stderr (``print(..., file=sys.stderr)``, ``logging``) are the
invocation's log; stdout and stderr are flushed before each answer.  In
simple mode stdout carries the result, so log to stderr only.

Example (deploy with ``--cmd "python3 main.py" --mode session``)::

    import sys
    import fx

    def handler(args, ctx):
        print(f"invocation {ctx.id} attempt {ctx.attempt}", file=sys.stderr)
        if "name" not in args:
            raise fx.Error("name is required", retryable=False)
        return {"greeting": "hello " + args["name"]}

    fx.run(handler)

While an invocation runs, a handler in session mode may read and write the
state of the invocation's key and run SQL in the invocation's transaction,
which commits with its result ("State and SQL" in docs/protocol.md).  Each
call sends one request and waits for its reply: ``ctx.state.get()`` (None
until first set), ``ctx.state.set(value)``, ``ctx.state.delete()``,
``ctx.sql(query, *params)`` (the rows, as dicts) and
``ctx.sql_result(query, *params)`` (``{"rows": [...], "count": n,
"command": "..."}``).  An error reply raises ``fx.SQLError`` with the
message and ``.sqlstate``; the handler may catch it and go on, else it fails
the invocation.  In simple mode they raise ``SQLError`` with SQLSTATE
0A000.  A reply that breaks the protocol, or none at all, ends the process
with exit status 70.  A counter (invoked with a key)::

    def count(args, ctx):
        n = ctx.state.get() or 0
        ctx.state.set(n + 1)
        try:
            ctx.sql("INSERT INTO seen (n) VALUES ($1)", n)
        except fx.SQLError as e:
            if e.sqlstate != "23505":   # unique_violation: seen already
                raise
        return n

A session function is a workflow as soon as it records steps
("Workflows" in docs/protocol.md).  Each step is numbered in the order the
code reaches it (1, 2, 3, ... in every invocation) and recorded when it
ends; when the invocation runs again, after a crash, a failed attempt or an
eviction, a recorded step returns its recorded outcome instead of running
again, so the code between steps must be deterministic.  The steps:
``ctx.run(name, fn, *args, **kwargs)`` (runs ``fn(*args, **kwargs)`` once
and records what it returns, which must be JSON-serialisable),
``ctx.call(fn, args)`` (another function as a child invocation, waited
for), ``ctx.start(fn, args)`` (a child not waited for: a ``Handle`` with
``.id`` and ``.result()``), ``ctx.sleep(seconds)``, ``ctx.recv(topic,
timeout=None)`` (a message's payload, None on timeout),
``ctx.send(workflow_id, topic, payload)`` and ``ctx.set_event(key,
value)``.  A step that failed (``fn`` raised an exception, a child failed)
raises ``fx.StepError``, again on every replay; uncaught, it fails the
invocation without retries.  ``ctx.workflow_id`` is the invocation id.  A
step that waits longer than the worker allows raises ``fx.Evicted``, which
is a ``BaseException`` so that ``except Exception`` lets it through: the
worker runs the invocation again when the wait is over.  A replay that
reaches other steps than the recorded ones raises
``fx.NondeterministicError``, which fails the invocation without retries.
Workflows need session mode; in simple mode the steps raise ``SQLError``
with SQLSTATE 0A000.  An order::

    def order(args, ctx):
        total = ctx.run("price", price_of, args["items"])
        try:
            ctx.call("charge", {"order": ctx.workflow_id, "amount": total})
        except fx.StepError as e:
            ctx.set_event("status", "refused: " + e.message)
            raise
        paid = ctx.recv("confirmed", timeout=3600)
        ctx.set_event("status", "paid" if paid else "unconfirmed")
        return {"total": total, "paid": paid is not None}

The worker puts this module on ``PYTHONPATH``.
"""

import json
import os
import select
import struct
import sys
import traceback

__all__ = ["Context", "Error", "Evicted", "Handle", "NondeterministicError",
           "SQLError", "StepError", "run"]

PROTOCOL_VERSION = 1
MAX_MESSAGE = 64 * 1024 * 1024  # bytes, both directions
EXIT_PROTOCOL = 70  # EX_SOFTWARE: a request got no valid reply
NONDETERMINISTIC = "FXW01"  # SQLSTATEs of workflow error replies
EVICTED = "FXW02"
_PENDING = object()  # a "step" reply's {"done": false}


class Error(Exception):
    """Raised by a handler to fail the invocation with a message."""

    def __init__(self, message, detail=None, retryable=True):
        super().__init__(message)
        self.message = str(message)
        self.detail = None if detail is None else str(detail)
        self.retryable = bool(retryable)


class SQLError(Error):
    """An error reply to a state or sql request.

    ``message`` is the error (PostgreSQL's message for SQL) and
    ``sqlstate`` its five-character code.  Uncaught, it fails the
    invocation like any ``Error``, with the code as the detail.
    """

    def __init__(self, message, sqlstate, detail=None, retryable=True):
        if detail is None:
            detail = "SQLSTATE %s" % sqlstate
        super().__init__(message, detail, retryable)
        self.sqlstate = sqlstate


class StepError(Error):
    """A workflow step failed: the outcome ``ctx.run``, ``ctx.call`` and
    the other steps raise, recorded or new.

    ``message`` and ``detail`` are the step's (for ``ctx.run``, the
    exception's text and class name).  A replay raises it again, so
    retrying cannot help: uncaught, it fails the invocation without
    retries.
    """

    def __init__(self, message, detail=None):
        super().__init__(message, detail, False)


class NondeterministicError(Error):
    """The replay of a workflow reached another step than the recorded one
    (SQLSTATE FXW01).  It fails the invocation, not retried."""

    def __init__(self, message, sqlstate=NONDETERMINISTIC):
        super().__init__(message, "SQLSTATE %s" % sqlstate, False)
        self.sqlstate = sqlstate


class Evicted(BaseException):
    """The worker gave the sandbox up while a step waited (SQLSTATE FXW02).

    Not an ``Exception``, so user code does not catch it by accident: the
    session loop does, and answers the invocation with the error
    ``evicted``, which the worker ignores; it runs the invocation again
    when the wait is over.  Every later request of the invocation raises it
    again without asking the worker.
    """

    def __init__(self, message, sqlstate=EVICTED):
        super().__init__(message)
        self.message = str(message)
        self.sqlstate = sqlstate


def _refused(message, code):
    """The exception for an error reply with this SQLSTATE."""
    if code == EVICTED:
        return Evicted(message)
    if code == NONDETERMINISTIC:
        return NondeterministicError(message)
    return SQLError(message, code)


class ProtocolError(Exception):
    """The worker sent something the protocol does not allow."""


class _Channel:
    """The session socket as requests use it: fd and the last seq sent.

    One per process, so seq numbers increase across invocations.
    """

    def __init__(self, fd):
        self.fd = fd
        self.seq = 0

    def request(self, kind, **fields):
        """Send a request, return its reply's value or raise the error reply
        (``SQLError``, or for workflow codes ``Evicted`` and
        ``NondeterministicError``).

        The worker answers requests in order and sends nothing else
        meanwhile, so the next message must be the reply.
        """
        msg = {"type": kind, "seq": self.seq + 1}
        msg.update(fields)
        text = json.dumps(msg, separators=(",", ":"), allow_nan=False)
        self.seq += 1
        try:
            _send(self.fd, text)
            reply = _recv(self.fd)
            if reply is None:
                raise ProtocolError("end of file")
            if reply["type"] != "reply" or reply.get("seq") != self.seq:
                raise ProtocolError("another message came")
            if "error" not in reply and "value" not in reply:
                raise ProtocolError("the reply has neither value nor error")
        except (ProtocolError, OSError) as e:
            self.broken(e)
        if "error" in reply:
            raise _refused(str(reply["error"]), reply.get("code") or "XX000")
        return reply["value"]

    def broken(self, why):
        """The last request got no reply the protocol allows: the worker may
        be gone or out of step, so end the process (the attempt fails)."""
        print("fx: no valid reply to request %d: %s" % (self.seq, why),
              file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_PROTOCOL)


class _NoChannel:
    """Requests where there is no worker to ask."""

    def __init__(self, message, sqlstate):
        self.message = message
        self.sqlstate = sqlstate

    def request(self, kind, **fields):
        raise _refused(self.message, self.sqlstate)


_SIMPLE = _NoChannel("state and sql need session mode", "0A000")
_ENDED = _NoChannel("the invocation has ended", "55000")
_EVICTED = _NoChannel("workflow evicted while waiting", EVICTED)


class State:
    """The state of the invocation's key: one JSON value (``ctx.state``)."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx):
        self._ctx = ctx

    def get(self):
        """The state as this invocation left it so far, else as committed,
        else None."""
        return self._ctx._request("state.get")

    def set(self, value):
        self._ctx._request("state.set", value=value)

    def delete(self):
        self._ctx._request("state.delete")


class Handle:
    """A child invocation started by ``ctx.start()``: ``id`` is its
    invocation id, ``result()`` waits for it (a step of its own)."""

    __slots__ = ("id", "_ctx")

    def __init__(self, ctx, id):
        self.id = id
        self._ctx = ctx

    def result(self):
        """The child's result; raises ``StepError`` if it failed."""
        return self._ctx._step("await", child=self.id)

    def __repr__(self):
        return "Handle(id=%r)" % (self.id,)


class Context:
    """One invocation, as seen by the handler.

    Attributes: ``id`` (invocation id, also ``workflow_id``), ``attempt``
    (1 on the first attempt), ``idempotency_key`` (stable across attempts),
    ``key`` (the invocation's key or None), ``deadline`` (Unix time in ms
    after which the process is killed, 0 if unknown), ``fn`` (function
    name), ``version`` (function version) and ``state`` (a ``State``).
    """

    __slots__ = ("id", "attempt", "idempotency_key", "key", "deadline",
                 "fn", "version", "state", "_channel", "_steps")

    def __init__(self, id=0, attempt=1, idempotency_key="", key=None,
                 deadline=0, fn=None, version=None, channel=None):
        self.id = id
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.key = key
        self.deadline = deadline
        self.fn = fn
        self.version = version
        self.state = State(self)
        self._channel = _SIMPLE if channel is None else channel
        self._steps = 0  # the last step number

    @property
    def workflow_id(self):
        """The workflow's id: the invocation id."""
        return self.id

    def _request(self, kind, **fields):
        """Send a request; after an eviction every later one raises
        Evicted without being sent."""
        try:
            return self._channel.request(kind, **fields)
        except Evicted:
            self._channel = _EVICTED
            raise

    def _outcome(self, outcome, pending=False):
        """A step reply's value: return the output or raise the step's
        error; ``_PENDING`` for {"done": false} if pending may come."""
        if (not isinstance(outcome, dict)
                or not isinstance(outcome.get("done"), bool)
                or (not outcome["done"] and not pending)):
            self._channel.broken("the reply is not a step outcome")
        if not outcome["done"]:
            return _PENDING
        if "error" in outcome:
            raise StepError(str(outcome["error"]), outcome.get("detail"))
        return outcome.get("output")

    def _step(self, kind, pending=False, **fields):
        """Send the next step's request; return its output (or _PENDING)."""
        if self._channel is _SIMPLE:
            raise SQLError("workflows need session mode", "0A000")
        self._steps += 1
        return self._outcome(self._request(kind, step=self._steps, **fields),
                             pending)

    def run(self, name, fn, /, *args, **kwargs):
        """Step: return ``fn(*args, **kwargs)``, run once.

        The first time the step is reached ``fn`` runs and what it returns
        (JSON-serialisable) is recorded; a replay returns the recorded
        output (as JSON gives it back: a tuple becomes a list) without
        running ``fn``.  If ``fn`` raises an ``Exception``, that is
        recorded and ``StepError`` raised (now and on every replay), with
        the exception's text and its class name as the detail (an
        ``fx.Error``'s own detail if it has one).  ``ctx.sql()`` in ``fn``
        commits with the step.
        """
        if not isinstance(name, str):
            raise TypeError("step name must be a str, not %s"
                            % type(name).__name__)
        outcome = self._step("step", pending=True, name=name)
        if outcome is not _PENDING:
            return outcome
        step = self._steps
        try:
            output = fn(*args, **kwargs)
        except Exception as e:
            detail = e.detail if isinstance(e, Error) else None
            reply = self._request("step.done", step=step, name=name,
                                  error=str(e) or type(e).__name__,
                                  detail=detail or type(e).__name__)
            try:
                self._outcome(reply)
            except StepError as failed:
                raise failed from e
            self._channel.broken("a failed step came back as done")
        try:
            reply = self._request("step.done", step=step, name=name,
                                  output=output)
        except (TypeError, ValueError) as e:
            raise Error("output of step %r is not JSON: %s" % (name, e),
                        None, False) from None
        return self._outcome(reply)

    def step(self, fn, args=None):
        """Step: run function fn (``"name"`` or ``"name:version"``) with
        args as a child invocation (its own sandbox, any worker) and return
        its result; raises ``StepError`` if it failed.  ``ctx.call`` is the
        same."""
        return self._step("call", fn=fn, args=args)

    call = step

    def start(self, fn, args=None):
        """Step: start function fn with args as a child invocation without
        waiting for it; returns its ``Handle``."""
        return Handle(self, self._step("start", fn=fn, args=args))

    def sleep(self, seconds):
        """Step: a durable sleep (a replay sleeps only what is left)."""
        self._step("sleep", ms=int(round(seconds * 1000)))

    def recv(self, topic, timeout=None):
        """Step: the payload of the oldest message sent to this workflow on
        topic, waiting up to timeout seconds (None: for ever); None on a
        timeout."""
        return self._step("recv", topic=topic, timeout_ms=None
                          if timeout is None else int(timeout * 1000))

    def send(self, workflow_id, topic, payload=None):
        """Step: send payload to workflow workflow_id on topic."""
        self._step("send", to=workflow_id, topic=topic, payload=payload)

    def set_event(self, key, value):
        """Step: set this workflow's event key to value."""
        self._step("set_event", key=key, value=value)

    def sql(self, query, *params):
        """Run one statement with $1, $2, ... bound to params; return the
        rows as a list of dicts (column name to value)."""
        return self.sql_result(query, *params)["rows"]

    def sql_result(self, query, *params):
        """Like sql(), but return the whole reply value: ``{"rows": [...],
        "count": n, "command": "..."}``."""
        if not isinstance(query, str):
            raise TypeError("query must be a str, not %s"
                            % type(query).__name__)
        return self._request("sql", query=query, params=params)

    def __repr__(self):
        return "Context(%s)" % ", ".join(
            "%s=%r" % (name, getattr(self, name)) for name in self.__slots__
            if not name.startswith("_") and name != "state")


def _call(handler, args, ctx):
    """Run the handler; return ("result", value-json), ("error", Error) or
    ("evicted", Evicted)."""
    try:
        value = handler(args, ctx)
        text = _dumps(value)
    except Evicted as e:
        outcome = ("evicted", e)
    except Error as e:
        outcome = ("error", e)
    except Exception as e:
        outcome = ("error", Error(str(e) or type(e).__name__,
                                  traceback.format_exc(), True))
    else:
        outcome = ("result", text)
    sys.stdout.flush()
    sys.stderr.flush()
    return outcome


def _dumps(value):
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise Error("result is not JSON: %s" % e, None, False) from None


_pollers = {}


def _poller(fd):
    p = _pollers.get(fd)
    if p is None:
        p = _pollers[fd] = select.poll()
        p.register(fd, select.POLLIN)
    return p


def _read_full(fd, n):
    """Read exactly n bytes from fd; fewer only at end of file."""
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _write_full(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _send(fd, text):
    data = text.encode("utf-8")
    if len(data) > MAX_MESSAGE:
        raise ProtocolError("message of %d bytes is too large" % len(data))
    _write_full(fd, struct.pack(">I", len(data)) + data)


def _recv(fd):
    """Return the next message as a dict, or None at end of file."""
    # Wait in poll, not in read: a reader blocked in read on a Unix socket
    # is woken each time the worker reads what it sent, poll only when
    # there is something to read.
    _poller(fd).poll()
    header = _read_full(fd, 4)
    if not header:
        return None
    if len(header) != 4:
        raise ProtocolError("end of file inside a header")
    (n,) = struct.unpack(">I", header)
    if n > MAX_MESSAGE:
        raise ProtocolError("message of %d bytes is too large" % n)
    data = _read_full(fd, n)
    if len(data) != n:
        raise ProtocolError("end of file inside a message")
    try:
        msg = json.loads(data)
    except ValueError as e:
        raise ProtocolError("message is not JSON: %s" % e) from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("message is not an object with a string type")
    return msg


def _invoke(fd, channel, handler, msg):
    inv_id = msg.get("id")
    if not isinstance(inv_id, int) or isinstance(inv_id, bool):
        raise ProtocolError("invoke message without an integer id")
    ctx = Context(id=inv_id,
                  attempt=msg.get("attempt", 1),
                  idempotency_key=msg.get("idempotency_key") or "",
                  key=msg.get("key"),
                  deadline=msg.get("deadline") or 0,
                  fn=msg.get("fn"),
                  version=msg.get("version"),
                  channel=channel)
    kind, outcome = _call(handler, msg.get("args"), ctx)
    if ctx._channel is _EVICTED:
        kind = "evicted"  # whatever the handler did after
    ctx._channel = _ENDED
    if kind == "evicted":
        _send(fd, _dumps({"type": "error", "id": inv_id,
                          "message": "evicted", "retryable": True}))
    elif kind == "result":
        _send(fd, '{"type":"result","id":%d,"value":%s}' % (inv_id, outcome))
    else:
        _send(fd, _dumps({"type": "error", "id": inv_id,
                          "message": outcome.message,
                          "detail": outcome.detail,
                          "retryable": outcome.retryable}))


def _session(handler):
    fd = int(os.environ.get("FX_SOCKET_FD", "3"))
    channel = _Channel(fd)
    _send(fd, _dumps({"type": "ready", "protocol": PROTOCOL_VERSION}))
    while True:
        msg = _recv(fd)
        if msg is None:
            return 0
        if msg["type"] == "invoke":
            _invoke(fd, channel, handler, msg)


def _env_int(name, default):
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return default


def _simple(handler):
    data = sys.stdin.buffer.read()
    try:
        args = json.loads(data) if data.strip() else None
    except ValueError as e:
        print("fx: args on stdin are not JSON: %s" % e, file=sys.stderr)
        return 1
    ctx = Context(id=_env_int("FX_INVOCATION_ID", 0),
                  attempt=_env_int("FX_ATTEMPT", 1),
                  idempotency_key=os.environ.get("FX_IDEMPOTENCY_KEY", ""),
                  key=os.environ.get("FX_KEY"),
                  deadline=_env_int("FX_DEADLINE_MS", 0),
                  fn=os.environ.get("FX_FN"),
                  version=_env_int("FX_VERSION", None))
    kind, outcome = _call(handler, args, ctx)
    if kind == "error":
        # The detail is printed last: the worker keeps stderr's last lines.
        print(outcome.message, file=sys.stderr)
        if outcome.detail:
            print(outcome.detail.rstrip("\n"), file=sys.stderr)
        return 1
    sys.stdout.write(outcome + "\n")
    sys.stdout.flush()
    return 0


def run(handler):
    """Serve invocations with handler in the mode given by $FX_MODE.

    Never returns: the process exits with 0 at the end (end of file on the
    session socket, or a successful simple-mode invocation), 1 on a failed
    simple-mode invocation or on a protocol or I/O error.
    """
    try:
        if os.environ.get("FX_MODE") == "session":
            status = _session(handler)
        else:
            status = _simple(handler)
    except (ProtocolError, OSError) as e:
        print("fx: %s" % e, file=sys.stderr)
        status = 1
    sys.exit(status)
