"""IMAP replies that depend only on configuration, computed once per server at merge
(imap.md §5): the three CAPABILITY variants."""

from __future__ import annotations

from ..conf.model import ImapReplies

# AUTH= items in the fixed order, with the imap_auth word enabling each (PLAIN does not
# list LOGIN, unlike POP3)
MECHANISMS = (("AUTH=PLAIN", "plain"), ("AUTH=LOGIN", "login"),
              ("AUTH=CRAM-MD5", "cram-md5"), ("AUTH=EXTERNAL", "external"),
              ("AUTH=XOAUTH2", "xoauth2"), ("AUTH=OAUTHBEARER", "oauthbearer"))


def imap_replies(auth: frozenset, capabilities: tuple) -> ImapReplies:
    caps = "".join(" " + c for c in capabilities)
    mechs = "".join(" " + name for name, word in MECHANISMS if word in auth)
    normal = f"* CAPABILITY{caps}{mechs}\r\n"
    starttls = f"* CAPABILITY{caps}{mechs} STARTTLS\r\n"
    only = f"* CAPABILITY{caps} STARTTLS LOGINDISABLED\r\n"
    enc = lambda s: s.encode("utf-8", "surrogateescape")      # noqa: E731
    return ImapReplies(capability=enc(normal), capability_starttls=enc(starttls),
                       capability_only=enc(only))
