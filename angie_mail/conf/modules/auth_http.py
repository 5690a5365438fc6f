"""ngx_mail_auth_http_module: where to ask who may log in, and what to send."""

from __future__ import annotations

import socket

from ..model import AuthHttp, Pos
from ..registry import EXTENSION, Args, Ctx, Fail, Merge, row
from ..slots import arg, flag_slot, keyval_slot, msec_slot, num_slot
from ..url import parse_url

MS = Ctx.MAIL | Ctx.SERVER


def auth_http(an, st, lv, d):
    """ngx_mail_auth_http: no duplicate check, a later one replaces an earlier one."""
    url = arg(st)
    text = url[7:] if url.startswith("http://") else url
    u = parse_url(text, uri_part=True, default_port=80)
    if u.err:
        raise Fail(f'{u.err} in auth_http "{text}"')
    host = u.host if u.family != socket.AF_UNIX else "localhost"
    lv.values[d.field] = AuthHttp(url, u.addrs[0], host, u.uri or "/",
                                  Pos(st.file, st.end_line))


ROWS = [
    row("auth_http", "auth_http", MS, Args.TAKE1, auth_http, field="auth_http",
        syntax="[http://]host[:port][/uri] | unix:path[:uri]", default_text="none (required)",
        doc="the HTTP authentication server; required for every server"),
    row("auth_http_timeout", "auth_http", MS, Args.TAKE1, msec_slot,
        field="auth_http_timeout", default=60000, syntax="time", default_text="60s",
        doc="deadline for connecting/sending and for the response"),
    row("auth_http_header", "auth_http", MS, Args.TAKE2, keyval_slot,
        field="auth_http_header", default=(), merge=Merge.LIST, syntax="name value",
        doc="an extra request header (sent verbatim)"),
    row("auth_http_pass_client_cert", "auth_http", MS, Args.FLAG, flag_slot,
        field="auth_http_pass_client_cert", default=False, default_text="off",
        doc="send the client certificate (Auth-SSL-Cert)"),
    row("auth_http_keepalive", "auth_http", MS, Args.TAKE1, num_slot,
        field="auth_http_keepalive", default=0, dialects=EXTENSION,
        syntax="number", default_text="0",
        doc="idle keep-alive connections to the auth server kept per worker (0: a new "
            "connection per login, as in Angie)"),
]
