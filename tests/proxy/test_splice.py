"""The zero-copy relay (splice(2) backend -> client, plain TCP on both sides): a
download goes through the worker's pipe byte for byte, with a fast client, a slow one
(what the client cannot take is kept and sent in order) and a backend that closes
right after its last byte; a short reply never opens the pipe."""

from __future__ import annotations

import hashlib
import os
import socket
import time

from proxy.harness import AuthServer, Proxy, ScriptedBackend, free_port, ok_response

BIG = bytes(range(256)) * (12 << 12)          # 12 MiB, every byte value
SMALL = BIG[:3 << 20]                          # for slow clients


class Download(ScriptedBackend):
    """POP3: anyone logs in; RETR sends ``BIG`` then closes, no terminator needed."""

    def __init__(self, body=BIG):
        self.body = body
        super().__init__(b"+OK ready\r\n")

    def session(self, rfile, wfile):
        wfile.write(self.greeting)
        wfile.flush()
        for _ in range(2):
            if not rfile.readline():
                return
            wfile.write(b"+OK\r\n")
            wfile.flush()
        line = rfile.readline()
        if line.startswith(b"RETR"):
            wfile.write(self.body)
            wfile.flush()
        elif line.startswith(b"STAT"):
            wfile.write(b"+OK 1 22\r\n")
            wfile.flush()
            rfile.readline()


def pipes_of(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:"):
                n += 1
        except OSError:
            pass
    return n


def fetch(port, command=b"RETR 1\r\n", pace=0.0) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if pace:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"USER a\r\nPASS b\r\n" + command)
    f.readline()
    f.readline()
    data = bytearray()
    while True:
        chunk = f.read1(16384) if pace else f.read1(1 << 20)
        if not chunk:
            break
        data += chunk
        if pace:
            time.sleep(pace)
    s.close()
    return bytes(data)


def test_downloads_are_spliced_byte_for_byte(tmp_path):
    b = Download()
    auth = AuthServer(lambda req: ok_response(b.port))
    port = free_port()
    p = Proxy(tmp_path, f"mail {{ auth_http {auth.url};\n"
                        f"server {{ listen 127.0.0.1:{port}; protocol pop3; }} }}").start()
    try:
        assert fetch(port, b"STAT\r\nQUIT\r\n") == b"+OK 1 22\r\n"
        before = pipes_of(p.proc.pid)                    # (the loop's own, made at start)
        assert fetch(port, b"STAT\r\nQUIT\r\n") == b"+OK 1 22\r\n"
        assert pipes_of(p.proc.pid) == before            # a short reply: no pipe
        got = fetch(port)
        assert hashlib.sha256(got).digest() == hashlib.sha256(BIG).digest()
        assert pipes_of(p.proc.pid) == before + 2        # the worker's one pipe
        for _ in range(3):                               # shared by later sessions
            assert fetch(port) == BIG
        assert pipes_of(p.proc.pid) == before + 2
    finally:
        p.stop()
        auth.close()
        b.close()


def test_a_client_that_stops_reading_gets_every_byte_in_order(tmp_path):
    """The client reads nothing for a second: its socket fills, a splice to it is
    short or refused (EAGAIN), the rest goes through its transport, reading the backend
    pauses, and the next splice waits until the transport has sent what it holds."""
    b = Download()
    auth = AuthServer(lambda req: ok_response(b.port))
    port = free_port()
    p = Proxy(tmp_path, f"mail {{ auth_http {auth.url};\n"
                        f"server {{ listen 127.0.0.1:{port}; protocol pop3; }} }}").start()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER a\r\nPASS b\r\nRETR 1\r\n")
        f.readline()
        f.readline()
        time.sleep(1.0)                 # 12 MiB is more than the sockets' buffers
        got = bytearray()
        while True:
            chunk = f.read1(1 << 20)
            if not chunk:
                break
            got += chunk
        s.close()
        assert len(got) == len(BIG) and got == BIG
        assert "[alert]" not in p.log() and "Traceback" not in p.log()
    finally:
        p.stop()
        auth.close()
        b.close()


class Personal(ScriptedBackend):
    """Each user downloads a body of its own (its name repeated), 2 MiB."""

    def __init__(self):
        super().__init__(b"+OK ready\r\n")

    def session(self, rfile, wfile):
        wfile.write(self.greeting)
        wfile.flush()
        user = rfile.readline().split()[1]
        wfile.write(b"+OK\r\n")
        wfile.flush()
        rfile.readline()
        wfile.write(b"+OK\r\n")
        wfile.flush()
        if rfile.readline().startswith(b"RETR"):
            wfile.write(body_of(user))
            wfile.flush()


def body_of(user: bytes) -> bytes:
    return (user + b"|") * ((2 << 20) // (len(user) + 1))


def test_concurrent_downloads_share_the_pipe_without_mixing(tmp_path):
    """Six sessions at once, half of them slow readers, each with a body of its own:
    the worker's one pipe is emptied within each call, so no byte of one session
    reaches another."""
    import concurrent.futures
    b = Personal()
    auth = AuthServer(lambda req: ok_response(b.port))
    port = free_port()
    p = Proxy(tmp_path, f"mail {{ auth_http {auth.url};\n"
                        f"server {{ listen 127.0.0.1:{port}; protocol pop3; }} }}").start()

    def one(i):
        user = b"user%d" % i
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER " + user + b"\r\nPASS x\r\nRETR 1\r\n")
        f.readline()
        f.readline()
        got = bytearray()
        while True:
            chunk = f.read1(16384 if i % 2 else 1 << 20)
            if not chunk:
                break
            got += chunk
            if i % 2:
                time.sleep(0.0002)
        s.close()
        return bytes(got) == body_of(user)

    try:
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            assert all(ex.map(one, range(6)))
    finally:
        p.stop()
        auth.close()
        b.close()


class Upload(ScriptedBackend):
    """After the login, reads ``len(BIG)`` bytes (after ``pause`` seconds without
    reading) and answers with their SHA-256."""

    def __init__(self, pause=0.0):
        self.pause = pause
        super().__init__(b"+OK ready\r\n")

    def session(self, rfile, wfile):
        wfile.write(self.greeting)
        wfile.flush()
        for _ in range(2):
            if not rfile.readline():
                return
            wfile.write(b"+OK\r\n")
            wfile.flush()
        time.sleep(self.pause)
        got = rfile.read(len(BIG))
        wfile.write(hashlib.sha256(got).hexdigest().encode() + b"\r\n")
        wfile.flush()


def upload(port) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"USER a\r\nPASS b\r\n")
    f.readline()
    f.readline()
    s.sendall(BIG)
    answer = f.readline()
    s.close()
    return answer


def test_uploads_are_spliced_byte_for_byte(tmp_path):
    """Client -> backend (SMTP DATA, IMAP APPEND are such uploads after the login):
    with a backend that reads at once, and one that reads nothing for a second (the
    backend's socket fills, what it cannot take waits in the proxy, reading the client
    pauses)."""
    want = hashlib.sha256(BIG).hexdigest().encode() + b"\r\n"
    for pause in (0.0, 1.0):
        b = Upload(pause)
        auth = AuthServer(lambda req: ok_response(b.port))
        port = free_port()
        d = tmp_path / f"p{pause}"
        d.mkdir()
        p = Proxy(d, f"mail {{ auth_http {auth.url};\n"
                     f"server {{ listen 127.0.0.1:{port}; protocol pop3; }} }}").start()
        try:
            time.sleep(0.5)                  # the event loop's own pipes, made at start
            before = pipes_of(p.proc.pid)
            assert upload(port) == want
            assert pipes_of(p.proc.pid) == before + 2      # the worker's one pipe
            assert "[alert]" not in p.log() and "Traceback" not in p.log()
        finally:
            p.stop()
            auth.close()
            b.close()
