"""angie-mail's brute-force defence (docs/abuse.md): failed-login throttling
(``auth_throttle*``), connection limits as freenginx's mail ``limit_conn`` module, and
refusing AUTH on MX servers (``smtp_refuse_auth``)."""

from __future__ import annotations

from ..model import AuthThrottle, LimitConn
from ..registry import EXTENSION, Args, Ctx, Fail, row
from ..slots import arg, dup, enum_slot, flag_slot
from ..values import atoi, cstr, parse_size, parse_time
from ..zones import declare_zone

MS = Ctx.MAIL | Ctx.SERVER
ZONE_MIN = 8 * 4096           # as nginx's zones: at least 8 memory pages
LEVELS = ["info", "notice", "warn", "error"]


def _declare_zone(an, name: str, size: int, tag: str) -> None:
    """One namespace of shared memory zones, as nginx's: a name is declared once
    per use, with one size."""
    if size < ZONE_MIN:
        raise Fail(f'zone "{name}" is too small')
    problem = declare_zone(an, name, size, tag)
    if problem:
        raise Fail(problem)


def _zone_param(d, value: str):
    """``zone=name:size`` -> (name, size)."""
    spec = value[5:]
    j = spec.rfind(":")
    if j <= 0:
        raise Fail(f'invalid zone size "{value}"')
    size = parse_size(spec[j + 1:])
    if size is None:
        raise Fail(f'invalid zone size "{value}"')
    return spec[:j], size


KEYS = ("$remote_addr", "$remote_user")


def limit_conn_zone(an, st, lv, d):
    """``limit_conn_zone key zone=name:size``: the key is $remote_addr, $remote_user
    or $auth_http_<header> (freenginx)."""
    key = cstr(arg(st, 1))
    zone = None
    for w in st.words[2:]:
        v = cstr(w.value)
        if v.startswith("zone="):
            zone = _zone_param(d, v)
        else:
            raise Fail(f'invalid parameter "{v}"')
    if zone is None:
        raise Fail(f'"{d.name}" must have "zone" parameter')
    if not (key in KEYS or key.startswith("$auth_http_") and len(key) > len("$auth_http_")):
        raise Fail(f'invalid key "{key}" in "{d.name}" directive, it must be '
                   f'$remote_addr, $remote_user or $auth_http_<name>')
    name, size = zone
    zones = lv.values.setdefault("limit_conn_zones", {})
    if name in zones and zones[name] != key:
        raise Fail(f'{d.name} "{name}" is already bound to key "{zones[name]}"')
    _declare_zone(an, name, size, "limit_conn")
    zones[name] = key


def limit_conn(an, st, lv, d):
    name = cstr(arg(st, 1))
    n = atoi(cstr(arg(st, 2)))
    if n is None or n <= 0:
        raise Fail(f'invalid number of connections "{cstr(arg(st, 2))}"')
    cur = lv.values.setdefault(d.field, [])
    if any(z == name for z, _, _ in cur):
        raise dup(d)
    from ..model import Pos
    cur.append((name, n, Pos(st.file, st.end_line)))


def auth_throttle_zone(an, st, lv, d):
    v = cstr(arg(st))
    if not v.startswith("zone="):
        raise Fail(f'"{d.name}" must have "zone" parameter')
    name, size = _zone_param(d, v)
    zones = lv.values.setdefault("auth_throttle_zones", {})
    _declare_zone(an, name, size, "auth_throttle")
    zones[name] = size


def _rate(value: str, param: str):
    """``N/TIME`` -> (N, seconds)."""
    n, _, t = value.partition("/")
    count = atoi(n)
    window = parse_time(t, True) if t else None
    if count is None or count <= 0 or not window:
        raise Fail(f'invalid parameter "{param}"')
    return count, window


def auth_throttle(an, st, lv, d):
    """``auth_throttle zone [addr=N/T] [login=N/T] [pair=N/T] [delay=T] [max_delay=T]``
    or ``auth_throttle off``."""
    if d.field in lv.values:
        raise dup(d)
    words = [cstr(w.value) for w in st.words[1:]]
    if words == ["off"]:
        lv.values[d.field] = None
        return
    from ..model import Pos
    limits = {"addr": None, "login": None, "pair": None}
    delay, max_delay = 1000, 15000
    for p in words[1:]:
        key, eq, value = p.partition("=")
        if not eq:
            raise Fail(f'invalid parameter "{p}"')
        if key in limits:
            limits[key] = _rate(value, p)
        elif key in ("delay", "max_delay"):
            ms = parse_time(value, False)
            if ms is None:
                raise Fail(f'invalid parameter "{p}"')
            if key == "delay":
                delay = ms
            else:
                max_delay = ms
        else:
            raise Fail(f'invalid parameter "{p}"')
    if not any(limits.values()):
        raise Fail(f'"{d.name}" needs at least one of "addr=", "login=" or "pair="')
    lv.values[d.field] = (words[0], limits["addr"], limits["login"], limits["pair"],
                          delay / 1000.0, max(delay, max_delay) / 1000.0,
                          Pos(st.file, st.end_line))


def trust(an, st, lv, d):
    if d.field in lv.values:
        raise dup(d)
    v = cstr(arg(st))
    if v == "off":
        lv.values[d.field] = 0
        return
    s = parse_time(v, True)
    if s is None:
        raise Fail(f'"{d.name}" directive invalid value')
    lv.values[d.field] = s


def settings(v: dict, zones: dict):
    """(auth_throttle settings or None, limit_conn tuple) of a merged server."""
    t = v.get("auth_throttle")
    limits = v.get("limit_conn")
    if t is None and not limits:
        return None, ()
    throttle = None
    if t is not None:
        throttle = AuthThrottle(zone=t[0], addr=t[1], login=t[2], pair=t[3], delay=t[4],
                                max_delay=t[5], trust=v["auth_throttle_trust"],
                                trust_certificate=v["auth_throttle_trust_certificate"],
                                log_level=v["auth_throttle_log_level"],
                                mask_login=v["auth_throttle_mask_login"], pos=t[6])
    conns = tuple(LimitConn(zone=name, key=zones.get(name, ""), number=n, pos=pos)
                  for name, n, pos in limits or ())
    return throttle, conns


ROWS = [
    row("limit_conn_zone", "mail_limit_conn", Ctx.MAIL, Args.TAKE2, limit_conn_zone,
        dialects=EXTENSION, syntax="key zone=name:size", default_text="—",
        doc="a shared zone counting connections by $remote_addr, $remote_user or "
            "$auth_http_<header> (freenginx's mail limit_conn; docs/abuse.md)"),
    row("limit_conn", "mail_limit_conn", MS, Args.TAKE2, limit_conn, field="limit_conn",
        default=(), dialects=EXTENSION, syntax="zone number", default_text="—",
        doc="at most this many connections per key of the zone, counted after "
            "authentication; more get a temporary failure and are closed"),
    row("limit_conn_dry_run", "mail_limit_conn", MS, Args.FLAG, flag_slot,
        field="limit_conn_dry_run", default=False, dialects=EXTENSION,
        default_text="off", doc="count and log, but do not refuse"),
    row("limit_conn_log_level", "mail_limit_conn", MS, Args.TAKE1, enum_slot(LEVELS),
        field="limit_conn_log_level", default="error", dialects=EXTENSION,
        syntax="info | notice | warn | error", default_text="error",
        doc="the level of the line logged when a connection is refused"),
    row("auth_throttle_zone", "mail_auth_throttle", Ctx.MAIL, Args.TAKE1,
        auth_throttle_zone, dialects=EXTENSION, syntax="zone=name:size",
        default_text="—", doc="the shared zone of failed-login counts (docs/abuse.md)"),
    row("auth_throttle", "mail_auth_throttle", MS, Args.ONEMORE, auth_throttle,
        field="auth_throttle", default=None, dialects=EXTENSION,
        syntax="zone [addr=N/time] [login=N/time] [pair=N/time] [delay=time] "
               "[max_delay=time] | off", default_text="off",
        doc="delay, then refuse without asking the auth server, logins whose address, "
            "login or (address, login) failed N times within the time"),
    row("auth_throttle_trust", "mail_auth_throttle", MS, Args.TAKE1, trust,
        field="auth_throttle_trust", default=7 * 86400, dialects=EXTENSION,
        syntax="time | off", default_text="7d",
        doc="an (address, login) that logged in within this time is exempt from the "
            "address and login counts"),
    row("auth_throttle_trust_certificate", "mail_auth_throttle", MS, Args.FLAG,
        flag_slot, field="auth_throttle_trust_certificate", default=False,
        dialects=EXTENSION, default_text="off",
        doc="so is a client certificate that logged in within that time, from any "
            "address"),
    row("auth_throttle_log_level", "mail_auth_throttle", MS, Args.TAKE1,
        enum_slot(LEVELS), field="auth_throttle_log_level", default="warn",
        dialects=EXTENSION, syntax="info | notice | warn | error", default_text="warn",
        doc="the level of the lines logged for each delay or refusal"),
    row("auth_throttle_mask_login", "mail_auth_throttle", MS, Args.FLAG, flag_slot,
        field="auth_throttle_mask_login", default=True, dialects=EXTENSION,
        default_text="on", doc="show only the first character of the login in those "
                               "lines"),
    row("smtp_refuse_auth", "mail_auth_throttle", MS, Args.FLAG, flag_slot,
        field="smtp_refuse_auth", default=False, dialects=EXTENSION, default_text="off",
        doc="answer AUTH with 503 without asking the auth server (MX servers with "
            "smtp_auth none)"),
]
