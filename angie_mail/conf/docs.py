"""Render docs/directives.md from the registry (``python -m angie_mail.conf.docs``).

A test fails when the committed file differs from what this prints, so the reference
cannot drift from the code."""

from __future__ import annotations

import sys

from .modules import MODULES
from .registry import ANGIE, EXTENSION, Ctx, Merge

TITLES = {
    "core": "Main context and events {}",
    "mail_core": "Mail core (ngx_mail_core_module)",
    "ssl": "TLS (ngx_mail_ssl_module)",
    "pop3": "POP3 (ngx_mail_pop3_module)",
    "imap": "IMAP (ngx_mail_imap_module)",
    "smtp": "SMTP (ngx_mail_smtp_module)",
    "auth_http": "auth_http (ngx_mail_auth_http_module)",
    "proxy": "Proxy (ngx_mail_proxy_module)",
    "realip": "Real IP (ngx_mail_realip_module)",
}


def _ctx(c: Ctx) -> str:
    parts = []
    for flag, name in ((Ctx.MAIN, "main"), (Ctx.EVENTS, "events"), (Ctx.MAIL, "mail"),
                       (Ctx.SERVER, "server")):
        if c & flag:
            parts.append(name)
    return ", ".join(parts)


def _dialects(r) -> str:
    if r.dialects == EXTENSION:
        return "angie-mail only (extension)"
    if r.dialects == ANGIE:
        return "Angie (not nginx)"
    if r.dialects == frozenset(("nginx",)):
        return "nginx 1.22 only"
    return "all"


def _esc(s: str) -> str:
    return s.replace("|", "\\|")


def render() -> str:
    out = ["# Directive reference\n\n",
           "Generated from the directive registry (`python -m angie_mail.conf.docs > "
           "docs/directives.md`); a test keeps it in sync.\n\n",
           "Columns: the contexts where the directive is allowed, the argument count, the "
           "value syntax, the default after merge, how a server inherits it "
           "(`scalar`: server, else mail, else default; `list-replace`: the server's whole "
           "list if it has one, else the mail level's; `bitmask`: as scalar, several lines "
           "in one block are combined), and the dialects that accept it.\n\n",
           "Directives of Angie's other modules (http, stream...) are known by name, "
           "context and argument count only: inside `http {}` and `stream {}` each is "
           "checked for `unknown directive`, `is not allowed here`, `{` or `;` and the "
           "number of its arguments, not for its values (see "
           "[configuration.md](configuration.md#http-and-stream)).\n"]
    for m in MODULES:
        key = m.__name__.rsplit(".", 1)[1]
        out.append(f"\n## {TITLES.get(key, key)}\n\n")
        out.append("| directive | context | args | syntax | default | merge | dialects | "
                   "description |\n|---|---|---|---|---|---|---|---|\n")
        for r in m.ROWS:
            merge = "" if r.merge is Merge.MAIN else r.merge.value
            out.append(f"| `{r.name}` | {_ctx(r.contexts)} | {_esc(r.args.describe())} | "
                       f"{_esc(r.syntax) or '-'} | {_esc(r.default_text) or '-'} | "
                       f"{merge or '-'} | {_dialects(r)} | {_esc(r.doc)} |\n")
    return "".join(out)


if __name__ == "__main__":
    sys.stdout.write(render())
