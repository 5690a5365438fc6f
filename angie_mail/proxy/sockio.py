"""Client sockets: the accept loop of a listening socket and the transport of an
accepted connection.

The event loop's own server and transports would do, but each accepted connection then
costs system calls that only the loop needs (getpeername, getsockname, TCP_NODELAY,
and libuv's epoll_ctl calls whenever reading starts or stops) and a transport registry
entry.  Here the listening socket is read by one loop reader, the peer address comes
with accept(), and the connection is a plain socket registered once with the
edge-triggered poller (poller.py).  Every send/recv passes MSG_DONTWAIT, so the
accepted socket needs no fcntl either.

``SocketTransport`` has asyncio's transport semantics for what the protocols here use:
``connection_made`` before reading starts, ``eof_received`` (closing unless it returns
true), ``connection_lost`` once (called soon after close/abort, as asyncio does),
``pause_writing``/``resume_writing`` at the write-buffer high/low marks, and ``close``
that flushes what was written first (giving up after a minute without progress).  Pausing reading only
stops reading: the kernel keeps what arrives, as nginx does when it blocks reading.
"""

from __future__ import annotations

import _socket
import asyncio
import collections
import errno
import socket

from .poller import END_EVENTS, IN_EVENTS, OUT_EVENTS

READ_CHUNK = 64 * 1024
WRITE_HIGH = 64 * 1024          # asyncio's default write-buffer limits
WRITE_LOW = 16 * 1024
ACCEPT_BATCH = 64
CLOSE_LINGER = 60.0             # close(): the longest wait for pending output to move
READ_BURST = 16                 # reads of READ_CHUNK per input edge before yielding
ACCEPT_DELAY = 0.5              # out of descriptors: accept again after this
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_AGAIN = (BlockingIOError, InterruptedError)


class _Gone(asyncio.Protocol):
    """The protocol of a transport whose protocol was told connection_lost."""

    def eof_received(self):
        return False


_GONE = _Gone()


class SocketTransport(asyncio.Transport):
    __slots__ = ("_loop", "_poller", "_sock", "_fd", "_peer", "_protocol", "_out",
                 "_out_size", "_reading", "_rready", "_ended", "_closing", "_closed", "_paused",
                 "_high", "_low", "_sockname", "_linger",
                 "_progress", "_splicer")

    def __init__(self, rt, sock, peer, protocol):
        self._loop = rt.loop
        self._poller = rt.poller
        self._sock = sock
        self._fd = sock.fileno()
        self._peer = peer
        self._protocol = protocol
        self._out = None                # deque of pending chunks, while the socket is full
        self._out_size = 0
        self._reading = True            # the protocol wants data
        self._rready = False            # an input edge came and was not drained yet
        self._ended = False             # the peer closed or failed: read to the end
        self._closing = False
        self._closed = False
        self._paused = False            # protocol.pause_writing() was called
        self._high = WRITE_HIGH
        self._low = WRITE_LOW
        self._sockname = None
        self._linger = None             # closing with output pending: the deadline
        self._progress = 0.0            # when pending output last moved, while closing
        self._extra = None
        self._splicer = None            # reads the socket itself (relay.py's splice)

    def start(self) -> None:
        self._protocol.connection_made(self)
        if not self._closed:
            # input already waiting is reported at once by the registration
            self._poller.register(self._fd, self._on_events)

    # --- events --------------------------------------------------------------------------

    def _on_events(self, events):
        if events & IN_EVENTS:
            self._rready = True
            if events & END_EVENTS:
                self._ended = True
            if self._reading and not self._closing:
                self._read()
        if events & OUT_EVENTS and self._out:
            self._flush()

    def _read(self):
        if self._splicer is not None:
            return self._splicer()
        recv = self._sock.recv
        for _ in range(READ_BURST):
            try:
                data = recv(READ_CHUNK, _DONTWAIT)
            except _AGAIN:
                self._rready = False
                return
            except OSError as e:
                self._rready = False
                self._fatal(e, "recv")
                return
            if not data:
                self._rready = False
                self._reading = False
                if not self._protocol.eof_received():
                    self.close()
                return
            if len(data) < READ_CHUNK and not self._ended:
                # drained: what arrives later brings a new edge
                self._rready = False
            self._protocol.data_received(data)
            if not (self._rready and self._reading) or self._closing:
                return
        # a long burst: let the other sessions run before going on
        self._poller.call_soon(self._resume_read)

    def set_splicer(self, splicer) -> None:
        """From now on an input edge calls ``splicer()`` instead of reading: it moves
        the bytes itself (zero copy) and reports through the methods below."""
        self._splicer = splicer

    def drained(self) -> None:
        """The splicer met EAGAIN: the next input brings a new edge."""
        self._rready = False

    def peer_closed(self) -> None:
        """The splicer met the end of the input: as a read of zero bytes."""
        self._rready = False
        self._reading = False
        if not self._protocol.eof_received():
            self.close()

    def pause_reading(self):
        self._reading = False

    def resume_reading(self):
        if not self._reading and not self._closing:
            self._reading = True
            if self._rready:
                self._poller.call_soon(self._resume_read)

    def _resume_read(self):
        if self._reading and self._rready and not self._closing:
            self._read()

    def is_reading(self):
        return self._reading and not self._closing

    # --- writing -------------------------------------------------------------------------

    def write(self, data):
        if self._closing or not data:
            return
        if self._out:
            self._out.append(bytes(data))
            self._out_size += len(data)
        else:
            try:
                n = self._sock.send(data, _DONTWAIT)
            except _AGAIN:
                n = 0
            except OSError as e:
                self._fatal(e)
                return
            if n == len(data):
                return
            rest = memoryview(data)[n:]
            if self._out is None:
                self._out = collections.deque()
            self._out.append(rest if isinstance(data, bytes) else bytes(rest))
            self._out_size += len(rest)
            # the output edge comes when the socket has room again
        if not self._paused and self._out_size > self._high:
            self._paused = True
            self._protocol.pause_writing()

    def writelines(self, lines):
        self.write(b"".join(lines))

    def _flush(self):
        out = self._out
        send = self._sock.send
        while out:
            chunk = out[0]
            try:
                n = send(chunk, _DONTWAIT)
            except _AGAIN:
                return
            except OSError as e:
                self._fatal(e)
                return
            self._out_size -= n
            if self._closing:
                self._progress = self._loop.time()
            if n < len(chunk):
                out[0] = chunk[n:]
                break
            out.popleft()
        if self._closing:
            if not out:
                self._finish(None)
            return
        if self._paused and self._out_size <= self._low:
            self._paused = False
            self._protocol.resume_writing()

    def get_write_buffer_size(self):
        return self._out_size

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = WRITE_HIGH if low is None else 4 * low
        if low is None:
            low = high // 4
        self._high, self._low = high, low

    def get_write_buffer_limits(self):
        return self._low, self._high

    # --- closing -------------------------------------------------------------------------

    def is_closing(self):
        return self._closing

    def close(self):
        """Stop reading; close once what was written is sent."""
        if self._closing:
            return
        self._closing = True
        self._reading = False
        if not self._out:
            self._finish(None)
        else:
            # a peer that stops reading must not hold the socket forever
            self._progress = self._loop.time()
            self._linger = self._loop.call_later(CLOSE_LINGER, self._check_linger)

    def _check_linger(self):
        idle = self._loop.time() - self._progress
        if idle < CLOSE_LINGER:
            self._linger = self._loop.call_later(CLOSE_LINGER - idle, self._check_linger)
            return
        self._linger = None
        self.abort()

    def abort(self):
        self._closing = True
        self._finish(None)

    def _fatal(self, exc, call="send"):
        """The socket failed: ``call`` (recv or send) names the system call for the
        log, as nginx's "recv() failed (104: Connection reset by peer)"."""
        exc.failed_call = call
        self._closing = True
        self._finish(exc)

    def _finish(self, exc):
        """Release the socket now; tell the protocol soon (never from inside its call)."""
        if self._closed:
            return
        self._closed = True
        self._reading = False
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._out = None
        self._out_size = 0
        self._poller.unregister(self._fd)
        self._sock.close()
        self._loop.call_soon(self._lost, exc)

    def _lost(self, exc):
        # the protocol is told once, then let go: a session and its transport refer to
        # each other, and without this link they are freed at once by reference counting
        # instead of by the cyclic garbage collector (a few percent of a busy worker)
        protocol = self._protocol
        self._protocol = _GONE
        protocol.connection_lost(exc)

    # --- the rest of the transport interface ------------------------------------------------

    def get_extra_info(self, name, default=None):
        if name == "peername":
            return self._peer
        if name == "sockname":
            if self._sockname is None and not self._closed:
                try:
                    self._sockname = self._sock.getsockname()
                except OSError:
                    return default
            return self._sockname if self._sockname is not None else default
        if name == "socket":
            return self._sock if not self._closed else default
        return default

    def set_protocol(self, protocol):
        self._protocol = protocol

    def get_protocol(self):
        return self._protocol


def start_transport(rt, sock, peer, protocol) -> SocketTransport:
    """Run ``protocol`` over an accepted socket (which may be blocking: every call here
    passes MSG_DONTWAIT)."""
    t = SocketTransport(rt, sock, peer, protocol)
    t.start()
    return t


class Acceptor:
    """Accepts on one listening socket and hands each new socket, with the peer address
    accept() returned, to ``accepted(sock, peer)``.

    Errors are nginx's: ECONNABORTED is logged at "error" and accepting goes on;
    running out of descriptors (EMFILE, ENFILE) is logged at "crit" and accepting
    stops for half a second (nginx's accept_mutex_delay), instead of spinning on a
    socket that stays readable; other errors are logged at "alert"."""

    def __init__(self, rt, ls, accepted):
        self.rt = rt
        self.accepted = accepted
        self.sock = ls.sock
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self.family = self.sock.family
        self.closed = False
        self.watching = False
        self.delay = None
        self._watch()

    def _watch(self):
        self.delay = None
        if not self.closed and not self.watching:
            self.watching = True
            self.rt.loop.add_reader(self.fd, self.on_readable)

    def _unwatch(self):
        if self.watching:
            self.watching = False
            try:
                self.rt.loop.remove_reader(self.fd)
            except (ValueError, OSError):
                pass

    def on_readable(self):
        accept = self.sock._accept
        family = self.family
        accepted = self.accepted
        for _ in range(ACCEPT_BATCH):
            try:
                fd, peer = accept()
            except _AGAIN:
                return
            except OSError as e:
                if self._failed(e):
                    continue
                return
            # the C socket type, with family and type given (its constructor only
            # checks the descriptor with one getsockname)
            accepted(_socket.socket(family, socket.SOCK_STREAM, 0, fd), peer)
            if self.closed:
                return

    def _failed(self, e: OSError) -> bool:
        """Log a failed accept; True when accepting may go on at once."""
        log = self.rt.main_log
        text = f"accept4() failed ({e.errno}: {e.strerror})"
        if e.errno == errno.ECONNABORTED:
            log.log("error", text)
            return True
        if e.errno in (errno.EMFILE, errno.ENFILE):
            log.log("crit", text)
            self._unwatch()
            self.delay = self.rt.loop.call_later(ACCEPT_DELAY, self._watch)
            return False
        log.log("alert", text)
        return False

    def close(self):
        """Stop accepting and close this process's copy of the listening socket: once
        every process has, the port refuses connections (a graceful stop is seen by
        load balancers at once)."""
        if not self.closed:
            self.closed = True
            self._unwatch()
            if self.delay is not None:
                self.delay.cancel()
                self.delay = None
            try:
                self.sock.close()
            except OSError:
                pass


def plain_acceptor(rt, ls, factory) -> Acceptor:
    """Acceptor of a listener without PROXY protocol or TLS: the POP3 session starts
    on the accepted socket right away."""
    def accepted(sock, peer):
        SocketTransport(rt, sock, peer, factory()).start()
    return Acceptor(rt, ls, accepted)
