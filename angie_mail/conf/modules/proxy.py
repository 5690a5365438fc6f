"""ngx_mail_proxy_module: the backend side of a session."""

from __future__ import annotations

from ..registry import Args, Ctx, row
from ..slots import flag_slot, msec_slot, size_slot

MS = Ctx.MAIL | Ctx.SERVER
PAGE_SIZE = 4096

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
    row("proxy_protocol", "proxy", MS, Args.FLAG, flag_slot, field="proxy_protocol",
        default=False, default_text="off",
        doc="send a PROXY protocol v1 header to the backend"),
]
