"""A client whose TLS handshake fails is logged as nginx logs it, side by side with the
real nginx 1.22: `peer closed connection in SSL handshake`, `SSL_do_handshake() failed
(SSL: error:0A00010B:SSL routines::wrong version number)`, at info, `while SSL
handshaking` on a `listen ... ssl` port and `while in starttls state` after STLS."""

from __future__ import annotations

import re

import pytest

import oracle
from proxy.harness import (AuthServer, Client, fail_response, one_server, reset_close,
                           side_by_side, tls_lines)

LINE = re.compile(r"\[(\w+)\] \d+#\d+: \*\d+ ((?:SSL_do_handshake|peer closed)[^,\n]*?) "
                  r"while ([^,\n]*)")


@pytest.fixture(autouse=True)
def _nginx_installed():
    oracle.require()


def plain_text(c: Client):
    c.send(b"USER a\r\n")
    assert c.closed()


def close(c: Client):
    c.sock.close()


def reset(c: Client):
    reset_close(c.sock)


@pytest.mark.parametrize("starttls", [False, True])
@pytest.mark.parametrize("then", [plain_text, close, reset])
def test_a_failed_client_handshake_is_logged_as_nginx_logs_it(tmp_path, pki, starttls, then):
    auth = AuthServer(lambda req: fail_response())
    lines = tls_lines(pki, ["starttls on;"] if starttls else [])

    def session(port):
        c = Client(port)
        if starttls:
            assert c.line().startswith(b"+OK")
            c.send(b"STLS\r\n")
            assert c.line().startswith(b"+OK")
        then(c)
    try:
        logged = side_by_side(
            tmp_path, lambda port: one_server(auth.url, port, "pop3", lines, ssl=not starttls),
            session, "handshake", LINE)
    finally:
        auth.close()
    assert len(logged["nginx"]) == 1, logged
    assert logged["angie-mail"] == logged["nginx"], logged
