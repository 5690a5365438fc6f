"""TLS from the proxy to the backend (``proxy_ssl``, angie-mail): client contexts built
in the master, and ``TlsSocket``, a TLS layer over the relay's raw non-blocking socket.

The client side needs nothing Python's ``ssl`` module lacks (verification against a CA
file and a name, a client certificate, protocol versions, ciphers, session reuse), and
that module runs on the system's OpenSSL, so it is used here with memory BIOs: the
backend socket stays a raw socket on the edge-triggered poller (relay.py) and
``TlsSocket`` offers it the same ``recv``/``send`` a socket does.
"""

from __future__ import annotations

import ssl

_PREBUILT: dict = {}            # id(server) -> ssl.SSLContext
_SESSIONS: dict = {}            # (id(server), ip, port) -> ssl.SSLSession (session reuse)
MAX_SESSIONS = 1024

_VERSIONS = (("TLSv1", ssl.TLSVersion.TLSv1), ("TLSv1.1", ssl.TLSVersion.TLSv1_1),
             ("TLSv1.2", ssl.TLSVersion.TLSv1_2), ("TLSv1.3", ssl.TLSVersion.TLSv1_3))
_NO_VERSION = {"TLSv1": ssl.OP_NO_TLSv1, "TLSv1.1": ssl.OP_NO_TLSv1_1,
               "TLSv1.2": ssl.OP_NO_TLSv1_2, "TLSv1.3": ssl.OP_NO_TLSv1_3}

# X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_NAME_MISMATCH = (62, 64)


def build_context(t) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for a server's BackendTls settings."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if t.verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
        ctx.load_verify_locations(cafile=t.trusted_certificate)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    enabled = [v for name, v in _VERSIONS if name in t.protocols]
    if enabled:
        ctx.minimum_version = enabled[0]
        ctx.maximum_version = enabled[-1]
        if ctx.minimum_version <= ssl.TLSVersion.TLSv1_1:
            ctx.set_ciphers(t.ciphers + ":@SECLEVEL=0")
        else:
            ctx.set_ciphers(t.ciphers)
        for name, v in _VERSIONS:
            if enabled[0] < v < enabled[-1] and name not in t.protocols:
                ctx.options |= _NO_VERSION[name]
    else:
        ctx.set_ciphers(t.ciphers)
    if t.certificate:
        passwords = list(t.passwords) or [None]
        last = None
        for p in passwords:
            try:
                ctx.load_cert_chain(t.certificate, t.certificate_key, password=p)
                last = None
                break
            except ssl.SSLError as e:
                last = e
        if last is not None:
            raise last
    # no ALPN, no post-handshake authentication: a mail backend needs neither
    return ctx


def prebuild(config) -> None:
    """Build every server's backend context now (in the master, before privileges
    drop: a client key is often readable by root only)."""
    _PREBUILT.clear()
    _SESSIONS.clear()
    for srv in config.servers:
        if srv.proxy_ssl is not None:
            _PREBUILT[id(srv)] = build_context(srv.proxy_ssl)


def context_for(server) -> ssl.SSLContext:
    ctx = _PREBUILT.get(id(server))
    if ctx is None:
        ctx = _PREBUILT[id(server)] = build_context(server.proxy_ssl)
    return ctx


def handshake_error(e: ssl.SSLError, name: str, op: str = "SSL_do_handshake()") -> str:
    """The log message of a failed handshake (or of a TLS read failing during the
    login: ``op`` "SSL_read()"), in nginx's words for its upstreams."""
    if isinstance(e, ssl.SSLCertVerificationError):
        if e.verify_code in _NAME_MISMATCH:
            return f'upstream SSL certificate does not match "{name}"'
        return f"upstream SSL certificate verify error: ({e.verify_code}:{e.verify_message})"
    if isinstance(e, ssl.SSLEOFError) and op == "SSL_do_handshake()":
        return "peer closed connection in SSL handshake"
    reason = (e.reason or "").lower().replace("_", " ") or str(e)
    return f"{op} failed (SSL: {reason})"


class TlsSocket:
    """TLS over a connected non-blocking socket, for the relay.

    ``recv(n)`` and ``send(data)`` behave as the socket's: ``recv`` raises
    BlockingIOError when nothing can be read, returns b"" at the end, and returns
    fewer than ``n`` bytes only once the socket is drained (the relay relies on this
    with edge-triggered events); ``send`` takes what it can and raises
    BlockingIOError while encrypted bytes still wait for the socket
    (``flush()`` on the next output edge)."""

    __slots__ = ("sock", "obj", "incoming", "outgoing", "out", "eof", "key", "name")

    def __init__(self, sock, server, key, name: str):
        t = server.proxy_ssl
        ctx = context_for(server)
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        sni = name if (t.verify or t.server_name) and name else None
        session = _SESSIONS.get(key) if t.session_reuse else None
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=sni,
                                session=session)
        self.out = b""                  # encrypted bytes the socket did not take yet
        self.eof = False
        self.key = key if t.session_reuse else None
        self.name = name

    # --- handshake -------------------------------------------------------------------

    def handshake(self) -> bool:
        """Go on with the handshake: True once done; False to wait for input (or for
        room to send); ssl.SSLError or OSError when it failed."""
        while True:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                self.flush()
                if not self._pull():
                    return False
                continue
            except ssl.SSLError:
                self.flush()            # the alert, if any
                raise
            self.flush()
            if self.key is not None:
                self._remember()
            return True

    def _remember(self) -> None:
        try:
            session = self.obj.session
        except ValueError:
            return
        if session is None:
            return
        if len(_SESSIONS) >= MAX_SESSIONS:
            _SESSIONS.pop(next(iter(_SESSIONS)))
        _SESSIONS[self.key] = session

    def version(self) -> str:
        return self.obj.version() or ""

    def cipher(self) -> str:
        c = self.obj.cipher()
        return c[0] if c else ""

    def reused(self) -> bool:
        return self.obj.session_reused

    # --- I/O -------------------------------------------------------------------------

    def _pull(self) -> bool:
        """Move what the socket has into the TLS input; False when nothing came."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return False
        if not data:
            self.eof = True
            self.incoming.write_eof()
        else:
            self.incoming.write(data)
        return True

    def recv(self, n: int) -> bytes:
        chunks = []
        got = 0
        while got < n:
            try:
                data = self.obj.read(n - got)
            except ssl.SSLWantReadError:
                if self._pull():
                    continue
                if self.eof:
                    break
                if got:
                    break
                self.flush()
                raise BlockingIOError
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            if not data:
                break
            chunks.append(data)
            got += len(data)
        if self.outgoing.pending:
            self.flush()                # key updates and the like
        return b"".join(chunks)

    def send(self, data) -> int:
        if self.out and not self.flush():
            raise BlockingIOError
        n = self.obj.write(data)
        self.flush()
        return n

    def flush(self) -> bool:
        """Send encrypted bytes waiting for the socket; True when none is left."""
        if self.outgoing.pending:
            self.out += self.outgoing.read()
        while self.out:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return False
            self.out = self.out[n:]
        return True

    def pending_out(self) -> bool:
        return bool(self.out)

    def close_notify(self) -> None:
        """Keep the session for the next connection (a TLS 1.3 ticket comes after the
        handshake), then send close_notify if the socket takes it now."""
        if self.key is not None:
            self._remember()
        try:
            self.obj.unwrap()
        except (ssl.SSLError, ValueError, OSError):
            pass
        try:
            self.flush()
        except OSError:
            pass
