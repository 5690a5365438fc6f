"""SASL payloads as Angie decodes them (shared by POP3 now, IMAP/SMTP later).

Each decoder takes the client's base64 response and returns what the mechanism yields,
or raises :class:`SaslError` with the log message Angie writes (``client sent invalid
base64 encoding in AUTH PLAIN command`` ...).  The base64 decoder is nginx's: lenient
where Python's strict decoder is not (pop3.md §6).
"""

from __future__ import annotations

import base64
import binascii

_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class SaslError(Exception):
    """An invalid SASL payload; ``str(e)`` is Angie's info-level log message, ``login``
    the login the payload named before it failed (CRAM-MD5), if any."""

    def __init__(self, message: str, login: bytes | None = None):
        super().__init__(message)
        self.login = login


def b64decode(data: bytes) -> bytes | None:
    """nginx's ngx_decode_base64: everything up to the first "=" must be in the standard
    alphabet, the rest is ignored; padding is optional; a length of 1 (mod 4) fails.
    Returns None when nginx would fail."""
    eq = data.find(b"=")
    if eq >= 0:
        data = data[:eq]
    n = len(data)
    if n % 4 == 1:
        return None
    if n and not _B64.issuperset(data):
        return None
    pad = (-n) % 4
    try:
        # (the alphabet is checked above: what base64.b64decode adds is not needed)
        return binascii.a2b_base64(data + b"=" * pad if pad else data)
    except (binascii.Error, ValueError):
        return None


def b64encode(data: bytes) -> bytes:
    return base64.b64encode(data)


def _decode(arg: bytes, mech: str) -> bytes:
    out = b64decode(arg)
    if out is None:
        raise SaslError(f"client sent invalid base64 encoding in AUTH {mech} command")
    return out


def plain(arg: bytes) -> tuple:
    """AUTH PLAIN: ``authzid NUL authcid NUL password`` -> (login, password)."""
    data = _decode(arg, "PLAIN")
    first = data.find(b"\0")
    if first < 0 or first + 1 == len(data):
        raise SaslError("client sent invalid login in AUTH PLAIN command")
    second = data.find(b"\0", first + 1)
    if second < 0:
        raise SaslError("client sent invalid password in AUTH PLAIN command")
    return data[first + 1:second], data[second + 1:]


def login_username(arg: bytes) -> bytes:
    return _decode(arg, "LOGIN")


def login_password(arg: bytes) -> bytes:
    return _decode(arg, "LOGIN")


def cram_md5(arg: bytes) -> tuple:
    """AUTH CRAM-MD5 response: ``login SP digest`` (digest exactly 32 bytes)."""
    data = _decode(arg, "CRAM-MD5")
    sp = data.find(b" ")
    if sp < 0 or len(data) - sp - 1 != 32:
        # the login before the space (all of it without one) is known from here on: it
        # is in the context of this line and of the session's later ones, as in nginx
        raise SaslError("client sent invalid CRAM-MD5 hash in AUTH CRAM-MD5 command",
                        data[:sp] if sp >= 0 else data)
    return data[:sp], data[sp + 1:]


def external(arg: bytes) -> bytes:
    return _decode(arg, "EXTERNAL")


def xoauth2(arg: bytes) -> tuple:
    """``user=LOGIN\\x01auth=Bearer TOKEN\\x01\\x01`` -> (login, token)."""
    data = _decode(arg, "XOAUTH2")
    sep = data.find(b"\x01")
    if sep < 0 or data[:5].lower() != b"user=":
        raise SaslError("client sent invalid login in AUTH XOAUTH2 command")
    login = data[5:sep]
    rest = data[sep + 1:]
    if rest[:12].lower() != b"auth=bearer " or not rest.endswith(b"\x01\x01") \
            or len(rest) < 14:
        raise SaslError("client sent invalid token in AUTH XOAUTH2 command")
    return login, rest[12:-2]


def _unescape_saslname(name: bytes) -> bytes | None:
    out = bytearray()
    i = 0
    while i < len(name):
        c = name[i]
        if c == 0x3D:                              # "="
            code = name[i + 1:i + 3].upper()
            if code == b"2C":
                out += b","
            elif code == b"3D":
                out += b"="
            else:
                return None
            i += 3
            continue
        out.append(c)
        i += 1
    return bytes(out)


def oauthbearer(arg: bytes) -> tuple:
    """RFC 7628 ``gs2-header \\x01 kvpairs \\x01\\x01`` -> (login, token)."""
    data = _decode(arg, "OAUTHBEARER")
    end = data.find(b"\x01")
    header = data if end < 0 else data[:end]
    login = None
    fields = header.split(b",")
    # the first field (e.g. "n") is skipped; a login must be a non-empty "a=" field
    # followed by a comma
    for f in fields[1:-1]:
        if f[:2].lower() == b"a=" and len(f) > 2:
            login = f[2:]
            break
    if login is None:
        raise SaslError("client sent invalid login in AUTH OAUTHBEARER command")
    login = _unescape_saslname(login)
    if login is None:
        raise SaslError("client sent invalid login in AUTH OAUTHBEARER command")
    token = None
    if end >= 0:
        for kv in data[end + 1:].split(b"\x01")[:-1]:
            if kv[:12].lower() == b"auth=bearer " and len(kv) > 12:
                token = kv[12:]
                break
    if token is None:
        raise SaslError("client sent invalid token in AUTH OAUTHBEARER command")
    return login, token
