"""ngx_mail_smtp_module: SMTP authentication methods, capabilities and greeting."""

from __future__ import annotations

from ..registry import Args, Ctx, Merge, row
from ..slots import bitmask_slot, capabilities, msec_slot, size_slot

MS = Ctx.MAIL | Ctx.SERVER


def smtp_methods(dialect):
    base = ["plain", "login", "cram-md5", "external"]
    return base + (["xoauth2", "oauthbearer"] if dialect != "nginx" else []) + ["none"]


ROWS = [
    row("smtp_auth", "smtp", MS, Args.ONEMORE, bitmask_slot(smtp_methods),
        field="smtp_auth", default=frozenset({"plain", "login"}), merge=Merge.BITMASK,
        syntax="plain | login | cram-md5 | external | xoauth2 | oauthbearer | none ...",
        default_text="plain login", doc="SMTP AUTH mechanisms; none: no authentication"),
    row("smtp_capabilities", "smtp", MS, Args.ONEMORE, capabilities,
        field="smtp_capabilities", default=(), merge=Merge.LIST, syntax="extension ...",
        doc="EHLO reply lines"),
    row("smtp_client_buffer", "smtp", MS, Args.TAKE1, size_slot,
        field="smtp_client_buffer", default=4096, syntax="size", default_text="4k",
        doc="pre-auth SMTP line buffer"),
    row("smtp_greeting_delay", "smtp", MS, Args.TAKE1, msec_slot,
        field="smtp_greeting_delay", default=0, syntax="time", default_text="0",
        doc="delay before the greeting; early talkers are refused"),
]
