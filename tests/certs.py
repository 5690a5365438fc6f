"""Certificates for TLS tests, made with cryptography: a CA, a server certificate
(RSA and ECDSA), client certificates (good, revoked, self-signed) and a CRL."""

from __future__ import annotations

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "angie-mail tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key(kind: str):
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert(subject_key, cn, issuer_key=None, issuer_name=None, ca=False, serial=None,
          client=False, server=False, days=30):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(_name(cn))
         .issuer_name(issuer_name or _name(cn))
         .public_key(subject_key.public_key())
         .serial_number(serial or x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                         x509.DNSName(cn)]), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                            critical=False)
    if client:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                            critical=False)
    return b.sign(issuer_key or subject_key, hashes.SHA256())


def _write(path, data: bytes):
    with open(path, "wb") as f:
        f.write(data)
    return path


def _pem_key(k, password: bytes | None = None) -> bytes:
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _pem(c) -> bytes:
    return c.public_bytes(serialization.Encoding.PEM)


def make(d: str) -> dict:
    """Write everything into directory ``d``; a dict of paths (and objects)."""
    os.makedirs(d, exist_ok=True)
    ca_key = _key("rsa")
    ca = _cert(ca_key, "Test CA", ca=True)
    out = {"ca": _write(f"{d}/ca.crt", _pem(ca))}
    for kind in ("rsa", "ec"):
        k = _key(kind)
        c = _cert(k, "mail.example.test", ca_key, ca.subject, server=True)
        out[f"server_{kind}_crt"] = _write(f"{d}/server-{kind}.crt", _pem(c) + _pem(ca))
        out[f"server_{kind}_key"] = _write(f"{d}/server-{kind}.key", _pem_key(k))
    enc_key = _key("rsa")
    enc_cert = _cert(enc_key, "mail.example.test", ca_key, ca.subject, server=True)
    out["server_enc_crt"] = _write(f"{d}/server-enc.crt", _pem(enc_cert))
    out["server_enc_key"] = _write(f"{d}/server-enc.key", _pem_key(enc_key, b"s3cret"))
    out["passwords"] = _write(f"{d}/passwords", b"wrong\ns3cret\n")
    ck = _key("rsa")
    client = _cert(ck, "client.example.test", ca_key, ca.subject, client=True, serial=0x1A2B3C)
    out["client_crt"] = _write(f"{d}/client.crt", _pem(client))
    out["client_key"] = _write(f"{d}/client.key", _pem_key(ck))
    out["client_cert"] = client
    rk = _key("rsa")
    revoked = _cert(rk, "revoked.example.test", ca_key, ca.subject, client=True)
    out["revoked_crt"] = _write(f"{d}/revoked.crt", _pem(revoked))
    out["revoked_key"] = _write(f"{d}/revoked.key", _pem_key(rk))
    sk = _key("rsa")
    selfsigned = _cert(sk, "self.example.test", client=True)
    out["self_crt"] = _write(f"{d}/self.crt", _pem(selfsigned))
    out["self_key"] = _write(f"{d}/self.key", _pem_key(sk))
    now = datetime.datetime.now(datetime.timezone.utc)
    crl = (x509.CertificateRevocationListBuilder()
           .issuer_name(ca.subject)
           .last_update(now - datetime.timedelta(days=1))
           .next_update(now + datetime.timedelta(days=30))
           .add_revoked_certificate(x509.RevokedCertificateBuilder()
                                    .serial_number(revoked.serial_number)
                                    .revocation_date(now - datetime.timedelta(days=1))
                                    .build())
           .sign(ca_key, hashes.SHA256()))
    out["crl"] = _write(f"{d}/ca.crl", crl.public_bytes(serialization.Encoding.PEM))
    return out
