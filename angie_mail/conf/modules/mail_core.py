"""ngx_mail_core_module: mail {}, server {}, listen, protocol and the session basics."""

from __future__ import annotations

import socket

from ..model import Listen, Pos, Resolver
from ..registry import ANGIE, Args, Ctx, Fail, Merge, row
from ..slots import arg, dup, msec_slot, num_slot, str_slot
from ..url import parse_url
from ..values import atoi, cstr, parse_size, parse_time
from .logs import error_log_handler

MS = Ctx.MAIL | Ctx.SERVER

# protocol guessed from a listen port (directives.md §2)
PORT_PROTOCOL = {110: "pop3", 995: "pop3", 143: "imap", 993: "imap",
                 25: "smtp", 465: "smtp", 587: "smtp"}
PROTOCOLS = ("pop3", "imap", "smtp")


def mail_block(an, st, lv, d):
    an.modules_used = True
    if an.mail is not None:
        if an.dialect == "nginx":
            raise Fail('"mail" directive is duplicate')
        return Ctx.MAIL, an.mail, None        # Angie: one mail configuration
    an.mail = an.new_level(Ctx.MAIL, st)
    close = an.merge_mail if an.dialect == "nginx" else None
    return Ctx.MAIL, an.mail, close


def server_block(an, st, lv, d):
    srv = an.new_level(Ctx.SERVER, st)
    an.servers.append(srv)

    def close():
        if "listen" not in srv.values:
            raise Fail(f'no "listen" is defined for server in {srv.file}:{srv.line}',
                       where="none")
    return Ctx.SERVER, srv, close


def _so_keepalive(v: str):
    """(so_keepalive, idle, intvl, cnt) or None when invalid."""
    if v == "on":
        return 1, 0, 0, 0
    if v == "off":
        return 2, 0, 0, 0
    parts = v.split(":")
    parts += [""] * (3 - len(parts))
    idle_s, intvl_s = parts[0], parts[1]
    cnt_s = ":".join(parts[2:]) if len(parts) > 3 else parts[2]
    idle = intvl = cnt = 0
    if idle_s:
        idle = parse_time(idle_s, True)
        if idle is None:
            return None
    if intvl_s:
        intvl = parse_time(intvl_s, True)
        if intvl is None:
            return None
    if cnt_s:
        cnt = atoi(cnt_s)
        if cnt is None:
            return None
    if idle == 0 and intvl == 0 and cnt == 0:
        return None
    return 1, idle, intvl, cnt


def listen(an, st, lv, d):
    lv.values.setdefault("listen", [])
    text = arg(st)
    u = parse_url(text, listen=True)
    if u.err:
        raise Fail(f'{u.err} in "{text}" of the "listen" directive')
    if "protocol" not in lv.values and u.family != socket.AF_UNIX:
        proto = PORT_PROTOCOL.get(u.port)
        if proto:
            lv.values["protocol"] = proto
    opts = dict(pos=Pos(st.file, st.end_line))
    for w in st.words[2:]:
        v = cstr(w.value)
        if v == "bind":
            opts["bind"] = True
        elif v.startswith("backlog="):
            n = atoi(w.value[8:])
            opts["bind"] = True
            if n is None or n == 0:
                raise Fail(f'invalid backlog "{w.value}"')
            opts["backlog"] = n
        elif v.startswith("rcvbuf=") or v.startswith("sndbuf="):
            n = parse_size(w.value[7:])
            opts["bind"] = True
            if n is None:
                raise Fail(f'invalid {v[:6]} "{w.value}"')
            opts[v[:6]] = n
        elif v.startswith("ipv6only=o"):
            if v[10:] == "n":
                opts["ipv6only"] = True
            elif v[10:] == "ff":
                opts["ipv6only"] = False
            else:
                raise Fail(f'invalid ipv6only flags "{v[9:]}"')
            opts["bind"] = True
        elif v == "ssl":
            lv.values["ssl_listen"] = True
            lv.values["ssl_pos"] = Pos(st.file, st.end_line)
            opts["ssl"] = True
        elif v.startswith("so_keepalive="):
            ka = _so_keepalive(v[13:])
            if ka is None:
                raise Fail(f'invalid so_keepalive value: "{v[13:]}"')
            opts["so_keepalive"], opts["keepidle"], opts["keepintvl"], opts["keepcnt"] = ka
            opts["bind"] = True
        elif v == "proxy_protocol":
            opts["proxy_protocol"] = True
        elif v == "multipath" and an.dialect != "nginx":
            opts["multipath"] = True
            opts["bind"] = True
        elif an.dialect == "nginx":
            raise Fail(f'the invalid "{w.value}" parameter')
        else:
            raise Fail(f'invalid parameter "{w.value}"')
    for a in u.addrs:
        key = (a.family, a.host, a.port)
        if key in an.listen_addrs:
            raise Fail(f'duplicate "{a.text}" address and port pair')
        an.listen_addrs.add(key)
        lv.values["listen"].append(Listen(a, **opts))


def protocol(an, st, lv, d):
    v = arg(st)
    if cstr(v) not in PROTOCOLS or "\0" in v:
        raise Fail(f'unknown protocol "{v}"')
    lv.values["protocol"] = v


def error_log_user_tag(an, st, lv, d):
    if arg(st):
        lv.values.setdefault(d.field, []).append(arg(st))


def resolver(an, st, lv, d):
    if d.field in lv.values:
        raise dup(d)
    vals = [w.value for w in st.words[1:]]
    if cstr(vals[0]) == "off":
        lv.values[d.field] = None
        return
    servers = []
    valid = 0
    ipv4 = ipv6 = True
    angie = an.dialect != "nginx"
    for v in vals:
        c = cstr(v)
        if c.startswith("valid="):
            valid = parse_time(c[6:], True)
            if valid is None:
                raise Fail(f"invalid parameter: {v}")
            continue
        if c.startswith("ipv6=") or (angie and c.startswith("ipv4=")):
            if c[5:] not in ("on", "off"):
                raise Fail(f"invalid parameter: {v}")
            if c.startswith("ipv4="):
                ipv4 = c[5:] == "on"
            else:
                ipv6 = c[5:] == "on"
            continue
        if angie and (c.startswith("status_zone=") or c == "conf" or c.startswith("conf=")):
            continue
        u = parse_url(v, default_port=53)
        if u.err:
            raise Fail(f'{u.err} in resolver "{v}"')
        servers.extend(u.addrs)
    if not ipv4 and not ipv6:
        raise Fail('"ipv4" and "ipv6" cannot both be "off"')
    if not servers and not any(cstr(v) == "conf" or cstr(v).startswith("conf=")
                               for v in vals if angie):
        raise Fail("no name servers defined")
    lv.values[d.field] = Resolver(tuple(servers), valid, ipv4, ipv6)


ROWS = [
    row("mail", "mail_core", Ctx.MAIN, Args.BLOCK | Args.NOARGS, mail_block,
        merge=Merge.MAIN, doc="the mail block (Angie: several blocks form one)"),
    row("server", "mail_core", Ctx.MAIL, Args.BLOCK | Args.NOARGS, server_block,
        merge=Merge.NONE, doc="a mail server: its listen sockets and settings"),
    row("listen", "mail_core", Ctx.SERVER, Args.ONEMORE, listen, field="listen",
        merge=Merge.NONE,
        syntax="address[:port] [ssl] [proxy_protocol] [backlog=N] [rcvbuf=SIZE] "
               "[sndbuf=SIZE] [bind] [ipv6only=on|off] [so_keepalive=...] [multipath]",
        doc="a listening address; the first one may guess the protocol from its port"),
    row("protocol", "mail_core", Ctx.SERVER, Args.TAKE1, protocol, field="protocol",
        merge=Merge.NONE, syntax="pop3 | imap | smtp",
        doc="the server's protocol (case-sensitive); default guessed from the port"),
    row("timeout", "mail_core", MS, Args.TAKE1, msec_slot, field="timeout",
        default=60000, syntax="time", default_text="60s",
        doc="pre-auth deadline, handshakes, backend login"),
    row("server_name", "mail_core", MS, Args.TAKE1, str_slot, field="server_name",
        default="", syntax="name", default_text="host name",
        doc="name in the APOP/CRAM-MD5 salt and the SMTP greeting"),
    row("error_log", "mail_core", MS, Args.ONEMORE, error_log_handler, field="error_log",
        merge=Merge.LIST, syntax="file | stderr | syslog:... [level]",
        default_text="the main error_log", doc="error log of the sessions"),
    row("error_log_user_tag", "mail_core", MS, Args.TAKE1, error_log_user_tag,
        field="error_log_user_tag", default=(), merge=Merge.LIST, dialects=ANGIE,
        syntax="tag", doc="tags added to the session's log records"),
    row("resolver", "mail_core", MS, Args.ONEMORE, resolver, field="resolver",
        default=None, syntax="address ... [valid=time] [ipv4=on|off] [ipv6=on|off] | off",
        default_text="off", doc="DNS servers (SMTP client host names only)"),
    row("resolver_timeout", "mail_core", MS, Args.TAKE1, msec_slot,
        field="resolver_timeout", default=30000, syntax="time", default_text="30s",
        doc="DNS timeout"),
    row("max_errors", "mail_core", MS, Args.TAKE1, num_slot, field="max_errors",
        default=5, syntax="number", default_text="5",
        doc="invalid command lines before the session is closed"),
    row("max_commands", "mail_core", MS, Args.TAKE1, num_slot, field="max_commands",
        default=1000, dialects=ANGIE, syntax="number", default_text="1000",
        doc="commands before authentication before the session is closed"),
]
