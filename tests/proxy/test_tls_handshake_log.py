"""A client whose TLS handshake fails is logged as nginx logs it, side by side with the
real nginx 1.22: `peer closed connection in SSL handshake`, `SSL_do_handshake() failed
(SSL: error:0A00010B:SSL routines::wrong version number)`, at info, `while SSL
handshaking` on a `listen ... ssl` port and `while in starttls state` after STLS."""

from __future__ import annotations

import re
import socket
import struct

import pytest

import oracle
from proxy.harness import AuthServer, Client, Nginx, Proxy, fail_response, free_port, tls_lines

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
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.sock.close()


@pytest.mark.parametrize("starttls", [False, True])
@pytest.mark.parametrize("then", [plain_text, close, reset])
def test_a_failed_client_handshake_is_logged_as_nginx_logs_it(tmp_path, pki, starttls, then):
    auth = AuthServer(lambda req: fail_response())
    logged = {}
    try:
        for name, cls in (("nginx", Nginx), ("angie-mail", Proxy)):
            port = free_port()
            d = tmp_path / name
            d.mkdir()
            tls = "".join(f"        {line}\n" for line in tls_lines(pki))
            block = (f"mail {{\n    auth_http {auth.url};\n    server {{\n"
                     f"        listen 127.0.0.1:{port}{'' if starttls else ' ssl'};\n"
                     f"        protocol pop3;\n{tls}"
                     f"        {'starttls on;' if starttls else ''}\n    }}\n}}\n")
            server = cls(d, block).start()
            try:
                c = Client(port)
                if starttls:
                    assert c.line().startswith(b"+OK")
                    c.send(b"STLS\r\n")
                    assert c.line().startswith(b"+OK")
                then(c)
                log = server.wait_log("handshake")
            finally:
                server.stop()
            logged[name] = LINE.findall(log)
    finally:
        auth.close()
    assert len(logged["nginx"]) == 1, logged
    assert logged["angie-mail"] == logged["nginx"], logged
