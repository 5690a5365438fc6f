"""Listening sockets, laid out as Angie lays them out, and server selection.

For each port where a wildcard address (``*:110``, ``[::]:110``) is configured, only the
wildcard and the addresses marked ``bind`` (or given a parameter that implies it) get
a socket of their own; the other addresses of that port share the wildcard socket and
the server is chosen per connection from the local address (exact address first, then
the wildcard).  A port without a wildcard gets one socket per address.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import NamedTuple

from ..errors import errno_suffix

IPPROTO_MPTCP = getattr(socket, "IPPROTO_MPTCP", 262)


class AddrConf(NamedTuple):
    """What a connection to one configured address gets."""
    server: object          # conf.model.Server
    listen: object          # conf.model.Listen
    addr_text: str          # "127.0.0.1:110"


class ListenSocket:
    """One socket to bind, and the address confs reachable through it."""

    __slots__ = ("listen", "addrs", "default", "sock")

    def __init__(self, listen):
        self.listen = listen          # the Listen whose address is bound
        self.addrs: dict = {}         # local IP -> AddrConf (on a wildcard socket)
        self.default: AddrConf | None = None
        self.sock = None

    @property
    def text(self) -> str:
        return self.listen.addr.text

    def select(self, local_ip: str | None) -> AddrConf:
        if self.addrs and local_ip is not None:
            conf = self.addrs.get(local_ip)
            if conf is not None:
                return conf
        return self.default


def plan(servers) -> list:
    """The sockets to bind for a resolved configuration, in configuration order."""
    by_port: dict = {}
    order: list = []
    for srv in servers:
        for l in srv.listens:
            a = l.addr
            key = ("unix", a.host) if a.family == socket.AF_UNIX else (a.family, a.port)
            if key not in by_port:
                by_port[key] = []
                order.append(key)
            by_port[key].append((srv, l))
    out = []
    for key in order:
        entries = by_port[key]
        wild = [e for e in entries if e[1].addr.wildcard]
        if not wild:
            for srv, l in entries:
                ls = ListenSocket(l)
                ls.default = AddrConf(srv, l, l.addr.text)
                out.append(ls)
            continue
        wsrv, wl = wild[0]
        wsock = ListenSocket(wl)
        wsock.default = AddrConf(wsrv, wl, wl.addr.text)
        out.append(wsock)
        for srv, l in entries:
            if l is wl:
                continue
            conf = AddrConf(srv, l, l.addr.text)
            if l.bind:
                ls = ListenSocket(l)
                ls.default = conf
                out.append(ls)
            else:
                wsock.addrs[l.addr.host] = conf
    return out


class BindError(Exception):
    pass


def check_sockets(servers):
    """What ``-t`` does with the listening sockets, as nginx does it: bind and listen
    each planned socket, then close it; the first failure's message, or None.

    An address already in use is not an error here (another process, such as the
    running server, listens there), and an existing unix socket file is neither
    removed nor an error; a unix socket file created by the test is removed again."""
    for ls in plan(servers):
        try:
            sock = open_socket(ls, test=True)
        except BindError as e:
            return str(e)
        if sock is not None:
            sock.close()
            ls.sock = None
    return None


def open_socket(ls: ListenSocket, test: bool = False):
    """Create, configure, bind and listen; raise BindError with nginx's message.

    ``test`` (-t): EADDRINUSE gives None instead of an error, an existing unix socket
    file is left alone and the one bound is removed (the caller closes the socket)."""
    l = ls.listen
    a = l.addr
    proto = IPPROTO_MPTCP if l.multipath else 0
    try:
        try:
            sock = socket.socket(a.family, socket.SOCK_STREAM, proto)
        except OSError:
            if not l.multipath:
                raise
            sock = socket.socket(a.family, socket.SOCK_STREAM)
    except OSError as e:
        raise BindError(f"socket() {a.text} failed" + errno_suffix(e))
    try:
        if a.family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if l.rcvbuf != -1:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, l.rcvbuf)
        if l.sndbuf != -1:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, l.sndbuf)
        if a.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if l.ipv6only else 0)
        if l.so_keepalive == 1:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if l.keepidle:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, l.keepidle)
            if l.keepintvl:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, l.keepintvl)
            if l.keepcnt:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, l.keepcnt)
        elif l.so_keepalive == 2:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
        if a.family == socket.AF_UNIX and not test:
            try:
                if os.path.exists(a.host) and not os.path.isdir(a.host):
                    os.unlink(a.host)
            except OSError:
                pass
        try:
            sock.bind(a.sockaddr())
        except OSError as e:
            if test and e.errno == errno.EADDRINUSE:
                sock.close()
                return None
            raise BindError(f"bind() to {a.text} failed" + errno_suffix(e))
        if a.family == socket.AF_UNIX:
            try:
                os.chmod(a.host, 0o666)
            except OSError:
                if not test:
                    raise
            if test:
                try:
                    os.unlink(a.host)
                except OSError:
                    pass
        backlog = l.backlog if l.backlog > 0 else socket.SOMAXCONN
        try:
            sock.listen(backlog)
        except OSError as e:
            if test and e.errno == errno.EADDRINUSE:
                sock.close()
                return None
            raise BindError(f"listen() to {a.text}, backlog {backlog} failed"
                            + errno_suffix(e))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    ls.sock = sock
    return sock
