"""What the IMAP machine tests share: a resolved server, the machine, and ``talk``."""

from __future__ import annotations

from angie_mail.imap.session import ImapSession
from angie_mail.mail.protocol import AUTH, CLOSE, CONT, NEED, STARTTLS
from pop3.helpers import Log
from session_helpers import resolved_server, talk

__all__ = ["server", "new", "talk", "Log", "AUTH", "CLOSE", "CONT", "NEED", "STARTTLS"]


def server(*lines):
    """The resolved IMAP ``server {}`` with these directive lines."""
    return resolved_server("imap", 143, *lines)


def new(*lines, tls=False):
    log = Log()
    return ImapSession(server(*lines), tls=tls, log=log), log
