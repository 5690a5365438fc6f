"""angie-mail's own mail directives beyond Angie: the login events log and the metrics
endpoint."""

from __future__ import annotations

from ..registry import EXTENSION, Args, Ctx, Fail, row
from ..slots import arg, cstr, dup

MS = Ctx.MAIL | Ctx.SERVER


def login_events(an, st, lv, d):
    """``login_events FILE | off``: the file is resolved as error_log's (against the
    prefix); ``off`` turns off one inherited from mail {}."""
    if d.field in lv.values:
        raise dup(d)
    lv.values[d.field] = "" if cstr(arg(st)) == "off" else an.full_name(arg(st))


def metrics_listen(an, st, lv, d):
    """``metrics_listen address:port``: where every worker serves the Prometheus text
    format (an address and a port, no host name lookup)."""
    if d.field in lv.values:
        raise dup(d)
    from ..url import parse_url
    text = cstr(arg(st))
    u = parse_url(text, listen=True, no_resolve=True, port_ranges=False)
    if u.err or u.family not in (2, 10) or not u.port or u.wildcard and not u.host:
        raise Fail(f'invalid address "{text}" in "{d.name}" directive'
                   + (f" ({u.err})" if u.err else ""))
    host = u.host.strip("[]")
    if host in ("", "*"):
        host = "0.0.0.0" if u.family == 2 else "::"
    import ipaddress
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise Fail(f'invalid address "{text}" in "{d.name}" directive (an IP address '
                   f'is needed)')
    lv.values[d.field] = (int(u.family), host, u.port)


ROWS = [
    row("metrics_listen", "mail_events", Ctx.MAIL, Args.TAKE1, metrics_listen,
        field="metrics_listen", default=None, dialects=EXTENSION, syntax="address:port",
        default_text="—",
        doc="serve Prometheus metrics (sessions by outcome, auth_http latency, bytes...) "
            "over HTTP at this address, summed over all workers (docs/metrics.md)"),
    row("login_events", "mail_events", MS, Args.TAKE1, login_events, field="login_events",
        default="", dialects=EXTENSION, syntax="file | off", default_text="off",
        doc="one JSON line per session end: protocol, server, client, login, outcome, "
            "the auth server's reason, backend, TLS, bytes each way, duration "
            "(docs/login-events.md)"),
]
