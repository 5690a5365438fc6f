"""auth_http_keepalive (angie-mail extension): logins share idle connections to the auth
server when its responses allow it, and fall back to fresh connections otherwise."""

import pytest

from angie_mail.proxy.auth_http import _reusable, parse_headers
from proxy.harness import AuthServer, Client


def keepalive_ok(port: int) -> bytes:
    return (b"HTTP/1.1 204 No Content\r\nServer: t\r\nConnection: keep-alive\r\n"
            b"Auth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: "
            + str(port).encode() + b"\r\n\r\n")


def pop3_login(port: int, pw: bytes = b"secret") -> bytes:
    c = Client(port)
    assert c.line().startswith(b"+OK")
    c.send(b"USER test@example.com\r\n")
    assert c.line() == b"+OK\r\n"
    c.send(b"PASS " + pw + b"\r\n")
    reply = c.line()
    if reply.startswith(b"+OK"):       # after a failure without Auth-Wait the proxy closes
        c.send(b"QUIT\r\n")
        c.line()
    c.close()
    return reply


@pytest.fixture
def ka_auth(backend):
    a = AuthServer(lambda req: keepalive_ok(backend.port), keepalive=True)
    yield a
    a.close()


def test_logins_share_one_connection(ka_auth, backend, start_proxy):
    p, port = start_proxy(auth_url=ka_auth.url, server_lines=["auth_http_keepalive 4;"])
    for _ in range(3):
        assert pop3_login(port) == b"+OK pass ok\r\n"
    assert len(ka_auth.requests) == 3
    assert ka_auth.connections == 1
    assert [r.conn for r in ka_auth.requests] == [1, 1, 1]
    # the request is Angie's with one line more, right after Host
    assert ka_auth.requests[0].raw.startswith(
        b"GET /mail/auth HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
        b"Auth-Method: plain\r\n")


def test_without_the_directive_every_login_connects(ka_auth, backend, start_proxy):
    p, port = start_proxy(auth_url=ka_auth.url)
    for _ in range(2):
        assert pop3_login(port) == b"+OK pass ok\r\n"
    assert ka_auth.connections == 2
    assert all("Connection" not in r.headers for r in ka_auth.requests)


def test_mail_level_setting_is_inherited(ka_auth, backend, start_proxy):
    p, port = start_proxy(auth_url=ka_auth.url, mail_lines=["auth_http_keepalive 1;"])
    for _ in range(2):
        assert pop3_login(port) == b"+OK pass ok\r\n"
    assert ka_auth.connections == 1


@pytest.mark.parametrize("response, reused", [
    # HTTP/1.0 without "Connection: keep-alive": the server will close
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n", False),
    # a body delimited by the close of the connection
    (b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n", False),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n", False),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", False),
    # a body of known length is read and the connection kept
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", True),
    (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n", True),
])
def test_response_framing_decides_reuse(backend, start_proxy, response, reused):
    body = b"abc" if b"Content-Length: 3" in response else b""

    def handler(req):
        return (response + b"Auth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: "
                + str(backend.port).encode() + b"\r\n\r\n" + body)
    auth = AuthServer(handler, keepalive=True)
    try:
        p, port = start_proxy(auth_url=auth.url, server_lines=["auth_http_keepalive 2;"])
        for _ in range(2):
            assert pop3_login(port) == b"+OK pass ok\r\n"
        assert auth.connections == (1 if reused else 2)
    finally:
        auth.close()


def test_connection_closed_while_idle_is_replaced(backend, start_proxy):
    """The server closes an idle connection (its keepalive_timeout): the next login
    opens a new one without an error."""
    auth = AuthServer(lambda req: keepalive_ok(backend.port), keepalive=False)
    try:
        p, port = start_proxy(auth_url=auth.url, server_lines=["auth_http_keepalive 2;"])
        for _ in range(3):
            assert pop3_login(port) == b"+OK pass ok\r\n"
        assert auth.connections == 3
        assert "closed the connection prematurely" not in p.log()
    finally:
        auth.close()


def test_reused_connection_closed_before_answering_is_retried_once(backend, start_proxy):
    """A request on a reused connection that the server closes without a byte of
    response is sent again on a fresh connection (the server may have closed it just
    as the request went out); on a fresh connection that is an error, as in Angie."""
    def handler(req):
        if req.conn == 1 and len(auth.requests) == 2:
            return "close"
        return keepalive_ok(backend.port)
    auth = AuthServer(handler, keepalive=True)
    try:
        p, port = start_proxy(auth_url=auth.url, server_lines=["auth_http_keepalive 2;"])
        assert pop3_login(port) == b"+OK pass ok\r\n"
        assert pop3_login(port) == b"+OK pass ok\r\n"
        assert [r.conn for r in auth.requests] == [1, 1, 2]
        assert "closed the connection prematurely" not in p.log()
    finally:
        auth.close()


def test_failed_login_and_retry_on_kept_connection(backend, start_proxy):
    def handler(req):
        if req["Auth-Pass"] != b"secret":
            return (b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n"
                    b"Auth-Status: Invalid login or password\r\nAuth-Wait: 0\r\n\r\n")
        return keepalive_ok(backend.port)
    auth = AuthServer(handler, keepalive=True)
    try:
        p, port = start_proxy(auth_url=auth.url, server_lines=["auth_http_keepalive 2;"])
        assert pop3_login(port, pw=b"bad") == b"-ERR Invalid login or password\r\n"
        assert pop3_login(port) == b"+OK pass ok\r\n"
        assert auth.connections == 1
    finally:
        auth.close()


def test_timeout_closes_the_connection(backend, start_proxy):
    def handler(req):
        if len(auth.requests) == 1:
            return ("sleep", 1.5, keepalive_ok(backend.port))
        return keepalive_ok(backend.port)
    auth = AuthServer(handler, keepalive=True)
    try:
        p, port = start_proxy(auth_url=auth.url,
                              server_lines=["auth_http_keepalive 2;", "auth_http_timeout 500ms;"])
        c = Client(port)
        c.line()
        c.send(b"USER test@example.com\r\nPASS secret\r\n")
        assert c.line() == b"+OK\r\n"
        assert c.line() == b"-ERR internal server error\r\n"
        c.close()
        # the late answer on the timed-out connection is never taken for the next login
        assert pop3_login(port) == b"+OK pass ok\r\n"
        assert [r.conn for r in auth.requests] == [1, 2]
    finally:
        auth.close()


# --- the reuse rule on its own ------------------------------------------------------------

@pytest.mark.parametrize("raw, ok", [
    (b"HTTP/1.1 204 No Content\r\nAuth-Status: OK\r\n\r\n", True),
    (b"HTTP/1.1 204 No Content\nAuth-Status: OK\n\n", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no", False),        # body not all here
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP", False),   # bytes after it
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", False),
    (b"HTTP/1.1 304 Not Modified\r\n\r\n", True),
    (b"HTTP/1.0 204 No Content\r\n\r\n", False),
    (b"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n", True),
    (b"Auth-Status: OK\r\n\r\n", False),                             # no status line
    (b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", False),
])
def test_reusable(raw, ok):
    headers, end = parse_headers(raw)
    assert end
    assert _reusable(raw, headers, end) is ok


