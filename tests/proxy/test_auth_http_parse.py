"""The auth_http response grammar (nginx's ngx_mail_auth_http_parse_header_line): the
one-match fast path must decide exactly as the line-by-line parser on any input."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from angie_mail.proxy.auth_http import ResponseError, parse_headers, parse_headers_stepwise

PIECES = [b"HTTP/1.0 200 OK", b"HTTP/1.1 204 No Content", b"HTTP/", b"Auth-Status", b": ",
          b":", b"OK", b"Invalid login", b"Auth-Wait", b"X_Y", b"a", b"9", b"-", b" ",
          b"\r\n", b"\n", b"\r", b"\t", b"\x00", b"\xff", b"", b"Auth-Server: 127.0.0.1"]


def outcome(fn, data):
    try:
        return fn(data)
    except ResponseError as e:
        return ("error", str(e))


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14))
def test_fast_path_agrees_with_stepwise(parts):
    data = b"".join(parts)
    assert outcome(parse_headers, data) == outcome(parse_headers_stepwise, data)


NAMES = st.sampled_from([b"Auth-Status", b"auth-port", b"X9", b"a-", b"-a", b"A_B", b"", b"H"])
VALUES = st.sampled_from([b"OK", b"", b" spaced  ", b"a:b", b"\t", b"\x00\xff", b"x\ry"])
SEPS = st.sampled_from([b": ", b":", b":   ", b"", b" : "])
ENDS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""])
LINES = st.tuples(NAMES, SEPS, VALUES, ENDS).map(b"".join)
STATUS = st.sampled_from([b"", b"HTTP/1.0 200 OK\r\n", b"HTTP/1.1 204 No Content\r\n",
                          b"HTTP/1.0 200 OK\n", b"HTTP/1.0 2\r00\r\n", b"HTTP/1.1"])


@settings(max_examples=3000, deadline=None)
@given(STATUS, st.lists(LINES, max_size=6), st.sampled_from([b"\r\n", b"\n", b"", b"\r"]),
       st.binary(max_size=4))
def test_fast_path_agrees_on_response_shapes(status, lines, blank, tail):
    data = status + b"".join(lines) + blank + tail
    assert outcome(parse_headers, data) == outcome(parse_headers_stepwise, data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60))
def test_fast_path_agrees_on_any_bytes(data):
    assert outcome(parse_headers, data) == outcome(parse_headers_stepwise, data)


@pytest.mark.parametrize("data, result", [
    (b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Port: 110\r\n\r\n",
     ([(b"auth-status", b"OK"), (b"auth-port", b"110")], 52)),
    (b"Auth-Status:   spaced value   \r\nEmpty\r\n\r\n",
     ([(b"auth-status", b"spaced value"), (b"empty", b"")], 41)),
    (b"\r\n", ([], 2)),
    (b"\n", ([], 1)),
    # the offset is where the header ends, whatever follows (a body)
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", ([(b"content-length", b"2")], 38)),
    (b"HTTP/1.1 200 OK\nContent-Length: 2\n\r\nok", ([(b"content-length", b"2")], 36)),
    (b"HTTP/1.0 500 whatever\nAuth-Status: OK\n\n", ([(b"auth-status", b"OK")], 39)),
    (b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n", (None, 0)),
    (b"Auth_Status: OK\r\n\r\n", ("error", "sent invalid header in response")),
    (b"Auth-Status: O\rK\r\n\r\n", ("error", "sent invalid header in response")),
    (b"HTTP/1.0 200\rOK\r\n\r\n", ("error", "sent invalid response")),
])
def test_examples(data, result):
    assert outcome(parse_headers, data) == result


def test_smtp_none_request_in_angies_order():
    """auth_http.md §3 / smtp.md §11: Client-Host after Client-IP, then the PROXY rows,
    the Auth-SMTP-* rows (Auth-SMTP-Helo even when empty), the Auth-SSL-* rows and the
    configured headers."""
    from angie_mail.proxy.auth_http import AuthRequest, build_request
    req = AuthRequest("none", b"", b"", b"", "smtp", 1, "127.0.0.1",
                      [(b"Proxy-Protocol-Addr", b"192.0.2.1")], b"[UNAVAILABLE]",
                      (b"", b"MAIL FROM:<a@example.com> SIZE=10", b"rcpt  TO:<b@example.com>"),
                      [(b"Auth-SSL", b"on")])
    out = build_request(_auth_http(), req, (("X-Auth-Key", "k"),))
    assert out == (b"GET /mail/auth HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: none\r\n"
                   b"Auth-User: \r\nAuth-Pass: \r\nAuth-Protocol: smtp\r\n"
                   b"Auth-Login-Attempt: 1\r\nClient-IP: 127.0.0.1\r\n"
                   b"Client-Host: [UNAVAILABLE]\r\nProxy-Protocol-Addr: 192.0.2.1\r\n"
                   b"Auth-SMTP-Helo: \r\nAuth-SMTP-From: MAIL FROM:<a@example.com> SIZE=10\r\n"
                   b"Auth-SMTP-To: rcpt  TO:<b@example.com>\r\nAuth-SSL: on\r\n"
                   b"X-Auth-Key: k\r\n\r\n")


def _auth_http():
    from angie_mail.conf.analyze import analyze
    from angie_mail.conf.parse import parse_string
    r = analyze(parse_string("events {}\nmail { auth_http 127.0.0.1:8080/mail/auth; server {"
                             " listen 127.0.0.1:25; protocol smtp; } }\n"), check_files=False)
    return r.config.servers[0].auth_http
