"""Differential testing: the same scripted client sessions run through real nginx 1.22
(Debian's build with the dynamic mail module) and through angie-mail.

Each side gets its own auth_http server (same deterministic handler) and its own scripted
backends; the proxy configurations are the same apart from lines a test marks as one
side's only.  For every session a side's result records

* the bytes the client received (APOP/CRAM-MD5 salts normalised, nothing else),
* the auth_http requests the side's auth server received (salt normalised),
* the raw bytes each of the side's backends received, and how many connections it got.

The two sides of a session run in parallel threads, and every step that depends on
timing waits for the proxy's reply.  The protocol test modules (test_differential_*.py)
hold the configurations and the sessions.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from proxy.harness import AuthServer, Nginx, Proxy, fail_response, free_port, ok_response

READ_TIMEOUT = 4.0          # a reply that does not come within this is recorded as TIMEOUT
EOF_TIMEOUT = 4.0


# --- the deterministic auth_http handler ----------------------------------------------------------

WAIT_RESPONSE = b"HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\nAuth-Wait: 1\r\n\r\n"
GOOD_DIGEST = b"0" * 32         # APOP / CRAM-MD5: auth server answers OK + Auth-Pass: secret
NOPASS_DIGEST = b"1" * 32       # APOP / CRAM-MD5: auth server answers OK without Auth-Pass
AS_TEST = b"Auth-User: test@example.com\r\n"   # log in to the backend as the known user
SASL_ERROR = b"eyJzdGF0dXMiOiI0MDAifQ=="       # Auth-Error-SASL for the token "saslfail"


def make_auth_handler(ports: dict):
    """The same decision function for both sides; its only state counts requests per
    (user, password), which evolves identically when both sides behave the same.

    ``ports``: backend name -> port.  "backend" is the ordinary backend; a user named
    after any other backend is sent there (as test@example.com)."""
    backend_port = ports["backend"]
    routed = {name.encode(): port for name, port in ports.items() if name != "backend"}
    counts = Counter()
    lock = threading.Lock()

    def handler(req):
        user = req.get("Auth-User", b"")
        pw = req.get("Auth-Pass", b"")
        method = req.get("Auth-Method", b"")
        with lock:
            counts[(user, pw)] += 1
            n = counts[(user, pw)]
        if user == b"garbage":
            return b"garbage without an end"            # then the connection closes
        if user == b"close":
            return "close"
        if user == b"hostname":
            return ok_response(backend_port, host="localhost")
        if user == b"noserver":
            return b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n\r\n"
        if user == b"lowerok":
            return b"HTTP/1.0 200 OK\r\nAuth-Status: ok\r\n\r\n"
        if user == b"spaced":
            return b"HTTP/1.0 200 OK\r\nAuth-Status:   spaced  text  \r\n\r\n"
        if user == b"emptystatus":
            return b"HTTP/1.0 200 OK\r\nAuth-Status:\r\n\r\n"
        if user == b"twofail":
            return (b"HTTP/1.0 200 OK\r\nAuth-Status: first\r\nAuth-Status: OK\r\n"
                    b"Auth-Status: second\r\n\r\n")
        if user == b"wait0":
            return fail_response(wait=0)
        if user == b"status500":
            return (b"HTTP/1.0 500 Internal Server Error\r\n"
                    + ok_response(backend_port, extra=AS_TEST)[17:])
        if user == b"nostatusline":
            return ok_response(backend_port, extra=AS_TEST)[17:]
        if user == b"lfonly":
            return ok_response(backend_port, extra=AS_TEST).replace(b"\r\n", b"\n")
        if user == b"huge":
            return b"HTTP/1.0 200 OK\r\nX: " + b"a" * 1100 + b"\r\n\r\n"
        if user == b"badport":
            return (b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\n"
                    b"Auth-Port: 0\r\n\r\n")
        if user == b"underscore":
            return b"HTTP/1.0 200 OK\r\nAuth_Status: OK\r\n\r\n"
        if user in routed:
            return ok_response(routed[user], extra=AS_TEST)
        if user == b"alias":
            return ok_response(backend_port, extra=AS_TEST)
        if user == b"authpass":
            return ok_response(backend_port, extra=b"Auth-User: other@example.com\r\n"
                                                   b"Auth-Pass: backend-pass\r\n")
        if user == b"wait" and pw == b"waitok":
            return WAIT_RESPONSE if n % 2 else ok_response(
                backend_port, extra=AS_TEST + b"Auth-Pass: secret\r\n")
        if method == b"external":
            if user == b"test@example.com":
                return ok_response(backend_port, extra=b"Auth-Pass: secret\r\n")
            return ok_response(backend_port)
        if method in (b"xoauth2", b"oauthbearer"):
            if pw == b"saslfail":
                return fail_response(wait=1, extra=b"Auth-Error-SASL: " + SASL_ERROR + b"\r\n")
            return ok_response(backend_port)
        if method in (b"apop", b"cram-md5"):
            if pw == GOOD_DIGEST:
                return ok_response(backend_port, extra=b"Auth-Pass: secret\r\n")
            if pw == NOPASS_DIGEST:
                return ok_response(backend_port)
            return fail_response(wait=1)
        if pw == b"secret":
            return ok_response(backend_port)
        if pw == b"wait1":
            return fail_response(wait=1)
        return fail_response()

    return handler


# --- one proxy with its peers ----------------------------------------------------------------------

class Side:
    """One proxy (nginx or angie-mail) with its own auth server and backends.

    ``backends``: name -> backend, "backend" the ordinary one (make_auth_handler);
    ``mail_block(kind, auth_url, ports)`` the configuration, ``ports`` one per server
    name; ``implicit_tls``: the server names whose listener is ``ssl`` (the client
    starts TLS at once); ``auth_handler(ports)``: the auth server's decision function
    (make_auth_handler unless a protocol needs more); ``settle``: a session's results
    are taken once every backend connection it made has ended (what a backend read
    just before the proxy closed is then recorded on both sides alike)."""

    def __init__(self, kind: str, tmpdir, backends: dict, servers, mail_block,
                 implicit_tls=(), auth_handler=None, settle=False):
        self.kind = kind
        self.backends = backends
        self.settle = settle
        make = auth_handler or make_auth_handler
        self.auth = AuthServer(make({n: b.port for n, b in backends.items()}))
        self.ports = {name: free_port() for name in servers}
        self.implicit_tls = set(implicit_tls)
        block = mail_block(kind, self.auth.url, self.ports)
        os.makedirs(tmpdir, exist_ok=True)
        self.proxy = Nginx(tmpdir, block) if kind == "nginx" else Proxy(tmpdir, block)

    def start(self):
        self.proxy.start()
        return self

    def close(self):
        try:
            self.proxy.stop()
        finally:
            # each shutdown() waits for a serve_forever poll; do them in parallel
            peers = (self.auth, *self.backends.values())
            threads = [threading.Thread(target=p.close) for p in peers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)


def tls_mail_block(protocol: str, servers: dict, implicit_tls, pki):
    """mail_block(kind, auth_url, ports) for running_side: one ``server {}`` per entry
    of ``servers`` (directive lines; a (kind, line) pair is for that side only;
    ``{dead}`` is a port nothing listens on), certificates for the TLS servers."""
    def mail_block(kind: str, auth_url: str, ports: dict) -> str:
        out = [f"mail {{\n    auth_http {auth_url};\n    auth_http_timeout 2s;\n"
               f"    server_name mail.example.com;\n"
               f"    ssl_certificate {pki['server_rsa_crt']};\n"
               f"    ssl_certificate_key {pki['server_rsa_key']};\n"
               # nginx 1.22's default lacks TLSv1.3, Angie's has it
               f"    ssl_protocols TLSv1.2 TLSv1.3;\n"]
        for name, lines in servers.items():
            body = ""
            for line in lines:
                if isinstance(line, tuple):
                    if line[0] != kind:
                        continue
                    line = line[1]
                body += "        " + line.format(dead=free_port()) + "\n"
            ssl_ = " ssl" if name in implicit_tls else ""
            out.append(f"    server {{\n        listen 127.0.0.1:{ports[name]}{ssl_};\n"
                       f"        protocol {protocol};\n{body}    }}\n")
        out.append("}\n")
        return "".join(out)
    return mail_block


@contextlib.contextmanager
def running_side(kind: str, tmpdir, make_backends, servers, mail_block, implicit_tls=(),
                 auth_handler=None, settle=False):
    """A started Side, closed on exit (also when the proxy fails to start)."""
    side = Side(kind, tmpdir, make_backends(), servers, mail_block, implicit_tls, auth_handler,
                settle)
    try:
        side.start()
        yield side
    finally:
        side.close()


# --- scripted client ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Lines:
    """Wait for and record n CRLF-terminated lines."""
    n: int = 1


@dataclass(frozen=True)
class Until:
    """Wait for and record everything up to and including marker."""
    marker: bytes


@dataclass(frozen=True)
class Reply:
    """Wait for and record n whole SMTP replies (a multi-line reply ends with the first
    line whose fourth byte is not "-")."""
    n: int = 1


@dataclass(frozen=True)
class Tls:
    """Start TLS on the connection (after a STARTTLS/STLS reply)."""


def client_tls_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Conn:
    def __init__(self, port: int, implicit_tls: bool = False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.closed_by = None           # "EOF" or "RESET" once the server has closed
        self.reported = False
        if implicit_tls:
            self.starttls()

    def starttls(self) -> str | None:
        assert self.buf == b"", self.buf
        try:
            self.sock = client_tls_context().wrap_socket(self.sock)
            return None
        except (ssl.SSLError, OSError) as e:
            self.closed_by = "TLS-FAILED"
            return f"TLS-FAILED {type(e).__name__}"

    def _fill(self, deadline: float) -> str | None:
        left = deadline - time.time()
        if left <= 0:
            return "TIMEOUT"
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return "TIMEOUT"
        except ConnectionResetError:
            self.closed_by = "RESET"
            return "RESET"
        if not chunk:
            self.closed_by = "EOF"
            return "EOF"
        self.buf += chunk
        return None

    def _event(self, event):
        """The close is reported once; timeouts every time."""
        if event in ("EOF", "RESET", "TLS-FAILED"):
            if self.reported:
                return None
            self.reported = True
        return event

    def until(self, marker: bytes, timeout: float = READ_TIMEOUT):
        deadline = time.time() + timeout
        event = None
        while marker not in self.buf:
            event = self.closed_by or self._fill(deadline)
            if event:
                break
        if marker in self.buf:
            i = self.buf.index(marker) + len(marker)
            out, self.buf = self.buf[:i], self.buf[i:]
            return out, None
        out, self.buf = self.buf, b""
        return out, self._event(event)

    def to_eof(self, timeout: float = EOF_TIMEOUT):
        deadline = time.time() + timeout
        event = self.closed_by
        while not event:
            event = self._fill(deadline)
        out, self.buf = self.buf, b""
        return out, self._event(event)

    def send(self, data: bytes):
        try:
            self.sock.sendall(data)
            return None
        except OSError as e:
            return f"SEND-FAILED {type(e).__name__}"

    def close(self):
        self.sock.close()


SALT_RE = re.compile(rb"<\d+\.\d+@")
FULL_SALT_RE = re.compile(rb"<\d+\.\d+@[^>\r\n]*>")
# a base64 challenge line: IMAP's and POP3's "+ ", SMTP's "334 "
CHALLENGE_RE = re.compile(rb"^(\+|334) ([A-Za-z0-9+/]+=*)\r\n", re.M)


def _challenge_salt(b64text: bytes) -> bytes | None:
    try:
        dec = base64.b64decode(b64text, validate=True)
    except ValueError:
        return None
    return dec if FULL_SALT_RE.fullmatch(dec) else None


def normalise_salt(data: bytes) -> bytes:
    """Replace the random part (digits.digits) of every salt."""
    return SALT_RE.sub(b"<R.T@", data)


def normalise(data: bytes) -> bytes:
    """Client-visible bytes: salts, also inside base64 CRAM-MD5 challenges."""
    def challenge(m):
        dec = _challenge_salt(m.group(2))
        if dec is None:
            return m.group(0)
        return m.group(1) + b" base64(" + normalise_salt(dec) + b")\r\n"
    return normalise_salt(CHALLENGE_RE.sub(challenge, data))


def salts_in(data: bytes) -> set:
    """The raw salts in client-visible bytes (greeting and decoded challenges)."""
    found = set(FULL_SALT_RE.findall(data))
    for m in CHALLENGE_RE.finditer(data):
        dec = _challenge_salt(m.group(2))
        if dec is not None:
            found.add(dec)
    return found


def run_script(port: int, steps, timeout: float = READ_TIMEOUT, implicit_tls: bool = False,
               greeting: bool = True, info: dict | None = None):
    """Greeting (unless ``greeting`` is false: the steps start at once), the steps, then
    everything up to the close.  Returns the transcript and the raw salts the client
    saw; ``info`` gets the client's own port ("port")."""
    c = Conn(port, implicit_tls)
    if info is not None:
        info["port"] = c.local_port
    out = []
    salts = set()

    def record(data, event):
        if data:
            salts.update(salts_in(data))
            out.append(("S", normalise(data)))
        if event:
            out.append((event,))

    try:
        if greeting:
            record(*c.until(b"\r\n", timeout))
        for step in steps:
            if isinstance(step, bytes):
                out.append(("C", step))
                err = c.send(step)
                if err:
                    out.append((err,))
            elif isinstance(step, Lines):
                for _ in range(step.n):
                    record(*c.until(b"\r\n", timeout))
            elif isinstance(step, Until):
                record(*c.until(step.marker, timeout))
            elif isinstance(step, Reply):
                for _ in range(step.n):
                    while True:
                        data, event = c.until(b"\r\n", timeout)
                        record(data, event)
                        if event or data[3:4] != b"-":
                            break
            elif isinstance(step, Tls):
                out.append(("TLS",))
                err = c.starttls()
                if err:
                    out.append((err,))
            else:
                raise TypeError(step)
        record(*c.to_eof(timeout))
    finally:
        c.close()
    return out, salts


def backend_key(name: str) -> str:
    return "backend" if name == "backend" else f"{name} backend"


def run_side(side: Side, case, extra=None) -> dict:
    """The side's results for the case; ``extra(side, case, info)`` may add entries
    (``info`` holds the client's port)."""
    nreq = len(side.auth.requests)
    before = {name: (len(b.raw), b.connections) for name, b in side.backends.items()}
    info = {}
    transcript, salts = run_script(side.ports[case.server], case.steps, case.timeout,
                                   case.server in side.implicit_tls, case.greeting, info)
    if side.settle:
        deadline = time.time() + 10
        while any(b.finished < b.connections for b in side.backends.values()):
            assert time.time() < deadline, f"{side.kind}: a backend session does not end"
            time.sleep(0.01)
    requests = side.auth.requests[nreq:]
    auth_salts = {r.get("Auth-Salt") for r in requests if r.get("Auth-Salt") is not None}
    result = {"client": transcript, "auth": [normalise_salt(r.raw) for r in requests]}
    for name, b in side.backends.items():
        result[backend_key(name)] = list(b.raw[before[name][0]:])
    result["backend connections"] = tuple(b.connections - before[name][1]
                                          for name, b in side.backends.items())
    # greeting, CRAM-MD5 challenge and Auth-Salt carry one and the same salt
    result["one salt per session"] = len(salts | auth_salts) <= 1
    if extra is not None:
        result.update(extra(side, case, info))
    return result


def run_both(sides, case, extra=None):
    results = {}
    errors = []

    def one(side):
        try:
            results[side.kind] = run_side(side, case, extra)
        except Exception as e:            # re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=one, args=(s,)) for s in sides]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results["nginx"], results["angie"]


def describe(nginx: dict, angie: dict) -> str:
    lines = []
    for key in nginx:
        if nginx[key] != angie[key]:
            lines.append(f"{key} differs:\n  nginx: {nginx[key]!r}\n  angie: {angie[key]!r}")
    return "\n".join(lines)


def server_bytes(transcript) -> bytes:
    """Everything the client received, in one string."""
    return b"".join(e[1] for e in transcript if e[0] == "S")


# --- sessions -------------------------------------------------------------------------------------

def b64(s: bytes) -> bytes:
    return base64.b64encode(s)


def line_of(total: int, cmd: bytes = b"NOOP ") -> bytes:
    """A command line of exactly ``total`` bytes including CRLF."""
    return cmd + b"x" * (total - len(cmd) - 2) + b"\r\n"


@dataclass
class Case:
    id: str
    server: str
    steps: list
    timeout: float = READ_TIMEOUT     # how long to wait for each expected reply
    marks: list = field(default_factory=list)
    expect: bytes | None = None       # everything the client receives (normalised)
    greeting: bool = True             # wait for the greeting before the first step
