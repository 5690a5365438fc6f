"""A client that stops reading pins no more than the documented mark of the proxy's
memory (64 KB waiting for it), whatever the backend sends: the relay reads the backend
only as far as the client's side can take."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from proxy.harness import AuthServer, ScriptedBackend, free_port, ok_response

SESSIONS = 40
PER_SESSION = 24 << 20          # more than the kernel buffers on both sides can hold
CHUNK = b"x" * (1 << 20)


def logged_in(backend, rfile, wfile) -> bool:
    """A POP3 backend's greeting, then +OK to USER and PASS; False if the proxy left."""
    wfile.write(backend.greeting)
    wfile.flush()
    for _ in range(2):
        if not rfile.readline():
            return False
        wfile.write(b"+OK\r\n")
        wfile.flush()
    return True


class Flood(ScriptedBackend):
    """A POP3 backend that logs anyone in and answers RETR with endless data."""

    def __init__(self):
        self.sent = {}
        self.lock = threading.Lock()
        super().__init__(b"+OK ready\r\n")

    def session(self, rfile, wfile):
        if not logged_in(self, rfile, wfile) or not rfile.readline():      # RETR
            return
        me = threading.get_ident()
        total = 0
        while total < PER_SESSION:
            wfile.write(CHUNK)
            wfile.flush()
            total += len(CHUNK)
            with self.lock:
                self.sent[me] = total


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def settled(read, quiet: float = 1.0, timeout: float = 60.0):
    """Wait until ``read()`` stops changing for ``quiet`` seconds; its last value."""
    deadline = time.time() + timeout
    last, since = read(), time.time()
    while time.time() < deadline:
        time.sleep(0.1)
        now = read()
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            return last
    raise AssertionError("never settled")


@pytest.mark.parametrize("tls", [False, True])
def test_non_reading_clients_pin_at_most_the_mark(start_proxy, pki, tls):
    import ssl
    from proxy.harness import client_ctx, tls_lines
    backend = Flood()
    auth = AuthServer(lambda req: ok_response(backend.port))
    port = free_port()
    listen = f"listen 127.0.0.1:{port}{' ssl' if tls else ''};"
    p, _ = start_proxy(tls_lines(pki) if tls else (), port=port, listen=listen,
                       auth_url=auth.url)
    clients = []
    try:
        for _ in range(SESSIONS):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # a small window
            s.settimeout(10)
            s.connect(("127.0.0.1", port))
            if tls:
                s = client_ctx(pki).wrap_socket(s)
            f = s.makefile("rwb")
            assert f.readline().startswith(b"+OK")
            f.write(b"USER u\r\n")
            f.flush()
            f.readline()
            f.write(b"PASS p\r\n")
            f.flush()
            assert f.readline() == b"+OK\r\n"
            clients.append((s, f))
        base = settled(lambda: rss_kb(p.proc.pid))
        for s, f in clients:
            f.write(b"RETR 1\r\n")
            f.flush()
        # the flood stops when every session's buffers are full
        stalled = settled(lambda: sum(backend.sent.values()), quiet=1.5)
        assert len(backend.sent) == SESSIONS
        assert stalled < SESSIONS * PER_SESSION          # it did stall
        grown = settled(lambda: rss_kb(p.proc.pid)) - base
        # 64 KB waiting per session, and some slack for the allocator
        assert grown < SESSIONS * 110, (grown, grown / SESSIONS)
    finally:
        for s, f in clients:
            try:
                f.close()
                s.close()
            except (OSError, ssl.SSLError):
                pass
        auth.close()
        backend.close()


class Sink(ScriptedBackend):
    """A POP3 backend that logs anyone in, then reads nothing more (until closed)."""

    def __init__(self):
        self.stop = threading.Event()
        super().__init__(b"+OK ready\r\n")

    def session(self, rfile, wfile):
        if logged_in(self, rfile, wfile):
            self.stop.wait(60)

    def close(self):
        self.stop.set()
        super().close()


UPLOADERS = 12
UPLOAD_BOUND_KB = 1300          # WRITE_HIGH (1 MiB) + one read, and allocator slack


def test_uploads_to_a_backend_that_does_not_read_pin_at_most_the_high_mark(start_proxy):
    """The upload direction (SMTP DATA, IMAP APPEND): what the backend cannot take waits
    in the proxy up to WRITE_HIGH, then the client is no longer read; a splice of a
    whole pipe (1 MiB) only starts with nothing waiting, so it keeps that bound."""
    backend = Sink()
    auth = AuthServer(lambda req: ok_response(backend.port))
    p, port = start_proxy(auth_url=auth.url)
    clients = []
    try:
        for _ in range(UPLOADERS):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"USER u\r\nPASS p\r\n")
            f.readline()
            assert f.readline() == b"+OK\r\n"
            s.setblocking(False)
            clients.append(s)
        base = settled(lambda: rss_kb(p.proc.pid))
        sent = [0] * UPLOADERS

        def push():
            for i, s in enumerate(clients):
                try:
                    while True:
                        sent[i] += s.send(CHUNK)
                except BlockingIOError:
                    pass
            return sum(sent)

        settled(push, quiet=1.5)                # every upload stalled (else: timeout)
        grown = settled(lambda: rss_kb(p.proc.pid)) - base
        assert grown < UPLOADERS * UPLOAD_BOUND_KB, (grown, grown / UPLOADERS)
    finally:
        for s in clients:
            s.close()
        auth.close()
        backend.close()
