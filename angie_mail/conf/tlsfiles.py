"""Loading and checking TLS files for ``-t``, with ``cryptography``.

Messages follow nginx's (ngx_ssl_certificate and friends), with the OpenSSL 3 error
text nginx appends for the common failures, so ``angie-mail -t`` and ``angie -t`` say
the same thing about a missing file, a file that is not PEM, or a key that does not
belong to its certificate.
"""

from __future__ import annotations

import base64
import errno
import os
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

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
            # nginx's PEM_read_bio_PrivateKey() does not check an RSA key's internal
            # consistency (cryptography's check costs 40 ms for 2048 bits, 300 ms for
            # 4096); SSL_CTX_use_PrivateKey() compares it with the certificate, as
            # check_pairs() does
            return serialization.load_pem_private_key(
                data, password=pw, unsafe_skip_rsa_key_validation=True)
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


def check_pairs(certs: tuple, keys: tuple, passwords: tuple, files=None) -> None:
    """Each certificate with its key (ngx_ssl_certificates); raises TlsFileError.

    As in OpenSSL, a context holds one certificate per key type: a key is compared
    with the certificate of its own type loaded so far (none: nothing to compare).
    ``files`` (a :class:`RunFiles`) loads each file once for the whole run."""
    files = files or RunFiles()
    slots = {}
    for cert_path, key_path in zip(certs, keys):
        chain = files.chain(cert_path)
        slots[_key_type(chain[0].public_key())] = chain[0]
        key = files.key(key_path, passwords)
        cert = slots.get(_key_type(key.public_key()))
        if cert is not None and files.pub(cert) != files.pub(key):
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


def check_dhparam(path: str, seclevel: int = 0) -> None:
    """ngx_ssl_dhparam(): the file read, then SSL_CTX_set_tmp_dh(), which refuses
    parameters weaker than the security level (Debian's default, 2: 2048 bits)."""
    bits, n = dh_params(path)
    if _security_bits(bits, n) < _SECLEVEL_BITS[min(max(seclevel, 0), 5)]:
        raise TlsFileError(f'SSL_CTX_set_tmp_dh("{path}") failed '
                           f'(SSL: error:0A00018A:SSL routines::dh key too small)')


# OpenSSL's minimum security bits per level for DH parameters, and BN_security_bits()
# (level 0 still refuses DH parameters under 80 bits)
_SECLEVEL_BITS = (80, 80, 112, 128, 192, 256)


def _security_bits(l_bits: int, n_bits: int) -> int:
    for least, secbits in ((15360, 256), (7680, 192), (3072, 128), (2048, 112),
                           (1024, 80)):
        if l_bits >= least:
            break
    else:
        return 0
    if n_bits < 0:
        return secbits
    return min(secbits, n_bits // 2) if n_bits >= 160 else 0


def dh_params(path: str):
    """(bits of p, bits of q or the private value length, -1 if neither)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TlsFileError(f'BIO_new_file("{path}") failed (SSL: ' +
                           _OPEN_ERR.get(e.errno, _OPEN_ERR[errno.ENOENT]).format(p=path) + ")")
    shape = _dh_shape(data)
    if shape is None:
        raise TlsFileError(f'PEM_read_bio_DHparams("{path}") failed (SSL: error:1E08010C:'
                           f'DECODER routines::unsupported:No supported data to decode. '
                           f'Input type: PEM)')
    return shape


_PEM_DH = re.compile(rb"-----BEGIN (X9\.42 )?DH PARAMETERS-----\r?\n(.*?)"
                     rb"-----END (X9\.42 )?DH PARAMETERS-----", re.S)


def _der_items(der: bytes):
    """The (tag, content) items of a DER byte string, or None when it is not DER."""
    out, i = [], 0
    while i < len(der):
        if i + 2 > len(der):
            return None
        tag, n = der[i], der[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 4 or i + k > len(der):
                return None
            n = int.from_bytes(der[i:i + k], "big")
            i += k
        if i + n > len(der):
            return None
        out.append((tag, der[i:i + n]))
        i += n
    return out


def _dh_shape(data: bytes):
    """(bits of p, N) as PEM_read_bio_DHparams() reads the first "DH PARAMETERS"
    (PKCS #3: p, g[, private value length]) or "X9.42 DH PARAMETERS" (p, g, q[, j]
    [, seed]) block, N being the bits of q or the private value length (-1: none);
    None when that fails.  Like nginx, no DH_check(): cryptography's loader runs it,
    which takes seconds for 4096-bit parameters of the DSA kind."""
    m = _PEM_DH.search(data)
    if m is None or bool(m.group(1)) != bool(m.group(3)):
        return None
    try:
        der = base64.b64decode(b"".join(m.group(2).split()), validate=True)
    except ValueError:
        return None
    top = _der_items(der)
    if not top or len(top) != 1 or top[0][0] != 0x30:
        return None
    items = _der_items(top[0][1])
    if items is None:
        return None
    ints = [int.from_bytes(c, "big") for t, c in items if t == 0x02 and c]
    if m.group(1):                                   # X9.42
        if len(ints) < 3 or len(items) > 5 or any(t != 0x02 for t, _ in items[:3]):
            return None
        return ints[0].bit_length(), ints[2].bit_length()
    if not 2 <= len(items) <= 3 or len(ints) != len(items):
        return None
    return ints[0].bit_length(), (ints[2] if len(ints) == 3 and ints[2] else -1)


class RunFiles:
    """TLS files loaded and checked once per run (one -t, one start, one reload):
    servers that share a certificate, key or DH file inherit it from mail{} and
    would otherwise load it once each.  A failure is remembered as well."""

    def __init__(self):
        self._memo: dict = {}

    def _once(self, key, fn, *args):
        try:
            ok, value = self._memo[key]
        except KeyError:
            try:
                ok, value = True, fn(*args)
            except TlsFileError as e:
                ok, value = False, e
            self._memo[key] = (ok, value)
        if ok:
            return value
        raise value

    def chain(self, path: str) -> list:
        return self._once(("chain", path), load_certificate_chain, path)

    def key(self, path: str, passwords: tuple = ()):
        return self._once(("key", path, tuple(passwords)), load_private_key, path,
                          tuple(passwords))

    def pub(self, obj) -> bytes:
        """The public key (DER) of a certificate or a private key."""
        k = ("pub", id(obj))
        got = self._memo.get(k)
        if got is None:
            got = self._memo[k] = (obj, _pub(obj.public_key()))   # obj kept: id stays
        return got[1]

    def ca_file(self, path: str) -> None:
        return self._once(("ca", path), check_ca_file, path)

    def crl(self, path: str) -> None:
        return self._once(("crl", path), check_crl, path)

    def dhparam(self, path: str, seclevel: int = 0) -> None:
        return self._once(("dh", path, seclevel), check_dhparam, path, seclevel)

    def ticket_key(self, path: str) -> None:
        return self._once(("ticket", path), check_ticket_key, path)


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
