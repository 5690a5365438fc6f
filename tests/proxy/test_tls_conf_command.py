"""ssl_conf_command forms and ssl_ecdh_curve lists applied through OpenSSL's own
functions, observed from a real client (openssl s_client, Python ssl): the groups
negotiated, the certificate served, the CA names requested, the signature algorithms."""

from __future__ import annotations

import socket
import ssl
import subprocess

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


def test_request_ca_file_names_the_cas_asked_for(pki, backend, start_proxy):
    base = ["ssl_verify_client optional;", f"ssl_client_certificate {pki['ca']};"]
    p, port, auth = start(start_proxy, backend, pki, base)
    try:
        out = s_client(port, "-tls1_2")
        assert "Acceptable client certificate CA names" in out
        assert "CN = Test CA" in out.split("Acceptable client certificate CA names")[1][:300]
    finally:
        auth.close()
    p, port, auth = start(start_proxy, backend, pki,
                          base + [f"ssl_conf_command RequestCAFile {pki['self_crt']};"])
    try:
        names = s_client(port, "-tls1_2").split("Acceptable client certificate CA names")[1]
        names = names.split("---")[0]
        assert "CN = self.example.test" in names and "Test CA" not in names, names
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
