"""Peers for end-to-end tests: a scriptable auth_http server, scripted POP3 and IMAP
backends, and angie-mail (or nginx, the oracle) itself as a subprocess.  Everything
listens on loopback ports chosen free at start; everything is stopped by the tests that
start it."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

from oracle import MAIL_MODULE, NGINX


# how often the threaded test servers look for shutdown(): it bounds every close
POLL = 0.02


def _port_band():
    """Ports below the kernel's ephemeral range (which outgoing connections draw
    from: a port found free there can be taken by a client's socket before the server
    binds it), a band of its own for each test process."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    n = int(worker[2:]) if worker[2:].isdigit() else 0
    top = min(low, 32768)
    size = (top - 10000) // 8
    return 10000 + (n % 8) * size, 10000 + (n % 8 + 1) * size


_BAND = _port_band()
_NEXT = [random.randrange(*_BAND)]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, for a server a test starts."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    lo, hi = _BAND
    for _ in range(hi - lo):
        port = _NEXT[0]
        _NEXT[0] = lo + (port + 1 - lo) % (hi - lo)
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


class _Threaded(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


# --- auth_http ---------------------------------------------------------------------------

class AuthRequest:
    def __init__(self, raw: bytes):
        self.raw = raw
        head = raw.split(b"\r\n\r\n", 1)[0]
        lines = head.split(b"\r\n")
        self.request_line = lines[0]
        self.header_list = []
        for l in lines[1:]:
            name, _, value = l.partition(b": ")
            self.header_list.append((name.decode(), value))
        self.headers = {n: v for n, v in self.header_list}

    def __getitem__(self, name):
        return self.headers[name]

    def get(self, name, default=None):
        return self.headers.get(name, default)


def auth_request(method: bytes, user: bytes, pw: bytes, *, attempt: int = 1,
                 salt: bytes = b"", protocol: bytes = b"imap", extra: bytes = b"") -> bytes:
    """The exact auth_http request angie-mail (and nginx) sends for an attempt from
    127.0.0.1 (auth_http.md §3); ``extra``: the header lines after Client-IP."""
    return (b"GET /mail/auth HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: " + method
            + b"\r\nAuth-User: " + user + b"\r\nAuth-Pass: " + pw + b"\r\n"
            + (b"Auth-Salt: " + salt + b"\r\n" if salt else b"")
            + b"Auth-Protocol: " + protocol + b"\r\nAuth-Login-Attempt: %d\r\n" % attempt
            + b"Client-IP: 127.0.0.1\r\n" + extra + b"\r\n")


def ok_response(port: int, host: str = "127.0.0.1", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: " + host.encode()
            + b"\r\nAuth-Port: " + str(port).encode() + b"\r\n" + extra + b"\r\n")


def fail_response(text: bytes = b"Invalid login or password", wait: int | None = None,
                  extra: bytes = b"") -> bytes:
    out = b"HTTP/1.0 200 OK\r\nAuth-Status: " + text + b"\r\n"
    if wait is not None:
        out += b"Auth-Wait: " + str(wait).encode() + b"\r\n"
    return out + extra + b"\r\n"


class AuthServer:
    """auth_http server: ``handler(request) -> bytes`` (the raw response), or a tuple
    ("sleep", seconds, bytes), or "close" to close without answering.

    With ``keepalive`` a connection carries further requests after a response, until
    a response says "Connection: close" or the client closes; ``connections`` counts
    the connections accepted and ``request.conn`` tells which one carried a request."""

    def __init__(self, handler=None, keepalive: bool = False):
        self.requests: list = []
        self.handler = handler
        self.keepalive = keepalive
        self.connections = 0
        self.port = free_port()
        outer = self

        class H(socketserver.BaseRequestHandler):
            def handle(self):
                outer.connections += 1
                conn_id = outer.connections
                data = b""
                self.request.settimeout(10)
                while True:
                    try:
                        while b"\r\n\r\n" not in data:
                            chunk = self.request.recv(65536)
                            if not chunk:
                                return
                            data += chunk
                    except OSError:
                        return
                    raw, _, data = data.partition(b"\r\n\r\n")
                    req = AuthRequest(raw + b"\r\n\r\n")
                    req.conn = conn_id
                    outer.requests.append(req)
                    resp = outer.handler(req) if outer.handler else b""
                    if resp == "close":
                        return
                    if isinstance(resp, tuple) and resp[0] == "sleep":
                        time.sleep(resp[1])
                        resp = resp[2]
                    try:
                        self.request.sendall(resp)
                    except OSError:
                        return
                    if not outer.keepalive or b"Connection: close" in resp:
                        return

        self.server = _Threaded(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(POLL,),
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}/mail/auth"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --- scripted backends ------------------------------------------------------------------------

class ScriptedBackend:
    """A loopback server running ``session(rfile, wfile)`` for every connection (replace
    it on the instance to script anything else).  ``raw`` and ``lines`` record what was
    received, ``connections`` counts the connections accepted, ``finished`` the sessions
    that ended."""

    def __init__(self, greeting: bytes | None):
        self.greeting = greeting
        self.proxy_protocol = False     # read a PROXY header line before greeting
        self.lines: list = []
        self.raw: list = []
        self.connections = 0
        self.finished = 0
        self.port = free_port()
        outer = self
        lock = threading.Lock()

        class H(socketserver.StreamRequestHandler):
            def handle(self):
                with lock:
                    outer.connections += 1
                try:
                    outer.session(self.rfile, self.wfile)
                except ConnectionError:
                    pass                # the proxy may close (or reset) at any point
                finally:
                    with lock:
                        outer.finished += 1

        self.server = _Threaded(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(POLL,),
                                       daemon=True)
        self.thread.start()

    def read_proxy_header(self, rfile):
        if self.proxy_protocol:
            header = rfile.readline()
            self.raw.append(header)
            self.lines.append(header.rstrip(b"\r\n"))

    def session(self, rfile, wfile):
        raise NotImplementedError

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Backend(ScriptedBackend):
    """A small POP3 server: any user whose password is in ``users`` may log in.

    ``messages`` are the mailbox (bytes, CRLF lines).  ``greeting``/``on_user``/
    ``on_pass`` may be replaced to script failures.  Every line received is recorded."""

    def __init__(self, users=None, messages=None, greeting=b"+OK fake pop3 server ready\r\n"):
        self.users = users if users is not None else {b"test@example.com": b"secret"}
        self.messages = messages if messages is not None else [b"Subject: hi\r\n\r\nhello\r\n"]
        super().__init__(greeting)

    def session(self, rfile, wfile):
        self.read_proxy_header(rfile)
        if self.greeting is None:
            return
        wfile.write(self.greeting)
        wfile.flush()
        user = None
        authed = False
        while True:
            line = rfile.readline()
            if not line:
                return
            self.raw.append(line)
            self.lines.append(line.rstrip(b"\r\n"))
            cmd, _, arg = line.rstrip(b"\r\n").partition(b" ")
            cmd = cmd.upper()
            out = self.reply(cmd, arg, user, authed)
            if cmd == b"USER":
                user = arg
            if cmd == b"PASS" and out.startswith(b"+OK"):
                authed = True
            if out:
                wfile.write(out)
                wfile.flush()
            if cmd == b"QUIT":
                return

    def reply(self, cmd, arg, user, authed) -> bytes:
        if cmd == b"USER":
            return b"+OK user ok\r\n"
        if cmd == b"PASS":
            if self.users.get(user) == arg:
                return b"+OK pass ok\r\n"
            return b"-ERR authentication failed\r\n"
        if not authed:
            return b"-ERR not authenticated\r\n"
        if cmd == b"STAT":
            total = sum(len(m) for m in self.messages)
            return b"+OK %d %d\r\n" % (len(self.messages), total)
        if cmd == b"LIST":
            return b"+OK\r\n" + b"".join(b"%d %d\r\n" % (i + 1, len(m))
                                         for i, m in enumerate(self.messages)) + b".\r\n"
        if cmd == b"RETR":
            m = self.messages[int(arg) - 1]
            body = b"".join((b"." + l if l.startswith(b".") else l)
                            for l in m.splitlines(keepends=True))
            return b"+OK %d octets\r\n" % len(m) + body + b".\r\n"
        if cmd == b"QUIT":
            return b"+OK quit ok\r\n"
        if cmd == b"NOOP":
            return b"+OK\r\n"
        return b"+OK " + cmd + b"\r\n"


_LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r?\n\Z")


def _imap_login_ok(tag, command):
    """The fake IMAP backend's answer to LOGIN (imap.md §18), by words in the command."""
    low = command.lower()
    if b"backendclose" in low:
        return None                                       # close without answering
    if b"backendno" in low:
        return tag + b" NO [AUTHENTICATIONFAILED] backend says no\r\n"
    if b"twountagged" in low:
        return b"* CAPABILITY IMAP4rev1\r\n* OK extra\r\n" + tag + b" OK login ok\r\n"
    if b"lowercaseok" in low:
        return tag + b" ok login ok\r\n"
    if b"wrongtag" in low:
        return b"x" + tag + b" OK login ok\r\n"
    if b"capability" in low:
        return b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK login ok\r\n"
    return tag + b" OK login ok\r\n"


class ImapBackend(ScriptedBackend):
    """Angie's fake IMAP backend (imap.md §18): greets ``* OK fake imap server ready``,
    answers a line ending in ``{n}`` with ``+ `` (``continuation``) and reads the literal
    (``{n+}``: no answer), replies ``<tag> OK login ok`` to LOGIN (after
    ``* CAPABILITY IMAP4rev1`` when the command contains "capability"),
    ``<tag> OK logout ok`` to LOGOUT (then closes), ``<tag> ERR unknown command`` to
    anything else.  SELECT, APPEND and FETCH <n> work on ``messages`` for relay tests.

    Misbehaviours: ``greeting`` (e.g. ``* BYE``, ``None`` to close at once, a line
    without CRLF), ``continuation`` (e.g. a bare ``+`` CRLF), and LOGIN commands
    containing the words of ``_imap_login_ok`` (backendclose, backendno, twountagged,
    lowercaseok, wrongtag).

    ``raw`` records what arrived between two answers (``a01 LOGIN {16}\r\n``,
    ``test@example.com {6}\r\n``, ``secret\r\n``), ``lines`` every complete command
    (literal data included) without its final CRLF."""

    def __init__(self, greeting=b"* OK fake imap server ready\r\n", continuation=b"+ \r\n",
                 messages=None):
        self.continuation = continuation
        self.messages = list(messages or [])
        super().__init__(greeting)

    def read_command(self, rfile, wfile) -> bytes | None:
        step = command = b""
        while True:
            line = rfile.readline()
            if not line:
                if step:
                    self.raw.append(step)
                return None
            step += line
            command += line
            m = _LITERAL.search(line)
            if not m:
                break
            if not m.group(2):
                self.raw.append(step)
                step = b""
                wfile.write(self.continuation)
                wfile.flush()
            size = int(m.group(1))
            data = rfile.read(size)
            step += data
            command += data
            if len(data) < size:
                if step:
                    self.raw.append(step)
                return None
        self.raw.append(step)
        command = command[:-2] if command.endswith(b"\r\n") else command[:-1]
        self.lines.append(command)
        return command

    def session(self, rfile, wfile):
        self.read_proxy_header(rfile)
        if self.greeting is None:
            return
        wfile.write(self.greeting)
        wfile.flush()
        while True:
            command = self.read_command(rfile, wfile)
            if command is None:
                return
            tag, _, rest = command.partition(b" ")
            word = rest.lstrip(b" ").split(b" ", 1)[0].upper()
            out = self.reply(tag, word, rest, command)
            if out is None:
                return
            wfile.write(out)
            wfile.flush()
            if word == b"LOGOUT":
                return

    def reply(self, tag, word, rest, command) -> bytes | None:
        if word == b"LOGIN":
            return _imap_login_ok(tag, command)
        if word == b"LOGOUT":
            return tag + b" OK logout ok\r\n"
        if word == b"SELECT":
            return b"* %d EXISTS\r\n" % len(self.messages) + tag + b" OK select ok\r\n"
        if word == b"APPEND":
            m = re.search(rb"\{(\d+)\+?\}\r?\n", command)
            self.messages.append(command[m.end():])
            return tag + b" OK append ok\r\n"
        if word == b"FETCH":
            n = rest.split()[1]
            msg = self.messages[int(n) - 1]
            return (b"* " + n + b" FETCH (BODY[] {%d}\r\n" % len(msg) + msg + b")\r\n"
                    + tag + b" OK fetch ok\r\n")
        return tag + b" ERR unknown command\r\n"


class SmtpBackend(ScriptedBackend):
    """Angie's fake SMTP backend (smtp.md §18): greets ``220 fake esmtp server ready``,
    answers ``250 hello ok`` (HELO/EHLO), ``220 xclient ok``, ``235 auth ok`` (AUTH),
    ``250 mail from ok`` / ``250 rcpt to ok`` (``500 rcpt to error`` for an address
    without ``@``), ``250 rset ok``, ``221 quit ok`` (then closes), ``211 <line>`` to
    XPROXY (the PROXY header it read).  DATA: ``354``, the message up to the dot line
    is kept in ``messages`` exactly as received (dot-stuffing included), ``250 data
    ok``.  ``replies`` maps a command word to a scripted reply (None: close)."""

    def __init__(self, greeting=b"220 fake esmtp server ready\r\n", replies=None):
        self.replies = dict(replies or {})
        self.messages: list = []
        super().__init__(greeting)

    def session(self, rfile, wfile):
        self.read_proxy_header(rfile)
        proxy_line = self.raw[-1] if self.proxy_protocol else b""
        if self.greeting is None:
            return
        wfile.write(self.greeting)
        wfile.flush()
        while True:
            line = rfile.readline()
            if not line:
                return
            self.raw.append(line)
            self.lines.append(line.rstrip(b"\r\n"))
            word = line.split(b" ", 1)[0].rstrip(b"\r\n").upper()
            if word in self.replies:
                out = self.replies[word]
            elif word in (b"HELO", b"EHLO"):
                out = b"250 hello ok\r\n"
            elif word == b"XCLIENT":
                out = b"220 xclient ok\r\n"
            elif word == b"AUTH":
                out = b"235 auth ok\r\n"
            elif word == b"MAIL":
                out = b"250 mail from ok\r\n"
            elif word == b"RCPT":
                out = b"250 rcpt to ok\r\n" if b"@" in line else b"500 rcpt to error\r\n"
            elif word == b"RSET":
                out = b"250 rset ok\r\n"
            elif word == b"XPROXY":
                out = b"211 " + proxy_line
            elif word == b"DATA":
                wfile.write(b"354 go ahead\r\n")
                wfile.flush()
                msg = bytearray()
                while True:
                    l = rfile.readline()
                    if not l or l == b".\r\n":
                        break
                    msg += l
                self.messages.append(bytes(msg))
                out = b"250 data ok\r\n"
            elif word == b"QUIT":
                wfile.write(b"221 quit ok\r\n")
                wfile.flush()
                return
            else:
                out = b"500 unknown command\r\n"
            if out is None:
                return
            wfile.write(out)
            wfile.flush()


# --- angie-mail ------------------------------------------------------------------------------

class ForegroundServer:
    """A server process in the foreground with an error log and a pid file in its own
    directory; the pid file appears once its sockets listen."""

    name = "server"
    log_path = pid_path = ""
    proc = None

    def wait_started(self, timeout: float = 15.0) -> None:
        deadline = time.time() + timeout
        while not os.path.exists(self.pid_path):
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: "
                                   f"{err.decode(errors='replace')}\n{self.log()}")
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.02)

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout: float = 5.0) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not in log:\n{self.log()}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe:
                    pipe.close()


class Proxy(ForegroundServer):
    """angie-mail on a generated configuration, in the foreground, single process."""

    name = "angie-mail"

    def __init__(self, tmpdir, mail_block: str, main: str = "", extra_args=(), env=None,
                 workers: bool = False):
        self.dir = str(tmpdir)
        self.log_path = os.path.join(self.dir, "error.log")
        self.pid_path = os.path.join(self.dir, "angie-mail.pid")
        self.conf = os.path.join(self.dir, "mail.conf")
        process = "" if workers else "master_process off;\n"
        if workers and os.geteuid() == 0:
            # workers of a root master run as nobody (nginx's default user): they reopen
            # the log files here on USR1, so these directories must let them through
            d = os.path.abspath(self.dir)
            while d not in ("/", tempfile.gettempdir()):
                os.chmod(d, os.stat(d).st_mode | 0o111)
                d = os.path.dirname(d)
        with open(self.conf, "w") as f:
            f.write(f"daemon off;\n{process}pid {self.pid_path};\n"
                    f"error_log {self.log_path} debug;\n{main}\nevents {{}}\n"
                    f"{mail_block}\n")
        self.args = [sys.executable, "-m", "angie_mail", "-c", self.conf, *extra_args]
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def start(self, wait: bool = True):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env)
        if wait:
            self.wait_started()
        return self


class Nginx(ForegroundServer):
    """Debian's nginx 1.22 with its mail module (the oracle, tests/oracle.py) in the
    foreground, single process, on a generated configuration."""

    name = "nginx"

    def __init__(self, tmpdir, mail_block: str):
        self.dir = str(tmpdir)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.log_path = os.path.join(self.dir, "error.log")
        self.pid_path = os.path.join(self.dir, "nginx.pid")
        with open(self.conf, "w") as f:
            f.write(f"load_module {MAIL_MODULE};\n"
                    f"daemon off;\nmaster_process off;\npid {self.pid_path};\n"
                    f"error_log {self.log_path} info;\nevents {{}}\n{mail_block}\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [NGINX, "-p", self.dir + "/", "-c", self.conf, "-e", self.log_path],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.wait_started()
        return self


class Client:
    """A raw line-based client, for exact wire checks."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                out, self.buf = self.buf, b""
                return out
            self.buf += chunk
        out, _, self.buf = self.buf.partition(b"\r\n")
        return out + b"\r\n"

    def read(self, n: int) -> bytes:
        """Exactly n bytes (fewer if the server closes first)."""
        out = bytearray(self.buf[:n])
        self.buf = self.buf[n:]
        while len(out) < n:
            chunk = self.sock.recv(min(1 << 20, n - len(out)))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        i = self.buf.find(marker)
        if i < 0:
            out, self.buf = self.buf, b""
            return out
        out, self.buf = self.buf[:i + len(marker)], self.buf[i + len(marker):]
        return out

    def closed(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection (after any pending data)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


# --- TLS clients -----------------------------------------------------------------------------------

def client_ctx(pki, cert=None, key=None, alpn=None, tls_max=None) -> ssl.SSLContext:
    """A client context trusting the test CA (certs.make), with a client certificate."""
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if tls_max:
        ctx.maximum_version = tls_max
    return ctx


def tls_lines(pki, extra=()) -> list:
    """The server certificate directives."""
    return [f"ssl_certificate {pki['server_rsa_crt']};",
            f"ssl_certificate_key {pki['server_rsa_key']};", *extra]


def tls_session(pki, port, cert=None, key=None):
    """(socket, first line) of an implicit-TLS connection; the line is what arrived
    before a close or a TLS error."""
    s = client_ctx(pki, cert, key).wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=5))
    data = b""
    try:
        while not data.endswith(b"\r\n"):
            chunk = s.recv(200)
            if not chunk:
                break
            data += chunk
    except (ssl.SSLError, ConnectionResetError):
        pass
    return s, data


def wait_exited(pids, timeout: float = 10.0) -> None:
    """Until the processes ``pids`` are gone (old workers after a reload)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, f"process {pid} did not exit"
            time.sleep(0.02)


def one_server(auth_url: str, port: int, protocol: str, lines=(), ssl: bool = False) -> str:
    """A mail{} with one server: ``listen 127.0.0.1:port [ssl]``, ``protocol``, then
    ``lines``."""
    body = "".join(f"        {line}\n" for line in lines)
    return (f"mail {{\n    auth_http {auth_url};\n    server {{\n"
            f"        listen 127.0.0.1:{port}{' ssl' if ssl else ''};\n"
            f"        protocol {protocol};\n{body}    }}\n}}\n")


def side_by_side(tmp_path, block_for, session, wait_for: str, pattern) -> dict:
    """Run ``session(port)`` against the real nginx 1.22 (tests/oracle.py) and against
    angie-mail, each serving ``block_for(port)``; once the log holds ``wait_for`` the
    server is stopped, so its log is complete.  {"nginx": ..., "angie-mail": ...}: what
    ``pattern`` finds in each log."""
    out = {}
    for name, cls in (("nginx", Nginx), ("angie-mail", Proxy)):
        port = free_port()
        d = tmp_path / name
        d.mkdir()
        server = cls(d, block_for(port)).start()
        try:
            session(port)
            server.wait_log(wait_for)
        finally:
            server.stop()
        out[name] = pattern.findall(server.log())
    return out


def reset_close(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
