"""TLS files are read once per run, whatever the number of servers that use them, and
DH parameters are read as nginx reads them (no expensive validation)."""

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from angie_mail.conf import tlsfiles
from angie_mail.conf.analyze import analyze
from angie_mail.conf.parse import parse_string
from conf.test_oracle_config import _DH_X942_1024, _FFDHE2048

SERVERS = 7


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tlsfiles")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    (d / "c.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "c.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    (d / "dh.pem").write_bytes(_FFDHE2048)
    (d / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "ticket.key").write_bytes(bytes(range(80)))
    return str(d)


def _config(d: str) -> str:
    out = ["events {}", "mail {", "    auth_http 127.0.0.1:9/auth;",
           f"    ssl_certificate {d}/c.crt;", f"    ssl_certificate_key {d}/c.key;",
           f"    ssl_dhparam {d}/dh.pem;", "    ssl_verify_client on;",
           f"    ssl_client_certificate {d}/ca.crt;",
           f"    ssl_session_ticket_key {d}/ticket.key;"]
    for i in range(SERVERS):
        out += ["    server {", f"        listen 127.0.0.1:{19900 + i} ssl;",
                "        protocol imap;", "    }"]
    return "\n".join(out + ["}", ""])


def _counting(monkeypatch, name, calls):
    real = getattr(tlsfiles, name)

    def wrapper(path, *args):
        calls.append((name, path))
        return real(path, *args)
    monkeypatch.setattr(tlsfiles, name, wrapper)


def test_every_tls_file_is_loaded_once_per_run(tls_dir, monkeypatch):
    calls = []
    for name in ("load_certificate_chain", "load_private_key", "check_dhparam",
                 "check_ca_file", "check_ticket_key"):
        _counting(monkeypatch, name, calls)
    res = analyze(parse_string(_config(tls_dir)), dialect="nginx")
    assert res.ok, res.findings
    assert len(res.config.servers) == SERVERS
    assert sorted(calls) == sorted([
        ("load_certificate_chain", f"{tls_dir}/c.crt"),
        ("load_private_key", f"{tls_dir}/c.key"),
        ("check_dhparam", f"{tls_dir}/dh.pem"),
        ("check_ca_file", f"{tls_dir}/ca.crt"),
        ("check_ticket_key", f"{tls_dir}/ticket.key"),
    ])
    # a new run reads them again (a reload sees changed files)
    calls.clear()
    assert analyze(parse_string(_config(tls_dir)), dialect="nginx").ok
    assert len(calls) == 5


def test_a_failing_file_is_reported_for_the_first_server_and_read_once(tls_dir, monkeypatch):
    calls = []
    _counting(monkeypatch, "load_private_key", calls)
    text = _config(tls_dir).replace(f"{tls_dir}/c.key", f"{tls_dir}/missing.key")
    res = analyze(parse_string(text), dialect="nginx", mode="lint")
    errs = [e.text() for e in res.errors]
    assert len(errs) == SERVERS and len(set(errs)) == 1
    assert errs[0].startswith(f'cannot load certificate key "{tls_dir}/missing.key"')
    assert calls == [("load_private_key", f"{tls_dir}/missing.key")]


def test_the_contexts_built_at_start_share_one_key_load(tls_dir, monkeypatch):
    from angie_mail.proxy import tls
    res = analyze(parse_string(_config(tls_dir)), dialect="nginx")
    calls = []
    _counting(monkeypatch, "load_private_key", calls)
    tls.prebuild(res.config)
    assert calls == [("load_private_key", f"{tls_dir}/c.key")]
    assert all(tls.context_for(s) is not None for s in res.config.servers)


@pytest.mark.parametrize("data, shape", [
    (_FFDHE2048, (2048, -1)),                 # PKCS #3, no private value length
    (_DH_X942_1024, (1024, 224)),             # X9.42: p, g, q
    (b"-----BEGIN DH PARAMETERS-----\nMAkCAQUCAQICAUA=\n-----END DH PARAMETERS-----\n",
     (3, 64)),                                # p=5, g=2, length 64
    (b"-----BEGIN DH PARAMETERS-----\nMAMCAQU=\n-----END DH PARAMETERS-----\n", None),
    (b"-----BEGIN DH PARAMETERS-----\nMAA=\n-----END DH PARAMETERS-----\n", None),
    (b"-----BEGIN DH PARAMETERS-----\n!!\n-----END DH PARAMETERS-----\n", None),
    (_DH_X942_1024.replace(b"END X9.42", b"END"), None),
    (b"no PEM here\n", None),
])
def test_dh_parameters_are_parsed_as_pem_read_bio_dhparams_does(data, shape):
    assert tlsfiles._dh_shape(data) == shape


@pytest.mark.parametrize("l_bits, n_bits, level, ok", [
    (2048, -1, 2, True), (2048, 2047, 2, True), (1024, 224, 2, False),
    (1024, 224, 1, True), (1024, 224, 0, True), (3, -1, 0, False),
    (2048, 159, 1, False), (3072, -1, 3, True), (2048, -1, 3, False),
])
def test_dh_security_level(l_bits, n_bits, level, ok):
    ok_now = tlsfiles._security_bits(l_bits, n_bits) >= tlsfiles._SECLEVEL_BITS[level]
    assert ok_now == ok
