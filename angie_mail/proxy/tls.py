"""TLS contexts for mail servers, built from the merged ssl_* directives with Python's
``ssl`` module; ``check_tls_settings`` tells ``-t`` what ``ssl`` cannot do."""

from __future__ import annotations

import ssl

# OpenSSL SSL_CONF commands (server side) this implementation can apply
SUPPORTED_CONF_COMMANDS = {"minprotocol", "maxprotocol", "options", "ciphersuites"}  # ciphersuites: refused below
SUPPORTED_OPTIONS = {"serverpreference", "-serverpreference", "sessionticket",
                     "-sessionticket", "nocompression", "-nocompression",
                     "nodhe", "prioritizechacha", "-prioritizechacha", "nox509v3",
                     "nosslv3", "notlsv1", "notlsv1.1", "notlsv1.2", "notlsv1.3",
                     "-nosslv3", "-notlsv1", "-notlsv1.1", "-notlsv1.2", "-notlsv1.3"}
KNOWN_CURVES = {"auto", "x25519", "x448", "prime256v1", "secp256r1", "secp384r1",
                "secp521r1", "p-256", "p-384", "p-521", "ffdhe2048", "ffdhe3072",
                "ffdhe4096", "ffdhe6144", "ffdhe8192", "brainpoolp256r1", "brainpoolp384r1",
                "brainpoolp512r1", "secp224r1", "secp256k1", "x25519mlkem768",
                "secp256r1mlkem768", "secp384r1mlkem1024"}
PROTO_VERSIONS = {"tlsv1": ssl.TLSVersion.TLSv1, "tlsv1.1": ssl.TLSVersion.TLSv1_1,
                  "tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}


def check_tls_settings(v: dict):
    """(message, Pos or None) for a TLS setting that cannot be honoured, else None."""
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.set_ciphers(v["ssl_ciphers"])
    except ssl.SSLError:
        return (f'SSL_CTX_set_cipher_list("{v["ssl_ciphers"]}") failed '
                f'(SSL: error:0A0000B9:SSL routines::no cipher match)', None)
    curve = v["ssl_ecdh_curve"]
    for c in curve.split(":"):
        if c.lower() not in KNOWN_CURVES:
            return (f'SSL_CTX_set1_curves_list("{curve}") failed (SSL: error:0A000080:'
                    f'SSL routines::no suitable key share)', None)
    for name, value, pos in v["ssl_conf_command"]:
        n = name.lower()
        if n not in SUPPORTED_CONF_COMMANDS:
            return (f'ssl_conf_command "{name}" is not supported by angie-mail '
                    f'(Python\'s ssl module cannot apply it)', pos)
        if n in ("minprotocol", "maxprotocol") and value.lower() not in PROTO_VERSIONS:
            return (f'ssl_conf_command "{name}" value "{value}" is not supported by '
                    f'angie-mail', pos)
        if n == "options":
            for opt in value.replace(",", " ").split():
                if opt.lower() not in SUPPORTED_OPTIONS:
                    return (f'ssl_conf_command "Options" value "{opt}" is not supported by '
                            f'angie-mail', pos)
        if n == "ciphersuites":
            return (f'ssl_conf_command "{name}" is not supported by angie-mail (Python\'s '
                    f'ssl module cannot set TLS 1.3 cipher suites)', pos)
    return None


_MIN_VERSION = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
                "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_ALPN = {"pop3": "pop3", "imap": "imap", "smtp": "smtp"}


def build_context(server) -> ssl.SSLContext:
    """An SSLContext from a resolved server's ssl_* settings."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = [v for v in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
                if v in server.ssl_protocols]
    if versions:
        ctx.minimum_version = _MIN_VERSION[versions[0]]
        ctx.maximum_version = _MIN_VERSION[versions[-1]]
    ctx.set_ciphers(server.ssl_ciphers)
    pw = list(server.ssl_passwords)
    for cert, key in zip(server.ssl_certificate, server.ssl_certificate_key):
        ctx.load_cert_chain(cert, key, password=_password_cb(pw))
    if server.ssl_prefer_server_ciphers:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if not server.ssl_session_tickets:
        ctx.options |= ssl.OP_NO_TICKET
    if server.ssl_ecdh_curve and server.ssl_ecdh_curve != "auto" and \
            ":" not in server.ssl_ecdh_curve:
        try:
            ctx.set_ecdh_curve(server.ssl_ecdh_curve)
        except (ValueError, ssl.SSLError):
            pass
    if server.ssl_dhparam:
        ctx.load_dh_params(server.ssl_dhparam)
    alpn = _ALPN.get(server.protocol)
    if alpn:
        ctx.set_alpn_protocols([alpn])
    return ctx


def _password_cb(passwords):
    if not passwords:
        return None
    it = iter(passwords)

    def cb():
        return next(it, b"")
    return cb


class TlsInfo:
    """The TLS facts auth_http reports (Auth-SSL-*)."""
    __slots__ = ("protocol", "cipher")

    def __init__(self, protocol: str, cipher: str):
        self.protocol = protocol
        self.cipher = cipher

    @classmethod
    def from_transport(cls, transport) -> "TlsInfo":
        obj = transport.get_extra_info("ssl_object")
        if obj is None:
            return cls("", "")
        c = obj.cipher()
        return cls(obj.version() or "", c[0] if c else "")

    def auth_headers(self, server):
        return [(b"Auth-SSL", b"on"), (b"Auth-SSL-Protocol", self.protocol.encode()),
                (b"Auth-SSL-Cipher", self.cipher.encode())]
