"""POP3 replies that depend only on configuration, computed once per server at merge
(pop3.md §4 CAPA, §6.0 AUTH listing, §2 whether the greeting has a salt)."""

from __future__ import annotations

from ..conf.model import Pop3Replies

# SASL mechanisms in the fixed listing order, with the pop3_auth word enabling each
MECHANISMS = (("PLAIN", "plain"), ("LOGIN", "plain"), ("CRAM-MD5", "cram-md5"),
              ("EXTERNAL", "external"), ("XOAUTH2", "xoauth2"),
              ("OAUTHBEARER", "oauthbearer"))


def pop3_replies(auth: frozenset, capabilities: tuple) -> Pop3Replies:
    mechs = tuple(name for name, word in MECHANISMS if word in auth)
    caps = "".join(c + "\r\n" for c in capabilities)
    sasl = ("SASL " + " ".join(mechs)) if mechs else "SASL"
    head = "+OK Capability list follows\r\n"
    capa = f"{head}{caps}{sasl}\r\n.\r\n"
    capa_stls = f"{head}{caps}{sasl}\r\nSTLS\r\n.\r\n"
    caps_only = "".join(c + "\r\n" for c in capabilities if c.lower() != "user")
    capa_only = f"{head}{caps_only}STLS\r\n.\r\n"
    auth_list = "+OK methods supported:\r\n" + "".join(m + "\r\n" for m in mechs) + ".\r\n"
    enc = _enc
    return Pop3Replies(salt=bool({"apop", "cram-md5"} & auth), capa=enc(capa),
                       capa_starttls=enc(capa_stls), capa_only=enc(capa_only),
                       auth_list=enc(auth_list), mechanisms=mechs)


def _enc(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")
