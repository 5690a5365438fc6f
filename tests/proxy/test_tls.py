"""TLS: implicit (listen ... ssl) and STLS, ALPN, client certificates, Auth-SSL-*."""

import poplib
import socket
import ssl
import subprocess
import threading
import time

import pytest

from proxy.harness import (AuthServer, Client, client_ctx, free_port, ok_response, tls_lines,
                           tls_session)


@pytest.fixture
def recorder(backend):
    a = AuthServer(lambda req: ok_response(backend.port)
                   if req["Auth-Pass"] == b"secret" else
                   b"HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n\r\n")
    yield a
    a.close()


def test_implicit_tls_with_poplib(pki, recorder, backend, start_proxy):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, mail_lines=tls_lines(pki), port=port,
                       listen=f"listen 127.0.0.1:{port} ssl;")
    m = poplib.POP3_SSL("127.0.0.1", port, context=client_ctx(pki), timeout=5)
    assert m.getwelcome() == b"+OK POP3 ready"
    assert "STLS" not in m.capa()
    m.user("test@example.com")
    assert m.pass_("secret") == b"+OK pass ok"
    req = recorder.requests[0]
    assert req["Auth-SSL"] == b"on"
    assert req["Auth-SSL-Protocol"] == b"TLSv1.3"
    assert req["Auth-SSL-Cipher"].startswith(b"TLS_")
    assert "Auth-SSL-Verify" not in req.headers
    assert m.stat() == (1, 22)
    m.quit()


def test_stls_with_poplib_and_capa(pki, recorder, backend, start_proxy):
    p, port = start_proxy(auth_url=recorder.url, mail_lines=tls_lines(pki),
                          server_lines=["starttls on;"])
    m = poplib.POP3("127.0.0.1", port, timeout=5)
    assert "STLS" in m.capa()
    assert m.stls(client_ctx(pki)) == b"+OK"
    caps = m.capa()
    assert "STLS" not in caps and "USER" in caps
    m.user("test@example.com")
    assert m.pass_("secret") == b"+OK pass ok"
    assert recorder.requests[0]["Auth-SSL"] == b"on"
    m.quit()
    assert 'starttls: "true"' in p.wait_log("client logged in")


def test_starttls_only(pki, recorder, start_proxy):
    p, port = start_proxy(auth_url=recorder.url, mail_lines=tls_lines(pki),
                          server_lines=["starttls only;"])
    c = Client(port)
    c.line()
    c.send(b"CAPA\r\n")
    assert c.read_until(b".\r\n") == (b"+OK Capability list follows\r\nTOP\r\nUIDL\r\n"
                                      b"STLS\r\n.\r\n")
    for cmd in (b"USER a", b"APOP a b", b"AUTH", b"AUTH PLAIN"):
        c.send(cmd + b"\r\n")
        assert c.line() == b"-ERR invalid command\r\n"
    c.send(b"NOOP\r\n")
    assert c.line() == b"+OK\r\n"
    m = poplib.POP3("127.0.0.1", port, timeout=5)
    m.stls(client_ctx(pki))
    assert m.user("x") == b"+OK"


def test_stls_injection_is_discarded(pki, recorder, start_proxy):
    """STLS and a plaintext USER in one packet: the USER is never executed."""
    p, port = start_proxy(auth_url=recorder.url, mail_lines=tls_lines(pki),
                          server_lines=["starttls on;"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = raw.makefile("rb")
    f.readline()
    raw.sendall(b"STLS\r\nUSER injected\r\n")
    assert f.readline() == b"+OK\r\n"
    tls = client_ctx(pki).wrap_socket(raw)
    tls.sendall(b"PASS secret\r\n")
    assert tls.recv(100) == b"-ERR invalid command\r\n"     # no USER was accepted
    tls.sendall(b"NOOP\r\n")
    assert tls.recv(100) == b"+OK\r\n"
    assert recorder.requests == []


def test_stls_twice_and_when_tls(pki, recorder, start_proxy):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, mail_lines=tls_lines(pki, ["starttls on;"]),
                       port=port, listen=f"listen 127.0.0.1:{port} ssl;")
    s = client_ctx(pki).wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
    s.recv(100)
    s.sendall(b"STLS\r\n")
    assert s.recv(100) == b"-ERR invalid command\r\n"


def test_alpn(pki, recorder, start_proxy):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, mail_lines=tls_lines(pki), port=port,
                       listen=f"listen 127.0.0.1:{port} ssl;")
    with pytest.raises(ssl.SSLError, match="NO_APPLICATION_PROTOCOL|no application protocol"):
        client_ctx(pki, alpn=["imap"]).wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=5))
    s = client_ctx(pki, alpn=["imap", "pop3"]).wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=5))
    assert s.selected_alpn_protocol() == "pop3"
    assert s.recv(100) == b"+OK POP3 ready\r\n"
    s = client_ctx(pki).wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
    assert s.recv(100) == b"+OK POP3 ready\r\n"


def test_openssl_s_client_starttls_and_versions(pki, recorder, start_proxy):
    p, port = start_proxy(auth_url=recorder.url,
                          mail_lines=tls_lines(pki, ["starttls on;", "ssl_protocols TLSv1.2;"]))
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                          "-starttls", "pop3", "-tls1_2", "-ign_eof"], input=b"CAPA\r\nQUIT\r\n",
                         capture_output=True, timeout=20)
    assert b"Protocol  : TLSv1.2" in out.stdout
    assert b"+OK Capability list follows" in out.stdout
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                          "-starttls", "pop3", "-tls1_3", "-ign_eof"], input=b"QUIT\r\n",
                         capture_output=True, timeout=20)
    assert b"Protocol  : TLSv1.3" not in out.stdout


def test_rsa_and_ecdsa_certificates(pki, recorder, start_proxy):
    port = free_port()
    lines = [f"ssl_certificate {pki['server_rsa_crt']};",
             f"ssl_certificate_key {pki['server_rsa_key']};",
             f"ssl_certificate {pki['server_ec_crt']};",
             f"ssl_certificate_key {pki['server_ec_key']};", "ssl_protocols TLSv1.2;"]
    p, _ = start_proxy(auth_url=recorder.url, mail_lines=lines, port=port,
                       listen=f"listen 127.0.0.1:{port} ssl;")
    for cipher, keytype in (("ECDHE-ECDSA-AES128-GCM-SHA256", "EC"),
                            ("ECDHE-RSA-AES128-GCM-SHA256", "RSA")):
        ctx = client_ctx(pki)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(cipher)
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
        from cryptography import x509
        cert = x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
        assert type(cert.public_key()).__name__.startswith(
            "_EllipticCurve" if keytype == "EC" else "_RSA") or \
            keytype in type(cert.public_key()).__name__.upper()
        assert s.recv(100) == b"+OK POP3 ready\r\n"


def test_encrypted_key_with_password_file(pki, recorder, start_proxy):
    port = free_port()
    lines = [f"ssl_certificate {pki['server_enc_crt']};",
             f"ssl_certificate_key {pki['server_enc_key']};",
             f"ssl_password_file {pki['passwords']};"]
    p, _ = start_proxy(auth_url=recorder.url, mail_lines=lines, port=port,
                       listen=f"listen 127.0.0.1:{port} ssl;")
    s = client_ctx(pki).wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
    assert s.recv(100) == b"+OK POP3 ready\r\n"


def _verify_server(pki, start_proxy, recorder, mode, extra=(), pass_cert=False):
    port = free_port()
    lines = tls_lines(pki, [f"ssl_verify_client {mode};", *extra])
    if mode != "optional_no_ca":
        lines.append(f"ssl_client_certificate {pki['ca']};")
    if pass_cert:
        lines.append("auth_http_pass_client_cert on;")
    p, _ = start_proxy(auth_url=recorder.url, mail_lines=lines, port=port,
                       listen=f"listen 127.0.0.1:{port} ssl;")
    return p, port


def _lines(s, n: int) -> bytes:
    """Read ``n`` CRLF-ended lines from a socket: the replies a test waits for."""
    data = b""
    while data.count(b"\r\n") < n:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    return data


def test_client_certificate_required(pki, recorder, backend, start_proxy):
    p, port = _verify_server(pki, start_proxy, recorder, "on", pass_cert=True)
    s, greeting = tls_session(pki, port)
    assert greeting == b"-ERR No required SSL certificate\r\n"
    p.wait_log("client sent no required SSL certificate")
    s, greeting = tls_session(pki, port, pki["client_crt"], pki["client_key"])
    assert greeting == b"+OK POP3 ready\r\n"
    s.sendall(b"USER test@example.com\r\nPASS secret\r\n")
    assert _lines(s, 2) == b"+OK\r\n+OK pass ok\r\n"      # the auth request was made
    req = recorder.requests[0]
    c = pki["client_cert"]
    assert req["Auth-SSL-Verify"] == b"SUCCESS"
    assert req["Auth-SSL-Subject"] == c.subject.rfc4514_string().encode()
    assert req["Auth-SSL-Issuer"] == b"CN=Test CA,O=angie-mail tests"
    assert req["Auth-SSL-Serial"] == b"1A2B3C"
    from cryptography.hazmat.primitives import hashes
    assert req["Auth-SSL-Fingerprint"] == c.fingerprint(hashes.SHA1()).hex().encode()
    cert = req["Auth-SSL-Cert"]
    assert cert.startswith(b"-----BEGIN%20CERTIFICATE-----%0A") and b"\n" not in cert


def test_revoked_and_self_signed_certificates(pki, recorder, start_proxy):
    p, port = _verify_server(pki, start_proxy, recorder, "on", [f"ssl_crl {pki['crl']};"])
    s, greeting = tls_session(pki, port, pki["revoked_crt"], pki["revoked_key"])
    assert greeting == b"-ERR SSL certificate error\r\n"
    assert "client SSL certificate verify error: (23:certificate revoked)" in \
        p.wait_log("verify error")
    s, greeting = tls_session(pki, port, pki["self_crt"], pki["self_key"])
    assert greeting == b"-ERR SSL certificate error\r\n"


def test_optional_modes(pki, recorder, backend, start_proxy):
    p, port = _verify_server(pki, start_proxy, recorder, "optional")
    s, greeting = tls_session(pki, port)
    assert greeting == b"+OK POP3 ready\r\n"
    s.sendall(b"USER test@example.com\r\nPASS secret\r\n")
    assert _lines(s, 2) == b"+OK\r\n+OK pass ok\r\n"
    assert recorder.requests[0]["Auth-SSL-Verify"] == b"NONE"
    s, greeting = tls_session(pki, port, pki["self_crt"], pki["self_key"])
    assert greeting == b"-ERR SSL certificate error\r\n"

    p2, port2 = _verify_server(pki, start_proxy, recorder, "optional_no_ca")
    s, greeting = tls_session(pki, port2, pki["self_crt"], pki["self_key"])
    assert greeting == b"+OK POP3 ready\r\n"
    s.sendall(b"USER test@example.com\r\nPASS secret\r\n")
    assert _lines(s, 2) == b"+OK\r\n+OK pass ok\r\n"
    assert recorder.requests[-1]["Auth-SSL-Verify"] == b"FAILED:self-signed certificate"


def test_stls_with_client_certificate_error(pki, recorder, start_proxy):
    lines = tls_lines(pki, ["starttls on;", "ssl_verify_client on;",
                            f"ssl_client_certificate {pki['ca']};"])
    p, port = start_proxy(auth_url=recorder.url, mail_lines=lines)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.recv(100)
    raw.sendall(b"STLS\r\n")
    assert raw.recv(100) == b"+OK\r\n"
    tls = client_ctx(pki).wrap_socket(raw)
    assert tls.recv(100) == b"-ERR No required SSL certificate\r\n"


def test_handshake_failure_affects_only_that_connection(pki, recorder, start_proxy):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, mail_lines=tls_lines(pki, ["timeout 2s;"]),
                       port=port, listen=f"listen 127.0.0.1:{port} ssl;")
    garbage = socket.create_connection(("127.0.0.1", port), timeout=5)
    garbage.sendall(b"this is not TLS\r\n" * 10)
    half = socket.create_connection(("127.0.0.1", port), timeout=5)
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")   # a truncated ClientHello
    vanish = socket.create_connection(("127.0.0.1", port), timeout=5)
    vanish.sendall(b"\x16\x03\x01")
    vanish.close()
    s, greeting = tls_session(pki, port)                         # served meanwhile
    assert greeting == b"+OK POP3 ready\r\n"
    # not TLS: closed without a byte in reply (EOF, or a reset when the proxy left some
    # of the garbage unread; a timeout would fail)
    try:
        assert garbage.recv(100) == b""
    except ConnectionResetError:
        pass
    half.settimeout(5)
    t = time.time()
    assert half.recv(100) == b""                              # closed by the timeout
    assert time.time() - t < 4


def test_many_handshakes_do_not_block(pki, recorder, start_proxy):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, mail_lines=tls_lines(pki), port=port,
                       listen=f"listen 127.0.0.1:{port} ssl;")
    stalled = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    results = []

    def one():
        s, g = tls_session(pki, port)
        results.append(g)
    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [b"+OK POP3 ready\r\n"] * 10
    for s in stalled:
        s.close()


def _read_to_eof(s) -> bytes:
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ssl.SSLError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("mode", ["implicit", "stls"])
def test_tls_session_ends_cleanly_after_relay(pki, recorder, backend, start_proxy, mode):
    """A TLS session that reached the relay is closed when the backend ends it, with
    the usual log line, and with commands pipelined right after STLS going to the
    backend in order."""
    port = free_port()
    if mode == "implicit":
        p, _ = start_proxy(auth_url=recorder.url, mail_lines=tls_lines(pki), port=port,
                           listen=f"listen 127.0.0.1:{port} ssl;")
        s = client_ctx(pki).wrap_socket(socket.create_connection(("127.0.0.1", port),
                                                                 timeout=5))
        assert s.recv(100) == b"+OK POP3 ready\r\n"
    else:
        p, _ = start_proxy(auth_url=recorder.url, mail_lines=tls_lines(pki), port=port,
                           server_lines=["starttls on;"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert raw.recv(100) == b"+OK POP3 ready\r\n"
        raw.sendall(b"STLS\r\n")
        assert raw.recv(100) == b"+OK\r\n"
        s = client_ctx(pki).wrap_socket(raw)
    s.sendall(b"USER test@example.com\r\nPASS secret\r\nSTAT\r\nRETR 1\r\nQUIT\r\n")
    got = _read_to_eof(s)
    s.close()
    assert got == (b"+OK\r\n+OK pass ok\r\n+OK 1 22\r\n+OK 22 octets\r\n"
                   b"Subject: hi\r\n\r\nhello\r\n.\r\n+OK quit ok\r\n")
    assert backend.lines[-3:] == [b"STAT", b"RETR 1", b"QUIT"]
    log = p.wait_log("proxied session done")
    assert "unexpected" not in log and "Traceback" not in log


@pytest.mark.parametrize("how", ["implicit", "stls"])
def test_clients_that_close_right_after_the_handshake_give_their_slot_back(
        tmp_path, pki, backend, how):
    """A client whose FIN follows its Finished (openssl s_time, a health check) may be
    gone before the session is attached to the TLS connection: the session must still
    hear of it and free its worker_connections slot."""
    from proxy.harness import client_ctx
    auth = AuthServer(lambda req: ok_response(backend.port))
    port = free_port()
    listen = f"listen 127.0.0.1:{port}{' ssl' if how == 'implicit' else ''};"
    lines = tls_lines(pki, ["starttls on;"] if how == "stls" else [])
    from proxy.harness import Proxy
    block = (f"mail {{\n    auth_http {auth.url};\n" + "".join(f"    {l}\n" for l in lines)
             + f"    server {{ {listen} protocol pop3; }}\n}}\n")
    p = Proxy(tmp_path, block)
    text = open(p.conf).read().replace("events {}", "events { worker_connections 16; }")
    with open(p.conf, "w") as f:
        f.write(text)
    p.start()
    try:
        ctx = client_ctx(pki)
        for _ in range(60):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if how == "stls":
                f = s.makefile("rwb")
                assert f.readline().startswith(b"+OK")
                f.write(b"STLS\r\n")
                f.flush()
                assert f.readline().startswith(b"+OK")
            t = ctx.wrap_socket(s)
            t.close()
        # every slot came back: a full session still works, and none was refused
        deadline = time.time() + 5
        while True:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if how == "implicit":
                s = ctx.wrap_socket(s)
            greeting = s.recv(100)
            s.close()
            if greeting.startswith(b"+OK") or time.time() > deadline:
                break
            time.sleep(0.05)
        assert greeting.startswith(b"+OK")
        assert "worker_connections are not enough" not in p.log()
    finally:
        p.stop()
        auth.close()
