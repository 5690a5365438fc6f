"""The SMTP proxy end to end (smtp.md): a real angie-mail, a scripted auth_http server,
Angie's fake SMTP backend, a scripted DNS server and real clients (smtplib, raw
sockets, TLS)."""

from __future__ import annotations

import base64
import hmac
import os
import smtplib
import socket
import ssl
import time

import pytest

from dns_server import zone
from proxy.harness import (AuthServer, Client, SmtpBackend, client_ctx, fail_response,
                           free_port, ok_response, tls_lines)

B64 = base64.b64encode
PLAIN_OK = b"AUTH PLAIN " + B64(b"\0test@example.com\0secret") + b"\r\n"
PLAIN_BAD = b"AUTH PLAIN " + B64(b"\0test@example.com\0bad") + b"\r\n"


@pytest.fixture
def smtp_backend():
    b = SmtpBackend()
    yield b
    b.close()


@pytest.fixture
def smtp_auth(smtp_backend):
    """Accepts password "secret" and every ``none`` attempt; the response can be
    replaced by setting ``.response`` (a callable of the request)."""
    def handler(req):
        if a.response is not None:
            return a.response(req)
        if req.get("Auth-Pass") == b"secret" or req.get("Auth-Method") == b"none":
            return ok_response(smtp_backend.port)
        if req.get("Auth-Method") == b"cram-md5" and req["Auth-Pass"] == hmac.new(
                b"secret", req["Auth-Salt"], "md5").hexdigest().encode():
            return ok_response(smtp_backend.port, extra=b"Auth-Pass: secret\r\n")
        return fail_response(wait=a.wait)
    a = AuthServer(handler)
    a.response = None
    a.wait = None
    yield a
    a.close()


@pytest.fixture
def smtp_proxy(start_proxy, smtp_auth):
    def start(*server_lines, mail_lines=(), main=""):
        return start_proxy(("protocol smtp;", "server_name proxyhost;", *server_lines),
                           mail_lines=mail_lines, auth_url=smtp_auth.url, main=main)
    return start


def greet(port, host="127.0.0.1"):
    c = Client(port, host)
    assert c.line() == b"220 proxyhost ESMTP ready\r\n"
    return c


def reply(c) -> bytes:
    """One whole (multi-line) reply."""
    out = c.line()
    while out.split(b"\r\n")[-2][3:4] == b"-":
        out += c.line()
    return out


# --- submission: AUTH, then the backend dialogue and the relay --------------------------------

def test_auth_plain_with_xclient_and_a_byte_exact_relay(smtp_proxy, smtp_backend, smtp_auth):
    p, port = smtp_proxy('smtp_capabilities "SIZE 10485760" 8BITMIME;')
    c = greet(port)
    c.send(b"EHLO client.example\r\n")
    assert reply(c) == (b"250-proxyhost\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n"
                        b"250 AUTH PLAIN LOGIN\r\n")
    c.send(b"AUTH PLAIN " + B64(b"authz\0test@example.com\0secret") + b"\r\n")
    assert c.line() == b"235 2.0.0 OK\r\n"
    assert smtp_backend.lines == [
        b"EHLO proxyhost",
        b"XCLIENT ADDR=127.0.0.1 LOGIN=test@example.com NAME=[UNAVAILABLE]",
        b"EHLO client.example"]
    req = smtp_auth.requests[0]
    assert req.header_list == [
        ("Host", b"127.0.0.1"), ("Auth-Method", b"plain"), ("Auth-User", b"test@example.com"),
        ("Auth-Pass", b"secret"), ("Auth-Protocol", b"smtp"), ("Auth-Login-Attempt", b"1"),
        ("Client-IP", b"127.0.0.1"), ("Client-Host", b"[UNAVAILABLE]")]
    # DATA of any size, dot lines untouched, both ways
    body = b"".join(b"..line %d with a leading dot\r\n" % i if i % 7 == 0 else
                    b"line %d\r\n" % i for i in range(60000))
    c.send(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
    assert c.line() == b"250 mail from ok\r\n"
    assert c.line() == b"250 rcpt to ok\r\n"
    assert c.line() == b"354 go ahead\r\n"
    c.send(body + b".\r\n")
    assert c.line() == b"250 data ok\r\n"
    assert smtp_backend.messages == [body]
    c.send(b"QUIT\r\n")
    assert c.line() == b"221 quit ok\r\n"
    assert c.closed()
    log = p.wait_log("proxied session done")
    assert "client logged in, client: " in log


def test_smtplib_login_and_sendmail(smtp_proxy, smtp_backend):
    p, port = smtp_proxy("smtp_auth login plain cram-md5;")
    s = smtplib.SMTP("127.0.0.1", port, timeout=5)
    s.login("test@example.com", "secret")
    assert s.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nhi\r\n") == {}
    s.quit()
    assert smtp_backend.messages == [b"Subject: x\r\n\r\nhi\r\n"]


def test_xclient_off_sends_helo_or_ehlo_as_the_client_said(smtp_proxy, smtp_backend):
    p, port = smtp_proxy("xclient off;")
    c = greet(port)
    c.send(PLAIN_OK)
    assert c.line() == b"235 2.0.0 OK\r\n"
    c.close()
    c = greet(port)
    c.send(b"EHLO x\r\n")
    reply(c)
    c.send(PLAIN_OK)
    assert c.line() == b"235 2.0.0 OK\r\n"
    assert smtp_backend.lines == [b"HELO proxyhost", b"EHLO proxyhost"]


def test_proxy_smtp_auth_sends_auth_plain(smtp_proxy, smtp_backend):
    p, port = smtp_proxy("proxy_smtp_auth on;")
    c = greet(port)
    c.send(b"EHLO x\r\n")
    reply(c)
    c.send(PLAIN_OK)
    assert c.line() == b"235 2.0.0 OK\r\n"
    assert smtp_backend.lines == [b"EHLO proxyhost", b"XCLIENT ADDR=127.0.0.1 NAME=[UNAVAILABLE]",
                                  b"EHLO x", b"AUTH PLAIN AHRlc3RAZXhhbXBsZS5jb20Ac2VjcmV0"]


def test_proxy_smtp_auth_without_a_password_is_an_internal_error(smtp_proxy, smtp_backend,
                                                                   smtp_auth):
    p, port = smtp_proxy("proxy_smtp_auth on;", "smtp_auth cram-md5;")
    smtp_auth.response = lambda req: ok_response(smtp_backend.port)
    c = greet(port)
    c.send(b"AUTH CRAM-MD5\r\n")
    assert c.line().startswith(b"334 ")
    c.send(B64(b"user " + b"0" * 32) + b"\r\n")
    assert c.line() == b"451 4.3.2 Internal server error\r\n"
    assert c.closed()
    assert "[error]" in p.wait_log("no password available while sending AUTH to upstream")


def test_auth_user_goes_to_xclient_login_as_xtext(smtp_proxy, smtp_backend, smtp_auth):
    p, port = smtp_proxy()
    smtp_auth.response = lambda req: ok_response(
        smtp_backend.port, extra=b"Auth-User: other user+x=y\r\n")
    c = greet(port)
    c.send(PLAIN_OK)
    assert c.line() == b"235 2.0.0 OK\r\n"
    assert smtp_backend.lines[1] == \
        b"XCLIENT ADDR=127.0.0.1 LOGIN=other+20user+2Bx+3Dy NAME=[UNAVAILABLE]"


def test_multi_line_backend_replies(smtp_proxy, smtp_backend):
    smtp_backend.greeting = b"220-fake esmtp\r\n220-still greeting\r\n220 ready\r\n"
    smtp_backend.replies[b"EHLO"] = b"250-hello\r\n250-SIZE 100\r\n250 8BITMIME\r\n"
    p, port = smtp_proxy()
    c = greet(port)
    c.send(PLAIN_OK)
    assert c.line() == b"235 2.0.0 OK\r\n"
    c.send(b"NOOP\r\n")
    assert c.line() == b"500 unknown command\r\n"      # relayed: the backend answers


# --- the MX front end: smtp_auth none --------------------------------------------------------

def test_none_flow(smtp_proxy, smtp_backend, smtp_auth):
    p, port = smtp_proxy("smtp_auth none;")
    c = greet(port)
    c.send(b"HELO client.example\r\nMAIL FROM:<a@example.com> SIZE=10\r\n"
           b"rcpt  TO:<b@example.com>\r\n")
    assert c.line() == b"250 proxyhost\r\n"
    assert c.line() == b"250 2.0.0 OK\r\n"
    assert c.line() == b"250 rcpt to ok\r\n"
    assert smtp_backend.lines == [b"EHLO proxyhost", b"XCLIENT ADDR=127.0.0.1 NAME=[UNAVAILABLE]",
                                  b"HELO client.example", b"MAIL FROM:<a@example.com> SIZE=10",
                                  b"rcpt  TO:<b@example.com>"]
    assert smtp_auth.requests[0].raw == (
        b"GET /mail/auth HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: none\r\nAuth-User: \r\n"
        b"Auth-Pass: \r\nAuth-Protocol: smtp\r\nAuth-Login-Attempt: 1\r\n"
        b"Client-IP: 127.0.0.1\r\nClient-Host: [UNAVAILABLE]\r\n"
        b"Auth-SMTP-Helo: client.example\r\nAuth-SMTP-From: MAIL FROM:<a@example.com> SIZE=10\r\n"
        b"Auth-SMTP-To: rcpt  TO:<b@example.com>\r\n\r\n")
    c.send(b"DATA\r\n")
    assert c.line() == b"354 go ahead\r\n"


def test_none_flow_rcpt_reply_comes_from_the_backend_whatever_it_is(smtp_proxy, smtp_backend):
    p, port = smtp_proxy("smtp_auth none;")
    c = greet(port)
    c.send(b"MAIL FROM:<a@b>\r\nRCPT TO:<nobody>\r\n")
    assert c.line() == b"250 2.0.0 OK\r\n"
    assert c.line() == b"500 rcpt to error\r\n"
    c.send(b"RCPT TO:<x@y>\r\n")                   # relayed now
    assert c.line() == b"250 rcpt to ok\r\n"


def test_none_flow_pipelined_rset_reaches_the_backend(smtp_proxy, smtp_backend):
    p, port = smtp_proxy("smtp_auth none;")
    c = greet(port)
    c.send(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRSET\r\n")
    assert [c.line(), c.line(), c.line()] == [b"250 2.0.0 OK\r\n", b"250 rcpt to ok\r\n",
                                              b"250 rset ok\r\n"]


def test_mail_without_none_is_rejected(smtp_proxy):
    p, port = smtp_proxy()
    c = greet(port)
    c.send(b"MAIL FROM:<a@b>\r\n")
    assert c.line() == b"530 5.7.1 Authentication required\r\n"
    assert 'client was rejected: "MAIL FROM:<a@b>__" while in auth state' in \
        p.wait_log("client was rejected")


def test_failed_none_attempt_keeps_mail(smtp_proxy, smtp_auth):
    p, port = smtp_proxy("smtp_auth none;")
    smtp_auth.response = lambda req: fail_response(b"rcpt denied", wait=0,
                                                   extra=b"Auth-Error-Code: 550 5.7.1\r\n")
    c = greet(port)
    c.send(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")
    assert c.line() == b"250 2.0.0 OK\r\n"
    assert c.line() == b"550 5.7.1 rcpt denied\r\n"
    assert c.closed()            # Auth-Wait 0 is no wait: the connection closes


# --- failures ------------------------------------------------------------------------------------

def test_auth_failure_with_and_without_auth_wait(smtp_proxy, smtp_auth):
    p, port = smtp_proxy()
    smtp_auth.wait = 1
    c = greet(port)
    t = time.monotonic()
    c.send(PLAIN_BAD + b"NOOP\r\n")
    assert c.line() == b"535 5.7.0 Invalid login or password\r\n"
    assert time.monotonic() - t >= 0.9
    assert c.line() == b"250 2.0.0 OK\r\n"
    c.send(PLAIN_OK)
    assert c.line() == b"235 2.0.0 OK\r\n"
    assert [r["Auth-Login-Attempt"] for r in smtp_auth.requests] == [b"1", b"2"]
    smtp_auth.wait = None
    c = greet(port)
    c.send(PLAIN_BAD)
    assert c.line() == b"535 5.7.0 Invalid login or password\r\n"
    assert c.closed()
    assert 'client login failed: "Invalid login or password" while in http auth state' \
        in p.log()


def test_auth_error_code(smtp_proxy, smtp_auth):
    p, port = smtp_proxy()
    smtp_auth.response = lambda req: fail_response(b"Go away",
                                                   extra=b"Auth-Error-Code: 454 4.7.0\r\n")
    c = greet(port)
    c.send(PLAIN_BAD)
    assert c.line() == b"454 4.7.0 Go away\r\n"
    assert c.closed()


def test_dead_auth_server_is_an_internal_error(start_proxy):
    port = free_port()
    p, _ = start_proxy(("protocol smtp;", "server_name proxyhost;"), port=port,
                       auth_url=f"127.0.0.1:{free_port()}/a")
    c = greet(port)
    c.send(PLAIN_OK)
    assert c.line() == b"451 4.3.2 Internal server error\r\n"
    assert c.closed()


@pytest.mark.parametrize("step,word,bad", [
    ("greeting", None, b"554 go away\r\n"),
    ("helo", b"EHLO", b"550 no hello\r\n"),
    ("xclient", b"XCLIENT", b"550 xclient denied\r\n"),
])
def test_backend_refusal_with_and_without_pass_error_message(smtp_proxy, smtp_backend, step,
                                                             word, bad):
    if word is None:
        smtp_backend.greeting = bad
    else:
        smtp_backend.replies[word] = bad
    p, port = smtp_proxy()
    c = greet(port)
    c.send(PLAIN_OK)
    assert c.line() == b"451 4.3.2 Internal server error\r\n"
    assert c.closed()
    text = bad[:-2].decode()
    assert f'[error]' in p.wait_log(f'upstream sent invalid response: "{text}" while '
                                    f'reading response from upstream')
    p2, port2 = smtp_proxy("proxy_pass_error_message on;")
    c = greet(port2)
    c.send(PLAIN_OK)
    assert c.line() == bad
    assert c.closed()
    assert "[info]" in p2.wait_log(f'upstream sent invalid response: "{text}"')


def test_refused_mail_from_arrives_as_the_rcpt_answer(smtp_proxy, smtp_backend):
    smtp_backend.replies[b"MAIL"] = b"550 5.7.1 mail from rejected\r\n"
    p, port = smtp_proxy("smtp_auth none;", "proxy_pass_error_message on;")
    c = greet(port)
    c.send(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")
    assert c.line() == b"250 2.0.0 OK\r\n"
    assert c.line() == b"550 5.7.1 mail from rejected\r\n"
    assert c.closed()


def test_backend_that_closes_or_is_down(smtp_proxy, smtp_backend, smtp_auth):
    smtp_backend.greeting = None
    p, port = smtp_proxy()
    c = greet(port)
    c.send(PLAIN_OK)
    assert c.line() == b"451 4.3.2 Internal server error\r\n"
    assert c.closed()
    smtp_auth.response = lambda req: ok_response(free_port())
    c = greet(port)
    c.send(PLAIN_OK)
    assert c.line() == b"451 4.3.2 Internal server error\r\n"
    assert "connect() failed (111: Connection refused) while connecting to upstream" in \
        p.wait_log("connect() failed")


def test_backend_too_long_reply(smtp_proxy, smtp_backend):
    smtp_backend.greeting = b"220 " + b"x" * 5000
    p, port = smtp_proxy("proxy_buffer 1k;")
    c = greet(port)
    c.send(PLAIN_OK)
    assert c.line() == b"451 4.3.2 Internal server error\r\n"
    assert "upstream sent too long response line" in p.wait_log("too long response")


# --- greeting delay, timeouts ----------------------------------------------------------------

def test_client_talking_during_the_greeting_delay_is_rejected(smtp_proxy):
    p, port = smtp_proxy("smtp_greeting_delay 1s;")
    c = Client(port)
    c.send(b"HELO example.com\r\n")
    assert c.line() == b"503 5.5.0 Improper use of SMTP command pipelining\r\n"
    assert c.closed()
    assert 'client was rejected before greeting: "HELO example.com__" while in delay ' \
           'pipelining state' in p.wait_log("rejected before greeting")


def test_greeting_comes_after_the_delay(smtp_proxy):
    p, port = smtp_proxy("smtp_greeting_delay 1s;")
    t = time.monotonic()
    c = greet(port)
    assert time.monotonic() - t >= 0.9
    c.send(b"NOOP\r\n")
    assert c.line() == b"250 2.0.0 OK\r\n"


def test_preauth_deadline_is_not_refreshed_by_commands(smtp_proxy):
    p, port = smtp_proxy("timeout 2s;")
    c = greet(port)
    t = time.monotonic()
    for _ in range(5):
        c.send(b"NOOP\r\n")
        if c.line() != b"250 2.0.0 OK\r\n":
            break
        time.sleep(0.5)
    assert c.closed()
    assert 1.5 < time.monotonic() - t < 4
    assert "client timed out (110: Connection timed out) while in auth state" in \
        p.wait_log("client timed out")


# --- the resolver ---------------------------------------------------------------------------

PTR_LOCAL = "1.0.0.127.in-addr.arpa."


@pytest.fixture
def dns(dns_servers):
    return dns_servers


def test_resolved_name_goes_to_client_host_and_xclient(smtp_proxy, smtp_backend, smtp_auth,
                                                       dns):
    d = dns(zone(ptr={PTR_LOCAL: "A.Example.NET."}, a={"a.example.net.": "127.0.0.1"},
                 aaaa={"a.example.net.": []}))
    p, port = smtp_proxy(f"resolver 127.0.0.1:{d.port};")
    c = greet(port)
    c.send(PLAIN_OK)
    assert c.line() == b"235 2.0.0 OK\r\n"
    assert smtp_auth.requests[0]["Client-Host"] == b"a.example.net"
    assert smtp_backend.lines[1] == \
        b"XCLIENT ADDR=127.0.0.1 LOGIN=test@example.com NAME=a.example.net"


@pytest.mark.parametrize("ptr,host,logged", [
    (None, b"[UNAVAILABLE]", "127.0.0.1 could not be resolved (3: Host not found) while in "
                             "resolving client address"),
    (2, b"[TEMPUNAVAIL]", "127.0.0.1 could not be resolved (2: Server failure) while in "
                          "resolving client address"),
    ("bad_name.example.net.", b"[TEMPUNAVAIL]",
     '127.0.0.1 resolved to invalid host name "bad_name.example.net" while in resolving '
     'client address'),
])
def test_resolution_failures(smtp_proxy, smtp_auth, dns, ptr, host, logged):
    table = {} if ptr is None else {PTR_LOCAL: ptr}
    d = dns(zone(ptr=table))
    p, port = smtp_proxy(f"resolver 127.0.0.1:{d.port};")
    c = greet(port)
    c.send(PLAIN_OK)
    assert c.line() == b"235 2.0.0 OK\r\n"
    assert smtp_auth.requests[0]["Client-Host"] == host
    assert "[error]" in p.wait_log(logged)


def test_forward_failure_is_logged_with_the_hostname_action(smtp_proxy, smtp_auth, dns):
    d = dns(zone(ptr={PTR_LOCAL: "a.example.net."}))
    p, port = smtp_proxy(f"resolver 127.0.0.1:{d.port};")
    c = greet(port)
    c.send(PLAIN_OK)
    assert c.line() == b"235 2.0.0 OK\r\n"
    assert smtp_auth.requests[0]["Client-Host"] == b"[UNAVAILABLE]"
    assert '"a.example.net" could not be resolved (3: Host not found) while in resolving ' \
           'client hostname' in p.wait_log("could not be resolved")


def test_resolution_timeout_delays_the_greeting_and_not_the_deadline(smtp_proxy, smtp_auth,
                                                                     dns):
    d = dns(lambda q, tcp: None)                   # a server that never answers
    p, port = smtp_proxy(f"resolver 127.0.0.1:{d.port};", "resolver_timeout 1s;",
                         "timeout 1s;")
    t = time.monotonic()
    c = Client(port)
    c.send(b"EHLO early\r\n")                     # waits in the socket meanwhile
    assert c.line() == b"220 proxyhost ESMTP ready\r\n"
    assert time.monotonic() - t >= 0.9
    assert reply(c).startswith(b"250-")          # answered: the deadline began at greeting
    c.send(PLAIN_OK)
    assert c.line() == b"235 2.0.0 OK\r\n"
    c.close()
    assert "127.0.0.1 could not be resolved (110: Operation timed out) while in resolving " \
           "client address" in p.wait_log("could not be resolved")
    assert smtp_auth.requests[0]["Client-Host"] == b"[TEMPUNAVAIL]"


def test_unix_socket_client_with_a_resolver(start_proxy, smtp_auth, smtp_backend, tmp_path,
                                            dns):
    d = dns(zone())
    path = str(tmp_path / "smtp.sock")
    p, _ = start_proxy(("protocol smtp;", "server_name proxyhost;",
                        f"resolver 127.0.0.1:{d.port};"), listen=f"listen unix:{path};",
                       auth_url=smtp_auth.url)
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    f = s.makefile("rwb")
    assert f.readline() == b"220 proxyhost ESMTP ready\r\n"
    f.write(PLAIN_OK)
    f.flush()
    assert f.readline() == b"235 2.0.0 OK\r\n"
    assert smtp_auth.requests[0]["Client-Host"] == b"[TEMPUNAVAIL]"
    assert smtp_auth.requests[0]["Client-IP"] == b"unix:"
    assert smtp_backend.lines[1] == \
        b"XCLIENT ADDR=unix: LOGIN=test@example.com NAME=[TEMPUNAVAIL]"
    assert d.asked() == []
    s.close()


def test_ipv6_client_address_in_xclient(start_proxy, smtp_auth, smtp_backend):
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.fail("the test machine has no IPv6 loopback")
    port = free_port("::1")
    p, _ = start_proxy(("protocol smtp;", "server_name proxyhost;"), port=port,
                       listen=f"listen [::1]:{port};", auth_url=smtp_auth.url)
    c = greet(port, "::1")
    c.send(PLAIN_OK)
    assert c.line() == b"235 2.0.0 OK\r\n"
    assert smtp_backend.lines[1] == \
        b"XCLIENT ADDR=IPV6:::1 LOGIN=test@example.com NAME=[UNAVAILABLE]"


# --- TLS -----------------------------------------------------------------------------------------

def test_starttls_then_auth(smtp_proxy, smtp_auth, smtp_backend, pki):
    p, port = smtp_proxy("starttls on;", *tls_lines(pki))
    c = greet(port)
    c.send(b"EHLO x\r\n")
    assert reply(c) == b"250-proxyhost\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
    c.send(b"STARTTLS\r\n")
    assert c.line() == b"220 2.0.0 Start TLS\r\n"
    t = client_ctx(pki).wrap_socket(c.sock)
    t.sendall(b"EHLO y\r\n")
    f = t.makefile("rb")
    assert f.readline() == b"250-proxyhost\r\n"
    assert f.readline() == b"250 AUTH PLAIN LOGIN\r\n"
    t.sendall(PLAIN_OK)
    assert f.readline() == b"235 2.0.0 OK\r\n"
    req = smtp_auth.requests[0]
    assert req["Auth-SSL"] == b"on"
    assert smtp_backend.lines[2] == b"EHLO y"
    assert 'starttls: "true"' in p.wait_log("client logged in")


def test_starttls_only_refuses_auth_on_plain_text(smtp_proxy, pki):
    p, port = smtp_proxy("starttls only;", *tls_lines(pki))
    c = greet(port)
    c.send(b"EHLO x\r\n")
    assert reply(c) == b"250-proxyhost\r\n250 STARTTLS\r\n"
    c.send(PLAIN_OK)
    assert c.line() == b"500 5.5.1 Invalid command\r\n"


def test_implicit_tls(start_proxy, smtp_auth, pki):
    port = free_port()
    p, _ = start_proxy(("protocol smtp;", "server_name proxyhost;", *tls_lines(pki)),
                       port=port, listen=f"listen 127.0.0.1:{port} ssl;",
                       auth_url=smtp_auth.url)
    s = client_ctx(pki).wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
    f = s.makefile("rwb")
    assert f.readline() == b"220 proxyhost ESMTP ready\r\n"
    f.write(b"EHLO x\r\n")
    f.flush()
    assert f.readline() == b"250-proxyhost\r\n"
    assert f.readline() == b"250 AUTH PLAIN LOGIN\r\n"
    f.write(PLAIN_OK)
    f.flush()
    assert f.readline() == b"235 2.0.0 OK\r\n"
    s.close()


def test_no_secret_in_the_log_at_debug(smtp_proxy, smtp_auth):
    p, port = smtp_proxy("smtp_client_buffer 128;", main="")
    c = greet(port)
    c.send(b"AUTH PLAIN " + B64(b"\0test@example.com\0hunter2hunter2") + b"\r\n")
    c.line()
    c.close()
    c = greet(port)
    c.send(b"AUTH PLAIN " + B64(b"\0test@example.com\0hunter2hunter2") + b"x" * 200)
    c.line()
    log = p.wait_log("too long command")
    assert "hunter2" not in log
    assert B64(b"\0test@example.com\0hunter2hunter2").decode()[:20] not in log


# --- PROXY protocol and realip ------------------------------------------------------------------

def test_realip_address_goes_to_xclient_and_proxy_protocol_out(start_proxy, smtp_auth,
                                                                smtp_backend):
    port = free_port()
    p, _ = start_proxy(("protocol smtp;", "server_name proxyhost;",
                        "set_real_ip_from 127.0.0.1;", "proxy_protocol on;"), port=port,
                       listen=f"listen 127.0.0.1:{port} proxy_protocol;",
                       auth_url=smtp_auth.url)
    smtp_backend.proxy_protocol = True
    c = Client(port)
    c.send(b"PROXY TCP6 2001:db8::5 2001:db8::1 40000 25\r\n")
    assert c.line() == b"220 proxyhost ESMTP ready\r\n"
    c.send(PLAIN_OK)
    assert c.line() == b"235 2.0.0 OK\r\n"
    assert smtp_auth.requests[0]["Client-IP"] == b"2001:db8::5"
    assert smtp_backend.lines[0].startswith(b"PROXY TCP6 2001:db8::5 ")
    assert smtp_backend.lines[2] == \
        b"XCLIENT ADDR=IPV6:2001:db8::5 LOGIN=test@example.com NAME=[UNAVAILABLE]"
    c.send(b"XPROXY\r\n")
    assert c.line().startswith(b"211 PROXY TCP6 2001:db8::5 ")


def test_backend_that_never_answers_times_out(smtp_proxy, smtp_backend):
    smtp_backend.replies[b"XCLIENT"] = b""          # says nothing, keeps the connection
    p, port = smtp_proxy("timeout 1s;")
    c = greet(port)
    c.send(PLAIN_OK)
    t = time.monotonic()
    assert c.line() == b"451 4.3.2 Internal server error\r\n"
    assert 0.8 < time.monotonic() - t < 3
    assert "upstream timed out (110: Connection timed out) while sending XCLIENT to " \
           "upstream" in p.wait_log("upstream timed out")
