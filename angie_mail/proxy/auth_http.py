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

import asyncio
import re
import socket

from ..conf.url import _inet4, _inet6
from ..conf.values import atoi

RESPONSE_LIMIT = 1024
_ESCAPE_TABLE = {b: f"%{b:02X}".encode() for b in list(range(0x21)) + [0x25]}
_NEEDS_ESCAPE = re.compile(rb"[\x00-\x20%]")


def escape(value: bytes) -> bytes:
    """Percent-encode controls, space and "%" (upper-case hex), nothing else."""
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    return b"".join(_ESCAPE_TABLE.get(b, bytes((b,))) for b in value)


class AuthRequest:
    """What one attempt sends; ``extra`` holds optional (name, value) lines in order
    (Client-Host, Proxy-Protocol-*, Auth-SMTP-*, Auth-SSL-*)."""
    __slots__ = ("method", "login", "passwd", "salt", "protocol", "attempt", "client_ip",
                 "extra")

    def __init__(self, method, login, passwd, salt, protocol, attempt, client_ip, extra=()):
        self.method = method
        self.login = login
        self.passwd = passwd
        self.salt = salt
        self.protocol = protocol
        self.attempt = attempt
        self.client_ip = client_ip
        self.extra = extra


def build_request(auth_http, req: AuthRequest, headers=()) -> bytes:
    """The exact request of auth_http.md §3."""
    lines = [b"GET ", auth_http.uri.encode("utf-8", "surrogateescape"), b" HTTP/1.0\r\n",
             b"Host: ", auth_http.host_header.encode("utf-8", "surrogateescape"), b"\r\n",
             b"Auth-Method: ", req.method.encode(), b"\r\n",
             b"Auth-User: ", escape(req.login), b"\r\n",
             b"Auth-Pass: ", escape(req.passwd), b"\r\n"]
    if req.salt and req.method in ("apop", "cram-md5"):
        lines += [b"Auth-Salt: ", req.salt, b"\r\n"]
    lines += [b"Auth-Protocol: ", req.protocol.encode(), b"\r\n",
              b"Auth-Login-Attempt: ", str(req.attempt).encode(), b"\r\n",
              b"Client-IP: ", req.client_ip.encode(), b"\r\n"]
    for name, value in req.extra:
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


def parse_headers(data: bytes):
    """(headers, True) once the empty line ending the header is in ``data``,
    (None, False) while more is needed.  ``headers`` is a list of (lower-case name,
    value).  Raises ResponseError for what nginx rejects."""
    pos = 0
    n = len(data)
    if data.startswith(b"HTTP/"):
        lf = data.find(b"\n")
        if lf < 0:
            cr = data.find(b"\r")
            if 0 <= cr < n - 1:
                raise ResponseError("sent invalid response")
            return None, False
        cr = data.find(b"\r", 0, lf)
        if cr >= 0 and cr != lf - 1:
            raise ResponseError("sent invalid response")
        pos = lf + 1
    headers = []
    match = _HEADER.match
    while True:
        if pos >= n:
            return None, False
        c = data[pos]
        if c == 0x0A:                       # LF: end of header
            return headers, True
        if c == 0x0D:
            if pos + 1 >= n:
                return None, False
            if data[pos + 1] == 0x0A:
                return headers, True
            raise ResponseError("sent invalid header in response")
        m = match(data, pos)
        if m is None:
            # incomplete line, or a byte nginx refuses
            lf = data.find(b"\n", pos)
            if lf < 0 and _incomplete_ok(data, pos):
                return None, False
            raise ResponseError("sent invalid header in response")
        name, value = m.group(1), m.group(3) or b""
        if b"\r" in value:
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


def check_backend(r: AuthResult, has_password: bool):
    """(family, ip, port, "addr:port") of the backend, or raise ResponseError with the
    error-log text (auth_http.md §6.3)."""
    if not r.addr or not r.port:
        raise ResponseError("did not send server or port")
    if not has_password and r.passwd is None:
        raise ResponseError("did not send password")
    text = r.addr.decode("latin-1")
    ip = _inet4(text)
    family = socket.AF_INET
    if ip is None:
        ip = _inet6(text)
        family = socket.AF_INET6
    if ip is None:
        raise ResponseError(f'sent invalid server address:"{text}"')
    port_text = r.port.decode("latin-1")
    port = atoi(port_text)
    if port is None or port < 1 or port > 65535:
        raise ResponseError(f'sent invalid server port:"{port_text}"')
    return family, ip, port, f"{text}:{port_text}"


class _AuthProtocol(asyncio.Protocol):
    """One request on one connection: write it, read up to the empty line, close."""

    __slots__ = ("request", "fut", "buf", "transport")

    def __init__(self, request: bytes, fut: asyncio.Future):
        self.request = request
        self.fut = fut
        self.buf = b""
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        if self.fut.done():
            return
        self.buf += data
        try:
            headers, done = parse_headers(self.buf[:RESPONSE_LIMIT])
        except ResponseError as e:
            self.fut.set_exception(e)
            self.transport.close()
            return
        if done:
            self.fut.set_result(headers)
            self.transport.close()
        elif len(self.buf) >= RESPONSE_LIMIT:
            # nginx: a full buffer without the header end is a closed connection
            self.fut.set_exception(ResponseError("closed"))
            self.transport.close()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        if not self.fut.done():
            self.fut.set_exception(ResponseError("closed"))


async def query(loop, auth_http, request: bytes, timeout_s: float):
    """Send one request; the response headers, or raise ResponseError / OSError /
    asyncio.TimeoutError."""
    fut = loop.create_future()
    addr = auth_http.addr
    proto = _AuthProtocol(request, fut)
    transport = None
    try:
        async with asyncio.timeout(timeout_s):
            if addr.family == socket.AF_UNIX:
                transport, _ = await loop.create_unix_connection(lambda: proto, addr.host)
            else:
                transport, _ = await loop.create_connection(lambda: proto, addr.host,
                                                            addr.port)
            return await fut
    finally:
        if transport is not None:
            transport.close()
