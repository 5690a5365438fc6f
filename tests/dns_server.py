"""A scripted DNS server on loopback for the resolver tests (UDP, and TCP on the same
port for truncated answers).  ``handler(query: dns.message.Message, tcp: bool)``
returns the response (a Message or raw bytes) or None to stay silent."""

from __future__ import annotations

import socket
import struct
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self, handler, host: str = "127.0.0.1"):
        self.handler = handler
        self.queries = []                       # (name, rdtype name, tcp) in arrival order
        for _ in range(50):             # a port free for both UDP and TCP
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind((host, 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind((host, self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(8)
        self.closed = False
        self.lock = threading.Lock()
        for target in (self._serve_udp, self._serve_tcp):
            threading.Thread(target=target, daemon=True).start()

    def _answer(self, data: bytes, tcp: bool):
        try:
            q = dns.message.from_wire(data)
        except Exception:
            return None
        with self.lock:
            self.queries.append((q.question[0].name.to_text(),
                                 dns.rdatatype.to_text(q.question[0].rdtype), tcp))
        r = self.handler(q, tcp)
        if r is None or isinstance(r, bytes):
            return r
        return r.to_wire()

    def _serve_udp(self):
        while not self.closed:
            try:
                data, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            out = self._answer(data, False)
            if out is not None:
                try:
                    self.udp.sendto(out, peer)
                except OSError:
                    return

    def _serve_tcp(self):
        while not self.closed:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                try:
                    n = struct.unpack("!H", conn.recv(2))[0]
                    data = b""
                    while len(data) < n:
                        chunk = conn.recv(n - len(data))
                        if not chunk:
                            break
                        data += chunk
                    out = self._answer(data, True)
                    if out is not None:
                        conn.sendall(struct.pack("!H", len(out)) + out)
                except OSError:
                    pass

    def asked(self):
        with self.lock:
            return list(self.queries)

    def close(self):
        self.closed = True
        self.udp.close()
        self.tcp.close()


def reply(q, rcode=0, answers=(), tc=False):
    """A response to ``q``: ``answers`` are (name, ttl, type, rdata text) tuples."""
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if tc:
        r.flags |= dns.flags.TC
    for name, ttl, rdtype, text in answers:
        r.answer.append(dns.rrset.from_text(name, ttl, "IN", rdtype, text))
    return r


def zone(ptr=None, a=None, aaaa=None, ttl=60):
    """A handler answering PTR / A / AAAA from dicts (value None = NXDOMAIN,
    a callable = computed per query, an int = that RCODE)."""
    tables = {"PTR": ptr or {}, "A": a or {}, "AAAA": aaaa or {}}

    def handler(q, tcp):
        name = q.question[0].name.to_text()
        t = dns.rdatatype.to_text(q.question[0].rdtype)
        table = tables.get(t, {})
        if name not in table:
            return reply(q, rcode=dns.rcode.NXDOMAIN)
        v = table[name]
        if callable(v):
            return v(q, tcp)
        if isinstance(v, int):
            return reply(q, rcode=v)
        if isinstance(v, str):
            v = [v]
        return reply(q, answers=[(name, ttl, t, x) for x in v])
    return handler
