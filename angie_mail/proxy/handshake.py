"""What happens before the POP3 greeting on ``proxy_protocol`` and ``ssl`` listeners,
and the STLS upgrade.

Such listeners are accepted here rather than by asyncio's server: the PROXY header must
be peeked and consumed exactly (the bytes after it may be a TLS ClientHello), and the
server - hence the TLS context - is chosen from the local address first.  One deadline,
the server's ``timeout``, covers the PROXY header and the TLS handshake.
"""

from __future__ import annotations

import asyncio
import socket

from ..protocols import PROTOCOLS
from .client import ETIMEDOUT, ClientConnection, _addr_text, pre_context
from .proxy_protocol import MAX_HEADER, BrokenHeader, parse
from .sockio import Acceptor, start_transport
from .tls import TlsInfo, check_client_certificate
from .tlsio import TlsEngine


class PreSession:
    """What the handshake learned, handed to the ClientConnection."""
    __slots__ = ("conn_no", "header", "tls", "tls_info")

    def __init__(self, conn_no):
        self.conn_no = conn_no
        self.header = None
        self.tls = False
        self.tls_info = None

    def apply(self, client):
        client.proxy_header = self.header
        client.tls = self.tls
        client.tls_info = self.tls_info
        h = self.header
        if h is not None and h.src_addr is not None:
            trusted = client.server.set_real_ip_from
            if trusted and _trusted(trusted, client):
                client.client_ip = h.src_addr
                client.client_port = h.src_port


def _trusted(cidrs, client) -> bool:
    fam = client.family
    ip = client.client_ip
    return any(c.matches(fam, ip or "") for c in cidrs)


class _Acceptor:
    """Accepts on one listening socket and runs each connection's handshake."""

    def __init__(self, rt, ls):
        self.rt = rt
        self.ls = ls
        self.acceptor = Acceptor(rt, ls, self.accepted)

    def accepted(self, conn, peer):
        rt = self.rt
        if rt.over_limit():
            conn.close()
            return
        conn.setblocking(False)
        rt.pending += 1
        rt.loop.create_task(self._counted(conn, peer))

    async def _counted(self, conn, peer):
        try:
            await self.handshake(conn, peer)
        finally:
            self.rt.pending -= 1

    async def handshake(self, conn, peer):
        rt = self.rt
        loop = rt.loop
        try:
            local = conn.getsockname()
        except OSError:
            conn.close()
            return
        conf = self.ls.select(local[0] if isinstance(local, tuple) else None)
        srv = conf.server
        log = rt.log_for(srv)
        pre = PreSession(rt.next_connection())
        peer_text = _addr_text(peer)
        tags = srv.error_log_user_tag

        def ctx(action):
            return pre_context(action, peer_text, conf.addr_text)
        if log.enabled("info"):
            log.log("info", "client connected", pre.conn_no, ctx("initializing session"),
                    tags=tags)
        deadline = loop.time() + srv.timeout_ms / 1000.0
        engine = None
        try:
            if conf.listen.proxy_protocol:
                try:
                    pre.header = await asyncio.wait_for(read_proxy_header(loop, conn),
                                                        deadline - loop.time())
                except BrokenHeader as e:
                    log.log("error", str(e), pre.conn_no, ctx("reading PROXY protocol"),
                            tags=tags)
                    conn.close()
                    return
                except EOFError:
                    conn.close()
                    return
            factory = lambda: ClientConnection(rt, self.ls, conf, pre)   # noqa: E731
            if not conf.listen.ssl:
                start_transport(rt, conn, peer, factory())
                return
            engine = TlsEngine(loop, rt.ssl_context(srv))
            start_transport(rt, conn, peer, engine)
            conn = None                         # owned by the transport from here
            remaining = max(deadline - loop.time(), 0.001)
            ok = await asyncio.wait_for(asyncio.shield(engine.handshake), remaining)
            tls_counted(conf, ok)
            if not ok:
                log.log("info", engine.failure or "SSL handshake failed", pre.conn_no,
                        ctx("SSL handshaking"), tags=tags)
                engine.abort()
                return
            pre.tls = True
            client = factory()
            refused = check_client_certificate(engine, srv.ssl_verify_client)
            if refused is not None:
                kind, message = refused
                log.log("info", message, pre.conn_no, ctx("SSL handshaking"), tags=tags)
                proto = PROTOCOLS[srv.protocol]
                engine.transport.write(proto.no_cert if kind == "no_cert" else proto.cert_error)
                engine.app_close()
                return
            pre.tls_info = TlsInfo.from_engine(engine, srv.ssl_verify_client)
            engine.start_app(client)
        except (asyncio.TimeoutError, TimeoutError):
            log.log("info", "client timed out", pre.conn_no, ctx(""), ETIMEDOUT, tags)
            if conn is not None:
                conn.close()
            if engine is not None:
                engine.abort()
        except (OSError, ConnectionError) as e:
            log.log("info", f"handshake failed ({e.__class__.__name__})", pre.conn_no,
                    ctx("SSL handshaking"), tags=tags)
            if conn is not None:
                conn.close()
            if engine is not None:
                engine.abort()

    def close(self):
        self.acceptor.close()


def accept_with_handshake(rt, ls):
    return _Acceptor(rt, ls)


async def read_proxy_header(loop, conn: socket.socket):
    """Peek once at what the client sent, parse a PROXY header, consume exactly it."""
    fut = loop.create_future()
    fd = conn.fileno()

    def ready():
        if not fut.done():
            fut.set_result(None)
    loop.add_reader(fd, ready)
    try:
        while True:
            await fut
            try:
                data = conn.recv(MAX_HEADER, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                fut = loop.create_future()
                loop.remove_reader(fd)
                loop.add_reader(fd, ready)
                continue
            break
    finally:
        loop.remove_reader(fd)
    if not data:
        raise EOFError
    header = parse(data)
    conn.recv(header.length)
    return header


def tls_counted(conf, ok) -> None:
    """A TLS handshake ended (metrics_listen)."""
    from .metrics import M
    if M is not None:
        M.tls.labels(conf.addr_text, "ok" if ok else "failed").inc()


async def starttls(client) -> bool:
    """Upgrade an STLS connection under the still-running pre-auth deadline, then check
    the client certificate (which may end the session with an error line over TLS)."""
    rt = client.rt
    loop = rt.loop
    srv = client.server
    remaining = 0.001
    if client.timer is not None:
        remaining = max(client.timer.when() - loop.time(), 0.001)
    client.action = "in starttls state"
    raw = client.transport
    engine = TlsEngine(loop, rt.ssl_context(srv))
    engine.attach(raw)
    raw.resume_reading()
    try:
        ok = await asyncio.wait_for(asyncio.shield(engine.handshake), remaining)
    except (asyncio.TimeoutError, TimeoutError):
        client.log("info", "client timed out", ETIMEDOUT)
        tls_counted(client.conf, False)
        return False
    tls_counted(client.conf, ok)
    if not ok:
        if engine.failure:
            client.log("info", engine.failure)     # while in starttls state
        return False
    client.transport = engine.transport
    client.tls = True
    refused = check_client_certificate(engine, srv.ssl_verify_client)
    if refused is not None:
        kind, message = refused
        client.log("info", message)
        engine.start_app(client, call_connection_made=False)
        proto = client.proto
        client.transport.write(proto.no_cert if kind == "no_cert" else proto.cert_error)
        client.close_after_write()
        return None
    client.tls_info = TlsInfo.from_engine(engine, srv.ssl_verify_client)
    return engine
