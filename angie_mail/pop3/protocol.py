"""POP3 as the session driver sees it (angie_mail.mail.protocol)."""

from __future__ import annotations

from ..mail.protocol import MailProtocol
from .backend import STARTTLS_PLAN, Pop3BackendLogin
from .session import CERT_ERROR, INTERNAL_ERROR, NO_CERT, Pop3Session


def _backend_login(session, login: bytes, passwd: bytes, server) -> Pop3BackendLogin:
    return Pop3BackendLogin(login, passwd, server.proxy_buffer)


PROTOCOL = MailProtocol(
    name="pop3", session=Pop3Session, backend_login=_backend_login,
    internal_error=INTERNAL_ERROR, cert_error=CERT_ERROR, no_cert=NO_CERT,
    # methods for which the client's own password can log in to the backend
    password_methods=("plain", "xoauth2", "oauthbearer"),
    backend_starttls=lambda server: STARTTLS_PLAN,
    temp_failure=(b"[SYS/TEMP] ", None))
