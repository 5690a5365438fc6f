"""The backend side of a session: connect, log in, then the transparent relay.

The backend connection is a raw non-blocking socket registered once with the
edge-triggered poller (poller.py; no transport or coroutine per session).  During
login its bytes go to the protocol's sans-IO login machine (angie_mail.mail.protocol).  After it,
every byte is copied as it comes, in both directions, with no parsing: the client's
bytes arrive in ClientConnection.data_received and are sent here; the backend's are
read here and written to the client's transport (sockio.SocketTransport).
Flow control is back-pressure: when one side cannot take more, the other side stops
being read, so memory stays bounded and nothing is dropped.  The relay ends when either
side closes (after what it sent was delivered); a half-close is not propagated, as in
Angie.

With ``proxy_ssl`` (angie-mail) the socket's ``recv``/``send`` are those of a
``backend_tls.TlsSocket`` over it (``self.io``): TLS right after the connect (and the
PROXY header) with ``on``, or when the login machine answers SECURE with ``starttls``.

Zero copy: once a session has relayed 256 KB to the client (a download, not replies),
and both sides are plain TCP, the backend's bytes go to the
client with splice(2) through a pipe the worker shares between its sessions, without
passing through Python.  What the client cannot take at once is read out of the pipe
and written to its transport as before (the pipe is always empty between calls, so
one pipe serves every session; order is kept: nothing is spliced while the transport
holds bytes).  Uploads (SMTP DATA, IMAP APPEND) likewise, client -> backend, after 256
KB from the client: the client's transport hands its input edges to
``splice_from_client``.
"""

from __future__ import annotations

import errno
import os
import ssl

from ..mail.protocol import AGAIN, LOGGED_IN, SECURE, SEND
from .netio import connect_error, first_send, start_connect
from .poller import END_EVENTS, IN_EVENTS, OUT_EVENTS

# reads from the backend take no more than the room left under the client transport's
# high-water mark (64 KB), so a client that does not read pins at most that much of the
# proxy's memory (proxy_buffer bounds only the login replies: the relay's chunking is
# invisible on the wire)
# buffered client->backend bytes above which the client stops being read
WRITE_HIGH = 1 << 20
WRITE_LOW = 1 << 18
FLUSH_TIMEOUT = 60.0

REFUSED_EOF = -1      # the backend closed (or failed) before finishing the login

_SPLICE = hasattr(os, "splice")
SPLICE_AFTER = 256 * 1024     # bytes relayed to the client before a session splices
_SPLICE_FLAGS = getattr(os, "SPLICE_F_NONBLOCK", 0) | getattr(os, "SPLICE_F_MOVE", 0)
_pipe = None          # (read end, write end): the worker's one pipe for splice
# what one splice from the client may move: the pipe's size.  An upload moves up to
# UPLOAD_PIPE per pair of splices (17 % less CPU per GB than 64 KB on SMTP DATA); what
# the backend cannot take at once is queued as the copying path queues it, and splicing
# only resumes once that queue is empty, so a session still holds at most WRITE_HIGH plus
# one read.  Downloads stay bounded by the client transport's mark (a client that does
# not read must not pin more).
UPLOAD_PIPE = 1 << 20
_upload_chunk = 65536


def _the_pipe():
    global _pipe, _upload_chunk
    if _pipe is None:
        _pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            import fcntl
            _upload_chunk = fcntl.fcntl(_pipe[1], fcntl.F_SETPIPE_SZ, UPLOAD_PIPE)
        except (ImportError, AttributeError, OSError):
            pass        # over the user's pipe quota, or not Linux: the default 64 KB
    return _pipe


def _drain(r: int, n: int) -> bytes:
    """The ``n`` bytes left in the pipe."""
    parts = []
    while n > 0:
        chunk = os.read(r, n)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


class Backend:
    """One connection to a backend.  The client is told through
    ``backend_login_done(result, data)``, ``backend_failed(error)``, ``end_relay()``."""

    __slots__ = ("client", "loop", "poller", "login", "header", "sock", "fd", "relaying",
                 "closed", "reading", "rready", "ended", "connecting", "out", "out_size",
                 "flushing", "received", "io", "tls", "handshaking", "tls_on", "tls_key",
                 "tls_name", "zero_copy", "spliced_in")

    def __init__(self, client, login_machine, header: bytes | None):
        self.client = client
        self.loop = client.rt.loop
        self.poller = client.rt.poller
        self.login = login_machine
        self.header = header
        self.sock = None
        self.fd = -1
        self.relaying = False
        self.closed = False
        self.reading = False
        self.rready = False           # an input edge came and was not drained yet
        self.ended = False            # the backend closed or failed: read to the end
        self.connecting = False       # waiting for the connect to finish (PROXY header)
        self.out = []                 # client bytes not yet taken by the backend socket
        self.out_size = 0
        self.flushing = False         # closing once ``out`` is sent
        self.received = False         # a byte came from the backend
        self.io = None                # the socket, or the TlsSocket over it
        self.tls = None               # backend_tls.TlsSocket once TLS started
        self.handshaking = False
        self.tls_on = False           # proxy_ssl on: TLS right after the connect
        self.zero_copy = False        # the relay splices backend -> client
        self.spliced_in = False       # ... and client -> backend
        self.tls_key = None
        self.tls_name = ""

    # --- connect and login ------------------------------------------------------------

    def connect(self, family: int, ip: str, port: int) -> None:
        sock, error = start_connect(family, (ip, port), nodelay=True)
        self.sock = self.io = sock
        if sock is not None:
            self.fd = sock.fileno()
            self.client.rt.backends += 1
        if error is not None:
            return self.client.backend_failed(error)
        t = self.client.server.proxy_ssl
        if t is not None:
            self.tls_on = t.mode == "on"
            self.tls_key = (id(self.client.server), ip, port)
            self.tls_name = t.name or ip
        if self.header is None and not self.tls_on:
            # nothing to send first: readability means the greeting (or the error of a
            # failed connect, which recv reports)
            self._connected()
        else:
            self.connecting = True
        self.poller.register(self.fd, self._on_events)

    def _on_events(self, events):
        if events & IN_EVENTS:
            self.rready = True
            if events & END_EVENTS:
                self.ended = True
        if self.connecting:
            if not events & OUT_EVENTS:
                return
            self._on_connect()
        if self.handshaking:
            self._handshake()
            return
        if self.rready and self.reading:
            self._on_data()
        if events & OUT_EVENTS and (self.out or self.tls is not None):
            self._on_writable()

    def _on_connect(self):
        self.connecting = False
        error = connect_error(self.sock)
        if error is not None:
            return self.client.backend_failed(error)
        self._connected()

    def _connected(self):
        if self.header is not None:
            # one PROXY protocol v1 header, in one send, before anything is read
            try:
                n = first_send(self.sock, self.header)
            except OSError:
                n = 0
            if n is None:
                self.connecting = True          # not connected after all: next edge
                return
            if n != len(self.header):
                return self.client.backend_failed(
                    OSError(0, "could not send PROXY protocol header at once"))
        if self.tls_on:
            return self._start_tls()
        self.reading = True

    # --- TLS to the backend ---------------------------------------------------------------

    def _start_tls(self):
        from .backend_tls import TlsSocket
        client = self.client
        client.action = "SSL handshaking to upstream"
        try:
            self.tls = self.io = TlsSocket(self.sock, client.server, self.tls_key,
                                           self.tls_name)
        except (ValueError, OSError) as e:          # e.g. a name ssl cannot send
            return client.backend_tls_failed(str(e))
        self.handshaking = True
        self.reading = False
        self._handshake()

    def _handshake(self):
        try:
            done = self.tls.handshake()
        except ssl.SSLError as e:
            self.handshaking = False
            from .backend_tls import handshake_error
            return self.client.backend_tls_failed(handshake_error(e, self.tls_name))
        except OSError as e:
            self.handshaking = False
            return self.client.backend_failed(e)
        if not done:
            return
        self.handshaking = False
        self.reading = True
        # what came with the end of the handshake may already be decrypted and
        # waiting: read now rather than wait for an edge that may not come
        self.rready = True
        if not self.tls_on:
            # starttls: the login goes on over TLS from the greeting read before
            self._login_step(*self.login.secured())
            if self.reading and not self.closed:
                self.poller.call_soon(self._on_data)
            return
        self.poller.call_soon(self._on_data)

    def _on_data(self):
        # edge-triggered: read until drained, unless reading stops or the session ends
        while self.reading and self.rready and not self.closed:
            if self.relaying:
                self._on_relay_data()
                if self.rready and self.reading and not self.closed:
                    # a long burst: let the other sessions run before going on
                    self.poller.call_soon(self._on_data)
                return
            self._on_login_data()

    def _on_login_data(self):
        # the log context of every read during login, as Angie's read_response sets it
        self.client.action = "reading response from upstream"
        try:
            data = self.io.recv(65536)
        except (BlockingIOError, InterruptedError):
            self.rready = False
            return
        except OSError as e:
            self.rready = False
            if self.tls is not None and isinstance(e, ssl.SSLError):
                # e.g. the backend's alert after the handshake: no client certificate
                from .backend_tls import handshake_error
                self.pause_reading()
                return self.client.backend_tls_failed(
                    handshake_error(e, self.tls_name, "SSL_read()"), self.client.action)
            if not self.received and e.errno != errno.ECONNRESET:
                self.pause_reading()            # the connect itself failed
                return self.client.backend_failed(e)
            self.client.io_failed(e, "recv", True)
            data = b""
        if len(data) < 65536 and not self.ended:
            self.rready = False          # drained: more input brings a new edge
        if not data:
            self.pause_reading()
            return self.client.backend_login_done(REFUSED_EOF, b"")
        self.received = True
        self._login_step(*self.login.feed(data))

    def _login_step(self, result, out):
        while result == SEND:
            try:
                n = self.io.send(out)
            except OSError:
                n = 0
            if n != len(out):           # Angie treats an incomplete send as an error
                self.pause_reading()
                return self.client.backend_login_done(REFUSED_EOF, b"")
            self.client.action = self.login.action     # until the reply comes
            if not self.login.buf:
                return
            # bytes beyond proxy_buffer came with the last reply: Angie reads them
            # (they wait in its socket) as the next step's reply at once
            self.client.action = "reading response from upstream"
            result, out = self.login.feed(b"")
        if result == AGAIN:
            return
        if result == SECURE:
            return self._start_tls()
        if result != LOGGED_IN:
            self.pause_reading()        # refused or too long: the session ends
        else:
            self.relaying = True        # keep the reader: the relay starts right away
        self.client.backend_login_done(result, out)

    # --- relay ---------------------------------------------------------------------------

    def start_relay(self) -> None:
        self.relaying = True
        self.resume_reading()

    def _on_relay_data(self):
        if self.zero_copy:
            return self._splice_relay()
        client = self.client
        transport = client.transport
        write = transport.write
        buffered = transport.get_write_buffer_size
        # one byte over the transport's high-water mark makes it pause_writing (and
        # later resume_writing): never more is read than fits under the mark + 1
        mark = transport.get_write_buffer_limits()[1] + 1
        recv = self.io.recv
        for _ in range(16):
            size = mark - buffered()
            if size <= 0:
                # the client is behind: its transport paused us, and says when it has
                # drained (resume_writing); the backend's edge is remembered
                self.reading = False
                return
            try:
                data = recv(size)
            except (BlockingIOError, InterruptedError):
                self.rready = False
                return
            except OSError as e:
                client.io_failed(e, "recv", True, "proxying and reading from upstream")
                data = b""
            if not data:
                self.rready = False
                self.client.end_relay()
                return
            client.bytes_out += len(data)
            if client.bytes_out > SPLICE_AFTER and self._can_splice():
                # a download: the rest goes by splice (after what the transport
                # still holds)
                self.zero_copy = True
                os.set_blocking(transport._fd, False)   # splice cannot take MSG_DONTWAIT
            if len(data) < size and not self.ended:
                self.rready = False      # drained: more input brings a new edge
                write(data)
                return
            write(data)
            if not self.reading:
                return
            if self.zero_copy:
                return self._splice_relay()

    def can_splice_in(self) -> bool:
        return not self.spliced_in and not self.closed and self._can_splice()

    def splice_in(self) -> None:
        """Client -> backend goes by splice from now on (splice_from_client)."""
        self.spliced_in = True
        transport = self.client.transport
        os.set_blocking(transport._fd, False)       # splice cannot take MSG_DONTWAIT
        transport.set_splicer(self.splice_from_client)

    def _can_splice(self) -> bool:
        from .sockio import SocketTransport
        c = self.client
        return _SPLICE and self.tls is None and not c.tls and \
            type(c.transport) is SocketTransport

    def _splice_relay(self):
        """The relay backend -> client by splice(2), for plain TCP on both sides."""
        client = self.client
        transport = client.transport
        mark = transport.get_write_buffer_limits()[1] + 1
        r, w = _the_pipe()
        bfd, cfd = self.fd, transport._fd
        splice = os.splice
        for _ in range(16):
            pending = transport.get_write_buffer_size()
            size = mark - pending
            if size <= 0:
                self.reading = False            # as above: resume_writing resumes us
                return
            if transport.is_closing():
                self.reading = False
                return
            if pending:
                # the transport holds bytes: they go first, so this read goes through
                # it too
                try:
                    data = self.io.recv(size)
                except (BlockingIOError, InterruptedError):
                    self.rready = False
                    return
                except OSError as e:
                    client.io_failed(e, "recv", True, "proxying and reading from upstream")
                    data = b""
                if not data:
                    self.rready = False
                    client.end_relay()
                    return
                client.bytes_out += len(data)
                transport.write(data)
                if len(data) < size and not self.ended:
                    self.rready = False
                    return
                if not self.reading:
                    return
                continue
            try:
                n = splice(bfd, w, size, flags=_SPLICE_FLAGS)
            except (BlockingIOError, InterruptedError):
                self.rready = False
                return
            except OSError as e:
                client.io_failed(e, "recv", True, "proxying and reading from upstream")
                n = 0
            if not n:
                self.rready = False
                client.end_relay()
                return
            # the pipe is emptied before anything else runs: it is shared by every
            # session of the worker
            try:
                sent = splice(r, cfd, n, flags=_SPLICE_FLAGS)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0            # the transport's own send reports the error
            rest = _drain(r, n - sent) if sent < n else b""
            client.bytes_out += n
            if rest:
                transport.write(rest)
            # a short splice does not mean the socket is drained (the pipe holds 16
            # segments, not 64 KB): only EAGAIN does, on the next turn
            if not self.reading:
                return

    def splice_from_client(self) -> None:
        """The client's input edge once it splices (an upload: SMTP DATA, IMAP APPEND):
        client -> pipe -> backend with splice(2).  What the backend cannot take goes to
        ``out`` as the copying path keeps it; while ``out`` holds bytes, reads copy
        (order is kept).  Called by the client's transport (sockio)."""
        client = self.client
        transport = client.transport
        r, w = _the_pipe()
        cfd = transport._fd
        splice = os.splice
        for _ in range(16):
            if self.closed or not transport.is_reading():
                return
            if self.out:
                try:
                    data = transport._sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    return transport.drained()
                except OSError as e:
                    return transport._fatal(e, "recv")
                if not data:
                    return transport.peer_closed()
                client.relayed_in(len(data))
                self.write(data)
                continue
            try:
                n = splice(cfd, w, _upload_chunk, flags=_SPLICE_FLAGS)
            except (BlockingIOError, InterruptedError):
                return transport.drained()
            except OSError as e:
                return transport._fatal(e, "recv")
            if not n:
                return transport.peer_closed()
            try:
                sent = splice(r, self.fd, n, flags=_SPLICE_FLAGS)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0            # write() below meets the error and ends the relay
            rest = _drain(r, n - sent) if sent < n else b""    # (the pipe is shared)
            client.relayed_in(n)
            if rest:
                self.write(rest)
        # a long burst: let the other sessions run before going on
        transport._poller.call_soon(transport._resume_read)

    def write(self, data: bytes) -> None:
        """Client bytes for the backend (relay, and what was pipelined at login)."""
        if self.closed:
            return
        if self.out:
            self.out.append(data)
            self.out_size += len(data)
        else:
            try:
                n = self.io.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as e:
                self.client.io_failed(e, "send", True, "proxying and sending to upstream")
                self.client.end_relay(False)
                return
            if n == len(data):
                return
            self.out.append(data[n:])
            self.out_size += len(data) - n
            # the output edge comes when the socket has room again
        if self.out_size > WRITE_HIGH:
            self.client.pause_reading_for_backend()

    def _on_writable(self):
        if self.tls is not None:
            try:
                if not self.tls.flush():
                    return
            except OSError:
                self.out.clear()
                self.out_size = 0
            if not self.out and not self.flushing:
                return
        while self.out:
            data = self.out[0]
            try:
                n = self.io.send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if not self.flushing:
                    self.client.io_failed(e, "send", True, "proxying and sending to upstream")
                self.out.clear()
                self.out_size = 0
                break
            self.out_size -= n
            if n < len(data):
                self.out[0] = data[n:]
                return
            self.out.pop(0)
        if self.flushing:
            self._close_now()
            return
        if self.out_size < WRITE_LOW:
            self.client.resume_reading_for_backend()

    def pause_reading(self) -> None:
        # what arrives meanwhile stays in the socket (and its edge is remembered)
        self.reading = False

    def resume_reading(self) -> None:
        if not self.reading and not self.closed:
            self.reading = True
            if self.rready and not self.connecting:
                self.poller.call_soon(self._on_data)

    def close(self) -> None:
        """Close, after sending what the client already sent (nothing relayed is lost)."""
        if self.closed or self.flushing:
            return
        self.pause_reading()
        if self.out or self.tls is not None and self.tls.pending_out():
            self.flushing = True
            # a backend that never takes the rest must not keep the socket forever
            self.loop.call_later(FLUSH_TIMEOUT, self._close_now)
            return
        self._close_now()

    def abort(self) -> None:
        """The backend's handler failed (the poller calls this): the session cannot go
        on, so both sides are closed now rather than left to proxy_timeout."""
        self._close_now()
        self.client.abort()

    def _close_now(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.sock is not None:
            if self.fd >= 0:
                self.poller.unregister(self.fd)
                self.client.rt.backends -= 1
            if self.tls is not None and not self.handshaking:
                self.tls.close_notify()
            self.sock.close()
            self.sock = None
