"""The SMTP backend dialogue, sans I/O (smtp.md §12): greeting, HELO/EHLO, XCLIENT,
the client's own HELO/EHLO, then AUTH PLAIN (``proxy_smtp_auth``) or the replayed
MAIL FROM / RCPT TO (``smtp_auth none``).

A reply is complete once at least 4 bytes are buffered and they end with CRLF; a
multi-line reply (4th byte ``-``) only once its last line has arrived.  Only the first
three bytes are compared with the code the step expects.
"""

from __future__ import annotations

import base64
from typing import NamedTuple

from ..mail.protocol import AGAIN, ERROR, LOGGED_IN, REFUSED, SEND, TOO_LONG
from ..mail.upstream import MORE, TOO_LONG as TOO_LONG_, StartTlsPlan, one_line, read_reply
from .xtext import xtext

(START, HELO, HELO_XCLIENT, HELO_FROM, HELO_AUTH, XCLIENT, XCLIENT_FROM, XCLIENT_HELO,
 XCLIENT_AUTH, AUTH_PLAIN, FROM, TO, DONE, FAILED) = range(14)

AUTH_OK = b"235 2.0.0 OK\r\n"

# the reply code each state waits for (None: any reply)
_EXPECT = {START: (b"220",), HELO: (b"250",), HELO_XCLIENT: (b"250",),
           HELO_FROM: (b"250",), HELO_AUTH: (b"250",), FROM: (b"250",),
           XCLIENT: (b"220", b"250"), XCLIENT_FROM: (b"220", b"250"),
           XCLIENT_HELO: (b"220", b"250"), XCLIENT_AUTH: (b"220", b"250"),
           AUTH_PLAIN: (b"235",), TO: None}

# the log action once a state's line was sent
_ACTION = {HELO: "sending HELO/EHLO to upstream", HELO_XCLIENT: "sending HELO/EHLO to upstream",
           HELO_FROM: "sending HELO/EHLO to upstream", HELO_AUTH: "sending HELO/EHLO to upstream",
           XCLIENT: "sending XCLIENT to upstream", XCLIENT_FROM: "sending XCLIENT to upstream",
           XCLIENT_HELO: "sending XCLIENT to upstream", XCLIENT_AUTH: "sending XCLIENT to upstream",
           AUTH_PLAIN: "sending AUTH to upstream", FROM: "sending MAIL FROM to upstream",
           TO: "sending RCPT TO to upstream"}


class SmtpFacts(NamedTuple):
    """What the dialogue needs to know of the session."""
    server_name: bytes
    xclient: bool
    smtp_auth: bool                    # proxy_smtp_auth
    esmtp: bool                        # the client said EHLO at some point
    helo: bytes                        # the client's last HELO/EHLO argument
    none: bool                         # the smtp_auth none flow (RCPT triggered)
    addr: bytes                        # the client address text (after realip)
    ipv6: bool
    host: bytes                        # Client-Host: the resolved name or [UNAVAILABLE]...
    mail_from: bytes                   # the stored MAIL line (none flow)
    rcpt_to: bytes                     # the stored RCPT line (none flow)


class SmtpBackendLogin:
    __slots__ = ("facts", "login", "passwd", "limit", "state", "buf", "text")

    def __init__(self, facts: SmtpFacts, login: bytes, passwd, proxy_buffer: int):
        self.facts = facts
        self.login = login
        self.passwd = passwd            # None: no password known (EXTERNAL, CRAM-MD5)
        self.limit = proxy_buffer
        self.state = START
        self.buf = b""
        self.text = b""

    @property
    def action(self) -> str:
        return _ACTION.get(self.state, "")

    def feed(self, data: bytes):
        status, buf, rest = read_reply(self.buf, data, self.limit, _complete)
        if status == MORE:
            self.buf = rest
            return AGAIN, b""
        if status == TOO_LONG_:
            self.state = FAILED
            self.buf = b""
            return TOO_LONG, buf
        state = self.state
        expect = _EXPECT.get(state)
        if expect is not None and buf[:3] not in expect:
            self.state = FAILED
            self.buf = b""
            self.text = buf[:-2]
            return REFUSED, buf
        self.buf = rest
        return self._next(state, buf)

    def _next(self, state, reply: bytes):
        f = self.facts
        if state == START:
            line = (b"EHLO " if f.esmtp or f.xclient else b"HELO ") + f.server_name
            self.state = HELO_XCLIENT if f.xclient else HELO_FROM if f.none else \
                HELO_AUTH if f.smtp_auth else HELO
            return SEND, line + b"\r\n"
        if state == HELO_XCLIENT:
            line = b"XCLIENT ADDR=" + (b"IPV6:" if f.ipv6 else b"") + f.addr
            if self.login and not f.smtp_auth:
                line += b" LOGIN=" + xtext(self.login)
            line += b" NAME=" + f.host
            self.state = XCLIENT_HELO if f.helo else XCLIENT_FROM if f.none else \
                XCLIENT_AUTH if f.smtp_auth else XCLIENT
            return SEND, line + b"\r\n"
        if state == XCLIENT_HELO:
            line = (b"EHLO " if f.esmtp else b"HELO ") + f.helo
            self.state = HELO_FROM if f.none else HELO_AUTH if f.smtp_auth else HELO
            return SEND, line + b"\r\n"
        if state == HELO_AUTH or state == XCLIENT_AUTH:
            self.state = AUTH_PLAIN             # (the log says: sending AUTH to upstream)
            if self.passwd is None:
                return ERROR, b"no password available"
            plain = b"\0" + self.login + b"\0" + self.passwd
            return SEND, b"AUTH PLAIN " + base64.b64encode(plain) + b"\r\n"
        if state == HELO_FROM or state == XCLIENT_FROM:
            self.state = FROM
            return SEND, f.mail_from + b"\r\n"
        if state == FROM:
            self.state = TO
            return SEND, f.rcpt_to + b"\r\n"
        # HELO, XCLIENT, AUTH_PLAIN, TO: logged in
        self.state = DONE
        return LOGGED_IN, (reply if f.none else AUTH_OK)

    def pending(self) -> bytes:
        out, self.buf = self.buf, b""
        return out


def _complete(buf: bytes) -> bool:
    """A multi-line reply is complete when its last line is not a continuation line
    (ngx_mail_proxy_read_response's check, byte for byte)."""
    if buf[3:4] != b"-":
        return True
    m = len(buf) - 7                    # sizeof(CRLF "200" CRLF) - 1 from the end
    while m > 0:
        if buf[m:m + 2] == b"\r\n":
            break
        m -= 1
    return m > 0 and buf[m + 5:m + 6] != b"-"


def starttls_plan(server_name: bytes) -> StartTlsPlan:
    """proxy_ssl starttls: EHLO, then STARTTLS (RFC 3207); after TLS the dialogue starts
    again with its own HELO/EHLO, as a client must."""
    return StartTlsPlan(
        greeting_ok=lambda reply: reply[:3] == b"220",
        complete=_complete,
        steps=((b"EHLO " + server_name + b"\r\n", lambda reply: reply[:3] == b"250",
                _complete),
               (b"STARTTLS\r\n", lambda reply: reply[:3] == b"220" and one_line(reply),
                None)))
