"""Mail-specific lint warnings, beyond what Angie checks.

They look at the merged servers and never change the ``-t`` verdict:

* ``plaintext-auth``: a non-loopback listener without TLS where passwords are accepted
  (POP3 USER/PASS, IMAP LOGIN and SMTP AUTH are always allowed unless ``starttls only``);
* ``oauth-line-too-short``: XOAUTH2/OAUTHBEARER enabled for POP3 while the pre-auth
  line is 128 bytes (real bearer tokens are ~2 KB);
* ``auth-http-cleartext``: ``auth_http`` to a non-loopback host over plain HTTP (the
  request carries the client's password);
* ``weak-tls-protocol``: a TLS server allows SSLv2/SSLv3/TLSv1/TLSv1.1;
* ``smtp-mail-without-tls``: an SMTP server with ``starttls only`` and ``smtp_auth none``
  on a non-loopback listener without ``ssl``: ``starttls only`` refuses only AUTH, so
  mail is accepted in clear text (Angie's MX semantics).
"""

from __future__ import annotations

import ipaddress
import socket

from ..errors import ConfError

WEAK = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")


def _loopback(addr) -> bool:
    if addr.family == socket.AF_UNIX:
        return True
    try:
        return ipaddress.ip_address(addr.host).is_loopback
    except ValueError:
        return False


def _stmt_of(field: str, srv_level, mail_level):
    for lv in (srv_level, mail_level):
        if lv is not None:
            st = lv.extra.get("stmts", {}).get(field)
            if st is not None:
                return st
    return None


def _finding(message, rule, st=None, file=None, line=0):
    if st is not None:
        return ConfError(message, st.file, st.end_line, col=st.col, level="warn",
                         kind="lint", start_line=st.line, rule=rule)
    return ConfError(message, file, line, level="warn", kind="lint", rule=rule)


def check(config, servers_levels, mail_level) -> list:
    """Findings for a merged config; ``servers_levels`` pairs each Server with its Level."""
    out = []
    for srv, lv in servers_levels:
        proto = srv.protocol
        password_auth = not (proto == "smtp" and srv.smtp_auth == frozenset({"none"}))
        if srv.starttls != "only" and password_auth:
            for l in srv.listens:
                if l.ssl or _loopback(l.addr):
                    continue
                hint = "add ssl to the listen or set starttls only" if srv.ssl else \
                    "use listen ... ssl or starttls only"
                out.append(_finding(
                    f"passwords are accepted in clear text on {l.text} ({proto}): {hint}",
                    "plaintext-auth", file=l.pos.file, line=l.pos.line))
        if proto == "pop3" and {"xoauth2", "oauthbearer"} & srv.pop3_auth \
                and srv.pop3_client_buffer < 2048:
            st = _stmt_of("pop3_auth", lv, mail_level)
            out.append(_finding(
                f"xoauth2/oauthbearer are enabled but POP3 command lines are limited to "
                f"{srv.pop3_client_buffer} bytes: real OAuth tokens (~2 KB) cannot be sent "
                f"(angie-mail extension: pop3_client_buffer 4k)", "oauth-line-too-short",
                st, file=srv.pos.file, line=srv.pos.line))
        ah = srv.auth_http
        if ah is not None and not _loopback(ah.addr):
            out.append(_finding(
                f'auth_http "{ah.url}" sends client passwords over plain HTTP to a '
                f'non-loopback host', "auth-http-cleartext", file=ah.pos.file,
                line=ah.pos.line))
        if proto == "smtp" and srv.starttls == "only" and "none" in srv.smtp_auth:
            st = _stmt_of("starttls", lv, mail_level)
            for l in srv.listens:
                if l.ssl or _loopback(l.addr):
                    continue
                out.append(_finding(
                    f"starttls only does not cover MAIL and RCPT: with smtp_auth none, mail "
                    f"is accepted in clear text on {l.text}", "smtp-mail-without-tls", st,
                    file=l.pos.file, line=l.pos.line))
        if srv.ssl:
            weak = [p for p in WEAK if p in srv.ssl_protocols]
            if weak:
                st = _stmt_of("ssl_protocols", lv, mail_level)
                out.append(_finding(f"weak TLS protocols enabled: {' '.join(weak)}",
                                    "weak-tls-protocol", st, file=srv.pos.file,
                                    line=srv.pos.line))
    return out
