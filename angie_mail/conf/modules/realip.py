"""ngx_mail_realip_module: whose PROXY protocol header tells the client address."""

from __future__ import annotations

import socket

from ..registry import Args, Ctx, Fail, Merge, row
from ..slots import arg
from ..url import Cidr, ptocidr, resolve_host

MS = Ctx.MAIL | Ctx.SERVER


def set_real_ip_from(an, st, lv, d):
    lst = lv.values.setdefault(d.field, [])
    v = arg(st)
    if v == "unix:":
        lst.append(Cidr(socket.AF_UNIX))
        return
    r = ptocidr(v)
    if r is not None:
        cidr, low_bits = r
        if low_bits:
            an.warn(f"low address bits of {v} are meaningless", st)
        lst.append(cidr)
        return
    addrs = resolve_host(v, 0)
    if addrs is None:
        raise Fail(f'host not found in set_real_ip_from "{v}"')
    for a in addrs:
        lst.append(ptocidr(a.host)[0])


ROWS = [
    row("set_real_ip_from", "realip", MS, Args.TAKE1, set_real_ip_from,
        field="set_real_ip_from", default=(), merge=Merge.LIST,
        syntax="address | CIDR | unix:",
        doc="trusted sources of PROXY protocol client addresses"),
]
