"""ngx_mail_proxy_module: the backend side of a session."""

from __future__ import annotations

from ..registry import Args, Ctx, row
from ..slots import Fail, arg, cstr, dup, flag_slot, msec_slot, parse_flag, size_slot

MS = Ctx.MAIL | Ctx.SERVER
PAGE_SIZE = 4096


def proxy_protocol_slot(an, st, lv, d):
    """``on``/``off`` as Angie (a PROXY v1 header to the backend); ``v2`` (dialect
    angie-mail, as nginx mainline) for the binary header with the TLS TLVs.  The value
    is 0, 1 or 2."""
    if d.field in lv.values:
        raise dup(d)
    word = cstr(arg(st))
    if word == "v2" and an.dialect == "angie-mail":
        lv.values[d.field] = 2
        if an.mode == "lint":
            an.warn('"proxy_protocol v2" is an angie-mail extension: Angie reports '
                    'invalid value "v2" in "proxy_protocol" directive', st,
                    rule="not-portable")
        return
    v = parse_flag(arg(st))
    if v is None:
        raise Fail(f'invalid value "{word}" in "{d.name}" directive, '
                   f'it must be "on" or "off"')
    lv.values[d.field] = 1 if v else 0

ROWS = [
    row("proxy", "proxy", MS, Args.FLAG, flag_slot, field="proxy", default=False,
        default_text="off", doc="accepted and merged; no effect (as in Angie)"),
    row("proxy_buffer", "proxy", MS, Args.TAKE1, size_slot, field="proxy_buffer",
        default=PAGE_SIZE, syntax="size", default_text="4k",
        doc="backend-to-client buffer; bounds the backend's login replies"),
    row("proxy_timeout", "proxy", MS, Args.TAKE1, msec_slot, field="proxy_timeout",
        default=24 * 3600 * 1000, syntax="time", default_text="24h",
        doc="idle timeout after login"),
    row("proxy_pass_error_message", "proxy", MS, Args.FLAG, flag_slot,
        field="proxy_pass_error_message", default=False, default_text="off",
        doc="show the backend's login error to the client"),
    row("xclient", "proxy", MS, Args.FLAG, flag_slot, field="xclient", default=True,
        default_text="on", doc="SMTP: send XCLIENT to the backend"),
    row("proxy_smtp_auth", "proxy", MS, Args.FLAG, flag_slot, field="proxy_smtp_auth",
        default=False, default_text="off", doc="SMTP: AUTH PLAIN to the backend"),
    row("proxy_protocol", "proxy", MS, Args.FLAG, proxy_protocol_slot,
        field="proxy_protocol", default=0, default_text="off", syntax="on | off | v2",
        doc="send a PROXY protocol header to the backend: v1 with on; v2 (binary, with "
            "the client's TLS version, cipher and SNI; dialect angie-mail) with v2"),
]
