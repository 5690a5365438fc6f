"""angie-mail's own mail directives beyond Angie: the login events log."""

from __future__ import annotations

from ..registry import EXTENSION, Args, Ctx, row
from ..slots import arg, cstr, dup

MS = Ctx.MAIL | Ctx.SERVER


def login_events(an, st, lv, d):
    """``login_events FILE | off``: the file is resolved as error_log's (against the
    prefix); ``off`` turns off one inherited from mail {}."""
    if d.field in lv.values:
        raise dup(d)
    lv.values[d.field] = "" if cstr(arg(st)) == "off" else an.full_name(arg(st))


ROWS = [
    row("login_events", "mail_events", MS, Args.TAKE1, login_events, field="login_events",
        default="", dialects=EXTENSION, syntax="file | off", default_text="off",
        doc="one JSON line per session end: protocol, server, client, login, outcome, "
            "the auth server's reason, backend, TLS, bytes each way, duration "
            "(docs/login-events.md)"),
]
