"""What the SMTP machine tests share: a resolved server, the machine, and ``talk``."""

from __future__ import annotations

import functools

from angie_mail.conf.analyze import analyze
from angie_mail.conf.parse import parse_string
from angie_mail.mail.protocol import AUTH, CLOSE, CONT, NEED, STARTTLS
from angie_mail.smtp.session import SmtpSession
from pop3.helpers import Log

__all__ = ["server", "new", "talk", "replies", "Log", "AUTH", "CLOSE", "CONT", "NEED",
           "STARTTLS"]


@functools.lru_cache(maxsize=None)
def server(*lines):
    """The resolved SMTP ``server {}`` (server_name N) with these directive lines."""
    text = ("events {}\nmail {\n auth_http 127.0.0.1:9/a;\n server {\n"
            " listen 127.0.0.1:25;\n protocol smtp;\n server_name N;\n"
            + "".join(l + "\n" for l in lines) + " }\n}\n")
    r = analyze(parse_string(text), hostname="mail.example.com", check_files=False)
    assert r.ok, r.first_error
    return r.config.servers[0]


def new(*lines, tls=False):
    log = Log()
    return SmtpSession(server(*lines), tls=tls, log=log), log


def talk(s, data: bytes = b""):
    """Feed ``data``; step until the machine waits: [(code, bytes)] of every step that
    produced something (NEED is left out)."""
    if data:
        s.feed(data)
    out = []
    while True:
        code, reply = s.step()
        if code == NEED:
            return out
        out.append((code, reply))
        if code in (CLOSE, AUTH, STARTTLS):
            return out


def replies(s, data: bytes) -> bytes:
    """Only the bytes sent, joined."""
    return b"".join(r for _, r in talk(s, data))
