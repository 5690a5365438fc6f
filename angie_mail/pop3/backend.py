"""Logging in to the POP3 backend, sans I/O (pop3.md §11).

The proxy always logs in with USER/PASS, whatever the client used.  A reply is
complete once at least 4 bytes are buffered and the buffer ends with CRLF (several
packets or lines count as one reply); it is accepted when it starts with ``+OK``.  The
reply to PASS is what the client gets as the answer to its own login command.
"""

from __future__ import annotations

from ..mail.protocol import AGAIN, LOGGED_IN, REFUSED, SEND, TOO_LONG
from ..mail.upstream import MORE, TOO_LONG as TOO_LONG_, StartTlsPlan, one_line, read_reply

GREETING, USER_SENT, PASS_SENT, DONE, FAILED = range(5)

# proxy_ssl starttls: STLS after the greeting (RFC 2595); no new greeting after TLS
STARTTLS_PLAN = StartTlsPlan(greeting_ok=lambda reply: reply.startswith(b"+OK"),
                             steps=((b"STLS\r\n",
                                     lambda reply: reply.startswith(b"+OK") and one_line(reply),
                                     None),))

_STEP_ACTION = {USER_SENT: "sending user name to upstream",
                PASS_SENT: "sending password to upstream"}


class Pop3BackendLogin:
    """Feed the backend's bytes; get the next line to send or the outcome."""

    __slots__ = ("login", "passwd", "limit", "state", "buf", "text")

    def __init__(self, login: bytes, passwd: bytes, proxy_buffer: int):
        self.login = login
        self.passwd = passwd
        self.limit = proxy_buffer
        self.state = GREETING
        self.buf = b""
        self.text = b""         # a refusal as the log quotes it

    @property
    def action(self) -> str:
        return _STEP_ACTION.get(self.state, "")

    def feed(self, data: bytes):
        """(result, bytes): AGAIN (need more), SEND (write these bytes), LOGGED_IN
        (the PASS reply, to forward to the client), REFUSED (the failed reply, CRLF
        included), TOO_LONG (the buffered bytes)."""
        status, reply, self.buf = read_reply(self.buf, data, self.limit)
        if status == MORE:
            return AGAIN, b""
        if status == TOO_LONG_:
            self.state = FAILED
            return TOO_LONG, reply
        if not reply.startswith(b"+OK"):
            self.state = FAILED
            self.buf = b""
            self.text = reply[:-2]
            return REFUSED, reply
        state = self.state
        if state == GREETING:
            self.state = USER_SENT
            return SEND, b"USER " + self.login + b"\r\n"
        if state == USER_SENT:
            self.state = PASS_SENT
            return SEND, b"PASS " + self.passwd + b"\r\n"
        self.state = DONE
        return LOGGED_IN, reply

    def pending(self) -> bytes:
        """Backend bytes that arrived after the PASS reply (relayed to the client)."""
        out, self.buf = self.buf, b""
        return out
