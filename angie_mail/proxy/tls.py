"""TLS contexts for mail servers, built from the merged ssl_* directives with Python's
``ssl`` module; ``check_tls_settings`` tells ``-t`` what ``ssl`` cannot do."""

from __future__ import annotations

import ssl

# OpenSSL's SSL_CONF commands for a server configured from a file (ssl_conf.c); nginx
# passes ssl_conf_command to SSL_CONF_cmd, so unknown names and bad values fail there
SSL_CONF_COMMANDS = {n.lower(): n for n in (
    "SignatureAlgorithms", "ClientSignatureAlgorithms", "Curves", "Groups",
    "ECDHParameters", "CipherString", "Ciphersuites", "Protocol", "MinProtocol",
    "MaxProtocol", "Options", "VerifyMode", "Certificate", "PrivateKey", "ServerInfoFile",
    "ChainCAPath", "ChainCAFile", "ClientCAPath", "ClientCAFile", "VerifyCAPath",
    "VerifyCAFile", "RequestCAPath", "RequestCAFile", "DHParameters", "RecordPadding",
    "NumTickets")}
PROTOCOL_VALUES = ("None", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "DTLSv1",
                   "DTLSv1.2")
# Options: name -> (OpenSSL 3 SSL_OP_* bit, inverted: "Name" clears the bit)
SSL_OPTIONS = {
    "SessionTicket": (1 << 14, True), "EmptyFragments": (1 << 11, True),
    "Bugs": (0x80000850, False), "Compression": (1 << 17, True),
    "ServerPreference": (1 << 22, False), "NoResumptionOnRenegotiation": (1 << 16, False),
    "DHSingle": (0, False), "ECDHSingle": (0, False),
    "UnsafeLegacyRenegotiation": (1 << 18, False), "UnsafeLegacyServerConnect": (1 << 2, False),
    "NoRenegotiation": (1 << 30, False), "EncryptThenMac": (1 << 19, True),
    "AllowNoDHEKEX": (1 << 10, False), "PrioritizeChaCha": (1 << 21, False),
    "MiddleboxCompat": (1 << 20, False), "AntiReplay": (1 << 24, True),
    "ExtendedMasterSecret": (1 << 0, True), "CANames": (1 << 29, True),
    "KTLS": (1 << 3, False), "IgnoreUnexpectedEOF": (1 << 7, False),
}
# what Python's ssl module can apply (others: refused by -t, see docs/tls.md)
APPLICABLE = ("MinProtocol", "MaxProtocol", "Options", "CipherString", "NumTickets",
              "DHParameters")
KNOWN_CURVES = {"auto", "x25519", "x448", "prime256v1", "secp256r1", "secp384r1",
                "secp521r1", "p-256", "p-384", "p-521", "ffdhe2048", "ffdhe3072",
                "ffdhe4096", "ffdhe6144", "ffdhe8192", "brainpoolp256r1", "brainpoolp384r1",
                "brainpoolp512r1", "secp224r1", "secp256k1", "x25519mlkem768",
                "secp256r1mlkem768", "secp384r1mlkem1024"}


def _bad_value(name, value):
    return (f'SSL_CONF_cmd("{name}", "{value}") failed (SSL: error:0A000180:SSL routines::'
            f'bad value:cmd={name}, value={value})')


def conf_command_problem(name: str, value: str):
    """nginx's SSL_CONF_cmd error for an unknown command or bad value, or angie-mail's
    own message for a valid command Python's ssl module cannot apply; None if fine."""
    canon = SSL_CONF_COMMANDS.get(name.lower())
    if canon is None:
        return (f'SSL_CONF_cmd("{name}", "{value}") failed (SSL: error:0A000182:SSL routines::'
                f'unknown cmd name:cmd={name})')
    if canon in ("MinProtocol", "MaxProtocol"):
        if value not in PROTOCOL_VALUES:
            return _bad_value(name, value)
    elif canon == "Options":
        for opt in value.split(","):
            opt = opt.strip()
            if opt[:1] in "+-":
                opt = opt[1:]
            if opt not in SSL_OPTIONS:
                return _bad_value(name, value)
    elif canon == "NumTickets":
        if not value.isdigit():
            return _bad_value(name, value)
    if canon not in APPLICABLE:
        return (f'ssl_conf_command "{name}" is valid for OpenSSL but cannot be applied by '
                f'angie-mail (Python\'s ssl module has no way to set it)')
    return None


def apply_conf_commands(ctx: ssl.SSLContext, commands) -> None:
    """Apply the ssl_conf_command lines -t accepted, after everything else (as nginx)."""
    for name, value, _pos in commands:
        canon = SSL_CONF_COMMANDS[name.lower()]
        if canon == "MinProtocol":
            if value in PROTO_BY_NAME:
                ctx.minimum_version = PROTO_BY_NAME[value]
        elif canon == "MaxProtocol":
            if value in PROTO_BY_NAME:
                ctx.maximum_version = PROTO_BY_NAME[value]
        elif canon == "Options":
            opts = int(ctx.options)
            for opt in value.split(","):
                opt = opt.strip()
                clear = opt.startswith("-")
                opt = opt.lstrip("+-")
                bit, inverted = SSL_OPTIONS[opt]
                if clear != inverted:
                    opts &= ~bit
                else:
                    opts |= bit
            ctx.options = opts
        elif canon == "CipherString":
            ctx.set_ciphers(value)
        elif canon == "NumTickets":
            ctx.num_tickets = int(value)
        elif canon == "DHParameters":
            ctx.load_dh_params(value)


PROTO_BY_NAME = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
                 "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
                 "SSLv3": ssl.TLSVersion.SSLv3}


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
            return (f'SSL_CTX_set1_curves_list("{curve}") failed (SSL: error:0A080106:'
                    f'SSL routines::passed invalid argument:group \'{c}\' cannot be set)',
                    None)
    for name, value, pos in v["ssl_conf_command"]:
        problem = conf_command_problem(name, value)
        if problem:
            # OpenSSL's own errors carry no position in nginx; ours point at the line
            return problem, (None if problem.startswith("SSL_CONF_cmd") else pos)
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
    apply_conf_commands(ctx, server.ssl_conf_command)
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
