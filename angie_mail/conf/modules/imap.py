"""ngx_mail_imap_module: IMAP authentication methods, capabilities and buffer."""

from __future__ import annotations

from ..registry import Args, Ctx, Merge, row
from ..slots import bitmask_slot, capabilities, size_slot

MS = Ctx.MAIL | Ctx.SERVER


def imap_methods(dialect):
    base = ["plain", "login", "cram-md5", "external"]
    return base + (["xoauth2", "oauthbearer"] if dialect != "nginx" else [])


ROWS = [
    row("imap_auth", "imap", MS, Args.ONEMORE, bitmask_slot(imap_methods),
        field="imap_auth", default=frozenset({"plain"}), merge=Merge.BITMASK,
        syntax="plain | login | cram-md5 | external | xoauth2 | oauthbearer ...",
        default_text="plain", doc="advertised IMAP AUTHENTICATE mechanisms"),
    row("imap_capabilities", "imap", MS, Args.ONEMORE, capabilities,
        field="imap_capabilities", default=("IMAP4", "IMAP4rev1", "UIDPLUS"),
        merge=Merge.LIST, syntax="capability ...", default_text="IMAP4 IMAP4rev1 UIDPLUS",
        doc="the CAPABILITY reply"),
    row("imap_client_buffer", "imap", MS, Args.TAKE1, size_slot,
        field="imap_client_buffer", default=4096, syntax="size", default_text="4k",
        doc="pre-auth IMAP line buffer"),
]
