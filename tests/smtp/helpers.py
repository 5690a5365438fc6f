"""What the SMTP machine tests share: a resolved server, the machine, and ``talk``."""

from __future__ import annotations

from angie_mail.mail.protocol import AUTH, CLOSE, CONT, NEED, STARTTLS
from angie_mail.smtp.session import SmtpSession
from pop3.helpers import Log
from session_helpers import resolved_server, talk

__all__ = ["server", "new", "talk", "replies", "Log", "AUTH", "CLOSE", "CONT", "NEED",
           "STARTTLS"]


def server(*lines):
    """The resolved SMTP ``server {}`` (server_name N) with these directive lines."""
    return resolved_server("smtp", 25, "server_name N;", *lines)


def new(*lines, tls=False):
    log = Log()
    return SmtpSession(server(*lines), tls=tls, log=log), log


def replies(s, data: bytes) -> bytes:
    """Only the bytes sent, joined."""
    return b"".join(r for _, r in talk(s, data))
