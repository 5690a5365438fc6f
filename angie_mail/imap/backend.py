"""Logging in to the IMAP backend, sans I/O (imap.md §12).

The proxy always logs in with ``<tag>LOGIN`` and two synchronizing literals, whatever
the client used: ``<tag>LOGIN {L}``, then ``<login> {P}``, then the password.  A
reply is complete once at least 4 bytes are buffered and the buffer ends with CRLF;
the step's buffer is emptied whenever a line is sent.  The tagged reply may follow
one untagged line, and everything received for it is what the client gets.
"""

from __future__ import annotations

from ..mail.protocol import AGAIN, LOGGED_IN, REFUSED, SEND, TOO_LONG
from ..mail.upstream import MORE, TOO_LONG as TOO_LONG_, StartTlsPlan, one_line, read_reply

START, LOGIN_SENT, USER_SENT, PASS_SENT, DONE, FAILED = range(6)

_ACTION = {LOGIN_SENT: "sending LOGIN command to upstream",
           USER_SENT: "sending user name to upstream",
           PASS_SENT: "sending password to upstream"}


def _tagged_at(buf: bytes) -> int:
    """Where the STARTTLS command's tagged reply starts (-1: not yet)."""
    if buf.startswith(b"s "):
        return 0
    i = buf.find(b"\r\ns ")
    return i + 2 if i >= 0 else -1


def _starttls_ok(reply: bytes) -> bool:
    i = _tagged_at(reply)
    return reply.startswith(b"s OK", i) and one_line(reply[i:])


# proxy_ssl starttls: "s STARTTLS" after the greeting (RFC 3501 §6.2.1; untagged lines
# may come before the tagged reply); no new greeting after TLS
STARTTLS_PLAN = StartTlsPlan(
    greeting_ok=lambda reply: reply.startswith(b"* OK"),
    steps=((b"s STARTTLS\r\n", _starttls_ok, lambda buf: _tagged_at(buf) >= 0),))


class ImapBackendLogin:
    __slots__ = ("tag", "login", "passwd", "limit", "state", "buf", "text")

    def __init__(self, tag: bytes, login: bytes, passwd: bytes, proxy_buffer: int):
        self.tag = tag                  # the client's tag with its space
        self.login = login
        self.passwd = passwd
        self.limit = proxy_buffer
        self.state = START
        self.buf = b""
        self.text = b""                 # a refusal as the log quotes it

    @property
    def action(self) -> str:
        return _ACTION.get(self.state, "")

    def feed(self, data: bytes):
        status, buf, rest = read_reply(self.buf, data, self.limit)
        if status == MORE:
            self.buf = rest
            return AGAIN, b""
        if status == TOO_LONG_:
            self.state = FAILED
            self.buf = b""
            return TOO_LONG, buf
        state = self.state
        p = 0
        ok = False
        if state == START:
            ok = buf.startswith(b"* OK")
        elif state == LOGIN_SENT or state == USER_SENT:
            ok = buf[:1] == b"+"
        else:
            if buf.startswith(b"* "):
                # one untagged line (CAPABILITY from SmarterMail, Gmail...) may come first
                crlf = buf.find(b"\r\n", 2)
                p = crlf + 2 if crlf >= 0 else len(buf)
                if len(buf) - p < 4:
                    self.buf = buf + rest
                    return AGAIN, b""
            tag = self.tag
            if buf.startswith(tag, p):
                p += len(tag)
                ok = buf[p:p + 2] == b"OK"
        if not ok:
            self.state = FAILED
            self.buf = b""
            self.text = buf[p:-2]
            return REFUSED, buf
        self.buf = rest
        if state == START:
            self.state = LOGIN_SENT
            return SEND, b"%sLOGIN {%d}\r\n" % (self.tag, len(self.login))
        if state == LOGIN_SENT:
            self.state = USER_SENT
            return SEND, self.login + b" {%d}\r\n" % len(self.passwd)
        if state == USER_SENT:
            self.state = PASS_SENT
            return SEND, self.passwd + b"\r\n"
        self.state = DONE
        return LOGGED_IN, buf

    def pending(self) -> bytes:
        """Backend bytes that came after the login reply (relayed to the client)."""
        out, self.buf = self.buf, b""
        return out
