"""nginx's address parsing (ngx_parse_url, ngx_ptocidr) for listen, auth_http, resolver
and set_real_ip_from.  Host names are resolved at configuration time, as nginx does."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import NamedTuple

from .values import atoi

UNIX_PATH_MAX = 108      # sizeof(sun_path) on Linux


class Addr(NamedTuple):
    """One socket address: family, host (IP text or unix path), port, and the text nginx
    prints for it (``127.0.0.1:110``, ``[::1]:110``, ``unix:/path``)."""
    family: int
    host: str
    port: int
    text: str

    @property
    def wildcard(self) -> bool:
        return self.family != socket.AF_UNIX and self.host in ("0.0.0.0", "::")

    def sockaddr(self):
        if self.family == socket.AF_UNIX:
            return self.host
        return (self.host, self.port)


class Url:
    """What ngx_parse_url found (mutable while parsing)."""
    __slots__ = ("url", "host", "port", "last_port", "no_port", "uri", "family",
                 "wildcard", "addrs", "err")

    def __init__(self, url: str):
        self.url = url
        self.host = ""
        self.port = 0
        self.last_port = 0
        self.no_port = False
        self.uri = ""
        self.family = socket.AF_INET
        self.wildcard = False
        self.addrs: list = []
        self.err: str | None = None


def addr_text(family: int, host: str, port: int) -> str:
    if family == socket.AF_UNIX:
        return "unix:" + host
    if family == socket.AF_INET6:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _inet4(text: str) -> str | None:
    """ngx_inet_addr: dotted quad of four decimal octets."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    for p in parts:
        if not p or not p.isascii() or not p.isdigit() or int(p) > 255:
            return None
    return ".".join(str(int(p)) for p in parts)


def _inet6(text: str) -> str | None:
    if not text.isascii() or "%" in text:
        return None
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None


# What resolve_host asks instead of the system resolver, when set: lint does not look
# host names up unless told to (angie_mail.lint.HostNames); -t and the proxy leave it None
lookup = None


def resolve_host(host: str, port: int) -> list | None:
    """All addresses of ``host`` (IPv4 and IPv6), without repeats; None if not found."""
    if lookup is not None:
        return lookup(host, port)
    return system_lookup(host, port)


def system_lookup(host: str, port: int) -> list | None:
    """resolve_host through getaddrinfo(), as nginx resolves names while reading."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return None
    out = []
    seen = set()
    for fam, _, _, _, sa in infos:
        if fam not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = sa[0]
        if (fam, ip) in seen:
            continue
        seen.add((fam, ip))
        out.append(Addr(fam, ip, port, addr_text(fam, ip, port)))
    return out or None


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# "a.b.c.d:port" written canonically (no leading zeros, octets up to 255, a port
# of 1 to 5 digits): the common form of listen and auth_http addresses, which every
# option of parse_url reads the same way
_PLAIN_INET4 = re.compile(rf"({_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}):([1-9][0-9]{{0,4}})")


def parse_url(text: str, *, listen: bool = False, uri_part: bool = False,
              default_port: int = 0, no_resolve: bool = False,
              port_ranges: bool = True) -> Url:
    """ngx_parse_url; on failure ``err`` holds nginx's reason ("invalid port", ...)."""
    m = _PLAIN_INET4.fullmatch(text)
    if m is not None:
        port = int(m[2])
        if port <= 65535:
            # what _parse_inet finds for it, without its general steps
            u = Url(text)
            u.host = host = m[1]
            u.port = port
            u.wildcard = host == "0.0.0.0"
            u.addrs = [Addr(socket.AF_INET, host, port, text)]
            return u
    return _parse_url(text, listen, uri_part, default_port, no_resolve, port_ranges)


def _parse_url(text: str, listen: bool, uri_part: bool, default_port: int,
               no_resolve: bool, port_ranges: bool) -> Url:
    """parse_url for any text."""
    u = Url(text)
    if len(text) >= 5 and text[:5].lower() == "unix:":
        return _parse_unix(u, uri_part)
    if text.startswith("["):
        return _parse_inet6(u, listen, uri_part, default_port)
    return _parse_inet(u, listen, uri_part, default_port, no_resolve, port_ranges)


def _fail(u: Url, reason: str) -> Url:
    u.err = reason
    return u


def _parse_unix(u: Url, uri_part: bool) -> Url:
    path = u.url[5:]
    if uri_part:
        i = path.find(":")
        if i >= 0:
            u.uri = path[i + 1:]
            path = path[:i]
    if not path:
        return _fail(u, "no path in the unix domain socket")
    if len(path.encode("utf-8", "surrogateescape")) + 1 > UNIX_PATH_MAX:
        return _fail(u, "too long path in the unix domain socket")
    u.family = socket.AF_UNIX
    u.host = path
    u.addrs = [Addr(socket.AF_UNIX, path, 0, "unix:" + path)]
    return u


def _port(u: Url, text: str, listen: bool, port_ranges: bool) -> bool:
    """Parse "PORT" or (listen) "PORT-PORT" into u.port/u.last_port."""
    if listen and port_ranges:
        dash = text.find("-")
        if dash >= 0:
            hi = atoi(text[dash + 1:])
            if hi is None or hi < 1 or hi > 65535:
                _fail(u, "invalid port")
                return False
            lo = atoi(text[:dash])
            if lo is None or lo < 1 or lo > 65535:
                _fail(u, "invalid port")
                return False
            if lo > hi:
                _fail(u, "invalid port range")
                return False
            u.port, u.last_port = lo, hi
            return True
    n = atoi(text)
    if n is None or n < 1 or n > 65535:
        _fail(u, "invalid port")
        return False
    u.port = n
    return True


def _port_only(u: Url, text: str, port_ranges: bool) -> bool:
    """The listen value as a bare port ("110", "8110-8112"): True when it is one
    (``u.err`` set if it is a bad one); False when it must be read as a host."""
    lo_text = text
    dash = text.find("-") if port_ranges else -1
    if dash >= 0:
        hi = atoi(text[dash + 1:])
        if hi is None:
            return False
        if hi < 1 or hi > 65535:
            u.err = "invalid port"
        else:
            u.last_port = hi
        lo_text = text[:dash]
    lo = atoi(lo_text)
    if lo is None:
        return False
    if u.err is None:
        if lo < 1 or lo > 65535:
            u.err = "invalid port"
        elif u.last_port and lo > u.last_port:
            u.err = "invalid port range"
    if u.err is None:
        u.port = lo
        u.wildcard = True
        u.host = "0.0.0.0"
        u.addrs = _with_ports(u, socket.AF_INET, "0.0.0.0")
    return True


def _with_ports(u: Url, family: int, host: str) -> list:
    last = u.last_port or u.port
    return [Addr(family, host, p, addr_text(family, host, p)) for p in range(u.port, last + 1)]


def _parse_inet(u: Url, listen, uri_part, default_port, no_resolve, port_ranges) -> Url:
    s = u.url
    last = len(s)
    port = s.find(":")
    uri = s.find("/")
    args = s.find("?")
    if args >= 0 and (uri < 0 or args < uri):
        uri = args
    if uri >= 0:
        if listen or not uri_part:
            return _fail(u, "invalid host")
        u.uri = s[uri:]
        last = uri
        if uri < port:
            port = -1
    if port >= 0:
        if not _port(u, s[port + 1:last], listen, port_ranges):
            return u
        last = port
    else:
        if uri < 0 and listen and _port_only(u, s[:last], port_ranges):
            return u
        u.err = None
        u.no_port = True
        u.port = default_port
        u.last_port = 0
    host = s[:last]
    if not host:
        return _fail(u, "no host")
    u.host = host
    if listen and host == "*":
        u.wildcard = True
        u.addrs = _with_ports(u, socket.AF_INET, "0.0.0.0")
        return u
    ip = _inet4(host)
    if ip is not None:
        u.wildcard = ip == "0.0.0.0"
        u.addrs = _with_ports(u, socket.AF_INET, ip)
        return u
    if no_resolve:
        return u
    found = resolve_host(host, u.port)
    if found is None:
        return _fail(u, "host not found")
    addrs = []
    for a in found:
        for p in range(u.port, (u.last_port or u.port) + 1):
            addrs.append(Addr(a.family, a.host, p, addr_text(a.family, a.host, p)))
    u.addrs = addrs
    u.family = found[0].family
    u.wildcard = found[0].wildcard
    return u


def _parse_inet6(u: Url, listen, uri_part, default_port) -> Url:
    s = u.url
    last = len(s)
    close = s.find("]", 1)
    if close < 0:
        return _fail(u, "invalid host")
    port = close + 1
    uri = s.find("/", port)
    if uri >= 0:
        if listen or not uri_part:
            return _fail(u, "invalid host")
        u.uri = s[uri:]
        last = uri
    if port < last:
        if s[port] != ":":
            return _fail(u, "invalid host")
        if not _port(u, s[port + 1:last], listen, True):
            return u
    else:
        u.no_port = True
        u.port = default_port
    host = s[1:close]
    if not host:
        return _fail(u, "no host")
    u.host = s[:close + 1]
    ip = _inet6(host)
    if ip is None:
        return _fail(u, "invalid IPv6 address")
    u.family = socket.AF_INET6
    u.wildcard = ip == "::"
    u.addrs = _with_ports(u, socket.AF_INET6, ip)
    return u


class Cidr(NamedTuple):
    """A trusted network for set_real_ip_from (family AF_UNIX for ``unix:``)."""
    family: int
    network: object = None       # ipaddress.IPv4Network / IPv6Network

    def matches(self, family: int, host: str) -> bool:
        if self.family == socket.AF_UNIX:
            return family == socket.AF_UNIX
        if family == socket.AF_UNIX:
            return False
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None \
                and self.network.version == 4:
            ip = ip.ipv4_mapped
        return ip.version == self.network.version and ip in self.network

    def __str__(self) -> str:
        return "unix:" if self.family == socket.AF_UNIX else str(self.network)


def ptocidr(text: str):
    """ngx_ptocidr: (Cidr, low_bits_set) or None.  Accepts "addr" and "addr/len"."""
    addr, slash, bits = text.partition("/")
    ip6 = _inet6(addr)
    if ip6 is not None:
        family, ip, maxbits = socket.AF_INET6, ip6, 128
    else:
        ip4 = _inet4(addr)
        if ip4 is None:
            return None
        family, ip, maxbits = socket.AF_INET, ip4, 32
    if slash:
        n = atoi(bits)
        if n is None or n > maxbits:
            return None
    else:
        n = maxbits
    net = ipaddress.ip_network(f"{ip}/{n}", strict=False)
    low_bits = net.network_address != ipaddress.ip_address(ip)
    return Cidr(family, net), low_bits
