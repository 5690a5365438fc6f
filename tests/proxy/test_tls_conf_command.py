"""ssl_conf_command forms and ssl_ecdh_curve lists applied through OpenSSL's own
functions, observed from a real client (openssl s_client, Python ssl): the groups
negotiated, the certificate served, the CA names requested, the signature algorithms."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys

import pytest

from cryptography import x509

from proxy.harness import AuthServer, free_port, ok_response, tls_lines


def start(start_proxy, backend, pki, lines):
    auth = AuthServer(lambda req: ok_response(backend.port))
    port = free_port()
    p, _ = start_proxy(auth_url=auth.url, mail_lines=tls_lines(pki, lines), port=port,
                       listen=f"listen 127.0.0.1:{port} ssl;")
    return p, port, auth


def s_client(port, *args):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof",
                        *args], input=b"QUIT\r\n", capture_output=True, timeout=20)
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def served_subject(port, **ctx_args) -> str:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for k, v in ctx_args.items():
        setattr(ctx, k, v)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as s:
        cert = x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
        assert s.recv(100) == b"+OK POP3 ready\r\n"
    return cert.subject.rfc4514_string()


def test_ecdh_curve_list_is_applied(pki, backend, start_proxy):
    p, port, auth = start(start_proxy, backend, pki, ["ssl_ecdh_curve secp384r1:prime256v1;"])
    try:
        out = s_client(port, "-groups", "X25519:P-384")
        assert "Server Temp Key: ECDH, secp384r1, 384 bits" in out, out
        out = s_client(port, "-groups", "X25519")          # nothing in common
        assert "handshake failure" in out and "+OK POP3 ready" not in out, out
    finally:
        auth.close()


def test_groups_command_overrides_ssl_ecdh_curve(pki, backend, start_proxy):
    p, port, auth = start(start_proxy, backend, pki,
                          ["ssl_ecdh_curve prime256v1;", "ssl_conf_command Groups X25519;"])
    try:
        assert "Server Temp Key: X25519, 253 bits" in s_client(port, "-groups", "P-256:X25519")
        assert "+OK POP3 ready" not in s_client(port, "-groups", "P-256")
    finally:
        auth.close()


def test_certificate_and_private_key_commands_replace_ssl_certificate(pki, backend,
                                                                       start_proxy):
    p, port, auth = start(start_proxy, backend, pki,
                          [f"ssl_conf_command Certificate {pki['self_crt']};",
                           f"ssl_conf_command PrivateKey {pki['self_key']};"])
    try:
        assert "CN=self.example.test" in served_subject(port)
    finally:
        auth.close()
    # without them: the ssl_certificate
    p, port, auth = start(start_proxy, backend, pki, [])
    try:
        assert "CN=mail.example.test" in served_subject(port)
    finally:
        auth.close()


def test_file_values_are_relative_to_the_configuration_directory(pki, backend, tmp_path):
    """As nginx: a file or directory value (Certificate, PrivateKey...) that is not
    absolute is taken from the configuration's directory, not from the directory the
    proxy was started in, and an error names the full path."""
    import shutil
    from proxy.harness import Proxy
    d = tmp_path / "conf"
    d.mkdir()
    shutil.copy(pki["self_crt"], d / "override.crt")
    shutil.copy(pki["self_key"], d / "override.key")
    auth = AuthServer(lambda req: ok_response(backend.port))
    port = free_port()
    server = "".join(f"        {line}\n" for line in tls_lines(pki, [
        "ssl_conf_command Certificate override.crt;",
        "ssl_conf_command PrivateKey override.key;"]))
    block = (f"mail {{\n    auth_http {auth.url};\n    server {{\n"
             f"        listen 127.0.0.1:{port} ssl;\n        protocol pop3;\n{server}    }}\n}}\n")
    p = Proxy(d, block)
    assert os.getcwd() != str(d)
    try:
        p.start()
        assert "CN=self.example.test" in served_subject(port)
    finally:
        p.stop()
        auth.close()
    (d / "override.crt").unlink()
    r = subprocess.run([sys.executable, "-m", "angie_mail", "-t", "-c", p.conf],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f'SSL_CONF_cmd("Certificate", "{d}/override.crt") failed' in r.stderr, r.stderr


def test_request_ca_file_names_the_cas_asked_for(pki, backend, start_proxy):
    base = ["ssl_verify_client optional;", f"ssl_client_certificate {pki['ca']};"]
    p, port, auth = start(start_proxy, backend, pki, base)
    try:
        out = s_client(port, "-tls1_2")
        assert "Acceptable client certificate CA names" in out
        assert "CN = Test CA" in out.split("Acceptable client certificate CA names")[1][:300]
    finally:
        auth.close()
    # without ssl_client_certificate, the names of RequestCAFile are sent
    p, port, auth = start(start_proxy, backend, pki,
                          ["ssl_verify_client optional_no_ca;",
                           f"ssl_conf_command RequestCAFile {pki['self_crt']};"])
    try:
        names = s_client(port, "-tls1_2").split("Acceptable client certificate CA names")[1]
        names = names.split("---")[0]
        assert "CN = self.example.test" in names and "Test CA" not in names, names
    finally:
        auth.close()
    # with it, OpenSSL sends the client CA list (SSL_CTX_set_client_CA_list) before the
    # CA list RequestCAFile sets, as it does for Angie
    p, port, auth = start(start_proxy, backend, pki,
                          base + [f"ssl_conf_command RequestCAFile {pki['self_crt']};"])
    try:
        names = s_client(port, "-tls1_2").split("Acceptable client certificate CA names")[1]
        names = names.split("---")[0]
        assert "CN = Test CA" in names and "self.example.test" not in names, names
    finally:
        auth.close()


def test_signature_algorithms_command(pki, backend, start_proxy):
    p, port, auth = start(start_proxy, backend, pki,
                          ["ssl_protocols TLSv1.2;",
                           "ssl_conf_command SignatureAlgorithms RSA-PSS+SHA256;"])
    try:
        out = s_client(port, "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256")
        assert "Peer signature type: RSA-PSS" in out and "+OK POP3 ready" in out, out
        out = s_client(port, "-sigalgs", "RSA+SHA256")      # PKCS#1 only: none shared
        assert "+OK POP3 ready" not in out, out
    finally:
        auth.close()


def test_verify_mode_makes_the_server_ask_for_a_certificate(pki, backend, start_proxy):
    """VerifyMode Peer with ssl_verify_client off: the handshake carries a
    CertificateRequest (s_client prints the certificate types asked for); without it,
    none."""
    p, port, auth = start(start_proxy, backend, pki, [])
    try:
        assert "Client Certificate Types" not in s_client(port, "-tls1_2")
    finally:
        auth.close()
    p, port, auth = start(start_proxy, backend, pki, ["ssl_conf_command VerifyMode Peer;"])
    try:
        out = s_client(port, "-tls1_2")
        assert "Client Certificate Types" in out and "+OK POP3 ready" in out, out
    finally:
        auth.close()


# --- every other command OpenSSL knows goes to SSL_CONF_cmd as well --------------------

def client(**attrs) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for k, v in attrs.items():
        if k == "ciphers":
            ctx.set_ciphers(v)
        else:
            setattr(ctx, k, v)
    return ctx


def greet(port, ctx):
    """(cipher, version, session) of one connection that reads the greeting and quits."""
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as s:
        assert s.recv(100) == b"+OK POP3 ready\r\n"
        s.sendall(b"QUIT\r\n")
        s.recv(100)
        return s.cipher()[0], s.version(), s.session


def test_ciphersuites_command(pki, backend, start_proxy):
    p, port, auth = start(start_proxy, backend, pki,
                          ["ssl_conf_command Ciphersuites TLS_CHACHA20_POLY1305_SHA256;"])
    try:
        assert greet(port, client())[0] == "TLS_CHACHA20_POLY1305_SHA256"
    finally:
        auth.close()


TWO = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"


@pytest.mark.parametrize("lines,chosen", [
    ([], "ECDHE-RSA-AES128-GCM-SHA256"),                       # the server's order
    (["ssl_conf_command Options -ServerPreference;"], "ECDHE-RSA-AES256-GCM-SHA384"),
])
def test_options_server_preference(pki, backend, start_proxy, lines, chosen):
    p, port, auth = start(start_proxy, backend, pki,
                          [f"ssl_ciphers {TWO};", "ssl_prefer_server_ciphers on;", *lines])
    try:
        c = client(maximum_version=ssl.TLSVersion.TLSv1_2,
                   ciphers="ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256")
        assert greet(port, c)[0] == chosen
    finally:
        auth.close()


@pytest.mark.parametrize("lines,version,ticket", [
    ([], ssl.TLSVersion.TLSv1_2, True),
    (["ssl_conf_command Options -SessionTicket;"], ssl.TLSVersion.TLSv1_2, False),
    (["ssl_session_tickets off;", "ssl_conf_command Options SessionTicket;"],
     ssl.TLSVersion.TLSv1_2, True),                            # the later command wins
    ([], ssl.TLSVersion.TLSv1_3, True),
    (["ssl_conf_command NumTickets 0;"], ssl.TLSVersion.TLSv1_3, False),
])
def test_tickets_issued_or_not(pki, backend, start_proxy, lines, version, ticket):
    p, port, auth = start(start_proxy, backend, pki, lines)
    try:
        sess = greet(port, client(minimum_version=version, maximum_version=version))[2]
        assert sess.has_ticket is ticket
    finally:
        auth.close()


def test_protocol_command(pki, backend, start_proxy):
    p, port, auth = start(start_proxy, backend, pki,
                          ["ssl_protocols TLSv1.2 TLSv1.3;",
                           "ssl_conf_command Protocol -TLSv1.3;"])
    try:
        assert greet(port, client())[1] == "TLSv1.2"
        with pytest.raises(ssl.SSLError):
            greet(port, client(minimum_version=ssl.TLSVersion.TLSv1_3))
    finally:
        auth.close()


def encrypted_record_lengths(port) -> list:
    """The lengths of the TLS 1.3 records the server sent (encrypted: type 23) in a
    session that reads the greeting, as seen on the wire."""
    ctx = client(minimum_version=ssl.TLSVersion.TLSv1_3)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    wire = b""
    plain = b""
    try:
        while not plain.endswith(b"\r\n"):
            try:
                if obj.version() is None:
                    obj.do_handshake()
                plain += obj.read(100)
            except ssl.SSLWantReadError:
                pass
            data = out.read()
            if data:
                sock.sendall(data)
            if plain.endswith(b"\r\n"):
                break
            chunk = sock.recv(65536)
            assert chunk
            wire += chunk
            inc.write(chunk)
    finally:
        sock.close()
    assert plain == b"+OK POP3 ready\r\n"
    lengths = []
    i = 0
    while i + 5 <= len(wire):
        n = int.from_bytes(wire[i + 3:i + 5], "big")
        if wire[i] == 23:
            lengths.append(n)
        i += 5 + n
    return lengths


def test_record_padding_command(pki, backend, start_proxy):
    p, port, auth = start(start_proxy, backend, pki, [])
    try:
        plain = encrypted_record_lengths(port)
        assert any((n - 16) % 512 for n in plain), plain
    finally:
        auth.close()
    p, port, auth = start(start_proxy, backend, pki, ["ssl_conf_command RecordPadding 512;"])
    try:
        padded = encrypted_record_lengths(port)
        assert padded and all((n - 16) % 512 == 0 for n in padded), padded
    finally:
        auth.close()


def test_client_signature_algorithms_command(pki, backend, start_proxy):
    base = ["ssl_verify_client optional;", f"ssl_client_certificate {pki['ca']};"]
    p, port, auth = start(start_proxy, backend, pki,
                          base + ["ssl_conf_command ClientSignatureAlgorithms ECDSA+SHA256;"])
    try:
        out = s_client(port, "-tls1_2")
        assert "Requested Signature Algorithms: ECDSA+SHA256\n" in out, out
    finally:
        auth.close()


def test_server_info_file_command(pki, backend, start_proxy, tmp_path):
    """A ServerInfoFile extension (type 1000) is sent to a client that asks for it."""
    import base64
    data = (1000).to_bytes(2, "big") + (4).to_bytes(2, "big") + b"ping"
    path = tmp_path / "serverinfo.pem"
    path.write_text("-----BEGIN SERVERINFO FOR angie-mail-----\n"
                    + base64.b64encode(data).decode() + "\n"
                    "-----END SERVERINFO FOR angie-mail-----\n")
    p, port, auth = start(start_proxy, backend, pki,
                          [f"ssl_conf_command ServerInfoFile {path};"])
    try:
        out = s_client(port, "-tls1_2", "-serverinfo", "1000")
        assert "SERVERINFO FOR EXTENSION 1000" in out, out
    finally:
        auth.close()


def test_certificate_compression_where_openssl_lacks_it(pki, tmp_path):
    """Angie compresses certificates with SSL_CTX_compress_certs (OpenSSL 3.2+); on an
    older OpenSSL it warns, once for each server that asks, and goes on."""
    import sys
    from angie_mail.proxy.tls import certificate_compression_supported
    conf = tmp_path / "c.conf"
    servers = "".join(f"    server {{ listen 127.0.0.1:{free_port()} ssl; protocol pop3; }}\n"
                      for _ in range(2))
    conf.write_text("events {}\nmail {\n    auth_http 127.0.0.1:1;\n"
                    + "".join(f"    {l}\n" for l in tls_lines(pki))
                    + "    ssl_certificate_compression on;\n" + servers + "}\n")
    r = subprocess.run([sys.executable, "-m", "angie_mail", "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    warning = ('angie-mail: [warn] "ssl_certificate_compression" is not supported on this '
               'platform, ignored\n')
    if certificate_compression_supported():
        assert warning not in r.stderr
    else:
        assert r.stderr.count(warning) == 2, r.stderr
