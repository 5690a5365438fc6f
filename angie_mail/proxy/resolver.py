"""The client host name lookup of SMTP sessions, on the event loop (smtp.md §2).

One ``Resolver`` per ``resolver`` directive (servers inheriting the mail-level one
share it, and so its cache).  It speaks DNS over UDP to the configured servers as
nginx's resolver does: each lookup starts at the next server in turn, an unanswered
query is sent again every 5 s to the next server until the lookup's deadline, A and
AAAA go back to back to the same server, a truncated A/AAAA answer is asked again
over TCP, a CNAME-only answer is followed (50 levels), answers are cached for their
TTL (or ``valid=``), errors are not, and identical lookups in flight share their
queries while each waiter keeps its own deadline.  Queries and answers are built and
read by angie_mail.mail.dns.

``client_host(ip, timeout, log, action, done)`` is what a session uses: it yields
the ``Client-Host`` / ``XCLIENT NAME=`` value, the PTR name when the forward lookup
confirms it, else ``[UNAVAILABLE]`` or ``[TEMPUNAVAIL]``, and logs what nginx logs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import struct

from ..mail import dns as codec

RESEND = 5.0                       # seconds between sends of an unanswered query
MAX_CNAME = 50
UNAVAILABLE = "[UNAVAILABLE]"
TEMPUNAVAIL = "[TEMPUNAVAIL]"


class _Lookup:
    """One name and its question types, in flight; several waiters may share it."""

    __slots__ = ("key", "name", "types", "ids", "answers", "server", "waiters", "timer",
                 "tcp")

    def __init__(self, key, name: str, types: tuple):
        self.key = key
        self.name = name
        self.types = types
        self.ids = {}                   # qid -> rdtype
        self.answers = {}               # rdtype -> codec.Answer
        self.server = 0
        self.waiters = []               # [(deadline handle, callback)]
        self.timer = None
        self.tcp = None


class Resolver:
    def __init__(self, loop, conf, errlog):
        self.loop = loop
        self.servers = [a for a in conf.servers]
        self.valid = conf.valid
        self.ipv4 = conf.ipv4
        self.ipv6 = conf.ipv6
        self.errlog = errlog            # ignored responses: logged without session context
        self.next_server = 0
        self.socks = {}                 # server index -> connected UDP socket
        self.inflight = {}              # key -> _Lookup
        self.by_id = {}                 # query ID -> _Lookup
        self.cache = {}                 # key -> (expiry, result)

    # --- the session's view ------------------------------------------------------------

    def client_host(self, ip: str, timeout: float, log, set_action, done) -> None:
        """Resolve the client address, then ``done(host)``.  ``log(level, text)`` logs
        in the session's context; ``set_action(text)`` sets its log action."""
        addr = ipaddress.ip_address(ip)
        set_action("in resolving client address")

        def failed(subject: str, rcode: int):
            log("error", f"{subject} could not be resolved ({rcode}: "
                         f"{codec.ERROR_TEXT.get(rcode, 'Unknown error')})")
            done(UNAVAILABLE if rcode == codec.NXDOMAIN else TEMPUNAVAIL)

        def ptr_done(result):
            rcode, names = result
            if rcode:
                return failed(ip, rcode)
            name = names[0]
            if not codec.valid_host_name(name):
                log("error", f'{ip} resolved to invalid host name "{name}"')
                return done(TEMPUNAVAIL)
            set_action("in resolving client hostname")

            def forward_done(result):
                rcode, addresses = result
                if rcode:
                    return failed(f'"{name}"', rcode)
                if any(a == addr for a in addresses):
                    return done(name)
                return done(UNAVAILABLE)
            self.forward(name, timeout, forward_done)
        self.lookup(("PTR", ip), codec.ptr_name(ip), (codec.PTR,), timeout, ptr_done)

    def forward(self, name: str, timeout: float, done, depth: int = 0) -> None:
        types = tuple(t for t, on in ((codec.A, self.ipv4), (codec.AAAA, self.ipv6)) if on)

        def answered(result):
            rcode, value = result
            if rcode == 0 and isinstance(value, str):        # only a CNAME: follow it
                if depth >= MAX_CNAME:
                    return done((codec.NXDOMAIN, ()))
                return self.forward(value, timeout, done, depth + 1)
            done(result)
        self.lookup(("ADDR", name), name + ".", types, timeout, answered)

    # --- lookups ----------------------------------------------------------------------

    def lookup(self, key, name: str, types: tuple, timeout: float, cb) -> None:
        """``cb((rcode, names | addresses | cname))`` within ``timeout`` seconds."""
        hit = self.cache.get(key)
        if hit is not None:
            if hit[0] > self.loop.time():
                self.loop.call_soon(cb, hit[1])
                return
            del self.cache[key]
        lk = self.inflight.get(key)
        if lk is None:
            lk = self.inflight[key] = _Lookup(key, name, types)
            lk.server = self.next_server
            self.next_server = (self.next_server + 1) % len(self.servers)
            self._send(lk)
        handle = self.loop.call_later(timeout, self._expired, lk, cb)
        lk.waiters.append((handle, cb))

    def _expired(self, lk, cb) -> None:
        lk.waiters = [w for w in lk.waiters if w[1] is not cb]
        if not lk.waiters:
            self._forget(lk)
        cb((codec.TIMEDOUT, ()))

    def _send(self, lk) -> None:
        """Send every unanswered question of the lookup to its current server; a
        resent question keeps its ID, so a late answer from any server counts."""
        sock = self._socket(lk.server)
        for t in lk.types:
            if t in lk.answers:
                continue
            qid = next((q for q, qt in lk.ids.items() if qt == t), None)
            if qid is None:
                qid = random.getrandbits(16)
                while qid in self.by_id:
                    qid = random.getrandbits(16)
                lk.ids[qid] = t
                self.by_id[qid] = lk
            if sock is not None:
                try:
                    sock.send(codec.query(lk.name, t, qid))
                except OSError:
                    pass
        lk.timer = self.loop.call_later(RESEND, self._resend, lk)

    def _resend(self, lk) -> None:
        lk.timer = None
        if self.inflight.get(lk.key) is not lk:
            return
        lk.server = (lk.server + 1) % len(self.servers)
        self._send(lk)

    def _socket(self, i: int):
        sock = self.socks.get(i)
        if sock is None:
            addr = self.servers[i]
            try:
                sock = socket.socket(addr.family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
                sock.connect(addr.sockaddr())
            except OSError as e:
                self.errlog.log("error", f"connect() to {addr.text} failed ({e.errno}: "
                                         f"{e.strerror})")
                return None
            self.socks[i] = sock
            self.loop.add_reader(sock.fileno(), self._readable, sock)
        return sock

    def _readable(self, sock) -> None:
        while True:
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                # e.g. the ICMP "port unreachable" of a resolver that is not there
                addr = next((self.servers[i].text for i, s in self.socks.items()
                             if s is sock), "")
                self.errlog.log("error", "recv() failed", context=" while resolving, "
                                f"resolver: {addr}", err=e.errno or 0)
                return
            self._received(data)

    def _received(self, data: bytes) -> None:
        if len(data) < 2:
            self.errlog.log("error", "short DNS response")
            return
        qid = struct.unpack_from("!H", data)[0]
        lk = self.by_id.get(qid)
        if lk is None:
            self.errlog.log("error", f"unexpected DNS response for {qid}")
            return
        t = lk.ids[qid]
        try:
            answer = codec.parse(data, qid, lk.name, t)
        except codec.Ignored as e:
            self.errlog.log("error", str(e))
            return
        if answer.truncated and t != codec.PTR:
            self._tcp(lk, qid, t)
            return
        self._answered(lk, qid, t, answer)

    def _answered(self, lk, qid, t, answer) -> None:
        del lk.ids[qid]
        del self.by_id[qid]
        lk.answers[t] = answer
        if len(lk.answers) == len(lk.types):
            self._finish(lk)

    def _tcp(self, lk, qid, t) -> None:
        async def ask():
            addr = self.servers[lk.server]
            try:
                r, w = await asyncio.open_connection(addr.host, addr.port)
                q = codec.query(lk.name, t, qid)
                w.write(struct.pack("!H", len(q)) + q)
                n = struct.unpack("!H", await r.readexactly(2))[0]
                data = await r.readexactly(n)
                w.close()
            except (OSError, asyncio.IncompleteReadError):
                return
            if self.by_id.get(qid) is not lk:
                return
            try:
                answer = codec.parse(data, qid, lk.name, t)
            except codec.Ignored as e:
                self.errlog.log("error", str(e))
                return
            self._answered(lk, qid, t, answer)
        lk.tcp = self.loop.create_task(ask())

    def _finish(self, lk) -> None:
        answers = [lk.answers[t] for t in lk.types]
        errors = [a.rcode for a in answers if a.rcode]
        if errors:
            result = (errors[0], ())
            ttl = None
        elif lk.types == (codec.PTR,):
            names = answers[0].names
            result = (0, names) if names else (codec.NXDOMAIN, ())
            ttl = answers[0].ttl if names else None
        else:
            addresses = tuple(a for ans in answers for a in ans.addresses)
            cname = next((a.cname for a in answers if a.cname), "")
            if addresses:
                result = (0, addresses)
            elif cname:
                result = (0, cname)
            else:
                result = (codec.NXDOMAIN, ())
            used = [a.ttl for a in answers if a.addresses or a.cname]
            ttl = min(used) if result[0] == 0 and used else None
        if ttl is not None:
            valid = self.valid or ttl
            if valid > 0:
                self.cache[lk.key] = (self.loop.time() + valid, result)
        waiters = lk.waiters
        self._forget(lk)
        for handle, cb in waiters:
            handle.cancel()
            cb(result)

    def _forget(self, lk) -> None:
        if self.inflight.get(lk.key) is lk:
            del self.inflight[lk.key]
        for qid in lk.ids:
            self.by_id.pop(qid, None)
        lk.ids.clear()
        if lk.timer is not None:
            lk.timer.cancel()
            lk.timer = None
        if lk.tcp is not None and not lk.tcp.done():
            lk.tcp.cancel()
        lk.waiters = []

    def close(self) -> None:
        for sock in self.socks.values():
            try:
                self.loop.remove_reader(sock.fileno())
            except (ValueError, OSError):
                pass
            sock.close()
        self.socks.clear()
