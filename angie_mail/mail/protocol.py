"""What the session driver (angie_mail.proxy.client) asks of a mail protocol.

Each protocol package (pop3/, imap/, later smtp/) provides one ``MailProtocol`` value:
its sans-I/O pre-authentication machine, its sans-I/O backend login machine and the
fixed replies that differ between protocols.  The driver runs every session the same
way (accept, PROXY header, implicit TLS, greeting, pre-auth reading, STARTTLS,
auth_http, backend connect and login, relay, timeouts, logging) and asks the protocol
only for what differs, as Angie's ``ngx_mail_protocol_t`` does.

The pre-auth machine (``Session``)::

    s = proto.session(server, tls=False, log=log)    # log(level, message)
    send(s.greeting())
    s.feed(data)
    code, out = s.step()     # NEED: read more; CONT: write out, step again;
                             # CLOSE: write out, then close (RST when s.reset);
                             # STARTTLS: write out, start TLS, then s.tls_started();
                             # AUTH: write out (b"" or a challenge), authenticate with
                             #   s.method / s.login / s.passwd / s.salt / s.attempt;
                             #   step() is not called again until the driver reports
                             #   s.auth_failed(text, wait, sasl_challenge, error_code)
                             #   -> (code, out) (Auth-Error-Code: SMTP's reply code)
                             #   or takes s.leftover() for the backend.
    s.pending()              # client bytes buffered and not yet consumed
    s.login                  # bytes, for the log context

The backend login machine (``BackendLogin``)::

    m = proto.backend_login(session, login, passwd, server)
    m.feed(data) -> (code, bytes)   # AGAIN; SEND (write these); LOGGED_IN (the reply
                                    # for the client); REFUSED (the failing reply, sent
                                    # verbatim with proxy_pass_error_message on; m.text
                                    # is what the log quotes); TOO_LONG (the buffer);
                                    # ERROR (an error-log message: the login cannot go on)
                                    # SECURE (proxy_ssl starttls: start TLS now, then
                                    # m.secured() -> (code, bytes) goes on over it)
    m.action                        # "sending user name to upstream"...: log context
    m.pending()                     # backend bytes after the login reply
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

# Session.step() codes
NEED, CONT, CLOSE, STARTTLS, AUTH = range(5)

# BackendLogin.feed() codes
AGAIN, SEND, LOGGED_IN, REFUSED, TOO_LONG, ERROR, SECURE = range(7)


class MailProtocol(NamedTuple):
    """One protocol, as the driver sees it (ngx_mail_protocol_t)."""
    name: str                    # "pop3": the Auth-Protocol header, logs
    session: Callable            # session(server, tls, log) -> Session
    backend_login: Callable      # backend_login(session, login, passwd, server) -> BackendLogin
    internal_error: bytes        # the reply before closing on an internal failure
    cert_error: bytes            # client certificate failed verification
    no_cert: bytes               # ssl_verify_client on, no certificate
    password_methods: tuple      # methods whose client password can log in to the backend
    # session -> (Client-Host or None, (helo, MAIL line, RCPT line) or None): SMTP's rows
    auth_rows: Optional[Callable] = None
    # the auth server must send Auth-Pass for the other methods (POP3, IMAP); SMTP
    # needs a password only for proxy_smtp_auth, and the backend machine says so
    requires_password: bool = True
    # the client's host name is resolved before the greeting (SMTP): the driver sets
    # session.host, session.client_addr and session.client_ipv6
    client_host: bool = False
    # server -> ms to wait before the greeting; a client talking meanwhile gets
    # session.rejected_before_greeting() and the connection closes (SMTP)
    greeting_delay: Optional[Callable] = None
    # server -> StartTlsPlan (mail.upstream): the dialogue that asks the backend for TLS
    # before logging in (proxy_ssl starttls)
    backend_starttls: Optional[Callable] = None
    # (text prefix, Auth-Error-Code) of a temporary refusal that closes the session
    # (auth_throttle, limit_conn): the RFC's response code for "try again later"
    temp_failure: tuple = (b"", None)
