"""ngx_mail_pop3_module: POP3 authentication methods and capabilities."""

from __future__ import annotations

from ..registry import EXTENSION, Args, Ctx, Fail, Merge, row
from ..slots import bitmask_slot, capabilities, size_slot

MS = Ctx.MAIL | Ctx.SERVER
POP3_BUFFER = 128          # Angie's fixed POP3 line buffer


def pop3_methods(dialect):
    base = ["plain", "apop", "cram-md5", "external"]
    return base + (["xoauth2", "oauthbearer"] if dialect != "nginx" else [])


def client_buffer(an, st, lv, d):
    size_slot(an, st, lv, d)
    if lv.values[d.field] < POP3_BUFFER:
        raise Fail(f'"{d.name}" directive value is too small, minimum is {POP3_BUFFER}')


ROWS = [
    row("pop3_auth", "pop3", MS, Args.ONEMORE, bitmask_slot(pop3_methods),
        field="pop3_auth", default=frozenset({"plain"}), merge=Merge.BITMASK,
        syntax="plain | apop | cram-md5 | external | xoauth2 | oauthbearer ...",
        default_text="plain",
        doc="advertised/enabled methods (PLAIN and LOGIN are always accepted)"),
    row("pop3_capabilities", "pop3", MS, Args.ONEMORE, capabilities,
        field="pop3_capabilities", default=("TOP", "USER", "UIDL"), merge=Merge.LIST,
        syntax="capability ...", default_text="TOP USER UIDL",
        doc="lines of the CAPA reply"),
    row("pop3_client_buffer", "pop3", MS, Args.TAKE1, client_buffer,
        field="pop3_client_buffer", default=POP3_BUFFER, dialects=EXTENSION,
        syntax="size", default_text="128",
        doc="pre-auth POP3 line buffer, so that OAuth tokens (~2 KB) fit "
            "(Angie has a fixed 128 bytes)"),
]

