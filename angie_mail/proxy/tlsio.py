"""Server-side TLS over an asyncio transport, with ``ssl.SSLObject`` on memory BIOs.

    raw TCP transport <-> TlsEngine (asyncio.Protocol) <-> TlsTransport <-> app protocol

The engine feeds received records into the SSL object, hands decrypted bytes to the
application protocol, and writes what the SSL object produces.  Back-pressure is passed
through in both directions.  The context is a tls.ServerTls: an ``ssl.SSLContext``
configured through ``ossl`` the way nginx configures its SSL_CTX (see tls.py); what
``ssl`` cannot report (the verification result of a client certificate that did not
abort the handshake, the SNI name) is read from the same SSL object through ``ossl``.
"""

from __future__ import annotations

import asyncio
import ssl

from . import ossl

SLICE = 16 * 1024            # one TLS record of plaintext


class TlsTransport(asyncio.Transport):
    """What the application protocol writes to and closes."""

    def __init__(self, engine):
        super().__init__()
        self._engine = engine

    def write(self, data):
        self._engine.app_write(data)

    def writelines(self, lines):
        self._engine.app_write(b"".join(lines))

    def close(self):
        self._engine.app_close()

    def abort(self):
        self._engine.abort()

    def is_closing(self):
        return self._engine.closing

    def pause_reading(self):
        self._engine.reading = False
        if self._engine.raw is not None:
            self._engine.raw.pause_reading()

    def resume_reading(self):
        e = self._engine
        if not e.reading:
            e.reading = True
            if e.raw is not None:
                e.raw.resume_reading()
            e.loop.call_soon(e.drain_plaintext)

    def is_reading(self):
        return self._engine.reading

    def set_write_buffer_limits(self, high=None, low=None):
        if self._engine.raw is not None:
            self._engine.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self):
        return self._engine.raw.get_write_buffer_size() if self._engine.raw else 0

    def get_write_buffer_limits(self):
        raw = self._engine.raw
        return raw.get_write_buffer_limits() if raw else (16 * 1024, 64 * 1024)

    def get_extra_info(self, name, default=None):
        if name == "ssl_object":
            return self._engine.conn
        if name == "tls_engine":
            return self._engine
        if self._engine.raw is None:
            return default
        return self._engine.raw.get_extra_info(name, default)

    def set_protocol(self, protocol):
        self._engine.app = protocol

    def get_protocol(self):
        return self._engine.app


def handshake_failure(e) -> str:
    """nginx's log line for a client handshake that failed (ngx_ssl_handshake): the
    peer closing, a socket error, or OpenSSL's refusal with its error code."""
    if e is None or isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return "peer closed connection in SSL handshake"
    if isinstance(e, ssl.SSLError):
        return "SSL_do_handshake() failed" + ossl.error_text(e)
    code = getattr(e, "errno", None)
    if code:                    # (nginx: an empty error queue is the peer's doing)
        from ..errors import errno_suffix
        return "peer closed connection in SSL handshake" + errno_suffix(code)
    return "SSL_do_handshake() failed"


class TlsEngine(asyncio.Protocol):
    """The TLS state of one connection; ``handshake`` resolves to True or False."""

    def __init__(self, loop, ctx):
        self.loop = loop
        self.ctx = ctx
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.conn = ctx.wrap(self.incoming, self.outgoing)
        self.raw = None
        self.app = None
        self.transport = TlsTransport(self)
        self.handshake = loop.create_future()
        self.handshaked = False
        self.closing = False
        self.reading = True
        self.pending_plain = []         # decrypted before the app protocol was attached
        self.eof_pending = False        # the client's EOF came before the app protocol
        self.lost = None                # (exc,): the connection ended before it
        self.failure = ""               # why the handshake failed, in nginx's words
        self._ssl = None                # its SSL*, once asked for (ossl)

    # --- what ssl does not report -----------------------------------------------------

    def _ptr(self) -> int:
        p = self._ssl
        if p is None:
            p = self._ssl = ossl.ssl_ptr(self.conn, self.ctx.ptr)
        return p

    def verify_result(self) -> int:
        """OpenSSL's verification result of the client certificate (0: ok or none)."""
        return ossl.SSL_get_verify_result(self._ptr())

    def peer_certificate(self):
        """The client certificate (DER) or None."""
        try:
            return self.conn.getpeercert(binary_form=True)
        except ValueError:
            return None

    def server_name(self) -> bytes:
        return ossl.SSL_get_servername(self._ptr(), 0) or b""

    # --- raw side --------------------------------------------------------------------------

    def connection_made(self, transport):
        self.raw = transport

    def attach(self, raw) -> None:
        """Take over an existing raw transport (STLS)."""
        self.raw = raw
        raw.set_protocol(self)

    def data_received(self, data):
        # in slices: a memory BIO keeps the capacity of the most it ever held, so one
        # large read would stay allocated for the life of the connection
        if len(data) > SLICE:
            view = memoryview(data)
            while len(view) > SLICE and (self.reading or not self.handshaked):
                self._received(view[:SLICE])
                view = view[SLICE:]
                if self.closing:
                    return
            data = view
        self._received(data)

    def _received(self, data):
        self.incoming.write(data)
        if not self.handshaked:
            self._do_handshake()
            if not self.handshaked:
                return
        self.drain_plaintext()

    def _do_handshake(self):
        try:
            self.conn.do_handshake()
        except ssl.SSLWantReadError:
            self.flush()
            return
        except Exception as e:     # ssl.SSLError: a bad record, the ALPN refusal, ...
            self.failure = handshake_failure(e)
            self.flush()
            self._finish_handshake(False)
            return
        self.handshaked = True
        self.flush()
        self._finish_handshake(True)

    def _finish_handshake(self, ok: bool):
        if not self.handshake.done():
            self.handshake.set_result(ok)
        if not ok:
            self.abort()

    def drain_plaintext(self):
        if not self.handshaked or self.raw is None:
            return
        read = self.conn.read
        while self.reading:
            try:
                chunk = read(SLICE)         # SSL_read returns one record at most
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.flush()
                self._eof()
                return
            except (ssl.SSLError, ValueError):
                self.abort()
                return
            if not chunk:                   # the client's close_notify
                self.flush()
                self._eof()
                return
            if self.app is None:
                self.pending_plain.append(chunk)
            else:
                self.app.data_received(chunk)
        self.flush()

    def eof_received(self):
        self._eof()
        return False

    def _eof(self):
        if self.app is None:
            self.eof_pending = True         # for the app protocol, once attached
            return
        keep = self.app.eof_received()
        if not keep:
            self.app_close()

    def connection_lost(self, exc):
        self.closing = True
        if not self.handshake.done():
            if not self.failure:
                self.failure = handshake_failure(exc)
            self.handshake.set_result(False)
        if self.app is not None:
            self._app_lost(exc)
        else:
            # gone between the handshake and the app protocol (a client that closes
            # right after its Finished): the app still hears of it when attached
            self.lost = (exc,)

    def _app_lost(self, exc):
        """Tell the app protocol, once; then let go of it and of the transport given to
        it (which refers back to this engine: no cycle is left to the collector)."""
        app, self.app = self.app, None
        app.connection_lost(exc)
        self.transport = None

    def pause_writing(self):
        if self.app is not None:
            self.app.pause_writing()

    def resume_writing(self):
        if self.app is not None:
            self.app.resume_writing()

    # --- app side ------------------------------------------------------------------------------

    def start_app(self, app, call_connection_made: bool = True):
        """Attach the application protocol once the handshake is done."""
        self.app = app
        if call_connection_made:
            app.connection_made(self.transport)
        pending, self.pending_plain = self.pending_plain, []
        for chunk in pending:
            if self.app is None:
                break
            self.app.data_received(chunk)
        if self.eof_pending and self.app is not None:
            self.eof_pending = False
            self._eof()
        if self.lost is not None:
            exc, = self.lost
            self.lost = None
            if self.app is not None:
                self._app_lost(exc)
            return
        if self.raw is not None and self.reading:
            self.raw.resume_reading()
            self.loop.call_soon(self.drain_plaintext)

    def app_write(self, data):
        if self.closing or self.raw is None or not data:
            return
        # record by record, each to the socket as nginx's SSL_write does: the memory
        # BIO keeps the capacity of the most it ever held, and the transport keeps the
        # whole of a buffer it could not send at once
        view = memoryview(data)
        write = self.conn.write
        while view:
            try:
                write(view[:SLICE])
            except (ssl.SSLError, ValueError):
                self.abort()
                return
            view = view[SLICE:]
            self.flush()

    def flush(self):
        out = self.outgoing.read()
        if out and self.raw is not None and not self.raw.is_closing():
            self.raw.write(out)

    def app_close(self):
        if self.closing:
            return
        self.closing = True
        if self.handshaked:
            try:
                self.conn.unwrap()
            except (ssl.SSLError, ValueError):
                pass
            self.flush()
        if self.raw is not None:
            self.raw.close()

    def abort(self):
        self.closing = True
        if self.raw is not None:
            self.raw.abort()
