"""merge builds each Server record positionally: every field must read its own
setting, whatever the order of the fields in the model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from angie_mail.conf.level import Level
from angie_mail.conf.merge import _defaults, _server
from angie_mail.conf.model import Main, Pos, Server
from angie_mail.conf.registry import Ctx
from angie_mail.imap.capa import imap_replies
from angie_mail.pop3.capa import pop3_replies

# fields derived from several settings (checked one by one below)
COMPUTED = frozenset(("pos", "protocol", "listens", "ssl", "ssl_session_cache", "pop3",
                      "imap", "proxy_ssl", "auth_throttle", "limit_conn"))
# fields stored under another name than the setting's
RENAMED = {"ssl_passwords": "ssl_password_file"}
# fields made tuples of the setting's list
TUPLES = frozenset(("error_log", "error_log_user_tag", "auth_http_header",
                    "set_real_ip_from", "pop3_capabilities", "imap_capabilities",
                    "smtp_capabilities", "ssl_certificate", "ssl_certificate_key",
                    "ssl_passwords", "ssl_session_ticket_key", "ssl_conf_command"))


def _setting(field: str) -> str:
    if field in RENAMED:
        return RENAMED[field]
    return field[:-3] if field.endswith("_ms") else field


def _build(protocol: str, **values) -> Server:
    v = {**_defaults("angie-mail"), "protocol": protocol, **values}
    an = SimpleNamespace(hostname=None, dialect="angie-mail")
    return _server(an, Level(Ctx.SERVER, "m.conf", 7), v, Main())


def test_each_field_reads_its_own_setting():
    markers = {}
    for field in Server._fields:
        if field in COMPUTED:
            continue
        markers[_setting(field)] = [f"<{field}>"] if field in TUPLES else f"<{field}>"
    s = _build("smtp", **markers)
    assert len(s) == len(Server._fields)
    for field in Server._fields:
        if field in COMPUTED:
            continue
        want = (f"<{field}>",) if field in TUPLES else f"<{field}>"
        assert getattr(s, field) == want, field


@pytest.mark.parametrize("protocol", ["pop3", "imap", "smtp"])
def test_derived_fields(protocol):
    s = _build(protocol, pop3_capabilities=["TOP", "X"], imap_capabilities=["IMAP4rev1"],
               pop3_auth=frozenset({"plain", "apop"}), imap_auth=frozenset({"login"}))
    assert s.pos == Pos("m.conf", 7)
    assert s.protocol == protocol
    assert s.listens == ()
    assert s.ssl is False
    assert s.proxy_ssl is None and s.auth_throttle is None and s.limit_conn == ()
    assert s.pop3 == (pop3_replies(frozenset({"plain", "apop"}), ("TOP", "X"))
                      if protocol == "pop3" else None)
    assert s.imap == (imap_replies(frozenset({"login"}), ("IMAP4rev1",))
                      if protocol == "imap" else None)
