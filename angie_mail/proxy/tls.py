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
# what can be applied through pyOpenSSL (others: refused by -t, see docs/tls.md);
# clearing an option OpenSSL sets by default is not possible there either
APPLICABLE = ("MinProtocol", "MaxProtocol", "Options", "CipherString", "Ciphersuites",
              "DHParameters", "Groups", "Curves", "ECDHParameters", "SignatureAlgorithms",
              "Certificate", "PrivateKey", "RequestCAFile", "ClientCAFile", "VerifyCAFile",
              "VerifyCAPath", "VerifyMode")
# applied with OpenSSL's own functions on the pyOpenSSL context (apply_one), so -t
# asks the library that serves
APPLIED_BY_OPENSSL = ("Groups", "Curves", "ECDHParameters", "SignatureAlgorithms",
                      "Certificate", "PrivateKey", "RequestCAFile", "ClientCAFile",
                      "VerifyCAFile", "VerifyCAPath", "VerifyMode")
# VerifyMode's flags (OpenSSL's ssl_conf.c): name -> SSL_VERIFY_* bits
VERIFY_FLAGS = {"Peer": 0x01, "Request": 0x01, "Require": 0x01 | 0x02, "Once": 0x04,
                "RequestPostHandshake": 0x08, "RequirePostHandshake": 0x08 | 0x02}


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
    if canon == "Options":
        for bit, on in option_changes(value):
            if not on and bit & DEFAULT_OPTIONS:
                return (f'ssl_conf_command "Options" value "{value}" cannot be applied by '
                        f'angie-mail (an option OpenSSL sets by default cannot be cleared '
                        f'through pyOpenSSL)')
    if canon not in APPLICABLE:
        return (f'ssl_conf_command "{name}" is valid for OpenSSL but cannot be applied by '
                f'angie-mail (no way to set it through pyOpenSSL)')
    if canon in APPLIED_BY_OPENSSL:
        from OpenSSL import SSL
        if not apply_one(SSL.Context(SSL.TLS_SERVER_METHOD), canon, value):
            return _openssl_refusal(name, canon, value)
    return None


_FILE_COMMANDS = ("Certificate", "PrivateKey", "RequestCAFile", "ClientCAFile",
                  "VerifyCAFile")


def _openssl_refusal(name: str, canon: str, value: str) -> str:
    """SSL_CONF_cmd's failure as nginx prints it with OpenSSL 3."""
    head = f'SSL_CONF_cmd("{name}", "{value}") failed (SSL: '
    tail = f'error:0A000180:SSL routines::bad value:cmd={name}, value={value})'
    if canon in ("Groups", "Curves", "ECDHParameters"):
        bad = next((c for c in value.split(":") if not set_curves(None, c)), value)
        return (head + f"error:0A080106:SSL routines::passed invalid argument:group "
                       f"'{bad}' cannot be set " + tail)
    if canon in _FILE_COMMANDS:
        import os
        try:
            with open(value, "rb"):
                pass
        except OSError as e:
            ssl_lib = ("error:0A080002:SSL routines::system lib "
                       if canon in ("Certificate", "PrivateKey") else "")
            return (head + f"error:80000002:system library::{os.strerror(e.errno)}:"
                           f"calling fopen({value}, r) error:10080002:BIO routines::system "
                           f"lib " + ssl_lib + tail)
    return head + tail


def apply_one(ctx, canon: str, value: str) -> bool:
    """One ssl_conf_command that pyOpenSSL has no method for, through the OpenSSL
    functions SSL_CONF_cmd itself calls: False when OpenSSL refused it."""
    from OpenSSL import SSL
    from OpenSSL._util import lib
    try:
        if canon in ("Groups", "Curves"):
            return set_curves(ctx, value)
        if canon == "ECDHParameters":
            return value in ("auto", "automatic", "+automatic") or set_curves(ctx, value)
        if canon == "SignatureAlgorithms":
            ok = lib.SSL_CTX_set1_sigalgs_list(ctx._context, value.encode()) == 1
            lib.ERR_clear_error()
            return ok
        if canon == "Certificate":
            ctx.use_certificate_chain_file(value.encode())
        elif canon == "PrivateKey":
            ctx.use_privatekey_file(value.encode())
        elif canon in ("RequestCAFile", "ClientCAFile"):
            ctx.set_client_ca_list(_ca_names(value))
        elif canon == "VerifyCAFile":
            ctx.load_verify_locations(value.encode())
        elif canon == "VerifyCAPath":
            ctx.load_verify_locations(None, value.encode())
        elif canon == "VerifyMode":
            flags = 0
            for word in value.split(","):
                bit = VERIFY_FLAGS.get(word.strip())
                if bit is None:
                    return False
                flags |= bit
            # the callback keeps Angie's rule: a bad certificate never aborts the
            # handshake, ssl_verify_client decides after it
            ctx.set_verify(flags, _verify_cb)
    except (SSL.Error, OSError, ValueError):
        return False
    return True


# options OpenSSL sets on every new context (pyOpenSSL cannot clear options)
DEFAULT_OPTIONS = 0x20000 | 0x100000          # NO_COMPRESSION | ENABLE_MIDDLEBOX_COMPAT


def option_changes(value: str):
    """[(bit, set?)] for an "Options" value."""
    out = []
    for opt in value.split(","):
        opt = opt.strip()
        clear = opt.startswith("-")
        bit, inverted = SSL_OPTIONS[opt.lstrip("+-")]
        if bit:
            out.append((bit, clear == inverted))
    return out


def apply_conf_commands(ctx, commands) -> None:
    """Apply the ssl_conf_command lines -t accepted, after everything else (as nginx);
    "Options" are folded into the context's options by build_context."""
    for name, value, _pos in commands:
        canon = SSL_CONF_COMMANDS[name.lower()]
        if canon in ("MinProtocol", "MaxProtocol"):
            ver = _PROTO.get(value)
            v = getattr(SSL, ver) if ver else 0
            (ctx.set_min_proto_version if canon == "MinProtocol" else
             ctx.set_max_proto_version)(v)
        elif canon == "CipherString":
            ctx.set_cipher_list(value.encode())
        elif canon == "Ciphersuites":
            ctx.set_tls13_ciphersuites(value.encode())
        elif canon == "DHParameters":
            ctx.load_tmp_dh(value.encode())
        elif canon in APPLIED_BY_OPENSSL and not apply_one(ctx, canon, value):
            raise ValueError(f'SSL_CONF_cmd("{name}", "{value}") failed')


PROTO_BY_NAME = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
                 "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
                 "SSLv3": ssl.TLSVersion.SSLv3}


def check_ciphers(ciphers: str):
    """(message or None, OpenSSL security level): nginx sets the cipher list first, and
    its ``@SECLEVEL=N`` then applies to the keys and DH parameters loaded after it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # the library that serves TLS says whether the list is valid (Python's ssl
        # module may be built on another OpenSSL); once cryptography is loaded for the
        # certificates, pyOpenSSL costs little more
        from OpenSSL import SSL
        SSL.Context(SSL.TLS_SERVER_METHOD).set_cipher_list(ciphers.encode())
    except SSL.Error:
        return (f'SSL_CTX_set_cipher_list("{ciphers}") failed '
                f'(SSL: error:0A0000B9:SSL routines::no cipher match)'), ctx.security_level
    try:
        ctx.set_ciphers(ciphers)        # for the security level only (@SECLEVEL=N)
    except ssl.SSLError:
        pass
    return None, ctx.security_level


def set_curves(ctx, curves: str) -> bool:
    """SSL_CTX_set1_curves_list on a pyOpenSSL context (a scratch one when ``ctx`` is
    None), as nginx's ssl_ecdh_curve does for a list of groups: False if OpenSSL
    refused it.  pyOpenSSL itself sets one curve only (set_tmp_ecdh)."""
    from OpenSSL import SSL
    from OpenSSL._util import lib
    if ctx is None:
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ok = lib.SSL_CTX_set1_curves_list(ctx._context, curves.encode())
    lib.ERR_clear_error()
    return ok == 1


def check_backend_ciphers(ciphers: str):
    """The proxy_ssl cipher list, checked by the library that will use it: TLS to the
    backend goes through Python's ``ssl`` module (proxy.backend_tls)."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).set_ciphers(ciphers)
    except ssl.SSLError:
        return (f'SSL_CTX_set_cipher_list("{ciphers}") failed '
                f'(SSL: error:0A0000B9:SSL routines::no cipher match)')
    return None


def check_tls_settings(v: dict):
    """(message, Pos or None) for a TLS setting that cannot be honoured, else None
    (the cipher list is checked before, with check_ciphers)."""
    curve = v["ssl_ecdh_curve"]
    if curve != "auto" and not set_curves(None, curve):
        # the library that serves says which groups exist; the text is OpenSSL 3's
        bad = next((c for c in curve.split(":") if not set_curves(None, c)), curve)
        return (f'SSL_CTX_set1_curves_list("{curve}") failed (SSL: error:0A080106:'
                f'SSL routines::passed invalid argument:group \'{bad}\' cannot be set)',
                None)
    for name, value, pos in v["ssl_conf_command"]:
        problem = conf_command_problem(name, value)
        if problem:
            # OpenSSL's own errors carry no position in nginx; ours point at the line
            return problem, (None if problem.startswith("SSL_CONF_cmd") else pos)
    return None


# --- contexts (pyOpenSSL; see tlsio.py for why not the ssl module) ----------------------

_PROTO = {"TLSv1": "TLS1_VERSION", "TLSv1.1": "TLS1_1_VERSION", "TLSv1.2": "TLS1_2_VERSION",
          "TLSv1.3": "TLS1_3_VERSION"}
_NO_PROTO_OP = {"TLSv1": "OP_NO_TLSv1", "TLSv1.1": "OP_NO_TLSv1_1", "TLSv1.2": "OP_NO_TLSv1_2",
                "TLSv1.3": "OP_NO_TLSv1_3"}
_ALPN = {"pop3": b"pop3", "imap": b"imap", "smtp": b"smtp"}
VERIFY_OPTIONAL_NO_CA_ERRORS = (18, 19, 20, 27, 21)   # self-signed, in chain, no issuer
                                                     # locally, untrusted, leaf signature
X509_ERRORS = {
    0: "ok", 2: "unable to get issuer certificate", 3: "unable to get certificate CRL",
    4: "unable to decrypt certificate's signature", 5: "unable to decrypt CRL's signature",
    6: "unable to decode issuer public key", 7: "certificate signature failure",
    8: "CRL signature failure", 9: "certificate is not yet valid",
    10: "certificate has expired", 11: "CRL is not yet valid", 12: "CRL has expired",
    13: "format error in certificate's notBefore field",
    14: "format error in certificate's notAfter field",
    15: "format error in CRL's lastUpdate field", 16: "format error in CRL's nextUpdate field",
    17: "out of memory", 18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate", 22: "certificate chain too long",
    23: "certificate revoked", 24: "invalid CA certificate", 25: "path length constraint exceeded",
    26: "unsupported certificate purpose", 27: "certificate not trusted",
    28: "certificate rejected",
}


def _verify_cb(conn, cert, errnum, depth, ok):
    """Never abort the handshake for a bad client certificate: remember the error and
    decide after the handshake, as Angie does (ssl-realip-proxy.md §2.3)."""
    if not ok:
        conn.get_app_data().verify_error = errnum
    return True


class NoApplicationProtocol(Exception):
    """The client's ALPN list lacks our protocol: the handshake fails with a fatal
    no_application_protocol alert (pyOpenSSL turns a callback exception into that)."""


def _alpn_cb(want: bytes):
    def select(conn, offered):
        if want in offered:
            conn.get_app_data().alpn = want
            return want
        raise NoApplicationProtocol(want)
    return select


def build_context(server, files=None):
    """A pyOpenSSL context from a resolved server's ssl_* settings (``files``: a
    conf.tlsfiles.RunFiles, so that servers sharing a key load it once)."""
    from OpenSSL import SSL, crypto
    from ..conf.tlsfiles import RunFiles
    files = files or RunFiles()
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    opts = 0
    versions = [v for v in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
                if v in server.ssl_protocols]
    if versions:
        ctx.set_min_proto_version(getattr(SSL, _PROTO[versions[0]]))
        ctx.set_max_proto_version(getattr(SSL, _PROTO[versions[-1]]))
        for v in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"):
            if versions[0] < v < versions[-1] and v not in versions:
                opts |= getattr(SSL, _NO_PROTO_OP[v])
    ctx.set_cipher_list(server.ssl_ciphers.encode())
    for cert, key in zip(server.ssl_certificate, server.ssl_certificate_key):
        ctx.use_certificate_chain_file(cert)
        pkey = files.key(key, server.ssl_passwords)
        ctx.use_privatekey(crypto.PKey.from_cryptography_key(pkey))
    if server.ssl_prefer_server_ciphers:
        opts |= SSL.OP_CIPHER_SERVER_PREFERENCE
    if not server.ssl_session_tickets:
        opts |= SSL.OP_NO_TICKET
    for name, value, _pos in server.ssl_conf_command:
        if name.lower() == "options":
            for bit, on in option_changes(value):
                opts = (opts | bit) if on else (opts & ~bit)
    if opts:
        ctx.set_options(opts)
    curve = server.ssl_ecdh_curve
    if curve and curve != "auto" and not set_curves(ctx, curve):
        raise ValueError(f'SSL_CTX_set1_curves_list("{curve}") failed')
    if server.ssl_dhparam:
        ctx.load_tmp_dh(server.ssl_dhparam.encode())
    ctx.set_session_id(b"MAIL")
    sc = server.ssl_session_cache
    if sc.builtin == "off":
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    elif sc.builtin in ("builtin", "no_builtin") or sc.shared_name:
        ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    else:                                            # none: nothing stored server-side
        ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER | SSL.SESS_CACHE_NO_INTERNAL_STORE)
    ctx.set_timeout(server.ssl_session_timeout)
    if server.ssl_verify_client != "off":
        ctx.set_verify(SSL.VERIFY_PEER, _verify_cb)
        ctx.set_verify_depth(server.ssl_verify_depth)
        if server.ssl_client_certificate:
            ctx.load_verify_locations(server.ssl_client_certificate.encode())
            ctx.set_client_ca_list(_ca_names(server.ssl_client_certificate))
        if server.ssl_trusted_certificate:
            ctx.load_verify_locations(server.ssl_trusted_certificate.encode())
        if server.ssl_crl:
            from cryptography import x509
            store = ctx.get_cert_store()
            with open(server.ssl_crl, "rb") as f:
                store.add_crl(x509.load_pem_x509_crl(f.read()))
            store.set_flags(crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL)
    want = _ALPN.get(server.protocol)
    if want:
        ctx.set_alpn_select_callback(_alpn_cb(want))
    apply_conf_commands(ctx, server.ssl_conf_command)
    return ctx


_PREBUILT: dict = {}


def prebuild(config) -> None:
    """Build every TLS server's context now (in the master, before privileges drop)."""
    from ..conf.tlsfiles import RunFiles
    _PREBUILT.clear()
    files = RunFiles()
    for srv in config.servers:
        if srv.ssl:
            _PREBUILT[id(srv)] = build_context(srv, files)


def context_for(server):
    ctx = _PREBUILT.get(id(server))
    if ctx is None:
        ctx = _PREBUILT[id(server)] = build_context(server)
    return ctx


def _ca_names(path: str):
    from cryptography import x509
    from OpenSSL import crypto
    with open(path, "rb") as f:
        certs = x509.load_pem_x509_certificates(f.read())
    return [crypto.X509.from_cryptography(c).get_subject() for c in certs]


def check_client_certificate(engine, mode: str):
    """After the handshake: None to continue, or (reply kind, log message) to refuse
    (ssl-realip-proxy.md §2.3)."""
    if mode == "off":
        return None
    err = engine.verify_error
    if err and not (mode == "optional_no_ca" and err in VERIFY_OPTIONAL_NO_CA_ERRORS):
        return "cert_error", (f"client SSL certificate verify error: "
                              f"({err}:{X509_ERRORS.get(err, 'unknown error')})")
    if mode == "on" and engine.conn.get_peer_certificate() is None:
        return "no_cert", "client sent no required SSL certificate"
    return None


class TlsInfo:
    """The TLS facts auth_http reports (Auth-SSL-*), taken once after the handshake."""
    __slots__ = ("protocol", "cipher", "verify", "cert", "sni")

    def __init__(self, protocol: str, cipher: str, verify: str = "", cert=None,
                 sni: bytes = b""):
        self.protocol = protocol
        self.cipher = cipher
        self.verify = verify
        self.cert = cert            # cryptography x509.Certificate or None
        self.sni = sni              # the server name the client asked for (SNI)

    @classmethod
    def from_engine(cls, engine, verify_mode: str) -> "TlsInfo":
        conn = engine.conn
        peer = conn.get_peer_certificate()
        cert = peer.to_cryptography() if peer is not None else None
        verify = ""
        if verify_mode != "off":
            if cert is None:
                verify = "NONE"
            elif engine.verify_error:
                e = engine.verify_error
                verify = "FAILED:" + X509_ERRORS.get(e, "unknown error")
            else:
                verify = "SUCCESS"
        return cls(conn.get_protocol_version_name() or "", conn.get_cipher_name() or "",
                   verify, cert, conn.get_servername() or b"")

    def auth_headers(self, server):
        out = [(b"Auth-SSL", b"on"), (b"Auth-SSL-Protocol", self.protocol.encode()),
               (b"Auth-SSL-Cipher", self.cipher.encode())]
        if server.ssl_verify_client == "off":
            return out
        out.append((b"Auth-SSL-Verify", self.verify.encode()))
        c = self.cert
        if c is None:
            return out
        from cryptography.hazmat.primitives import hashes, serialization
        from .auth_http import escape
        out += [(b"Auth-SSL-Subject", c.subject.rfc4514_string().encode()),
                (b"Auth-SSL-Issuer", c.issuer.rfc4514_string().encode()),
                (b"Auth-SSL-Serial", f"{c.serial_number:X}".encode()),
                (b"Auth-SSL-Fingerprint", c.fingerprint(hashes.SHA1()).hex().encode())]
        if server.auth_http_pass_client_cert:
            out.append((b"Auth-SSL-Cert",
                        escape(c.public_bytes(serialization.Encoding.PEM))))
        return out
