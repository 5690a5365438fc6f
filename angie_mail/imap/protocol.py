"""IMAP as the session driver sees it (angie_mail.mail.protocol)."""

from __future__ import annotations

from ..mail.protocol import MailProtocol
from .backend import STARTTLS_PLAN, ImapBackendLogin
from .session import CERT_ERROR, INTERNAL_ERROR, NO_CERT, ImapSession


def _backend_login(session, login: bytes, passwd: bytes, server) -> ImapBackendLogin:
    # the backend sees the client's LOGIN / AUTHENTICATE tag
    return ImapBackendLogin(session.auth_tag or b" ", login, passwd, server.proxy_buffer)


PROTOCOL = MailProtocol(
    name="imap", session=ImapSession, backend_login=_backend_login,
    internal_error=INTERNAL_ERROR, cert_error=CERT_ERROR, no_cert=NO_CERT,
    password_methods=("plain", "xoauth2", "oauthbearer"),
    backend_starttls=lambda server: STARTTLS_PLAN,
    temp_failure=(b"[UNAVAILABLE] ", None))
