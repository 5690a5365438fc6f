"""SMTP replies that depend only on configuration (smtp.md §3, §5): the greeting,
HELO's line and the three EHLO variants, computed once per distinct server setting."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

# AUTH items in the fixed order, with the smtp_auth word enabling each ("none" never
# appears)
MECHANISMS = (("PLAIN", "plain"), ("LOGIN", "login"), ("CRAM-MD5", "cram-md5"),
              ("EXTERNAL", "external"), ("XOAUTH2", "xoauth2"),
              ("OAUTHBEARER", "oauthbearer"))


class SmtpReplies(NamedTuple):
    greeting: bytes                    # 220 N ESMTP ready
    helo: bytes                        # 250 N
    ehlo: bytes                        # TLS already, or starttls off
    ehlo_starttls: bytes               # plain text, starttls on
    ehlo_only: bytes                   # plain text, starttls only


def _lines(lines) -> bytes:
    """250- before every line but the last, 250 before the last."""
    out = [b"250-" + l + b"\r\n" for l in lines[:-1]]
    out.append(b"250 " + lines[-1] + b"\r\n")
    return b"".join(out)


def replies(server) -> SmtpReplies:
    return smtp_replies(server.server_name, server.smtp_auth, server.smtp_capabilities)


@lru_cache(maxsize=256)
def smtp_replies(server_name: str, auth: frozenset, capabilities: tuple) -> SmtpReplies:
    enc = lambda s: s.encode("utf-8", "surrogateescape")      # noqa: E731
    name = enc(server_name)
    caps = [enc(c) for c in capabilities]
    mechs = [enc(m) for m, word in MECHANISMS if word in auth]
    lines = [name] + caps + ([b"AUTH " + b" ".join(mechs)] if mechs else [])
    return SmtpReplies(
        greeting=b"220 " + name + b" ESMTP ready\r\n",
        helo=b"250 " + name + b"\r\n",
        ehlo=_lines(lines),
        ehlo_starttls=_lines(lines + [b"STARTTLS"]),
        ehlo_only=_lines([name] + caps + [b"STARTTLS"]))
