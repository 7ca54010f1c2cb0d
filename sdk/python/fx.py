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

The worker puts this module on ``PYTHONPATH``.
"""

import json
import os
import struct
import sys
import traceback

__all__ = ["Context", "Error", "SQLError", "run"]

PROTOCOL_VERSION = 1
MAX_MESSAGE = 64 * 1024 * 1024  # bytes, both directions
EXIT_PROTOCOL = 70  # EX_SOFTWARE: a request got no valid reply


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
        """Send a request, return its reply's value or raise SQLError.

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
            print("fx: no valid reply to request %d: %s" % (self.seq, e),
                  file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_PROTOCOL)
        if "error" in reply:
            raise SQLError(str(reply["error"]), reply.get("code") or "XX000")
        return reply["value"]


class _NoChannel:
    """Requests where there is no worker to ask."""

    def __init__(self, message, sqlstate):
        self.message = message
        self.sqlstate = sqlstate

    def request(self, kind, **fields):
        raise SQLError(self.message, self.sqlstate)


_SIMPLE = _NoChannel("state and sql need session mode", "0A000")
_ENDED = _NoChannel("the invocation has ended", "55000")


class State:
    """The state of the invocation's key: one JSON value (``ctx.state``)."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx):
        self._ctx = ctx

    def get(self):
        """The state as this invocation left it so far, else as committed,
        else None."""
        return self._ctx._channel.request("state.get")

    def set(self, value):
        self._ctx._channel.request("state.set", value=value)

    def delete(self):
        self._ctx._channel.request("state.delete")


class Context:
    """One invocation, as seen by the handler.

    Attributes: ``id`` (invocation id), ``attempt`` (1 on the first
    attempt), ``idempotency_key`` (stable across attempts), ``key`` (the
    invocation's key or None), ``deadline`` (Unix time in ms after which the
    process is killed, 0 if unknown), ``fn`` (function name),
    ``version`` (function version) and ``state`` (a ``State``).
    """

    __slots__ = ("id", "attempt", "idempotency_key", "key", "deadline",
                 "fn", "version", "state", "_channel")

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
        return self._channel.request("sql", query=query, params=params)

    def __repr__(self):
        return "Context(%s)" % ", ".join(
            "%s=%r" % (name, getattr(self, name)) for name in self.__slots__
            if not name.startswith("_") and name != "state")


def _call(handler, args, ctx):
    """Run the handler; return ("result", value-json) or ("error", Error)."""
    try:
        value = handler(args, ctx)
        text = _dumps(value)
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
    ctx._channel = _ENDED
    if kind == "result":
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
