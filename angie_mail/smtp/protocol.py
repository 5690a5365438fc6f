"""SMTP as the session driver sees it (angie_mail.mail.protocol)."""

from __future__ import annotations

from ..mail.protocol import MailProtocol
from .backend import SmtpBackendLogin, SmtpFacts, starttls_plan
from .session import CERT_ERROR, INTERNAL_ERROR, NO_CERT, SmtpSession


def _backend_login(session, login: bytes, passwd, server) -> SmtpBackendLogin:
    s = session
    facts = SmtpFacts(
        server_name=server.server_name.encode("utf-8", "surrogateescape"),
        xclient=server.xclient, smtp_auth=server.proxy_smtp_auth, esmtp=s.esmtp,
        helo=s.helo, none=s.method == "none", addr=s.client_addr, ipv6=s.client_ipv6,
        host=s.host, mail_from=s.mail_from, rcpt_to=s.rcpt_to)
    return SmtpBackendLogin(facts, login, passwd, server.proxy_buffer)


def _starttls_plan(server):
    return starttls_plan(server.server_name.encode("utf-8", "surrogateescape"))


def _auth_rows(session):
    """Client-Host in every request; Auth-SMTP-Helo/From/To in the none flow's."""
    s = session
    return s.host, ((s.helo, s.mail_from, s.rcpt_to) if s.method == "none" else None)


PROTOCOL = MailProtocol(
    name="smtp", session=SmtpSession, backend_login=_backend_login,
    internal_error=INTERNAL_ERROR, cert_error=CERT_ERROR, no_cert=NO_CERT,
    # a method whose client password is not usable (CRAM-MD5, EXTERNAL) still logs in:
    # the backend needs one only with proxy_smtp_auth (smtp.md §11, §12)
    password_methods=("plain", "xoauth2", "oauthbearer", "none"),
    auth_rows=_auth_rows, requires_password=False, client_host=True,
    greeting_delay=lambda server: server.smtp_greeting_delay_ms,
    backend_starttls=_starttls_plan,
    temp_failure=(b"", b"421 4.7.0"))
