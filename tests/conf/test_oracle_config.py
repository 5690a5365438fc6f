"""Differential tests: ``angie-mail --dialect nginx`` against the real ``nginx -t``.

Each case of oracle_cases.py is written to a file that a wrapper includes after nginx's
``load_module`` line (so both see the same file name and line numbers).  Both must give
the same verdict and the same first message, except that for TLS file errors only the
message kind (the text before ``": "``) is compared, since OpenSSL's detail varies.

Cases that need real files (certificates, keys, files to include) name them under
``oracle_cases.FIX``, replaced by a directory that ``make_fixture_files`` fills once per
session.
"""

import datetime
import os
import re

import pytest

import oracle
from angie_mail.conf.analyze import analyze
from angie_mail.conf.parse import conf_prefix_of, parse_file
from conf.oracle_cases import ALL, FIX, KNOWN_DIFFERENCES



@pytest.fixture(autouse=True)
def _oracle_installed():
    oracle.require()

_OPENSSL_DETAIL = re.compile(r'^((?:cannot load certificate(?: key)?|SSL_CTX_use_PrivateKey'
                             r'|BIO_new_file|PEM_read_bio_\w+)[^:]*):.*$')


# RFC 7919 ffdhe2048, a public constant (generating DH parameters takes too long)
_FFDHE2048 = b"""-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""

# X9.42 DH parameters of 1024 bits (openssl dhparam -dsaparam 1024): parsed, then too
# small for the default security level
_DH_X942_1024 = b"""-----BEGIN X9.42 DH PARAMETERS-----
MIIBJgKBgQDqk7exngxuS0fjX08vPAqcvPYsfC9EajwMJ8O/zgW51PT97iE8+Y31
YtqVElIP0yc1+OYe7p/cCaGRFR6gfViaFBWPAi55RDf7jUo5GzrfWeElgURdRe37
xmyNhmNIJdLmiBJU5XRHQgsdOdZV45yzCxwTPKrb5Dogm1gjj8g4MwKBgDwxogQk
WF2ayEnrfU38k5DckvM2TGnoXLnRkH/5NOp3G3VDg2RVx0ftDp1bg+IdLvgMUYCl
+QBmvWMfj/r5KpsPcdPzSB8I+5ytNGSZJ0d0LSHziBw1tTpoZKz84n15CuEbE8xc
tbD72I3SYtuLBf9YIZIFvls3Gb9NvHnulW2SAh0A6nUjWKuNddJG9qoOQNz2bNFS
bsrT7O4Ru8pPCQ==
-----END X9.42 DH PARAMETERS-----
"""

# Extra files the cases include; the cases name them as FIX + "/<name>" (oracle_cases.py).
_INCLUDES = {
    "inc_empty.conf": b"",
    "inc_server_lines.conf": b"timeout 5s;\nserver_name inc;\n",
    "inc_mail_lines.conf": b"# included at mail level\nproxy_timeout 1m;\nsmtp_auth none;\n",
    "inc_bad_line3.conf": b"timeout 5s;\n\nfoo_bad_directive;\n",
    "inc_unterminated.conf": b"timeout 5s;\nserver_name x",
    "inc_unbalanced.conf": b"timeout 5s;\n}\n",
    "inc_server_block.conf": b"server {\n    listen 127.0.0.1:9143;\n    protocol imap;\n}\n",
    "inc_server_nolisten.conf": b"server {\n    protocol imap;\n}\n",
    "inc_dup_timeout.conf": b"timeout 1s;\n",
    # relative: resolved against the main file's directory, not this file's (so: missing)
    "inc_nested.conf": b"include inc_bad_line3.conf;\n",
    "glob/a.conf": b"timeout 5s;\n",
    "glob/b.conf": b"timeout 6s;\n",
}


def make_fixture_files(d: str) -> None:
    """Certificates, keys and other files for the TLS and include cases."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    def write(name, data):
        path = os.path.join(d, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def key_pem(key, password=None):
        enc = (serialization.BestAvailableEncryption(password) if password
               else serialization.NoEncryption())
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8, enc)

    now = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)

    def cert_pem(key, cn):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1)
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=36500))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                .sign(key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM)

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_crt = cert_pem(rsa_key, "rsa.test")
    write("rsa.crt", rsa_crt)
    write("rsa.key", key_pem(rsa_key))
    write("rsa_enc.key", key_pem(rsa_key, b"secret"))
    write("ec.crt", cert_pem(ec_key, "ec.test"))
    write("ec.key", key_pem(ec_key))
    write("other.key", key_pem(other_key))
    write("chain.crt", rsa_crt + cert_pem(other_key, "other.test"))
    write("ca.crt", rsa_crt)
    crl = (x509.CertificateRevocationListBuilder()
           .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa.test")]))
           .last_update(now).next_update(now + datetime.timedelta(days=36500))
           .sign(rsa_key, hashes.SHA256()))
    write("crl.pem", crl.public_bytes(serialization.Encoding.PEM))
    write("dh.pem", _FFDHE2048)
    write("dh_x942_1024.pem", _DH_X942_1024)
    write("dh_after_cert.pem", rsa_crt + _DH_X942_1024)
    lines = _DH_X942_1024.splitlines(keepends=True)
    write("dh_bad_base64.pem", lines[0] + b"!!not base64!!\n" + lines[-1])
    write("dh_bad_end.pem", b"".join(lines[:-1]) + b"-----END DH PARAMETERS-----\n")
    write("dh_truncated.pem", b"".join(lines[:-3]) + lines[-1])
    write("dh_no_g.pem", b"-----BEGIN DH PARAMETERS-----\nMAMCAQU=\n-----END DH PARAMETERS-----\n")
    write("dh_tiny.pem", b"-----BEGIN DH PARAMETERS-----\nMAYCAQUCAQI=\n"
                         b"-----END DH PARAMETERS-----\n")
    write("not_pem.txt", b"this is not a PEM file\n")
    write("empty", b"")
    write("pass_ok.txt", b"wrong\nsecret\n")
    write("pass_bad.txt", b"nope\n")
    write("ticket80.key", bytes(range(80)))
    write("ticket48.key", bytes(range(48)))
    write("ticket10.key", bytes(range(10)))
    for name, data in _INCLUDES.items():
        write(name, data)


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("oracle_fixtures"))
    make_fixture_files(d)
    return d


def ours(conf: str):
    parsed = parse_file(conf)
    res = analyze(parsed, dialect="nginx", prefix=os.path.dirname(conf) + "/",
                  conf_prefix=conf_prefix_of(conf), open_pid=True)      # as -t does
    first = res.first_error
    warns = [w.text() for w in res.warnings]
    return (1 if first else 0), (first.text() if first else None), warns


def norm(msg):
    if msg is None:
        return None
    m = _OPENSSL_DETAIL.match(msg)
    return m.group(1) if m else msg


def nginx(tmp_path, text):
    rc, lines = oracle.check_case(str(tmp_path), text)
    errors = [m for lvl, m in lines if lvl != "warn"]
    warns = [m for lvl, m in lines if lvl == "warn"]
    return (1 if rc else 0), (errors[0] if errors else None), warns


@pytest.mark.parametrize("text", ALL, ids=[f"case{i}" for i in range(len(ALL))])
def test_same_verdict_and_message_as_nginx(tmp_path, fixture_dir, text):
    text = text.replace(FIX, fixture_dir)
    theirs = nginx(tmp_path, text)
    mine = ours(os.path.join(str(tmp_path), "wrap.conf"))
    assert (mine[0], norm(mine[1])) == (theirs[0], norm(theirs[1])), text
    assert mine[2] == theirs[2], text


@pytest.mark.parametrize("text", KNOWN_DIFFERENCES)
def test_known_differences_are_still_differences(tmp_path, fixture_dir, text):
    """Documented difference: nginx rejects these values inside http {}, where
    angie-mail checks only names, contexts and argument counts."""
    text = text.replace(FIX, fixture_dir)
    theirs = nginx(tmp_path, text)
    mine = ours(os.path.join(str(tmp_path), "wrap.conf"))
    assert theirs[0] != mine[0]
