"""The I/O driver of one mail client connection, whatever its protocol.

It runs the pieces in order (pop3.md §1, imap.md §1), the same for every protocol:
PROXY header, implicit TLS, greeting, the protocol's sans-IO pre-auth machine,
auth_http, the protocol's backend login machine and finally the relay
(angie_mail.proxy.relay); angie_mail.mail.protocol says what a protocol provides.  Timeouts are
Angie's: ``timeout`` is one pre-auth deadline (not refreshed by commands, suspended
during auth_http, re-armed after a failure reply) and bounds the backend login;
``proxy_timeout`` is the idle timer of the relay.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import struct
import time

from ..log import RANK, LogContext
from ..mail.protocol import (AUTH, CLOSE, CONT, ERROR, LOGGED_IN, NEED, REFUSED, STARTTLS,
                             TOO_LONG)
from ..mail.upstream import StartTlsLogin
from ..protocols import PROTOCOLS
from . import auth_http
from . import events as ev
from . import guard
from . import metrics as mx
from .relay import SPLICE_AFTER, Backend

PREAUTH, AUTHENTICATING, LOGIN, RELAY, CLOSED, HANDSHAKE, RESOLVING, DELAY = range(8)
_MAX_PENDING = 64 * 1024          # pipelined pre-auth bytes kept before reading pauses
INFO = RANK["info"]
ETIMEDOUT = 110          # a timer's expiry is logged with it, as nginx does
# the errors nginx's ngx_connection_error() logs at the connection's own level (info for
# a client, error for the backend) rather than as an alert
_PEER_ERRNOS = frozenset((errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ETIMEDOUT,
                          errno.ECONNREFUSED, errno.ENETDOWN, errno.ENETUNREACH,
                          errno.EHOSTDOWN, errno.EHOSTUNREACH))


def _addr_text(addr) -> str:
    if isinstance(addr, tuple):
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return "unix:" + (addr or "")


def pre_context(action: str, peer_text: str, addr_text: str) -> LogContext:
    """The log context of a connection before its session starts."""
    return LogContext(action, (("client", peer_text), ("server", addr_text)))


def _nodelay(sock) -> None:
    """TCP_NODELAY for the relay: what either side sends is forwarded at once."""
    if sock is not None and sock.family != socket.AF_UNIX:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class ClientConnection(asyncio.Protocol):
    """asyncio protocol for one accepted client socket."""

    __slots__ = ("rt", "lsock", "conf", "pre", "transport", "phase", "session", "timer", "proto",
                 "backend", "login", "upstream", "action", "reading", "tls", "tls_info",
                 "proxy_header", "task", "exchange", "last_activity", "relay_timer",
                 "relay_timeout", "conn_no", "family", "peer", "_local", "server", "errlog",
                 "client_ip", "client_port", "auth_request_bytes", "immediate_waits",
                 "write_paused", "outcome", "reason", "bytes_in", "bytes_out", "started",
                 "attempts", "events", "counted", "auth_started", "guarded",
                 "gaddr", "attempt")

    def __init__(self, rt, lsock, conf=None, pre=None):
        self.rt = rt
        self.lsock = lsock
        self.conf = conf               # AddrConf, when the accept path chose it already
        self.pre = pre                 # handshake.PreSession: PROXY header / TLS done
        self.transport = None
        self.phase = PREAUTH
        self.session = None
        self.timer = None
        self.backend = None
        self.login = b""
        self.upstream = ""
        self.action = "sending client greeting line"
        self.write_paused = False      # the client socket's write buffer is above its mark
        self.reading = True
        self.tls = False
        self.tls_info = None
        self.proxy_header = None       # proxy_protocol.Header, when one was read
        self.task = None
        self.exchange = None           # the auth_http request in flight
        self.last_activity = 0.0
        self.relay_timer = None
        self._local = None
        # for the login events log (login_events): what became of the session
        self.outcome = ev.CLOSED
        self.reason = b""
        self.bytes_in = 0              # relayed client -> backend
        self.bytes_out = 0             # relayed backend -> client
        self.attempts = 0
        self.events = None
        self.counted = None            # its metrics (metrics_listen), while it counts
        self.guarded = None            # [(zone table, key)] taken by limit_conn
        self.gaddr = None              # the address auth_throttle counts
        self.attempt = None            # the throttle's view of it (guard.check)

    # --- logging ------------------------------------------------------------------------

    def context(self) -> LogContext:
        props = [("client", self.peer_text), ("server", self.conf.addr_text)]
        if self.tls and not self.conf.listen.ssl:       # TLS by STLS
            props.append(("starttls", "true"))
        if self.login:
            props.append(("login", self.login.decode("utf-8", "backslashreplace")))
        if self.upstream:
            props.append(("upstream", self.upstream))
        return LogContext(self.action, tuple(props))

    def log(self, level: str, message: str, err: int = 0) -> None:
        log = self.errlog
        if RANK[level] <= log.rank:
            log.log(level, message, self.conn_no, self.context(), err,
                    self.server.error_log_user_tag)

    def session_log(self, level: str, message: str) -> None:
        """Log callback of the protocol machine (it masks secrets itself).  The
        machine's login is in the line's context, even one its SASL exchange learnt
        from the payload it is refusing (CRAM-MD5): nginx's s->login is set before the
        digest is checked, so this line and the session's later ones carry it (for the
        log only: the next attempt starts with empty credentials)."""
        s = self.session
        named = s.sasl.named
        if named is not None:
            s.sasl.named = None
            s.login = named
        if s.login:
            self.login = s.login
        self.log(level, message)

    # --- connection start ----------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        rt = self.rt
        pre = self.pre
        peer = self.peer = transport.get_extra_info("peername")
        self.family = self.lsock.listen.addr.family
        if self.conf is None:
            # the local address is needed only where several addresses share a socket
            self.conf = self.lsock.select(self.local[0] if self.lsock.addrs else None)
        self.server = srv = self.conf.server
        self.proto = PROTOCOLS[srv.protocol]
        self.errlog = rt.log_for(srv)
        if srv.login_events:
            self.events = ev.writer(srv.login_events)
            self.started = time.time()
        if mx.M is not None:
            self.counted = mx.M.of(srv.protocol, self.conf.addr_text)
            self.counted.current.inc()
        # a unix-socket client is "unix:" for auth_http, as nginx's addr_text
        if isinstance(peer, tuple):
            self.client_ip, self.client_port = peer[0], peer[1]
        else:
            self.client_ip, self.client_port = "unix:", 0
        if pre is None and rt.over_limit():       # (a handshake was admitted at accept)
            self.phase = CLOSED
            transport.abort()
            return
        rt.connections.add(self)
        if pre is None:
            self.conn_no = rt.next_connection()
            if self.errlog.rank >= INFO:
                self.errlog.log("info", "client connected", self.conn_no,
                                pre_context("initializing session", self.peer_text,
                                            self.conf.addr_text),
                                tags=srv.error_log_user_tag)
        else:
            self.conn_no = pre.conn_no
            pre.apply(self)
        self.start_session()

    @property
    def peer_text(self) -> str:
        return _addr_text(self.peer)

    @property
    def local(self):
        """Our address of the client connection (getsockname, fetched when needed)."""
        if self._local is None:
            self._local = self.transport.get_extra_info("sockname")
        return self._local

    def start_session(self):
        srv = self.server
        proto = self.proto
        self.session = s = proto.session(srv, tls=self.tls, log=self.session_log)
        if proto.client_host:
            self.phase = RESOLVING
            ip = self.client_ip
            unix = ip == "unix:"
            s.client_addr = ip.encode() if ip else b""
            s.client_ipv6 = not unix and ":" in ip
            if srv.resolver is None:
                s.host = b"[UNAVAILABLE]"
            elif unix:
                s.host = b"[TEMPUNAVAIL]"
            else:
                # the client is not read meanwhile (smtp.md §2), nor is the time limited
                # by ``timeout``: the pre-auth deadline starts at the greeting
                self.pause()
                self.rt.resolver_for(srv).client_host(
                    ip, srv.resolver_timeout_ms / 1000.0, self.session_log,
                    self._set_action, self._resolved)
                return
        self.greet()

    def _set_action(self, action: str) -> None:
        self.action = action

    def _resolved(self, host: str) -> None:
        if self.phase == CLOSED:
            return
        self.session.host = host.encode("ascii")
        self.greet()

    def greet(self):
        srv = self.server
        delay = self.proto.greeting_delay(srv) if self.proto.greeting_delay else 0
        if delay:
            # smtp_greeting_delay: a client that talks first is rejected (smtp.md §3)
            self.phase = DELAY
            self.action = "in delay pipelining state"
            if self.session.pending():
                return self.reject_before_greeting()
            self.timer = self.rt.timers.call_later(delay / 1000.0, self.send_greeting)
            self.resume()
            return
        self.send_greeting()

    def reject_before_greeting(self):
        self.outcome = ev.REJECTED
        self.cancel_timer()
        self.transport.write(self.session.rejected_before_greeting())
        self.close_after_write()

    def send_greeting(self):
        self.timer = None
        if self.phase == CLOSED:
            return
        self.phase = PREAUTH
        self.transport.write(self.session.greeting())
        self.action = "in auth state"
        self.arm_timer(self.server.timeout_ms)
        if not self.reading:
            self.resume()
        if self.session.pending():
            self.process()

    # --- timers ---------------------------------------------------------------------------

    def arm_timer(self, ms: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.rt.timers.call_later(ms / 1000.0, self.on_timeout)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def on_timeout(self):
        self.timer = None
        if self.phase in (PREAUTH, HANDSHAKE):
            self.log("info", "client timed out", ETIMEDOUT)
            self.outcome = ev.TIMED_OUT
            self.abort()
        elif self.phase == AUTHENTICATING and self.task is not None:
            pass

    # --- pre-auth ---------------------------------------------------------------------------

    def data_received(self, data):
        phase = self.phase
        if phase == RELAY:
            self.backend.write(data)
            self.relayed_in(len(data))
            if self.bytes_in > SPLICE_AFTER and self.backend.can_splice_in():
                # an upload: the rest goes by splice (relay.py)
                self.backend.splice_in()
            return
        if phase == PREAUTH:
            self.session.feed(data)
            self.process()
        elif phase == DELAY:
            self.session.feed(data)
            self.reject_before_greeting()
        elif phase in (AUTHENTICATING, LOGIN, RESOLVING):
            # arrived before reading was paused: kept for the backend (pop3.md §8)
            self.session.feed(data)

    def relayed_in(self, n: int) -> None:
        self.bytes_in += n
        self.last_activity = self.rt.loop.time()

    def process(self):
        s = self.session
        write = self.transport.write
        while True:
            if self.write_paused:
                # replies are not being read: answer nothing more until they are
                if self.reading:
                    self.transport.pause_reading()
                    self.reading = False
                return
            code, out = s.step()
            if code == NEED:
                if s.pending() > _MAX_PENDING and self.reading:
                    self.transport.pause_reading()
                    self.reading = False
                return
            if out:
                write(out)
            if code == CONT:
                if s.login:
                    self.login = s.login
                continue
            if code == CLOSE:
                if s.reset:
                    self.reset_on_close()
                self.close_after_write()
                return
            if code == STARTTLS:
                # bytes after STLS / STARTTLS were dropped by the machine; what the client sends
                # next (its TLS ClientHello) must stay in the socket for the handshake
                self.phase = HANDSHAKE
                if self.reading:
                    self.transport.pause_reading()
                    self.reading = False
                self.task = self.rt.loop.create_task(self.starttls())
                return
            if code == AUTH:
                self.login = s.login
                self.begin_auth()
                return

    async def starttls(self):
        from . import handshake
        try:
            ok = await handshake.starttls(self)
        except Exception as e:
            self.log("info", f"STARTTLS failed: {e.__class__.__name__}")
            ok = False
        if ok is None:                 # refused client certificate: reply sent, closing
            return
        if not ok:
            self.abort()
            return
        self.session.tls_started()
        self.phase = PREAUTH
        self.action = "in auth state"
        self.reading = True
        ok.start_app(self, call_connection_made=False)   # delivers what already arrived
        if self.phase == PREAUTH:
            self.process()      # start_app may have gone on to auth_http already

    # --- back-pressure in the relay ----------------------------------------------------

    def pause_writing(self):
        """The client does not read fast enough: stop reading the backend (relay), or
        stop answering pipelined commands (pre-auth).  Remembered in any phase: the
        transport says it once, and the relay may start while it holds."""
        self.write_paused = True
        if self.phase == RELAY and self.backend is not None:
            self.backend.pause_reading()

    def resume_writing(self):
        self.write_paused = False
        if self.phase == RELAY and self.backend is not None:
            self.last_activity = self.rt.loop.time()
            self.backend.resume_reading()
        elif self.phase == PREAUTH:
            self.resume()
            self.process()

    def pause_reading_for_backend(self):
        """The backend does not read fast enough: stop reading the client."""
        if self.reading and self.phase == RELAY:
            self.reading = False
            self.transport.pause_reading()

    def resume_reading_for_backend(self):
        if self.phase == RELAY:
            self.resume()

    # --- authentication ---------------------------------------------------------------------

    def begin_auth(self):
        self.phase = AUTHENTICATING
        self.cancel_timer()
        self.pause()
        self.action = "in http auth state"
        self.attempts = self.session.attempt
        t = self.server.auth_throttle
        if t is not None and self.session.method != "none" and self._throttled(t):
            return
        self.ask_auth()

    def ask_auth(self):
        self.timer = None
        if self.phase == CLOSED:
            return
        srv = self.server
        self.auth_request_bytes = auth_http.build_request(srv.auth_http, self.auth_request(),
                                                          srv.auth_http_header,
                                                          srv.auth_http_keepalive > 0)
        self.immediate_waits = 0
        self.start_auth_request()

    # --- brute-force defence (angie-mail: auth_throttle, limit_conn; docs/abuse.md) ----------

    def _guard_addr(self) -> bytes:
        """The address a throttle counts: an IPv6 client by its /64 (one host holds
        a whole /64), an IPv4 one as it is (also when it came as ::ffff:a.b.c.d)."""
        a = self.gaddr
        if a is None:
            ip = self.client_ip or ""
            if ip.startswith("::ffff:") and "." in ip:
                ip = ip[7:]                 # an IPv4 client of an ipv6only=off socket
            a = ip.encode()
            if ":" in ip:
                import ipaddress
                try:
                    a = str(ipaddress.IPv6Network(ip + "/64", strict=False)).encode()
                except ValueError:
                    pass
            self.gaddr = a
        return a

    def _cert_key(self, t) -> bytes:
        info = self.tls_info
        if not t.trust_certificate or info is None or info.cert is None:
            return b""
        from cryptography.hazmat.primitives import hashes
        return info.cert.fingerprint(hashes.SHA256()).hex().encode()

    def _guard_log(self, level: str, message: str, mask: bool) -> None:
        """A throttle line; with auth_throttle_mask_login the login of its context is
        cut to its first character."""
        login = self.login
        if mask and login:
            self.login = login[:1] + b"***"
        try:
            self.log(level, message)
        finally:
            self.login = login

    def _throttled(self, t) -> bool:
        """auth_throttle: True when the attempt waits (and is asked later) or was
        refused without asking the auth server."""
        table = guard.ZONES.get(t.zone)
        if table is None:
            return False
        table = table.table
        cert = self._cert_key(t) if t.trust_certificate else b""
        v, self.attempt = guard.check(table, t, self._guard_addr(), self.session.login, cert,
                                      int(time.time()))
        if v is None:
            return False
        a, lg, pr = v.counts
        counts = ", ".join(f"{name} {n}/{limit[0]}" for name, n, limit in
                           (("addr", a, t.addr), ("login", lg, t.login), ("pair", pr, t.pair))
                           if limit is not None and n is not None)
        trusted = f", trusted {v.trusted}" if v.trusted else ""
        if self.counted:
            self.counted.throttled("refused" if v.decision == guard.REFUSE else "delayed")
        if v.decision == guard.REFUSE:
            self._guard_log(t.log_level, f'login throttled by zone "{t.zone}": refused, '
                            f'{v.scope} limit reached (failures: {counts}{trusted})',
                            t.mask_login)
            self.outcome = ev.REJECTED
            self.reason = b"too many failed logins"
            self.temp_failure(b"Too many failed logins, try again later")
            return True
        self._guard_log(t.log_level, f'login throttled by zone "{t.zone}": delayed '
                        f'{v.delay:g}s (failures: {counts}{trusted})', t.mask_login)
        self.timer = self.rt.timers.call_later(v.delay, self.ask_auth)
        return True

    def temp_failure(self, text: bytes) -> None:
        """A temporary refusal in the protocol's words ([SYS/TEMP], [UNAVAILABLE],
        421), and the connection closes."""
        prefix, code = self.proto.temp_failure
        _, out = self.session.auth_failed(prefix + text, False, None, code)
        self.transport.write(out)
        self.close_after_write()

    def _auth_result(self, t, ok: bool) -> None:
        """Count the auth server's answer for auth_throttle."""
        attempt = self.attempt
        z = guard.ZONES.get(t.zone)
        if attempt is None or z is None:
            return
        self.attempt = None
        if ok:
            cert = self._cert_key(t) if t.trust_certificate else b""
            guard.succeeded(z.table, t, attempt[0], attempt[1], cert, int(time.time()))
        else:
            guard.failed(z.table, t, attempt, int(time.time()))

    def _conn_key(self, key: str, headers, login: bytes) -> bytes:
        if key == "$remote_addr":
            return (self.client_ip or "").encode()
        if key == "$remote_user":
            return login
        want = key[len("$auth_http_"):].replace("_", "-").encode()
        for name, value in headers:
            if name == want:
                return value
        return b""

    def _limit_conns(self, srv, headers, login: bytes) -> bool:
        """limit_conn, after authentication (freenginx): False when a limit refused
        the session (reply sent, closing)."""
        now = guard.now()
        taken = []
        level = srv.limit_conn_log_level
        for lc in srv.limit_conn:
            table = guard.zone(lc.zone)
            key = self._conn_key(lc.key, headers, login)
            if table is None or not key:
                continue                       # an empty key is not counted
            with table:
                n = table.add_conn(key, lc.number, now, srv.limit_conn_dry_run)
            if n < 0:
                continue
            if n >= lc.number:
                if self.counted:
                    self.counted.throttled("connections")
                if srv.limit_conn_dry_run:
                    self.log(level, f'limiting connections, dry run, by zone "{lc.zone}"')
                    taken.append((table, key))
                    continue
                self.log(level, f'limiting connections by zone "{lc.zone}"')
                self.guarded = taken
                self._release_conns()
                self.outcome = ev.REJECTED
                self.reason = b"too many connections"
                self.temp_failure(b"Too many connections")
                return False
            taken.append((table, key))
        self.guarded = taken
        return True

    def _release_conns(self) -> None:
        taken = self.guarded
        self.guarded = None
        now = guard.now()
        for table, key in taken:
            with table:
                table.release_conn(key, now)

    def auth_request(self) -> auth_http.AuthRequest:
        s = self.session
        extra = []
        ph = self.proxy_header
        if ph is not None and ph.src_addr is not None:
            extra += [(b"Proxy-Protocol-Addr", ph.src_addr.encode()),
                      (b"Proxy-Protocol-Port", str(ph.src_port).encode()),
                      (b"Proxy-Protocol-Server-Addr", ph.dst_addr.encode()),
                      (b"Proxy-Protocol-Server-Port", str(ph.dst_port).encode())]
        ssl = self.tls_info.auth_headers(self.server) if self.tls_info is not None else ()
        host, smtp = self.proto.auth_rows(s) if self.proto.auth_rows else (None, None)
        return auth_http.AuthRequest(s.method, s.login, s.passwd, s.salt, self.proto.name,
                                     s.attempt, self.client_ip or "", extra, host, smtp, ssl)

    def start_auth_request(self):
        """Send the attempt's request (again, for a WAIT): on a fresh connection, or
        on an idle one with auth_http_keepalive."""
        srv = self.server
        pool = self.rt.auth_pool(srv) if srv.auth_http_keepalive else None
        rt = self.rt
        if pool is None or not pool.idle:
            if rt.over_limit():                 # no connection for the auth request
                return self.internal_error()
        rt.auth_requests += 1
        if self.counted:
            self.auth_started = mx.now()
        self.exchange = auth_http.AuthExchange(self.rt.timers, self.rt.poller,
                                               self.auth_request_bytes,
                                               self.on_auth_response, pool)
        self.exchange.start(srv.auth_http.addr, srv.auth_http_timeout_ms / 1000.0)

    def on_auth_response(self, headers, error):
        self._auth_over()
        m = self.counted
        if m:
            m.auth_seconds.observe(mx.now() - self.auth_started)
            if error is not None:
                m.auth_failures.inc()
        if self.phase == CLOSED:
            return
        srv = self.server
        s = self.session
        if error is not None:
            peer_name = srv.auth_http.addr.text
            if isinstance(error, auth_http.ResponseError):
                if str(error) == "closed":
                    pass        # Angie's read handler says nothing: the reply tells
                else:
                    self.log("error", f"auth http server {peer_name} {error}")
            elif isinstance(error, TimeoutError):
                self.log("error", f"auth http server {peer_name} timed out", ETIMEDOUT)
            else:
                self.log("error", f"connect() failed ({error.errno}: {error.strerror})")
            return self.internal_error()
        r = auth_http.interpret(headers, s.method)
        t = srv.auth_throttle
        if t is not None and s.method != "none" and (r.error is not None or not r.retry):
            self._auth_result(t, r.error is None)
        if r.error is not None:
            self.outcome = ev.AUTH_FAILED
            self.reason = r.error
            self.log("info", 'client login failed: "%s"'
                     % r.error.decode("utf-8", "backslashreplace"))
            if r.sleep:
                self.timer = self.rt.timers.call_later(r.sleep, self.send_auth_error, r)
            else:
                self.send_auth_error(r)
            return
        if r.retry:
            # Auth-Status: WAIT.  Unlike Angie, a later OK is not taken for WAIT again,
            # and WAITs without Auth-Wait are paced after a few (docs/pop3.md).
            delay = r.sleep
            if not delay:
                self.immediate_waits += 1
                delay = 0 if self.immediate_waits <= 3 else 1
            self.timer = self.rt.timers.call_later(delay, self.start_auth_request)
            return
        try:
            family, ip, port, name = auth_http.check_backend(
                r, s.method in self.proto.password_methods or
                not self.proto.requires_password)
        except auth_http.ResponseError as e:
            self.log("error", f"auth http server {srv.auth_http.addr.text} {e}")
            return self.internal_error()
        login = r.user if r.user is not None else s.login
        # None: no password the backend could use (CRAM-MD5, EXTERNAL without Auth-Pass)
        passwd = r.passwd if r.passwd is not None else (
            s.passwd if s.method in self.proto.password_methods else None)
        if r.user is not None:
            self.login = r.user
        s.passwd = b""
        if srv.limit_conn and not self._limit_conns(srv, headers, login):
            return
        self.connect_backend(family, ip, port, name, login, passwd)

    def _auth_over(self) -> None:
        if self.exchange is not None:
            self.exchange = None
            self.rt.auth_requests -= 1

    def send_auth_error(self, r):
        """The failure reply, after any Auth-Wait delay (auth_http.md §6)."""
        self.timer = None
        if self.phase == CLOSED:
            return
        code, out = self.session.auth_failed(r.error.strip(b" "), r.wait, r.error_sasl,
                                             r.error_code)
        self.transport.write(out)
        if code == CLOSE:
            self.close_after_write()
            return
        self.phase = PREAUTH
        self.action = "in auth state"
        self.arm_timer(self.server.timeout_ms)
        self.resume()
        self.process()

    # --- backend ----------------------------------------------------------------------------

    def connect_backend(self, family, ip, port, name, login, passwd):
        srv = self.server
        if self.rt.over_limit():                # no connection for the backend
            return self.internal_error()
        self.phase = LOGIN
        self.upstream = name
        self.action = "connecting to upstream"
        machine = self.proto.backend_login(self.session, login, passwd, srv)
        if srv.proxy_ssl is not None and srv.proxy_ssl.mode == "starttls":
            machine = StartTlsLogin(machine, self.proto.backend_starttls(srv),
                                    srv.proxy_buffer)
        header = self.outbound_proxy_header() if srv.proxy_protocol else None
        self.backend = Backend(self, machine, header)
        self.timer = self.rt.timers.call_later(srv.timeout_ms / 1000.0, self.on_backend_timeout)
        self.backend.connect(family, ip, port)

    def on_backend_timeout(self):
        self.timer = None
        if self.phase != LOGIN:
            return
        self.log("info", "upstream timed out", ETIMEDOUT)
        if self.counted:
            self.counted.backend_failures.inc()
        self.internal_error()

    def backend_failed(self, error: OSError):
        if self.phase != LOGIN:
            return
        if self.counted:
            self.counted.backend_failures.inc()
        if error.errno:
            self.action = "connecting to upstream"
            self.log("error", f"connect() failed ({error.errno}: {error.strerror})")
        else:
            self.log("error", error.strerror)
        self.internal_error()

    def backend_tls_failed(self, message: str, action: str = "SSL handshaking to upstream"):
        """TLS with the backend failed (proxy_ssl): the certificate did not verify, the
        name did not match, the backend spoke no TLS or refused ours."""
        if self.phase != LOGIN:
            return
        if self.counted:
            self.counted.backend_failures.inc()
        self.outcome = ev.ERROR
        self.action = action
        self.log("error", message)
        self.internal_error()

    def backend_login_done(self, result, data: bytes):
        if self.phase != LOGIN:
            return
        srv = self.server
        self.cancel_timer()
        if result == LOGGED_IN:
            self.start_relay(data)
            return
        self.outcome = ev.ERROR
        if self.counted:
            self.counted.backend_failures.inc()
        if result == ERROR:
            self.action = self.backend.login.action
            self.log("error", data.decode("utf-8", "backslashreplace"))
        elif result == TOO_LONG:
            # Angie prints the buffer as a C string: without its last byte (the room of
            # the terminating NUL) and up to the first NUL
            self.log("error", 'upstream sent too long response line: "%s"'
                     % _c_string(data[:-1]).decode("utf-8", "backslashreplace"))
        elif result == REFUSED:
            text = self.backend.login.text.decode("utf-8", "backslashreplace")
            if srv.proxy_pass_error_message:
                self.log("info", f'upstream sent invalid response: "{text}"')
                self.transport.write(data)
                self.close_after_write()
                return
            text = _c_string(self.backend.login.text).decode("utf-8", "backslashreplace")
            self.log("error", f'upstream sent invalid response: "{text}"')
        self.internal_error()

    def outbound_proxy_header(self) -> bytes:
        from .proxy_protocol import outbound_header, outbound_header_v2
        if self.server.proxy_protocol == 2:
            return outbound_header_v2(self)
        return outbound_header(self)

    def start_relay(self, pass_reply: bytes):
        srv = self.server
        backend = self.backend
        self.phase = RELAY
        self.outcome = ev.LOGGED_IN
        self.action = ""
        self.log("info", "client logged in")
        self.action = "proxying"
        _nodelay(self.transport.get_extra_info("socket"))
        self.transport.write(pass_reply)
        rest = backend.login.pending()
        if rest:
            self.transport.write(rest)
            self.bytes_out += len(rest)
        pending = self.session.leftover()
        if pending:
            backend.write(pending)
            self.bytes_in += len(pending)
        self.session = _Done
        backend.start_relay()
        if self.write_paused:
            backend.pause_reading()
        self.last_activity = self.rt.loop.time()
        self.relay_timeout = srv.proxy_timeout_ms / 1000.0
        self.relay_timer = self.rt.timers.call_later(self.relay_timeout,
                                                     self.on_relay_timeout)
        self.resume()

    def on_relay_timeout(self):
        if self.phase != RELAY:
            return
        idle = self.rt.loop.time() - self.last_activity
        if idle < self.relay_timeout:
            self.relay_timer = self.rt.timers.call_later(self.relay_timeout - idle,
                                                         self.on_relay_timeout)
            return
        self.log("info", "client timed out", ETIMEDOUT)
        self.end_relay(False)

    def end_relay(self, done: bool = True):
        """Both sides are done: close them (pending writes are flushed first).  The
        "proxied session done" line is Angie's for a relay that ended by an end of
        input (or a failed read), not for a timeout or a failed send (``done``)."""
        if self.phase == CLOSED:
            return
        if done:
            self.action = ""                # Angie logs this line without its action
            self.log("info", "proxied session done")
        self.action = "proxying"
        self.phase = CLOSED
        if self.relay_timer is not None:
            self.relay_timer.cancel()
        if self.backend is not None:
            self.backend.close()
        self.transport.close()
        self.rt.connections.discard(self)
        self.finished()

    # --- closing ------------------------------------------------------------------------------

    def pause(self):
        if self.reading:
            self.transport.pause_reading()
            self.reading = False

    def resume(self):
        if not self.reading and self.phase != CLOSED:
            self.reading = True
            self.transport.resume_reading()

    def internal_error(self):
        if self.phase == CLOSED:
            return
        self.outcome = ev.ERROR
        self.transport.write(self.proto.internal_error)
        self.close_after_write()

    def reset_on_close(self):
        """Make the close a reset (SO_LINGER 0), as closing with unread input does."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None and self.transport.get_extra_info("ssl_object") is None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            except OSError:
                pass

    def close_after_write(self):
        """Close once everything written so far is sent (transport.close flushes)."""
        self._close(abort=False)

    def abort(self):
        """Close now, dropping anything not yet sent."""
        self._close(abort=True)

    def _close(self, abort: bool):
        if self.phase == CLOSED:
            return
        self.phase = CLOSED
        self.cancel_timer()
        if self.exchange is not None:
            self.exchange.cancel()
            self._auth_over()
        if self.backend is not None:
            self.backend.close()
        if self.transport is not None:
            self.transport.abort() if abort else self.transport.close()
        self.rt.connections.discard(self)
        self.finished()

    def finished(self) -> None:
        """The session is over: its line in the login events log and its metrics, once."""
        events = self.events
        if events is not None:
            self.events = None
            events.write_raw("info", ev.record(self, time.time()))
        if self.guarded:
            self._release_conns()
        m = self.counted
        if m:
            self.counted = None
            m.current.dec()
            m.ended(self.outcome)
            if self.bytes_in:
                m.bytes_in.inc(self.bytes_in)
            if self.bytes_out:
                m.bytes_out.inc(self.bytes_out)

    def eof_received(self):
        if self.phase == RELAY:
            self.end_relay()
        return False

    def io_failed(self, e: OSError, call: str, upstream: bool, action: str = "") -> None:
        """A socket error, logged as nginx's ngx_connection_error() logs it:
        ``recv() failed (104: Connection reset by peer) while <action>`` (TLS errors
        are told by the TLS layer, and an error without an errno is not a socket's)."""
        code = getattr(e, "errno", None)
        if not code or isinstance(e, ssl.SSLError) or self.phase == CLOSED:
            return
        if action:
            self.action = action
        level = ("error" if upstream else "info") if code in _PEER_ERRNOS else "alert"
        self.log(level, f"{call}() failed", code)

    def connection_lost(self, exc):
        call = getattr(exc, "failed_call", None)
        if call is not None and self.phase != CLOSED:
            reading = call == "recv"
            if self.tls:
                call = "SSL_read" if reading else "SSL_write"
            self.io_failed(exc, call, False, "" if self.phase != RELAY else
                           "proxying and reading from client" if reading
                           else "proxying and sending to client")
        if self.phase == RELAY:
            self.end_relay(call is None or call in ("recv", "SSL_read"))
        elif self.phase != CLOSED:
            self.phase = CLOSED
            self.cancel_timer()
            if self.backend is not None:
                self.backend.close()
            self.finished()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.exchange is not None:
            self.exchange.cancel()
            self._auth_over()
        self.rt.connections.discard(self)
        # the machine's log is a method of this connection and the backend refers to it
        # too: let both go so that the connection is freed by reference counting, not
        # left for the cyclic garbage collector
        self.session = _Done
        self.backend = None

    # --- graceful shutdown ---------------------------------------------------------------------

    def shutdown(self):
        """worker_shutdown_timeout expired: close now."""
        self.log("info", "shutdown timeout")
        self.abort()


def _c_string(data: bytes) -> bytes:
    """What a %s of these bytes prints in nginx: up to the first NUL."""
    nul = data.find(b"\0")
    return data if nul < 0 else data[:nul]


class _DoneSession:
    """Placeholder once the pre-auth machine is finished (relay phase)."""
    def feed(self, data):
        pass

    def pending(self) -> int:
        return 0


_Done = _DoneSession()
