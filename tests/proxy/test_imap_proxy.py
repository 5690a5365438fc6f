"""The IMAP proxy end to end: a real angie-mail process between imaplib (or a raw client),
an in-test auth_http server and the scripted IMAP backend of the harness (imap.md)."""

from __future__ import annotations

import hashlib
import hmac
import imaplib
import os
import socket
import threading
import time

import pytest

from proxy.differential import SASL_ERROR, b64
from proxy.harness import (AuthServer, Client, ImapBackend, auth_request, client_ctx,
                           fail_response, free_port, ok_response, tls_lines, tls_session)

TOKEN = b"ya29.A1b2C3d4"
ALL_MECHANISMS = "imap_auth plain login cram-md5 external xoauth2 oauthbearer;"
NO = b"NO Invalid login or password\r\n"


@pytest.fixture
def imap_backend():
    b = ImapBackend()
    yield b
    b.close()


def decide(backend_port, wait=None):
    """The auth server's rule: password "secret" or the bearer TOKEN logs in (CRAM-MD5
    and EXTERNAL get Auth-Pass: secret); the token "saslfail" fails with an
    Auth-Error-SASL challenge; anything else fails (with ``wait``: Auth-Wait)."""
    def handler(req):
        method, pw = req["Auth-Method"], req["Auth-Pass"]
        if method in (b"cram-md5", b"external"):
            return ok_response(backend_port, extra=b"Auth-Pass: secret\r\n")
        if pw in (b"secret", TOKEN):
            return ok_response(backend_port)
        if pw == b"saslfail":
            return fail_response(wait=wait, extra=b"Auth-Error-SASL: " + SASL_ERROR + b"\r\n")
        return fail_response(wait=wait)
    return handler


@pytest.fixture
def imap_auth(imap_backend):
    a = AuthServer(decide(imap_backend.port))
    yield a
    a.close()


@pytest.fixture
def wait_auth(imap_backend):
    """Failures carry Auth-Wait: 1, so the session continues."""
    a = AuthServer(decide(imap_backend.port, wait=1))
    yield a
    a.close()


@pytest.fixture
def start_imap(start_proxy):
    """start_imap(auth, server_lines=(), mail_lines=(), ...) -> (proxy, port)."""
    def start(auth, server_lines=(), mail_lines=(), **kw):
        return start_proxy(auth_url=auth.url, protocol="imap", server_lines=server_lines,
                           mail_lines=mail_lines, **kw)
    return start


def connect(port) -> Client:
    c = Client(port)
    assert c.line() == b"* OK IMAP4 ready\r\n"
    return c


BACKEND_LOGIN = [b"a01 LOGIN {16}\r\n", b"test@example.com {6}\r\n", b"secret\r\n"]


# --- LOGIN ---------------------------------------------------------------------------------------

def test_login_transcript(imap_auth, imap_backend, start_imap):
    """imap.md §15: the auth request, the backend's LOGIN literals, the relay."""
    p, port = start_imap(imap_auth)
    c = connect(port)
    c.send(b"a01 LOGIN test@example.com secret\r\n")
    assert c.line() == b"a01 OK login ok\r\n"
    assert [r.raw for r in imap_auth.requests] == [
        auth_request(b"plain", b"test@example.com", b"secret")]
    assert imap_backend.raw == BACKEND_LOGIN
    c.send(b"a02 LOGOUT\r\n")
    assert c.line() == b"a02 OK logout ok\r\n"
    assert c.closed()
    assert imap_backend.raw[3:] == [b"a02 LOGOUT\r\n"]
    log = p.wait_log("proxied session done")
    assert ('client logged in, client: "127.0.0.1:%d", server: "127.0.0.1:%d", '
            'login: "test@example.com", upstream: "127.0.0.1:%d"'
            % (c.sock.getsockname()[1], port, imap_backend.port)) in log


def test_imaplib_login_relays_the_untagged_capability(imap_auth, imap_backend, start_imap):
    p, port = start_imap(imap_auth)
    m = imaplib.IMAP4("127.0.0.1", port, timeout=5)
    assert m.welcome == b"* OK IMAP4 ready"
    assert m.capabilities == ("IMAP4", "IMAP4REV1", "UIDPLUS", "AUTH=PLAIN")
    assert m.login("capability@x", "secret") == ("OK", [b"login ok"])
    assert m.response("CAPABILITY") == ("CAPABILITY", [b"IMAP4rev1"])
    tag = imap_backend.raw[0].split(b" ")[0]
    assert imap_backend.raw == [tag + b" LOGIN {12}\r\n", b"capability@x {6}\r\n",
                                b"secret\r\n"]
    assert m.logout()[0] == "OK"
    assert 'login: "capability@x"' in p.wait_log("client logged in")


def test_login_with_literals_and_quoted_strings(imap_auth, imap_backend, start_imap):
    p, port = start_imap(imap_auth)
    c = connect(port)
    c.send(b"a01 LOGIN {16}\r\n")
    assert c.line() == b"+ OK\r\n"
    c.send(b"test@example.com {6+}\r\nsecret\r\n")
    assert c.line() == b"a01 OK login ok\r\n"
    assert imap_backend.raw == BACKEND_LOGIN
    c = connect(port)
    c.send(b'a01 LOGIN "te\\\\\\"st@example.com" "se\\\\\\"cret"\r\n')
    assert c.line() == b"a01 " + NO
    assert imap_auth.requests[-1].raw == auth_request(b"plain", b'te\\"st@example.com',
                                                      b'se\\"cret')


def test_failure_without_auth_wait_closes(imap_auth, imap_backend, start_imap):
    p, port = start_imap(imap_auth)
    c = connect(port)
    c.send(b"1 LOGIN nowait@example.com bad\r\n")
    assert c.line() == b"1 " + NO
    assert c.closed()
    assert c.buf == b""
    assert 'client login failed: "Invalid login or password"' in p.wait_log("login failed")
    assert imap_backend.connections == 0


def test_failure_with_auth_wait_continues(wait_auth, imap_backend, start_imap):
    p, port = start_imap(wait_auth)
    c = connect(port)
    t = time.time()
    c.send(b"a01 LOGIN test@example.com bad\r\n")
    assert c.line() == b"a01 " + NO
    assert time.time() - t >= 0.9
    c.send(b"a02 NOOP\r\n")
    assert c.line() == b"a02 OK completed\r\n"
    c.send(b"a01 LOGIN test@example.com secret\r\n")
    assert c.line() == b"a01 OK login ok\r\n"
    assert [r["Auth-Login-Attempt"] for r in wait_auth.requests] == [b"1", b"2"]


def test_wait_status_retries_the_same_attempt(imap_backend, start_imap):
    answers = [b"HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\nAuth-Wait: 1\r\n\r\n"] * 2 + [
        ok_response(imap_backend.port)]
    auth = AuthServer(lambda req: answers.pop(0))
    try:
        p, port = start_imap(auth)
        c = connect(port)
        t = time.time()
        c.send(b"a01 LOGIN test@example.com secret\r\n")
        assert c.line() == b"a01 OK login ok\r\n"
        assert time.time() - t >= 1.9
        assert [r.raw for r in auth.requests] == [
            auth_request(b"plain", b"test@example.com", b"secret")] * 3
    finally:
        auth.close()


def test_auth_user_and_auth_pass_go_to_the_backend(imap_backend, start_imap):
    auth = AuthServer(lambda req: ok_response(imap_backend.port,
                                              extra=b"Auth-User: other@example.com\r\n"
                                                    b"Auth-Pass: backend-pass\r\n"))
    try:
        p, port = start_imap(auth)
        c = connect(port)
        c.send(b"a01 LOGIN alias client-pass\r\n")
        assert c.line() == b"a01 OK login ok\r\n"
        assert imap_backend.raw == [b"a01 LOGIN {17}\r\n", b"other@example.com {12}\r\n",
                                    b"backend-pass\r\n"]
        assert 'login: "other@example.com"' in p.wait_log("client logged in")
    finally:
        auth.close()


def test_empty_password_is_sent_as_an_empty_literal(imap_backend, start_imap):
    auth = AuthServer(lambda req: ok_response(imap_backend.port))
    try:
        p, port = start_imap(auth)
        c = connect(port)
        c.send(b'a01 LOGIN test@example.com ""\r\n')
        assert c.line() == b"a01 OK login ok\r\n"
        assert auth.requests[0].raw == auth_request(b"plain", b"test@example.com", b"")
        assert imap_backend.raw == [b"a01 LOGIN {16}\r\n", b"test@example.com {0}\r\n",
                                    b"\r\n"]
    finally:
        auth.close()


# --- AUTHENTICATE --------------------------------------------------------------------------------

SALTED = "<R.T@mail.example.com>"

# name -> (client lines, the replies before the login reply, (method, user, password))
MECHANISMS = {
    "plain_initial_response": (
        [b"a01 AUTHENTICATE PLAIN " + b64(b"\0test@example.com\0secret")], [],
        (b"plain", b"test@example.com", b"secret")),
    "plain_continuation": (
        [b"a01 AUTHENTICATE PLAIN", b64(b"authz\0test@example.com\0secret")], [b"+ "],
        (b"plain", b"test@example.com", b"secret")),
    "login": (
        [b"a01 AUTHENTICATE LOGIN", b64(b"test@example.com"), b64(b"secret")],
        [b"+ VXNlcm5hbWU6", b"+ UGFzc3dvcmQ6"], (b"plain", b"test@example.com", b"secret")),
    "login_initial_response": (
        [b"a01 AUTHENTICATE LOGIN " + b64(b"test@example.com"), b64(b"secret")],
        [b"+ UGFzc3dvcmQ6"], (b"plain", b"test@example.com", b"secret")),
    "external": (
        [b"a01 AUTHENTICATE EXTERNAL", b64(b"test@example.com")], [b"+ VXNlcm5hbWU6"],
        (b"external", b"test@example.com", b"")),
    "external_initial_response": (
        [b"a01 authenticate external " + b64(b"test@example.com")], [],
        (b"external", b"test@example.com", b"")),
    "xoauth2_initial_response": (
        [b"a01 AUTHENTICATE XOAUTH2 "
         + b64(b"user=test@example.com\x01auth=Bearer " + TOKEN + b"\x01\x01")], [],
        (b"xoauth2", b"test@example.com", TOKEN)),
    "xoauth2_continuation": (
        [b"a01 AUTHENTICATE XOAUTH2",
         b64(b"user=test@example.com\x01auth=Bearer " + TOKEN + b"\x01\x01")], [b"+ "],
        (b"xoauth2", b"test@example.com", TOKEN)),
    "oauthbearer": (
        [b"a01 AUTHENTICATE OAUTHBEARER "
         + b64(b"n,a=test@example.com=2Cx=3Dy,\x01host=x\x01auth=Bearer " + TOKEN
               + b"\x01\x01")],
        [], (b"oauthbearer", b"test@example.com,x=y", TOKEN)),
}


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_authenticate_mechanisms(imap_auth, imap_backend, start_imap, name):
    lines, challenges, (method, user, pw) = MECHANISMS[name]
    p, port = start_imap(imap_auth, server_lines=[ALL_MECHANISMS])
    c = connect(port)
    for i, line in enumerate(lines):
        c.send(line + b"\r\n")
        if i < len(challenges):
            assert c.line() == challenges[i] + b"\r\n"
    assert c.line() == b"a01 OK login ok\r\n"
    assert [r.raw for r in imap_auth.requests] == [auth_request(method, user, pw)]
    backend_pw = b"secret" if method == b"external" else pw
    assert imap_backend.raw == [b"a01 LOGIN {%d}\r\n" % len(user),
                                user + b" {%d}\r\n" % len(backend_pw), backend_pw + b"\r\n"]


def test_capability_lists_every_enabled_mechanism(imap_auth, start_imap):
    p, port = start_imap(imap_auth, server_lines=[ALL_MECHANISMS],
                         mail_lines=["server_name mail.example.com;"])
    c = connect(port)
    c.send(b"a CAPABILITY\r\n")
    assert c.line() == (b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN AUTH=LOGIN "
                        b"AUTH=CRAM-MD5 AUTH=EXTERNAL AUTH=XOAUTH2 AUTH=OAUTHBEARER\r\n")
    assert c.line() == b"a OK completed\r\n"


def test_cram_md5_with_imaplib(imap_auth, imap_backend, start_imap):
    p, port = start_imap(imap_auth, server_lines=[ALL_MECHANISMS],
                         mail_lines=["server_name mail.example.com;"])
    m = imaplib.IMAP4("127.0.0.1", port, timeout=5)
    assert m.login_cram_md5("test@example.com", "s3cret")[0] == "OK"
    req = imap_auth.requests[0]
    salt = req["Auth-Salt"]
    assert salt.startswith(b"<") and salt.endswith(b"@mail.example.com>")
    digest = hmac.new(b"s3cret", salt, hashlib.md5).hexdigest().encode()
    assert req.raw == auth_request(b"cram-md5", b"test@example.com", digest, salt=salt)
    assert imap_backend.raw[1:] == [b"test@example.com {6}\r\n", b"secret\r\n"]
    m.logout()


def test_failed_plain_then_external(wait_auth, imap_backend, start_imap):
    """imap.md §15: EXTERNAL after a failed PLAIN carries an empty Auth-Pass."""
    p, port = start_imap(wait_auth, server_lines=["imap_auth plain external;"])
    c = connect(port)
    t = time.time()
    c.send(b"1 AUTHENTICATE PLAIN AHRlc3RAZXhhbXBsZS5jb20AYmFk\r\n")
    assert c.line() == b"1 " + NO
    assert time.time() - t >= 0.9
    c.send(b"2 AUTHENTICATE EXTERNAL dGVzdEBleGFtcGxlLmNvbQ==\r\n")
    assert c.line() == b"2 OK login ok\r\n"
    assert [r.raw for r in wait_auth.requests] == [
        auth_request(b"plain", b"test@example.com", b"bad"),
        auth_request(b"external", b"test@example.com", b"", attempt=2)]
    assert imap_backend.raw == [b"2 LOGIN {16}\r\n", b"test@example.com {6}\r\n",
                                b"secret\r\n"]


def test_oauthbearer_auth_error_sasl_with_auth_wait(wait_auth, start_imap):
    """imap.md §15: the SASL challenge after the wait, AQ== answers it, the session
    continues."""
    p, port = start_imap(wait_auth, server_lines=[ALL_MECHANISMS])
    c = connect(port)
    t = time.time()
    c.send(b"2 AUTHENTICATE OAUTHBEARER bixhPXRlc3RAZXhhbXBsZS5jb20sAWhvc3Q9eAFhdXRoPUJlYXJl"
           b"ciBzYXNsZmFpbAEB\r\n")
    assert c.line() == b"+ " + SASL_ERROR + b"\r\n"
    assert time.time() - t >= 0.9
    c.send(b"AQ==\r\n")
    assert c.line() == b"2 " + NO
    c.send(b"3 NOOP\r\n")
    assert c.line() == b"3 OK completed\r\n"
    assert wait_auth.requests[0].raw == auth_request(b"oauthbearer", b"test@example.com",
                                                     b"saslfail")


@pytest.mark.parametrize("answer,reply", [(b"", b"a NO Invalid login or password\r\n"),
                                          (b"   ", b"a NO Invalid login or password\r\n"),
                                          (b"x", b"a BAD invalid command\r\n")],
                         ids=["empty", "spaces", "token"])
def test_xoauth2_auth_error_sasl_without_auth_wait(imap_auth, start_imap, answer, reply):
    p, port = start_imap(imap_auth, server_lines=[ALL_MECHANISMS])
    c = connect(port)
    c.send(b"a AUTHENTICATE XOAUTH2 "
           + b64(b"user=test@example.com\x01auth=Bearer saslfail\x01\x01") + b"\r\n")
    assert c.line() == b"+ " + SASL_ERROR + b"\r\n"
    c.send(answer + b"\r\n")
    assert c.line() == reply
    assert c.closed()


# --- TLS -----------------------------------------------------------------------------------------

def test_starttls_with_imaplib(pki, imap_auth, imap_backend, start_imap):
    p, port = start_imap(imap_auth, server_lines=["starttls on;"], mail_lines=tls_lines(pki))
    m = imaplib.IMAP4("127.0.0.1", port, timeout=5)
    assert m.capabilities == ("IMAP4", "IMAP4REV1", "UIDPLUS", "AUTH=PLAIN", "STARTTLS")
    assert m.starttls(client_ctx(pki))[0] == "OK"
    assert m.capabilities == ("IMAP4", "IMAP4REV1", "UIDPLUS", "AUTH=PLAIN")
    assert m.login("test@example.com", "secret")[0] == "OK"
    req = imap_auth.requests[0]
    assert req.raw.startswith(auth_request(b"plain", b"test@example.com", b"secret")[:-2]
                              + b"Auth-SSL: on\r\nAuth-SSL-Protocol: TLSv1.3\r\n"
                                b"Auth-SSL-Cipher: TLS_")
    m.logout()
    assert 'starttls: "true"' in p.wait_log("client logged in")


def test_starttls_only(pki, imap_auth, start_imap):
    p, port = start_imap(imap_auth, server_lines=["starttls only;"], mail_lines=tls_lines(pki))
    c = connect(port)
    c.send(b"a CAPABILITY\r\n")
    assert c.line() == b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS STARTTLS LOGINDISABLED\r\n"
    assert c.line() == b"a OK completed\r\n"
    for cmd in (b"b LOGIN test@example.com secret", b"b AUTHENTICATE PLAIN",
                b"b AUTHENTICATE"):
        c.send(cmd + b"\r\n")
        assert c.line() == b"b BAD invalid command\r\n"
    c.send(b"c NOOP\r\n")
    assert c.line() == b"c OK completed\r\n"
    m = imaplib.IMAP4("127.0.0.1", port, timeout=5)
    m.starttls(client_ctx(pki))
    assert m.login("test@example.com", "secret")[0] == "OK"
    assert imap_auth.requests[0]["Auth-SSL"] == b"on"


def test_bytes_after_starttls_are_discarded(pki, imap_auth, start_imap):
    """imap.md §9: a LOGIN pipelined behind STARTTLS is never executed."""
    p, port = start_imap(imap_auth, server_lines=["starttls on;"], mail_lines=tls_lines(pki))
    c = connect(port)
    c.send(b"a STARTTLS\r\nb LOGIN test@example.com secret\r\n")
    assert c.line() == b"a OK completed\r\n"
    assert c.buf == b""
    tls = client_ctx(pki).wrap_socket(c.sock)
    tls.sendall(b"c NOOP\r\n")
    assert tls.recv(100) == b"c OK completed\r\n"
    assert imap_auth.requests == []


def test_implicit_tls_and_auth_ssl_headers(pki, imap_auth, imap_backend, start_imap):
    port = free_port()
    p, _ = start_imap(imap_auth, mail_lines=tls_lines(pki), port=port,
                      listen=f"listen 127.0.0.1:{port} ssl;")
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=client_ctx(pki), timeout=5)
    assert m.welcome == b"* OK IMAP4 ready"
    assert "STARTTLS" not in m.capabilities
    assert m.login("test@example.com", "secret")[0] == "OK"
    req = imap_auth.requests[0]
    assert [(n, v) for n, v in req.header_list if n.startswith("Auth-SSL")] == [
        ("Auth-SSL", b"on"), ("Auth-SSL-Protocol", b"TLSv1.3"),
        ("Auth-SSL-Cipher", req["Auth-SSL-Cipher"])]
    assert req["Auth-SSL-Cipher"].startswith(b"TLS_")
    m.logout()


def test_client_certificates(pki, imap_auth, start_imap):
    port = free_port()
    p, _ = start_imap(imap_auth, port=port, listen=f"listen 127.0.0.1:{port} ssl;",
                      mail_lines=tls_lines(pki, ["ssl_verify_client on;",
                                                 f"ssl_client_certificate {pki['ca']};"]))
    assert tls_session(pki, port)[1] == b"* BYE No required SSL certificate\r\n"
    p.wait_log("client sent no required SSL certificate")
    assert tls_session(pki, port, pki["self_crt"], pki["self_key"])[1] == \
        b"* BYE SSL certificate error\r\n"
    p.wait_log("client SSL certificate verify error")
    c = Client(port)
    c.sock = client_ctx(pki, pki["client_crt"], pki["client_key"]).wrap_socket(c.sock)
    assert c.line() == b"* OK IMAP4 ready\r\n"
    c.send(b"a LOGIN test@example.com secret\r\n")
    assert c.line() == b"a OK login ok\r\n"
    req = imap_auth.requests[0]
    assert req["Auth-SSL-Verify"] == b"SUCCESS"
    assert req["Auth-SSL-Subject"] == pki["client_cert"].subject.rfc4514_string().encode()
    assert req["Auth-SSL-Serial"] == b"1A2B3C"


# --- pipelining, limits, timeouts ----------------------------------------------------------------

def test_bytes_after_login_reach_the_backend(imap_auth, imap_backend, start_imap):
    p, port = start_imap(imap_auth)
    c = connect(port)
    c.send(b"a01 LOGIN test@example.com secret\r\na02 FOO bar\r\na03 LOGOUT\r\n")
    assert c.line() == b"a01 OK login ok\r\n"
    assert c.line() == b"a02 ERR unknown command\r\n"
    assert c.line() == b"a03 OK logout ok\r\n"
    assert c.closed()
    assert imap_backend.raw == BACKEND_LOGIN + [b"a02 FOO bar\r\n", b"a03 LOGOUT\r\n"]


def test_bytes_after_authenticate_reach_the_backend(imap_auth, imap_backend, start_imap):
    p, port = start_imap(imap_auth)
    c = connect(port)
    c.send(b"a01 AUTHENTICATE PLAIN\r\n" + b64(b"\0test@example.com\0secret")
           + b"\r\na02 LOGOUT\r\n")
    assert c.line() == b"+ \r\n"
    assert c.line() == b"a01 OK login ok\r\n"
    assert c.line() == b"a02 OK logout ok\r\n"
    assert imap_backend.raw == BACKEND_LOGIN + [b"a02 LOGOUT\r\n"]


def test_bytes_after_a_failed_login_run_after_the_no(wait_auth, start_imap):
    p, port = start_imap(wait_auth)
    c = connect(port)
    c.send(b"a01 LOGIN test@example.com bad\r\na02 NOOP\r\n")
    assert c.line() == b"a01 " + NO
    assert c.line() == b"a02 OK completed\r\n"


def test_max_errors(imap_auth, start_imap):
    p, port = start_imap(imap_auth, mail_lines=["max_errors 2;"])
    c = connect(port)
    c.send(b"a01 FOO\r\n")
    assert c.line() == b"a01 BAD invalid command\r\n"
    c.send(b"a02 LOGIN\r\n")                           # handler level: not counted
    assert c.line() == b"a02 BAD invalid command\r\n"
    c.send(b"a03 BAR\r\n")
    assert c.line() == b"a03 BAD invalid command\r\n"
    assert c.closed()
    p.wait_log("client sent too many invalid commands")


def test_max_commands_counts_continuation_lines(imap_auth, start_imap):
    """imap.md §8: the example with max_commands 2."""
    p, port = start_imap(imap_auth, mail_lines=["max_commands 2;"])
    c = connect(port)
    c.send(b"a NOOP {3}\r\n")
    assert c.line() == b"+ OK\r\n"
    c.send(b"abc\r\n")
    assert c.line() == b"a OK completed\r\n"
    c.send(b"b AUTHENTICATE LOGIN\r\n")
    assert c.line() == b"+ VXNlcm5hbWU6\r\n"
    c.send(b64(b"test@example.com") + b"\r\n")
    assert c.line() == b"b BAD invalid command\r\n"
    assert c.closed()
    p.wait_log("client sent too many commands")
    assert imap_auth.requests == []


def test_too_long_line(imap_auth, start_imap):
    p, port = start_imap(imap_auth, server_lines=["imap_client_buffer 1k;"])
    c = connect(port)
    c.send(b"a NOOP " + b"x" * 1015 + b"\r\n")         # exactly 1024 bytes: accepted
    assert c.line() == b"a OK completed\r\n"
    c.send(b"a01 LOGIN test@example.com " + b"p" * 997)  # fills the buffer, no line end
    assert c.line() == b"a01 BAD invalid command\r\n"
    assert c.closed()
    assert 'client sent too long command "a01 LOGIN ***"' in p.wait_log("too long command")


def test_preauth_timeout_is_a_deadline(imap_auth, start_imap):
    p, port = start_imap(imap_auth, mail_lines=["timeout 2s;"])
    c = connect(port)
    t = time.time()
    for i in range(3):
        c.send(b"a%d NOOP\r\n" % i)
        assert c.line() == b"a%d OK completed\r\n" % i
        c.sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            c.sock.recv(1)                             # the NOOPs do not refresh it
    assert c.closed(5)
    assert c.buf == b""                                # no * BYE
    assert 1.9 <= time.time() - t < 3.5
    assert "client timed out (110: Connection timed out)" in p.wait_log("client timed out")


def test_timeout_rearmed_after_a_failed_login(wait_auth, start_imap):
    """mail_proxy_timeout.t: two failed LOGINs with Auth-Wait: 1 and timeout 2s."""
    p, port = start_imap(wait_auth, mail_lines=["timeout 2s;"])
    c = connect(port)
    for tag in (b"a", b"b"):
        c.send(tag + b" LOGIN test@example.com bad\r\n")
        assert c.line() == tag + b" " + NO
    t = time.time()
    assert c.closed(5)
    assert 1.7 <= time.time() - t < 3.5


def test_proxy_timeout(imap_auth, start_imap):
    p, port = start_imap(imap_auth, mail_lines=["proxy_timeout 1s;"])
    c = connect(port)
    c.send(b"a LOGIN test@example.com secret\r\n")
    assert c.line() == b"a OK login ok\r\n"
    t = time.time()
    assert c.closed(5)
    assert 0.9 <= time.time() - t < 3
    assert "client timed out (110: Connection timed out) while proxying" in \
        p.wait_log("client timed out")


def test_backend_bare_plus_stalls_until_timeout(start_imap):
    """imap.md §12 step 4: a 3-byte '+' CRLF is not a complete reply."""
    backend = ImapBackend(continuation=b"+\r\n")
    auth = AuthServer(lambda req: ok_response(backend.port))
    try:
        p, port = start_imap(auth, mail_lines=["timeout 1s;"])
        c = connect(port)
        t = time.time()
        c.send(b"a LOGIN test@example.com secret\r\n")
        assert c.line() == b"* BAD internal server error\r\n"
        assert 0.9 <= time.time() - t < 3
        assert c.closed()
        p.wait_log("upstream timed out (110: Connection timed out)")
        assert backend.raw == [b"a LOGIN {16}\r\n"]
    finally:
        auth.close()
        backend.close()


# --- failures of the auth server and of the backend ----------------------------------------------

def test_dead_auth_server(start_proxy):
    dead = free_port()
    p, port = start_proxy(auth_url=f"127.0.0.1:{dead}/auth", protocol="imap")
    c = connect(port)
    c.send(b"a LOGIN test@example.com secret\r\n")
    assert c.line() == b"* BAD internal server error\r\n"
    assert c.closed()
    line = next(l for l in p.wait_log("(111: Connection refused)").splitlines()
                if "(111: Connection refused)" in l)
    assert "[error]" in line and "(111: Connection refused) while in http auth state" in line


@pytest.mark.parametrize("pass_error", [False, True], ids=["off", "on"])
@pytest.mark.parametrize("login,greeting,reply,text", [
    (b"backendno", None, b"a NO [AUTHENTICATIONFAILED] backend says no\r\n",
     "NO [AUTHENTICATIONFAILED] backend says no"),
    (b"test@example.com", b"* BYE go away\r\n", b"* BYE go away\r\n", "* BYE go away"),
    (b"wrongtag", None, b"xa OK login ok\r\n", "xa OK login ok"),
], ids=["no", "greeting", "tag"])
def test_proxy_pass_error_message(start_imap, pass_error, login, greeting, reply, text):
    backend = ImapBackend(**({"greeting": greeting} if greeting else {}))
    auth = AuthServer(lambda req: ok_response(backend.port))
    try:
        lines = ["proxy_pass_error_message on;"] if pass_error else []
        p, port = start_imap(auth, mail_lines=lines)
        c = connect(port)
        c.send(b"a LOGIN " + login + b" secret\r\n")
        assert c.line() == (reply if pass_error else b"* BAD internal server error\r\n")
        assert c.closed()
        line = next(l for l in p.wait_log("upstream sent invalid response").splitlines()
                    if "upstream sent invalid response" in l)
        assert f'upstream sent invalid response: "{text}" while' in line
        assert ("[info]" if pass_error else "[error]") in line
    finally:
        auth.close()
        backend.close()


def test_backend_two_untagged_lines_fail(start_imap):
    backend = ImapBackend()
    auth = AuthServer(lambda req: ok_response(backend.port))
    try:
        p, port = start_imap(auth, mail_lines=["proxy_pass_error_message on;"])
        c = connect(port)
        c.send(b"a LOGIN twountagged secret\r\n")
        assert c.read_until(b"a OK login ok\r\n") == (b"* CAPABILITY IMAP4rev1\r\n"
                                                      b"* OK extra\r\na OK login ok\r\n")
        assert c.closed()
        p.wait_log("upstream sent invalid response")
    finally:
        auth.close()
        backend.close()


def test_backend_greeting_too_long(start_imap):
    backend = ImapBackend(greeting=b"* OK " + b"x" * 5000)
    auth = AuthServer(lambda req: ok_response(backend.port))
    try:
        p, port = start_imap(auth)
        c = connect(port)
        c.send(b"a LOGIN test@example.com secret\r\n")
        assert c.line() == b"* BAD internal server error\r\n"
        assert c.closed()
        p.wait_log("upstream sent too long response line")
    finally:
        auth.close()
        backend.close()


# --- secrets, relay --------------------------------------------------------------------------------

def test_secrets_never_logged(imap_backend, start_imap):
    """imap.md §14: LOGIN arguments (literals too), SASL payloads and continuation
    lines, tokens and Auth-Pass are masked at every level (the log is at debug)."""
    auth = AuthServer(lambda req: fail_response() if req["Auth-User"].startswith(b"fail")
                      else ok_response(imap_backend.port, extra=b"Auth-Pass: BackendS3cret\r\n"))
    sessions = [
        (b"a LOGIN test@example.com S3cr3tPass\r\n", 'login: "test@example.com", upstream'),
        (b"a LOGIN {5}\r\nfail1 {10}\r\nS3cr3tPass\r\n", 'login: "fail1"'),
        (b"a AUTHENTICATE PLAIN " + b64(b"\0fail2\0S3cr3tPass") + b"\r\n", 'login: "fail2"'),
        (b"a AUTHENTICATE LOGIN\r\n" + b64(b"fail3") + b"\r\n" + b64(b"S3cr3tPass") + b"\r\n",
         'login: "fail3"'),
        (b"a AUTHENTICATE XOAUTH2 " + b64(b"user=fail4\x01auth=Bearer S3cr3tPass\x01\x01")
         + b"\r\n", 'login: "fail4"'),
        (b"a LOGIN test@example.com S3cr3tPass" + b"x" * 5000,
         'client sent too long command "a LOGIN ***"'),
        (b"a AUTHENTICATE LOGIN\r\n" + b64(b"fail5") + b"\r\n" + b64(b"S3cr3tPass")
         + b"A" * 5000, 'client sent too long command "a AUTHENTICATE LOGIN'),
    ]
    try:
        p, port = start_imap(auth, server_lines=[ALL_MECHANISMS])
        for data, marker in sessions:
            c = connect(port)
            c.send(data)
            p.wait_log(marker)
            c.close()
        log = p.log()
        for secret in ("S3cr3tPass", "BackendS3cret", "UzNjcjN0UGFzcw",
                       b64(b"\0fail2\0S3cr3tPass").decode(),
                       b64(b"user=fail4\x01auth=Bearer S3cr3tPass\x01\x01").decode()):
            assert secret not in log
    finally:
        auth.close()


def test_large_message_both_ways_byte_exact(imap_auth, imap_backend, start_imap):
    """20 MB of arbitrary bytes up (APPEND literal) and down (FETCH literal)."""
    p, port = start_imap(imap_auth)
    message = os.urandom(20 * 1024 * 1024)
    c = Client(port, timeout=60)
    c.line()
    c.send(b"a LOGIN test@example.com secret\r\n")
    assert c.line() == b"a OK login ok\r\n"
    c.send(b"b APPEND INBOX {%d}\r\n" % len(message))
    assert c.line() == b"+ \r\n"
    sender = threading.Thread(target=c.sock.sendall, args=(message + b"\r\n",))
    sender.start()
    assert c.line() == b"b OK append ok\r\n"
    sender.join(60)
    assert hashlib.sha256(imap_backend.messages[0]).digest() == \
        hashlib.sha256(message).digest()
    c.send(b"c FETCH 1 BODY[]\r\n")
    head = b"* 1 FETCH (BODY[] {%d}\r\n" % len(message)
    tail = b")\r\nc OK fetch ok\r\n"
    got = c.read(len(head) + len(message) + len(tail))
    assert got[:len(head)] == head and got[-len(tail):] == tail
    assert hashlib.sha256(got[len(head):-len(tail)]).digest() == \
        hashlib.sha256(message).digest()
    c.send(b"d LOGOUT\r\n")
    assert c.line() == b"d OK logout ok\r\n"
    assert c.closed()


def test_imaplib_append_select_fetch(imap_auth, imap_backend, start_imap):
    p, port = start_imap(imap_auth)
    text = b"Subject: big\r\n\r\n" + b"".join(b"line %06d %s\r\n" % (i, b"y" * 70)
                                              for i in range(20000))
    m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    m.login("test@example.com", "secret")
    assert m.append("INBOX", None, None, text)[0] == "OK"
    assert m.select("INBOX") == ("OK", [b"1"])
    typ, data = m.fetch("1", "BODY[]")
    assert typ == "OK" and data[0][1] == text
    m.logout()
