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

The worker puts this module on ``PYTHONPATH``.
"""

import json
import os
import struct
import sys
import traceback

__all__ = ["Context", "Error", "run"]

PROTOCOL_VERSION = 1
MAX_MESSAGE = 64 * 1024 * 1024  # bytes, both directions


class Error(Exception):
    """Raised by a handler to fail the invocation with a message."""

    def __init__(self, message, detail=None, retryable=True):
        super().__init__(message)
        self.message = str(message)
        self.detail = None if detail is None else str(detail)
        self.retryable = bool(retryable)


class ProtocolError(Exception):
    """The worker sent something the protocol does not allow."""


class Context:
    """One invocation, as seen by the handler.

    Attributes: ``id`` (invocation id), ``attempt`` (1 on the first
    attempt), ``idempotency_key`` (stable across attempts), ``key`` (the
    invocation's key or None), ``deadline`` (Unix time in ms after which the
    process is killed, 0 if unknown), ``fn`` (function name) and
    ``version`` (function version).
    """

    __slots__ = ("id", "attempt", "idempotency_key", "key", "deadline",
                 "fn", "version")

    def __init__(self, id=0, attempt=1, idempotency_key="", key=None,
                 deadline=0, fn=None, version=None):
        self.id = id
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.key = key
        self.deadline = deadline
        self.fn = fn
        self.version = version

    def __repr__(self):
        return "Context(%s)" % ", ".join(
            "%s=%r" % (name, getattr(self, name)) for name in self.__slots__)


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


def _invoke(fd, handler, msg):
    inv_id = msg.get("id")
    if not isinstance(inv_id, int) or isinstance(inv_id, bool):
        raise ProtocolError("invoke message without an integer id")
    ctx = Context(id=inv_id,
                  attempt=msg.get("attempt", 1),
                  idempotency_key=msg.get("idempotency_key") or "",
                  key=msg.get("key"),
                  deadline=msg.get("deadline") or 0,
                  fn=msg.get("fn"),
                  version=msg.get("version"))
    kind, outcome = _call(handler, msg.get("args"), ctx)
    if kind == "result":
        _send(fd, '{"type":"result","id":%d,"value":%s}' % (inv_id, outcome))
    else:
        _send(fd, _dumps({"type": "error", "id": inv_id,
                          "message": outcome.message,
                          "detail": outcome.detail,
                          "retryable": outcome.retryable}))


def _session(handler):
    fd = int(os.environ.get("FX_SOCKET_FD", "3"))
    _send(fd, _dumps({"type": "ready", "protocol": PROTOCOL_VERSION}))
    while True:
        msg = _recv(fd)
        if msg is None:
            return 0
        if msg["type"] == "invoke":
            _invoke(fd, handler, msg)


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
