"""TLS from the proxy to the backend (proxy_ssl, angie-mail): implicit TLS and
STLS/STARTTLS to a real Dovecot (POP3, IMAP) and a real SMTP server (aiosmtpd), byte
for byte; verification of the backend's certificate and name; a client certificate;
session reuse; a backend injecting bytes before the handshake."""

from __future__ import annotations

import imaplib
import os
import poplib
import re
import smtplib
import socket
import ssl
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

import certs
from fixtures.dovecot import Dovecot, dovecot_dir
from proxy.harness import AuthServer, ok_response, free_port

BIG = (b"From: a@example.com\r\nSubject: big\r\n\r\n"
       + b"".join(b"line %07d " % i + b"y" * 50 + b"\r\n" for i in range(70000))
       + b".dot first\r\n..two\r\nend\r\n")


@pytest.fixture(scope="module")
def pki2(tmp_path_factory):
    """A second CA with its own server certificate: not trusted by the first."""
    return certs.make(str(tmp_path_factory.mktemp("pki2")))


@pytest.fixture(scope="module")
def tls_dovecot(tmp_path_factory):
    with dovecot_dir() as d:
        made = certs.make(str(d / "pki"))
        for name in os.listdir(d / "pki"):
            os.chmod(d / "pki" / name, 0o644)
        os.chmod(d / "pki", 0o755)
        dc = Dovecot(d, tls=(made["server_rsa_crt"], made["server_rsa_key"]))
        dc.add_user("alice", "secret")
        dc.deliver("alice", BIG)
        dc.deliver("alice", b"Subject: small\r\n\r\nhello\r\n")
        with dc:
            yield dc, made


def _auth(port):
    return AuthServer(lambda req: ok_response(port) if req["Auth-Pass"] == b"secret" else
                      b"HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n\r\n")


def _verify(pki, name="mail.example.test"):
    return ["proxy_ssl_verify on;", f"proxy_ssl_trusted_certificate {pki['ca']};",
            f"proxy_ssl_name {name};"]


def _pop3_retr_big(port):
    m = poplib.POP3("127.0.0.1", port, timeout=20)
    m.user("alice")
    assert m.pass_("secret").startswith(b"+OK")
    lines = m.retr(1)[1]
    assert b"\r\n".join(lines) + b"\r\n" == BIG
    m.quit()


def _login_lines(dc, since: int):
    return [l for l in dc.log()[since:].splitlines() if "Login: user=<alice>" in l]


@pytest.mark.parametrize("mode", ["on", "starttls"])
def test_pop3_over_tls_to_dovecot(tls_dovecot, start_proxy, mode):
    dc, made = tls_dovecot
    auth = _auth(dc.pop3s_port if mode == "on" else dc.pop3_port)
    try:
        before = len(dc.log())
        p, port = start_proxy([f"proxy_ssl {mode};", *_verify(made)], auth_url=auth.url)
        _pop3_retr_big(port)
        logins = _login_lines(dc, before)
        assert len(logins) == 1 and ", TLS" in logins[0], logins
        assert "upstream" not in p.log().split("client logged in")[0].split("\n")[-1]
    finally:
        auth.close()


@pytest.mark.parametrize("mode", ["on", "starttls"])
def test_imap_over_tls_to_dovecot(tls_dovecot, start_proxy, mode):
    dc, made = tls_dovecot
    auth = _auth(dc.imaps_port if mode == "on" else dc.imap_port)
    try:
        before = len(dc.log())
        p, port = start_proxy([f"proxy_ssl {mode};", *_verify(made)], auth_url=auth.url,
                              protocol="imap")
        m = imaplib.IMAP4("127.0.0.1", port, timeout=20)
        assert m.login("alice", "secret")[0] == "OK"
        m.select()
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == BIG
        m.logout()
        logins = _login_lines(dc, before)
        assert len(logins) == 1 and ", TLS" in logins[0], logins
    finally:
        auth.close()


def test_plain_backend_login_is_not_tls(tls_dovecot, start_proxy):
    """The control: without proxy_ssl the same backend sees a login in the clear."""
    dc, made = tls_dovecot
    auth = _auth(dc.pop3_port)
    try:
        before = len(dc.log())
        p, port = start_proxy([], auth_url=auth.url)
        m = poplib.POP3("127.0.0.1", port, timeout=10)
        m.user("alice")
        m.pass_("secret")
        m.quit()
        logins = _login_lines(dc, before)
        assert len(logins) == 1 and "TLS" not in logins[0], logins
    finally:
        auth.close()


@pytest.mark.parametrize("mode", ["on", "starttls"])
def test_untrusted_backend_certificate_refused(tls_dovecot, start_proxy, pki2, mode):
    dc, made = tls_dovecot
    auth = _auth(dc.pop3s_port if mode == "on" else dc.pop3_port)
    try:
        before = len(dc.log())
        p, port = start_proxy([f"proxy_ssl {mode};", *_verify(pki2)], auth_url=auth.url)
        m = poplib.POP3("127.0.0.1", port, timeout=10)
        m.user("alice")
        with pytest.raises(poplib.error_proto) as e:
            m.pass_("secret")
        assert str(e.value) == "b'-ERR internal server error'"
        line = p.wait_log("upstream SSL certificate verify error")
        # the other CA has the same name as the trusted one: its signature fails
        assert re.search(r"\[error\] .* upstream SSL certificate verify error: \(7:certificate "
                         r"signature failure\) while SSL handshaking to upstream, client: "
                         r'"127\.0\.0\.1:\d+", server: .*, login: "alice", upstream: '
                         r'"127\.0\.0\.1:%d"' % (dc.pop3s_port if mode == "on" else dc.pop3_port),
                         line), line
        assert "secret" not in p.log()
        assert _login_lines(dc, before) == []
    finally:
        auth.close()


def test_backend_name_mismatch_refused(tls_dovecot, start_proxy):
    dc, made = tls_dovecot
    auth = _auth(dc.imaps_port)
    try:
        p, port = start_proxy(["proxy_ssl on;", *_verify(made, "other.example.test")],
                              auth_url=auth.url, protocol="imap")
        m = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        with pytest.raises(imaplib.IMAP4.error):
            m.login("alice", "secret")
        line = p.wait_log("does not match")
        assert 'upstream SSL certificate does not match "other.example.test" while SSL ' \
               'handshaking to upstream' in line, line
    finally:
        auth.close()


def test_unverified_tls_accepts_any_certificate(tls_dovecot, start_proxy):
    """proxy_ssl_verify off (nginx's default): encrypted, the certificate not checked."""
    dc, made = tls_dovecot
    auth = _auth(dc.pop3s_port)
    try:
        p, port = start_proxy(["proxy_ssl on;"], auth_url=auth.url)
        m = poplib.POP3("127.0.0.1", port, timeout=10)
        m.user("alice")
        assert m.pass_("secret").startswith(b"+OK")
        m.quit()
    finally:
        auth.close()


def test_backend_without_tls_refused(start_proxy):
    """proxy_ssl on against a backend that speaks POP3 in the clear."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve():
        c, _ = srv.accept()
        c.sendall(b"+OK plain pop3\r\n")
        c.recv(4096)                    # the ClientHello
        c.sendall(b"-ERR what?\r\n")
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    auth = _auth(srv.getsockname()[1])
    try:
        p, port = start_proxy(["proxy_ssl on;"], auth_url=auth.url)
        m = poplib.POP3("127.0.0.1", port, timeout=10)
        m.user("alice")
        with pytest.raises(poplib.error_proto) as e:
            m.pass_("secret")
        assert str(e.value) == "b'-ERR internal server error'"
        line = p.wait_log("SSL handshaking to upstream")
        assert "SSL_do_handshake() failed (SSL: " in line or "peer closed" in line, line
    finally:
        auth.close()
        srv.close()


class TlsPop3:
    """A POP3 backend with TLS (implicit, or after STLS) that records, per connection,
    whether the TLS session was resumed and the client certificate's subject."""

    def __init__(self, pki, implicit=True, require_cert=False, stls_reply=b"+OK go\r\n"):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki["server_rsa_crt"], pki["server_rsa_key"])
        if require_cert:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(pki["ca"])
        self.implicit = implicit
        self.stls_reply = stls_reply
        self.resumed = []
        self.peers = []
        self.lines = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(c,), daemon=True).start()

    def _session(self, c):
        c.settimeout(10)
        try:
            if self.implicit:
                c = self.ctx.wrap_socket(c, server_side=True)
                self._tls_up(c)
                c.sendall(b"+OK tls pop3\r\n")
            else:
                c.sendall(b"+OK plain pop3\r\n")
                f = c.makefile("rb")
                self.lines.append(f.readline())
                c.sendall(self.stls_reply)
                if not self.stls_reply.startswith(b"+OK"):
                    return
                c = self.ctx.wrap_socket(c, server_side=True)
                self._tls_up(c)
            f = c.makefile("rb")
            while True:
                line = f.readline()
                if not line:
                    return
                self.lines.append(line)
                if line.startswith(b"QUIT"):
                    c.sendall(b"+OK bye\r\n")
                    c.unwrap()
                    return
                c.sendall(b"+OK\r\n")
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    def _tls_up(self, c):
        self.resumed.append(c.session_reused)
        cert = c.getpeercert()
        self.peers.append(dict(x[0] for x in cert["subject"])["commonName"] if cert else None)

    def close(self):
        self.sock.close()


def _pop3_login(port):
    m = poplib.POP3("127.0.0.1", port, timeout=10)
    m.user("alice")
    reply = m.pass_("secret")
    m.quit()
    return reply


def test_session_reuse(pki, start_proxy):
    backend = TlsPop3(pki)
    auth = _auth(backend.port)
    try:
        p, port = start_proxy(["proxy_ssl on;", *_verify(pki)], auth_url=auth.url)
        for _ in range(3):
            assert _pop3_login(port).startswith(b"+OK")
        assert backend.resumed == [False, True, True]
        p2, port2 = start_proxy(["proxy_ssl on;", "proxy_ssl_session_reuse off;",
                                 *_verify(pki)], auth_url=auth.url)
        backend.resumed.clear()
        for _ in range(2):
            assert _pop3_login(port2).startswith(b"+OK")
        assert backend.resumed == [False, False]
    finally:
        auth.close()
        backend.close()


def test_client_certificate(pki, start_proxy):
    backend = TlsPop3(pki, require_cert=True)
    auth = _auth(backend.port)
    try:
        p, port = start_proxy(["proxy_ssl on;", *_verify(pki)], auth_url=auth.url)
        with pytest.raises(poplib.error_proto):
            _pop3_login(port)
        assert backend.peers == []
        line = p.wait_log("certificate required")
        assert "SSL_read() failed (SSL: tlsv13 alert certificate required) while reading " \
               "response from upstream" in line, line
        p2, port2 = start_proxy(["proxy_ssl on;", *_verify(pki),
                                 f"proxy_ssl_certificate {pki['client_crt']};",
                                 f"proxy_ssl_certificate_key {pki['client_key']};"],
                                auth_url=auth.url)
        assert _pop3_login(port2).startswith(b"+OK")
        assert backend.peers == ["client.example.test"]
    finally:
        auth.close()
        backend.close()


def test_encrypted_client_key_with_password_file(pki, start_proxy, tmp_path):
    from cryptography.hazmat.primitives import serialization
    with open(pki["client_key"], "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    enc = tmp_path / "client-enc.key"
    enc.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret")))
    backend = TlsPop3(pki, require_cert=True)
    auth = _auth(backend.port)
    try:
        # the first passphrase of the file is wrong, the second one opens the key
        p, port = start_proxy(["proxy_ssl on;", *_verify(pki),
                               f"proxy_ssl_certificate {pki['client_crt']};",
                               f"proxy_ssl_certificate_key {enc};",
                               f"proxy_ssl_password_file {pki['passwords']};"],
                              auth_url=auth.url)
        assert _pop3_login(port).startswith(b"+OK")
        assert backend.peers == ["client.example.test"]
        assert "s3cret" not in p.log()
    finally:
        auth.close()
        backend.close()


def test_bytes_injected_after_stls_reply_are_refused(pki, start_proxy):
    """A reply to STLS with a second line behind it: the second line would be taken as
    coming over TLS (the STARTTLS injection of CVE-2011-0411): refused."""
    backend = TlsPop3(pki, implicit=False, stls_reply=b"+OK go\r\n+OK injected\r\n")
    auth = _auth(backend.port)
    try:
        p, port = start_proxy(["proxy_ssl starttls;", *_verify(pki)], auth_url=auth.url)
        with pytest.raises(poplib.error_proto) as e:
            _pop3_login(port)
        assert str(e.value) == "b'-ERR internal server error'"
        line = p.wait_log("upstream sent invalid response")
        assert 'upstream sent invalid response: "+OK go\\r\\n+OK injected" while reading ' \
               'response from upstream' in line, line
        assert backend.lines == [b"STLS\r\n"]
    finally:
        auth.close()
        backend.close()


def test_stls_refused_by_backend(pki, start_proxy):
    backend = TlsPop3(pki, implicit=False, stls_reply=b"-ERR no TLS here\r\n")
    auth = _auth(backend.port)
    try:
        p, port = start_proxy(["proxy_ssl starttls;"], auth_url=auth.url)
        with pytest.raises(poplib.error_proto):
            _pop3_login(port)
        line = p.wait_log("upstream sent invalid response")
        assert 'upstream sent invalid response: "-ERR no TLS here" while reading response ' \
               'from upstream' in line, line
        assert backend.lines == [b"STLS\r\n"]
    finally:
        auth.close()
        backend.close()


# --- SMTP ------------------------------------------------------------------------------------

class Collect:
    def __init__(self):
        self.envelopes = []
        self.xclient = []
        self.tls = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        self.tls.append(session.ssl is not None)
        return "250 2.0.0 accepted"


class XclientSMTP(SMTP):
    async def smtp_XCLIENT(self, arg):
        self.event_handler.xclient.append(arg)
        await self.push("220 2.0.0 xclient ok")


class TlsController(Controller):
    def __init__(self, handler, ctx, implicit, **kw):
        self.tls_ctx = ctx
        self.implicit = implicit
        super().__init__(handler, ssl_context=ctx if implicit else None, **kw)

    def factory(self):
        return XclientSMTP(self.handler, data_size_limit=64 << 20,
                           tls_context=None if self.implicit else self.tls_ctx,
                           require_starttls=not self.implicit)

    def _trigger_server(self):
        # the stock readiness probe speaks plain SMTP: with implicit TLS, wrap it
        if not self.implicit:
            return super()._trigger_server()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection((self.hostname, self.port), timeout=5) as s:
            with ctx.wrap_socket(s) as t:
                t.recv(1024)


MESSAGE = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: dots\r\n\r\n"
           + b"".join(b".%d leading dot\r\n" % i if i % 3 == 0 else
                      b"%d plain line with some more text\r\n" % i for i in range(300000))
           + b".\r\n..\r\nlast\r\n")


@pytest.mark.parametrize("mode", ["on", "starttls"])
def test_smtp_over_tls_to_a_real_peer(pki, start_proxy, mode):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server_ec_crt"], pki["server_ec_key"])
    handler = Collect()
    c = TlsController(handler, ctx, mode == "on", hostname="127.0.0.1", port=free_port())
    c.start()
    auth = AuthServer(lambda req: ok_response(c.port))
    try:
        p, port = start_proxy(["server_name proxyhost;", f"proxy_ssl {mode};",
                               *_verify(pki)], auth_url=auth.url, protocol="smtp")
        s = smtplib.SMTP("127.0.0.1", port, timeout=30)
        s.login("alice", "secret")
        s.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        s.quit()
        assert handler.xclient and handler.xclient[0].startswith("ADDR=127.0.0.1")
        assert len(handler.envelopes) == 1
        mail_from, rcpt, content = handler.envelopes[0]
        assert (mail_from, rcpt) == ("a@example.com", ["b@example.com"])
        assert content == MESSAGE
        if mode == "starttls":
            assert handler.tls == [True]      # (the implicit-TLS port speaks only TLS)
    finally:
        auth.close()
        c.stop()


# --- -t ---------------------------------------------------------------------------------------

def _t(tmp_path, server_lines, dialect=None):
    import subprocess
    import sys
    conf = tmp_path / "t.conf"
    srv = "".join(f"        {l}\n" for l in server_lines)
    conf.write_text("events {}\nmail {\n    auth_http 127.0.0.1:9/auth;\n    server {\n"
                    "        listen 127.0.0.1:%d;\n        protocol pop3;\n%s    }\n}\n"
                    % (free_port(), srv))
    args = [sys.executable, "-m", "angie_mail", "-t", "-c", str(conf)]
    if dialect:
        args += ["--dialect", dialect]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stderr, str(conf)


def test_t_accepts_a_complete_backend_tls_setup(tmp_path, pki):
    code, err, _ = _t(tmp_path, ["proxy_ssl starttls;", *_verify(pki),
                                 f"proxy_ssl_certificate {pki['client_crt']};",
                                 f"proxy_ssl_certificate_key {pki['client_key']};",
                                 "proxy_ssl_protocols TLSv1.3;",
                                 "proxy_ssl_ciphers HIGH:!aNULL;",
                                 "proxy_ssl_server_name on;",
                                 "proxy_ssl_session_reuse off;"])
    assert code == 0, err


@pytest.mark.parametrize("lines, message", [
    (["proxy_ssl on;", "proxy_ssl_verify on;"],
     "no proxy_ssl_trusted_certificate for proxy_ssl_verify in {conf}:7"),
    (["proxy_ssl on;", "proxy_ssl_certificate /nonexistent.crt;"],
     'no "proxy_ssl_certificate_key" is defined for certificate "/nonexistent.crt" in '
     '{conf}:7'),
    (["proxy_ssl on;", "proxy_ssl_ciphers NOSUCHCIPHER;"],
     'SSL_CTX_set_cipher_list("NOSUCHCIPHER") failed'),
    (["proxy_ssl maybe;"], 'invalid value "maybe" in {conf}:7'),
    (["proxy_ssl on;", "proxy_ssl_protocols TLSv9;"], 'invalid value "TLSv9"'),
])
def test_t_refuses(tmp_path, lines, message):
    code, err, conf = _t(tmp_path, lines)
    assert code == 1
    assert message.format(conf=conf) in err, err


def test_t_reads_the_files(tmp_path, pki):
    code, err, conf = _t(tmp_path, ["proxy_ssl on;", "proxy_ssl_verify on;",
                                    "proxy_ssl_trusted_certificate /nonexistent/ca.crt;"])
    assert code == 1 and "/nonexistent/ca.crt" in err, err


def test_angie_dialect_does_not_know_proxy_ssl(tmp_path):
    code, err, conf = _t(tmp_path, ["proxy_ssl on;"], dialect="angie")
    # Angie knows proxy_ssl from its http and stream modules
    assert code == 1 and f'"proxy_ssl" directive is not allowed here in {conf}:7' in err, err
