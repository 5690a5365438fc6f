"""A peer that resets its connection is logged as nginx logs it, side by side with the
real nginx 1.22: ``recv() failed (104: Connection reset by peer) while <action>``, at
info for the client and at error for the backend (ngx_connection_error's levels)."""

from __future__ import annotations

import re
import socket
import threading

import pytest

import oracle
from proxy.harness import (AuthServer, Client, ok_response, one_server, reset_close,
                           side_by_side)

RESET_LINE = re.compile(r"\[(\w+)\] \d+#\d+: \*\d+ ((?:recv|send)\(\) failed \(\d+: [^)]*\)) "
                        r"while ([^,\n]*)")


@pytest.fixture(autouse=True)
def _nginx_installed():
    oracle.require()


class ResetBackend:
    """A POP3 or IMAP backend that sends its greeting, then follows ``script``:
    "login" resets on the first line it reads; "relay" lets the login succeed, then
    resets once the relayed client line arrives."""

    def __init__(self, protocol: str, script: str):
        self.protocol, self.script = protocol, script
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        f = conn.makefile("rb")
        try:
            pop3 = self.protocol == "pop3"
            conn.sendall(b"+OK ready\r\n" if pop3 else b"* OK ready\r\n")
            if self.script == "login":
                f.readline()
                return reset_close(conn)
            if pop3:
                for _ in range(2):                     # USER, PASS
                    f.readline()
                    conn.sendall(b"+OK\r\n")
            f.readline()                               # the relayed line
            reset_close(conn)
        except OSError:
            conn.close()

    def close(self):
        self.sock.close()


def run(tmp_path, protocol: str, script: str, client_steps) -> dict:
    """The reset lines each side logged: {"nginx": [...], "angie-mail": [...]}, each a
    (level, message, action) tuple."""
    backend = ResetBackend(protocol, script)
    auth = AuthServer(lambda req: ok_response(backend.port))
    try:
        return side_by_side(
            tmp_path, lambda port: one_server(auth.url, port, protocol),
            lambda port: client_steps(port, protocol),
            "proxied session done" if script == "client-relay" else "failed (", RESET_LINE)
    finally:
        auth.close()
        backend.close()


def login(port: int, protocol: str) -> Client:
    """A client past the greeting that sent its credentials."""
    c = Client(port)
    c.line()
    if protocol == "pop3":
        c.send(b"USER u\r\n")
        assert c.line() == b"+OK\r\n"
        c.send(b"PASS secret\r\n")
    else:
        c.send(b"a LOGIN u secret\r\n")
    return c


def client_resets_in_auth_state(port, protocol):
    c = Client(port)
    c.line()
    c.send(b"a NOOP\r\n" if protocol == "imap" else b"NOOP\r\n")
    c.line()
    reset_close(c.sock)


def backend_resets_at_login(port, protocol):
    c = login(port, protocol)
    assert c.line().split()[:2] in ([b"-ERR", b"internal"], [b"*", b"BAD"])
    c.close()


def backend_resets_in_relay(port, protocol):
    c = login(port, protocol)
    assert c.line() == b"+OK\r\n"
    c.send(b"STAT\r\n")
    assert c.closed()
    c.close()


def client_resets_in_relay(port, protocol):
    c = login(port, protocol)
    assert c.line() == b"+OK\r\n"
    reset_close(c.sock)


@pytest.mark.parametrize("protocol,script,steps,expected", [
    ("pop3", "client", client_resets_in_auth_state, ("info", "in auth state")),
    ("imap", "client", client_resets_in_auth_state, ("info", "in auth state")),
    ("smtp", "client", client_resets_in_auth_state, ("info", "in auth state")),
    ("pop3", "login", backend_resets_at_login,
     ("error", "reading response from upstream")),
    ("imap", "login", backend_resets_at_login,
     ("error", "reading response from upstream")),
    ("pop3", "relay", backend_resets_in_relay,
     ("error", "proxying and reading from upstream")),
    ("pop3", "client-relay", client_resets_in_relay,
     ("info", "proxying and reading from client")),
])
def test_a_reset_is_logged_as_nginx_logs_it(tmp_path, protocol, script, steps, expected):
    logged = run(tmp_path, protocol, script, steps)
    want = [(expected[0], "recv() failed (104: Connection reset by peer)", expected[1])]
    assert logged["nginx"] == want, logged
    assert logged["angie-mail"] == want, logged


END_LINE = re.compile(r"\[(\w+)\] \d+#\d+: \*\d+ (client timed out \(110: [^)]*\) while "
                      r"[^,\n]*|proxied session done)")


def test_a_relay_that_times_out_ends_as_nginx_ends_it(tmp_path):
    """proxy_timeout: `client timed out (110: Connection timed out) while proxying`,
    and no `proxied session done` (nginx writes that only for an end of input)."""
    backend = ResetBackend("pop3", "relay")        # logs in, then waits for a line
    auth = AuthServer(lambda req: ok_response(backend.port))

    def idle(port):
        c = login(port, "pop3")
        assert c.line() == b"+OK\r\n"
        assert c.closed(timeout=5)
    try:
        out = side_by_side(
            tmp_path, lambda port: one_server(auth.url, port, "pop3", ["proxy_timeout 1s;"]),
            idle, "client timed out", END_LINE)
    finally:
        auth.close()
        backend.close()
    assert out["nginx"] == [("info", "client timed out (110: Connection timed out) while "
                                     "proxying")], out
    assert out["angie-mail"] == out["nginx"]
