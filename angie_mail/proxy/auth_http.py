"""The auth_http client (auth_http.md): one HTTP/1.0 GET per login attempt.

The request is written exactly as Angie writes it (header order, escaping).  The
response is read with nginx's own header grammar (ngx_mail_auth_http_parse_header_line):
an optional status line that is skipped whatever it says, header names of letters,
digits and "-", a name without a colon counts as an empty header, LF or CRLF line ends,
and a 1024-byte limit for the whole header.  That grammar is not HTTP's (the status
code is ignored, no folding, any byte but CR/LF in a value, no status line at all is
fine), so no HTTP library parses it the same way; see docs/auth_http.md.
"""

from __future__ import annotations

import re
import socket
from functools import lru_cache

from ..conf.url import _inet4, _inet6
from ..conf.values import atoi
from ..mail.buffer import CR
from .netio import connect_error, first_send, start_connect
from .poller import END_EVENTS, IN_EVENTS, OUT_EVENTS

RESPONSE_LIMIT = 1024
_ESCAPE_TABLE = {b: f"%{b:02X}".encode() for b in list(range(0x21)) + [0x25]}
_NEEDS_ESCAPE = re.compile(rb"[\x00-\x20%]")


def escape(value: bytes) -> bytes:
    """Percent-encode controls, space and "%" (upper-case hex), nothing else."""
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    return b"".join(_ESCAPE_TABLE.get(b, bytes((b,))) for b in value)


class AuthRequest:
    """What one attempt sends.  ``extra`` holds the Proxy-Protocol-* lines,
    ``client_host`` SMTP's Client-Host, ``smtp`` the (helo, MAIL line, RCPT line) of
    SMTP's ``none`` flow, ``ssl`` the Auth-SSL-* lines: auth_http.md §3's order."""
    __slots__ = ("method", "login", "passwd", "salt", "protocol", "attempt", "client_ip",
                 "extra", "client_host", "smtp", "ssl")

    def __init__(self, method, login, passwd, salt, protocol, attempt, client_ip, extra=(),
                 client_host=None, smtp=None, ssl=()):
        self.method = method
        self.login = login
        self.passwd = passwd
        self.salt = salt
        self.protocol = protocol
        self.attempt = attempt
        self.client_ip = client_ip
        self.extra = extra
        self.client_host = client_host
        self.smtp = smtp
        self.ssl = ssl


def build_request(auth_http, req: AuthRequest, headers=(), keepalive: bool = False) -> bytes:
    """The exact request of auth_http.md §3; with ``keepalive`` (the angie-mail
    extension auth_http_keepalive) a "Connection: keep-alive" line follows Host."""
    lines = [b"GET ", auth_http.uri.encode("utf-8", "surrogateescape"), b" HTTP/1.0\r\n",
             b"Host: ", auth_http.host_header.encode("utf-8", "surrogateescape"), b"\r\n",
             b"Connection: keep-alive\r\n" if keepalive else b"",
             b"Auth-Method: ", req.method.encode(), b"\r\n",
             b"Auth-User: ", escape(req.login), b"\r\n",
             b"Auth-Pass: ", escape(req.passwd), b"\r\n"]
    if req.salt and req.method in ("apop", "cram-md5"):
        lines += [b"Auth-Salt: ", req.salt, b"\r\n"]
    lines += [b"Auth-Protocol: ", req.protocol.encode(), b"\r\n",
              b"Auth-Login-Attempt: ", str(req.attempt).encode(), b"\r\n",
              b"Client-IP: ", req.client_ip.encode(), b"\r\n"]
    if req.client_host is not None:
        lines += [b"Client-Host: ", req.client_host, b"\r\n"]
    for name, value in req.extra:
        if value:
            lines += [name, b": ", value, b"\r\n"]
    if req.smtp is not None:                     # present even when empty
        helo, mail_from, rcpt_to = req.smtp
        lines += [b"Auth-SMTP-Helo: ", helo, b"\r\nAuth-SMTP-From: ", mail_from,
                  b"\r\nAuth-SMTP-To: ", rcpt_to, b"\r\n"]
    for name, value in req.ssl:
        if value:
            lines += [name, b": ", value, b"\r\n"]
    for name, value in headers:
        lines += [name.encode("utf-8", "surrogateescape"), b": ",
                  value.encode("utf-8", "surrogateescape"), b"\r\n"]
    lines.append(b"\r\n")
    return b"".join(lines)


class ResponseError(Exception):
    """The response is not acceptable: ``str(e)`` is the error-log text after
    ``auth http server <peer> ``."""


_HEADER = re.compile(rb"([A-Za-z0-9][A-Za-z0-9-]*)(?::( *)([^\r\n]*))?(\r?)\n")


# the usual response, all of it here with CRLF line ends, in one match
_WHOLE = re.compile(rb"(?:HTTP/[^\r\n]*\r\n)?((?:[A-Za-z0-9][A-Za-z0-9-]*(?:: *[^\r\n]*)?\r\n)*)\r\n")
_LINE = re.compile(rb"([A-Za-z0-9][A-Za-z0-9-]*)(?:: *([^\r\n]*))?\r\n")


def parse_headers(data: bytes):
    """(headers, end) once the empty line ending the header is in ``data``, ``end``
    being the offset just past it; (None, 0) while more is needed.  ``headers`` is a
    list of (lower-case name, value).  Raises ResponseError for what nginx rejects."""
    m = _WHOLE.match(data)
    if m is not None:
        return [(name.lower(), value.rstrip(b" "))
                for name, value in _LINE.findall(m.group(1))], m.end()
    return parse_headers_stepwise(data)


def parse_headers_stepwise(data: bytes):
    """parse_headers line by line: partial input, LF line ends, and every error."""
    pos = 0
    n = len(data)
    if data.startswith(b"HTTP/"):
        lf = data.find(b"\n")
        if lf < 0:
            cr = data.find(b"\r")
            if 0 <= cr < n - 1:
                raise ResponseError("sent invalid response")
            return None, 0
        cr = data.find(b"\r", 0, lf)
        if cr >= 0 and cr != lf - 1:
            raise ResponseError("sent invalid response")
        pos = lf + 1
    headers = []
    match = _HEADER.match
    while True:
        if pos >= n:
            return None, 0
        c = data[pos]
        if c == 0x0A:                       # LF: end of header
            return headers, pos + 1
        if c == 0x0D:
            if pos + 1 >= n:
                return None, 0
            if data[pos + 1] == 0x0A:
                return headers, pos + 2
            raise ResponseError("sent invalid header in response")
        m = match(data, pos)
        if m is None:
            # incomplete line, or a byte nginx refuses
            lf = data.find(b"\n", pos)
            if lf < 0 and _incomplete_ok(data, pos):
                return None, 0
            raise ResponseError("sent invalid header in response")
        name, value = m.group(1), m.group(3) or b""
        if CR in value:
            raise ResponseError("sent invalid header in response")
        headers.append((name.lower(), value.rstrip(b" ")))
        pos = m.end()


_PARTIAL = re.compile(rb"[A-Za-z0-9][A-Za-z0-9-]*(?::[^\r\n]*)?\r?\Z")


def _incomplete_ok(data: bytes, pos: int) -> bool:
    return _PARTIAL.match(data, pos) is not None


class AuthResult:
    """The decision taken from a response (auth_http.md §6)."""
    __slots__ = ("error", "wait", "retry", "sleep", "addr", "port", "peer_name", "user",
                 "passwd", "error_code", "error_sasl")

    def __init__(self):
        self.error = None          # failure text (bytes)
        self.retry = False         # Auth-Status: WAIT
        self.sleep = 0             # Auth-Wait seconds
        self.wait = False
        self.addr = None
        self.port = 0
        self.peer_name = ""
        self.user = None           # Auth-User (bytes) or None
        self.passwd = None         # Auth-Pass (bytes) or None
        self.error_code = None
        self.error_sasl = None


def interpret(headers, method: str) -> AuthResult:
    """Fold the recognised headers into an AuthResult (no validation of the backend
    address yet: that comes after the failure/WAIT decisions, as in Angie)."""
    r = AuthResult()
    addr = port = None
    for name, value in headers:
        if name == b"auth-status":
            if value == b"OK":
                continue
            if value == b"WAIT":
                r.retry = True
                continue
            r.error = value
        elif name == b"auth-server":
            addr = value
        elif name == b"auth-port":
            port = value
        elif name == b"auth-user":
            r.user = value
        elif name == b"auth-pass":
            r.passwd = value
        elif name == b"auth-wait":
            n = atoi(value.decode("latin-1"))
            if n is not None:
                r.sleep = n
        elif name == b"auth-error-code":
            r.error_code = value
        elif name == b"auth-error-sasl":
            if method in ("xoauth2", "oauthbearer"):
                r.error_sasl = value
    r.wait = r.sleep > 0
    r.addr = addr
    r.port = port
    return r


@lru_cache(maxsize=1024)
def _ip_literal(text: str):
    """(family, normalised IP) of an IPv4/IPv6 literal, (0, None) otherwise."""
    ip = _inet4(text)
    if ip is not None:
        return socket.AF_INET, ip
    ip = _inet6(text)
    return (socket.AF_INET6, ip) if ip is not None else (0, None)


def check_backend(r: AuthResult, has_password: bool):
    """(family, ip, port, "addr:port") of the backend, or raise ResponseError with the
    error-log text (auth_http.md §6.3)."""
    if not r.addr or not r.port:
        raise ResponseError("did not send server or port")
    if not has_password and r.passwd is None:
        raise ResponseError("did not send password")
    text = r.addr.decode("latin-1")
    family, ip = _ip_literal(text)
    if ip is None:
        raise ResponseError(f'sent invalid server address:"{text}"')
    port_text = r.port.decode("latin-1")
    port = atoi(port_text)
    if port is None or port < 1 or port > 65535:
        raise ResponseError(f'sent invalid server port:"{port_text}"')
    return family, ip, port, f"{text}:{port_text}"


class AuthConnection:
    """One socket to the auth server, registered with the edge-triggered poller for its
    whole life; its events go to the exchange in progress.  While the connection waits
    idle in a pool, input means the server closed it (or sent something unasked), and
    the connection is dropped."""

    __slots__ = ("poller", "sock", "fd", "exchange", "pool", "ended")

    def __init__(self, poller, sock, pool=None):
        self.poller = poller
        self.sock = sock
        self.fd = sock.fileno()
        self.exchange = None
        self.pool = pool
        self.ended = False            # the server closed or failed: read to the end
        poller.register(self.fd, self._on_events)

    def _on_events(self, events):
        ex = self.exchange
        if ex is None:
            if events & IN_EVENTS:
                if self.pool is not None:
                    self.pool.discard(self)
                self.close()
            return
        if events & OUT_EVENTS and ex.wants_write:
            ex._writable()
            if self.exchange is not ex:
                return
        if events & IN_EVENTS:
            if events & END_EVENTS:
                self.ended = True
            ex._readable()

    def close(self):
        sock = self.sock
        if sock is not None:
            self.sock = None
            self.exchange = None
            self.poller.unregister(self.fd)
            sock.close()


class AuthPool:
    """Idle keep-alive connections to one auth server, per worker (the angie-mail
    extension ``auth_http_keepalive``: Angie opens a connection per request)."""

    __slots__ = ("idle", "limit")

    def __init__(self, limit: int):
        self.idle: list = []
        self.limit = limit

    def get(self):
        """The most recently used idle connection (one the server closed has left the
        pool already, see AuthConnection._readable), or None."""
        return self.idle.pop() if self.idle else None

    def put(self, conn) -> None:
        if len(self.idle) >= self.limit:
            conn.close()
            return
        conn.exchange = None
        self.idle.append(conn)

    def discard(self, conn) -> None:
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


def _reusable(data: bytes, headers, end: int) -> bool:
    """True when the response in ``data`` (its header ending at ``end``) is complete
    and the connection may carry another request: an HTTP/1.x status line, keep-alive
    by version or header, no Transfer-Encoding, a body of known length fully received
    and nothing after it."""
    if not data.startswith(b"HTTP/1."):
        return False
    status = data[9:12]
    keep = data[7:8] == b"1"               # HTTP/1.1 keeps alive unless told to close
    length = None
    for name, value in headers:
        if name == b"connection":
            v = value.lower()
            if v == b"close":
                return False
            if v == b"keep-alive":
                keep = True
        elif name == b"content-length":
            length = atoi(value.decode("latin-1"))
            if length is None:
                return False
        elif name == b"transfer-encoding":
            return False
    if not keep:
        return False
    if status in (b"204", b"304") or status[:1] == b"1":
        length = 0
    elif length is None:
        return False
    return len(data) == end + length


_RETRY_ON_REUSE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_CONNECTING, _SENDING = 1, 2        # AuthExchange.wants_write


class AuthExchange:
    """One request, driven by poller events on a raw non-blocking socket (no
    transport, task or future: a login costs a handful of system calls).  The socket
    is a fresh connection, or with ``pool`` an idle keep-alive one, returned to the
    pool when the response allows it.  A reused connection that turns out to be closed
    before any byte of the response arrives is replaced by a fresh one, once.
    ``done(headers, error)`` is called once: headers is the list of (name, value), or
    error is a ResponseError / OSError / TimeoutError."""

    __slots__ = ("timers", "poller", "conn", "sock", "fd", "request", "sent", "done", "buf",
                 "timer", "finished", "pool", "addr", "reused", "wants_write")

    def __init__(self, timers, poller, request: bytes, done, pool=None):
        self.timers = timers            # the worker's Timers (timers.py)
        self.poller = poller
        self.wants_write = 0          # CONNECTING or SENDING while waiting for room
        self.request = request
        self.sent = 0
        self.done = done
        self.buf = b""
        self.conn = None
        self.sock = None
        self.fd = -1
        self.timer = None
        self.finished = False
        self.pool = pool
        self.addr = None
        self.reused = False

    def start(self, addr, timeout_s: float) -> None:
        self.timer = self.timers.call_later(timeout_s, self._timeout)
        self.addr = addr
        pool = self.pool
        if pool is not None:
            conn = pool.get()
            if conn is not None:
                self.reused = True
                self._attach(conn)
                return self._send()
        self._connect()

    def _attach(self, conn):
        conn.exchange = self
        self.conn = conn
        self.sock = conn.sock
        self.fd = conn.fd

    def _connect(self):
        addr = self.addr
        sock, error = start_connect(addr.family, addr.sockaddr())
        if sock is not None:
            self._attach(AuthConnection(self.poller, sock, self.pool))
        if error is not None:
            return self._finish(None, error)
        # on loopback the handshake is usually over already: try to send at once and
        # wait for writability only if the socket is not connected yet
        self._first_send()

    def _first_send(self):
        try:
            n = first_send(self.sock, self.request)
        except OSError as e:
            return self._finish(None, e)
        if n is None:
            self.wants_write = _CONNECTING          # the output edge: connected
            return
        self._sent(n)

    def _retry_fresh(self) -> None:
        """The reused connection was closed by the server: start over on a new one."""
        self.reused = False
        self.conn.close()
        self.conn = self.sock = None
        self.fd = -1
        self.sent = 0
        self.buf = b""
        self._connect()

    def _sent(self, n: int):
        self.sent += n
        self.wants_write = _SENDING if self.sent < len(self.request) else 0

    def _writable(self):
        if self.wants_write == _CONNECTING:
            self._connected()
        else:
            self._send()

    def _connected(self):
        self.wants_write = 0
        error = connect_error(self.sock)
        if error is not None:
            return self._finish(None, error)
        self._first_send()          # which waits again if not connected after all

    def _send(self):
        try:
            n = self.sock.send(self.request[self.sent:] if self.sent else self.request)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as e:
            if self.reused and isinstance(e, _RETRY_ON_REUSE):
                return self._retry_fresh()
            return self._finish(None, e)
        self._sent(n)

    def _readable(self):
        # edge-triggered: read until drained or the response is complete
        while not self.finished:
            try:
                data = self.sock.recv(RESPONSE_LIMIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if self.reused and not self.buf and isinstance(e, _RETRY_ON_REUSE):
                    return self._retry_fresh()
                data = b""
            if not data:
                if self.reused and not self.buf:
                    return self._retry_fresh()
                return self._finish(None, ResponseError("closed"))
            self.buf += data
            try:
                headers, end = parse_headers(self.buf[:RESPONSE_LIMIT])
            except ResponseError as e:
                return self._finish(None, e)
            if end:
                keep = (self.pool is not None and self.sent == len(self.request)
                        and not self.conn.ended and _reusable(self.buf, headers, end))
                return self._finish(headers, None, keep)
            if len(self.buf) >= RESPONSE_LIMIT:
                # nginx: a full buffer without the header end is a closed connection
                return self._finish(None, ResponseError("closed"))
            if len(data) < RESPONSE_LIMIT and not self.conn.ended:
                return                  # drained: more input brings a new edge

    def _timeout(self):
        self.timer = None
        self._finish(None, TimeoutError())

    def cancel(self) -> None:
        self.done = None
        self._finish(None, None)

    def _finish(self, headers, error, keep: bool = False):
        if self.finished:
            return
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        conn = self.conn
        if conn is not None:
            self.conn = self.sock = None
            if keep:
                self.pool.put(conn)
            else:
                conn.close()
        if self.done is not None:
            self.done(headers, error)
