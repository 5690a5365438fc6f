"""Loading and checking TLS files for ``-t``, with ``cryptography``.

Messages follow nginx's (ngx_ssl_certificate and friends), with the OpenSSL 3 error
text nginx appends for the common failures, so ``angie-mail -t`` and ``angie -t`` say
the same thing about a missing file, a file that is not PEM, or a key that does not
belong to its certificate.
"""

from __future__ import annotations

import errno
import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dh

_OPEN_ERR = {
    errno.ENOENT: "error:80000002:system library::No such file or directory:calling fopen({p}, r) "
                  "error:10000080:BIO routines::no such file",
    errno.EACCES: "error:8000000D:system library::Permission denied:calling fopen({p}, r) "
                  "error:10080002:BIO routines::system lib",
    errno.EISDIR: "error:80000015:system library::Is a directory:calling fopen({p}, r) "
                  "error:10080002:BIO routines::system lib",
}


class TlsFileError(Exception):
    pass


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        detail = _OPEN_ERR.get(e.errno, "error:80000002:system library::{s}").format(
            p=path, s=e.strerror)
        raise TlsFileError(f'{what} "{path}": BIO_new_file() failed (SSL: {detail})')
    if os.path.isdir(path):
        raise TlsFileError(f'{what} "{path}": BIO_new_file() failed (SSL: '
                           + _OPEN_ERR[errno.EISDIR].format(p=path) + ")")
    return data


def load_certificate_chain(path: str) -> list:
    data = _read(path, "cannot load certificate")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TlsFileError(
            f'cannot load certificate "{path}": PEM_read_bio_X509_AUX() failed '
            f'(SSL: error:0480006C:PEM routines::no start line:Expecting: TRUSTED CERTIFICATE)')
    return certs


def load_private_key(path: str, passwords: tuple = ()):
    data = _read(path, "cannot load certificate key")
    if b"-----BEGIN" not in data:
        raise TlsFileError(
            f'cannot load certificate key "{path}": PEM_read_bio_PrivateKey() failed '
            f'(SSL: error:1E08010C:DECODER routines::unsupported:No supported data to '
            f'decode. Input type: PEM)')
    tries = [None] + [p for p in passwords]
    encrypted = b"ENCRYPTED" in data
    if encrypted:
        tries = list(passwords) or [b""]
    last = None
    for pw in tries:
        try:
            return serialization.load_pem_private_key(data, password=pw)
        except TypeError as e:          # password needed / not needed
            last = e
        except ValueError as e:
            last = e
        except Exception as e:          # unsupported key types
            last = e
    if encrypted:
        raise TlsFileError(
            f'cannot load certificate key "{path}": PEM_read_bio_PrivateKey() failed '
            f'(SSL: error:1C800064:Provider routines::bad decrypt)')
    raise TlsFileError(
        f'cannot load certificate key "{path}": PEM_read_bio_PrivateKey() failed '
        f'(SSL: error:1E08010C:DECODER routines::unsupported:No supported data to decode. '
        f'Input type: PEM)' if last else f'cannot load certificate key "{path}"')


def _pub(obj) -> bytes:
    return obj.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_type(key) -> str:
    return type(key).__name__.replace("_", "").lower().replace("publickey", "").replace(
        "privatekey", "")


def check_pairs(certs: tuple, keys: tuple, passwords: tuple) -> None:
    """Each certificate with its key (ngx_ssl_certificates); raises TlsFileError.

    As in OpenSSL, a context holds one certificate per key type: a key is compared
    with the certificate of its own type loaded so far (none: nothing to compare)."""
    slots = {}
    for cert_path, key_path in zip(certs, keys):
        chain = load_certificate_chain(cert_path)
        slots[_key_type(chain[0].public_key())] = chain[0]
        key = load_private_key(key_path, passwords)
        cert = slots.get(_key_type(key.public_key()))
        if cert is not None and _pub(cert.public_key()) != _pub(key.public_key()):
            raise TlsFileError(
                f'SSL_CTX_use_PrivateKey("{key_path}") failed '
                f'(SSL: error:05800074:x509 certificate routines::key values mismatch)')


def check_ca_file(path: str, what: str = "SSL_CTX_load_verify_locations") -> None:
    data = _read_x509_lookup(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TlsFileError(f'{what}("{path}") failed (SSL: error:05800088:x509 certificate '
                           f'routines::no certificate or crl found)')


def _read_x509_lookup(path: str, what: str) -> bytes:
    """Read a CA or CRL file as X509_LOOKUP does (its error adds "system lib")."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TlsFileError(f'{what}("{path}") failed (SSL: ' +
                           _OPEN_ERR.get(e.errno, _OPEN_ERR[errno.ENOENT]).format(p=path) +
                           " error:05880002:x509 certificate routines::system lib)")


def check_crl(path: str) -> None:
    data = _read_x509_lookup(path, "X509_LOOKUP_load_file")
    try:
        x509.load_pem_x509_crl(data)
    except ValueError:
        raise TlsFileError(f'X509_LOOKUP_load_file("{path}") failed (SSL: error:05800088:'
                           f'x509 certificate routines::no certificate or crl found)')


def check_dhparam(path: str) -> None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TlsFileError(f'BIO_new_file("{path}") failed (SSL: ' +
                           _OPEN_ERR.get(e.errno, _OPEN_ERR[errno.ENOENT]).format(p=path) + ")")
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # FFDH deprecation: the user's choice
            params = serialization.load_pem_parameters(data)
            if not isinstance(params, dh.DHParameters):
                raise ValueError
    except Exception:
        raise TlsFileError(f'PEM_read_bio_DHparams("{path}") failed (SSL: error:1E08010C:'
                           f'DECODER routines::unsupported:No supported data to decode. '
                           f'Input type: PEM)')


class PositionedError(TlsFileError):
    """An error nginx reports with the position of the configuration being read."""


def check_ticket_key(path: str) -> None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        from ..errors import errno_suffix
        raise PositionedError(f'open() "{path}" failed' + errno_suffix(e))
    if len(data) not in (48, 80):
        raise PositionedError(f'"{path}" must be 48 or 80 bytes')
