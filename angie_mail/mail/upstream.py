"""Framing of the backend's replies during login, shared by every protocol
(ngx_mail_proxy_read_response): a reply is complete once at least 4 bytes are
buffered and they end with CRLF (and, for SMTP's multi-line replies, once the last
line has come); ``proxy_buffer`` bounds what is read for one reply."""

from __future__ import annotations

from typing import Callable, NamedTuple

READY, MORE, TOO_LONG = range(3)


def _whole(buf: bytes) -> bool:
    return True


def read_reply(buf: bytes, data: bytes, limit: int, complete=_whole):
    """(status, reply, rest): READY with the reply and the bytes after it (read
    beyond the buffer, they wait as they would in the socket); MORE with everything
    kept in ``rest``; TOO_LONG with the buffer's content in ``reply``."""
    buf += data
    rest = b""
    if len(buf) > limit:
        buf, rest = buf[:limit], buf[limit:]
    if len(buf) >= 4 and buf.endswith(b"\r\n") and complete(buf):
        return READY, buf, rest
    if len(buf) >= limit and not buf.endswith(b"\r\n"):
        return TOO_LONG, buf, b""
    return MORE, b"", buf + rest


def one_line(reply: bytes) -> bool:
    """The reply is a single line: after the reply that precedes the TLS handshake,
    nothing may have come (it would be taken as sent over TLS)."""
    return reply.find(b"\r\n") == len(reply) - 2


class StartTlsPlan(NamedTuple):
    """How a protocol asks its backend for TLS before logging in (proxy_ssl starttls):
    the greeting it accepts, then each step's command and the check of its reply."""
    greeting_ok: Callable[[bytes], bool]
    steps: tuple                # ((command, ok(reply), complete(buf) or None), ...)
    complete: Callable[[bytes], bool] = _whole   # framing of the greeting


# the log context while the STARTTLS dialogue runs
STARTTLS_ACTION = "sending STARTTLS to upstream"


class StartTlsLogin:
    """The STARTTLS dialogue in front of a protocol's login machine, sans I/O.

    It reads the greeting, sends the plan's commands and answers SECURE once the
    backend waits for the handshake.  ``secured()`` (after the handshake) gives the
    greeting to the login machine, which goes on as over a fresh connection: POP3 and
    IMAP send no new greeting after TLS, and SMTP's client starts with EHLO again
    (RFC 3207 §4.2).  A greeting the plan does not accept goes to the login machine
    as it is, so the refusal is reported as without TLS.  The last step's check
    refuses a reply with anything after its line (``one_line``): bytes before the
    handshake must not be taken as sent over TLS."""

    __slots__ = ("inner", "plan", "limit", "step", "greeting", "own_buf", "own_text",
                 "secure")

    def __init__(self, inner, plan: StartTlsPlan, limit: int):
        self.inner = inner
        self.plan = plan
        self.limit = limit
        self.step = -1                  # -1: the greeting; then the plan's step sent
        self.greeting = b""
        self.own_buf = b""
        self.own_text = b""
        self.secure = False             # the login machine runs

    @property
    def action(self) -> str:
        if self.secure:
            return self.inner.action
        return STARTTLS_ACTION if self.step >= 0 else ""

    @property
    def buf(self) -> bytes:
        return self.inner.buf if self.secure else self.own_buf

    @property
    def text(self) -> bytes:
        return self.inner.text if self.secure else self.own_text

    def feed(self, data: bytes):
        if self.secure:
            return self.inner.feed(data)
        from .protocol import AGAIN, REFUSED, SECURE, SEND, TOO_LONG as TOO_LONG_CODE
        step = self.plan.steps[self.step] if self.step >= 0 else None
        complete = self.plan.complete if step is None else (step[2] or _whole)
        status, reply, rest = read_reply(self.own_buf, data, self.limit, complete)
        if status == MORE:
            self.own_buf = rest
            return AGAIN, b""
        if status == TOO_LONG:
            self.own_buf = b""
            return TOO_LONG_CODE, reply
        self.own_buf = b""
        if step is None:
            if not self.plan.greeting_ok(reply):
                self.secure = True          # the login machine reports the refusal
                return self.inner.feed(reply + rest)
            self.greeting = reply
        elif not step[1](reply):
            self.own_text = reply[:-2]
            return REFUSED, reply
        if rest:
            # more than proxy_buffer before our next command (or the handshake)
            return TOO_LONG_CODE, reply
        self.step += 1
        if self.step == len(self.plan.steps):
            return SECURE, b""
        return SEND, self.plan.steps[self.step][0]

    def secured(self):
        """TLS is up: the login machine starts with the greeting read before it."""
        self.secure = True
        return self.inner.feed(self.greeting)

    def pending(self) -> bytes:
        return self.inner.pending()
