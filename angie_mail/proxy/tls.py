"""TLS contexts for mail servers, built from the merged ssl_* directives, and the ``-t``
checks of those directives.

Everything runs on one OpenSSL: the library Python's ``ssl`` module is linked to.  An
``ssl.SSLContext`` is created and then configured the way nginx configures its SSL_CTX
(ngx_event_openssl.c), through ``ossl`` (ctypes) for the calls ``ssl`` does not offer:
options and modes, groups, ``ssl_conf_command`` (SSL_CONF_cmd itself, so every command
OpenSSL knows is applied, and refused with OpenSSL's own words), the verify callback
that lets a handshake with a bad client certificate complete, the ALPN callback that
refuses a client without our protocol, the shared session cache and ticket keys.
``-t`` asks the same library, so what it accepts is what serves.
"""

from __future__ import annotations

import ctypes
import hashlib
import ssl

from . import ossl

# OpenSSL 3's SSL_OP_* bits used here
OP_DONT_INSERT_EMPTY_FRAGMENTS = 1 << 11
OP_NO_TICKET = 1 << 14
OP_NO_COMPRESSION = 1 << 17
OP_ENABLE_MIDDLEBOX_COMPAT = 1 << 20
OP_CIPHER_SERVER_PREFERENCE = 1 << 22
OP_NO_ANTI_REPLAY = 1 << 24
OP_IGNORE_UNEXPECTED_EOF = 1 << 7
_NO_PROTO_OP = {"TLSv1": 1 << 26, "TLSv1.1": 1 << 28, "TLSv1.2": 1 << 27, "TLSv1.3": 1 << 29}
_VERSION = {"TLSv1": 0x301, "TLSv1.1": 0x302, "TLSv1.2": 0x303, "TLSv1.3": 0x304}
# what SSL_CTX_new sets, and what nginx adds in ngx_ssl_create (Python's SSLContext sets
# others, which are cleared first so that the context starts as nginx's does)
BASE_OPTIONS = (OP_NO_COMPRESSION | OP_ENABLE_MIDDLEBOX_COMPAT | OP_DONT_INSERT_EMPTY_FRAGMENTS
                | OP_NO_ANTI_REPLAY | OP_IGNORE_UNEXPECTED_EOF)
_ALL_BITS = (1 << 64) - 1


def _scratch() -> tuple:
    """(SSLContext, SSL_CTX*) of a fresh server context, to ask OpenSSL at -t."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    return c, ossl.ctx_ptr(c)


def check_ciphers(ciphers: str):
    """(nginx's message or None, OpenSSL security level): nginx sets the cipher list
    first, and its ``@SECLEVEL=N`` then applies to the keys and DH parameters loaded
    after it."""
    if not ossl.AVAILABLE:
        return f"TLS cannot be served here: {ossl.REASON}", 0
    c, p = _scratch()
    ossl.ERR_clear_error()
    if ossl.SSL_CTX_set_cipher_list(p, ciphers.encode()) != 1:
        return ossl.failed(f'SSL_CTX_set_cipher_list("{ciphers}")'), c.security_level
    return None, ossl.SSL_CTX_get_security_level(p)


def check_backend_ciphers(ciphers: str):
    """The proxy_ssl cipher list (TLS to the backend, proxy.backend_tls)."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not ossl.AVAILABLE:              # TLS to the backend needs only the ssl module
        try:
            c.set_ciphers(ciphers)
        except ssl.SSLError:
            return (f'SSL_CTX_set_cipher_list("{ciphers}") failed '
                    f'(SSL: error:0A0000B9:SSL routines::no cipher match)')
        return None
    p = ossl.ctx_ptr(c)
    ossl.ERR_clear_error()
    if ossl.SSL_CTX_set_cipher_list(p, ciphers.encode()) != 1:
        return ossl.failed(f'SSL_CTX_set_cipher_list("{ciphers}")')
    return None


def certificate_compression_supported() -> bool:
    """SSL_CTX_compress_certs exists from OpenSSL 3.2 on."""
    return ossl.AVAILABLE and hasattr(ossl.libssl, "SSL_CTX_compress_certs")


def set_curves(p: int, curves: str) -> str | None:
    """ssl_ecdh_curve as nginx applies it: None, or its error message."""
    ossl.ERR_clear_error()
    if not ossl.set_groups(p, curves):
        return ossl.failed(f'SSL_CTX_set1_curves_list("{curves}")')
    return None


def absolute_conf_paths(commands, conf_prefix: str) -> list:
    """ssl_conf_command lines with a file or directory value (Certificate, PrivateKey,
    ChainCAFile, VerifyCAPath...) made absolute against the configuration's directory,
    as nginx does before it calls SSL_CONF_cmd (its error messages then show the full
    path); other values as written."""
    if not commands or not ossl.AVAILABLE:
        return list(commands)
    types = ossl.conf_value_types([name for name, _v, _p in commands])
    return [(name, conf_prefix + value if t in (ossl.CONF_TYPE_FILE, ossl.CONF_TYPE_DIR)
             and not value.startswith("/") else value, pos)
            for (name, value, pos), t in zip(commands, types)]


def check_tls_settings(v: dict):
    """(message, Pos or None) for a TLS setting OpenSSL refuses, else None (the cipher
    list is checked before, with check_ciphers).  The ssl_conf_command lines go, in
    order, through SSL_CONF_cmd on one context, as nginx applies them."""
    if not ossl.AVAILABLE:
        return None                     # (check_ciphers said so for this server)
    curve = v["ssl_ecdh_curve"]
    commands = v["ssl_conf_command"]
    if curve == "auto" and not commands:
        return None
    _c, p = _scratch()
    problem = set_curves(p, curve) if curve != "auto" else None
    if problem is None and commands:
        problem = ossl.conf_commands(p, [(n, val) for n, val, _pos in commands])
    # OpenSSL's errors carry no position in nginx
    return (problem, None) if problem else None


def lint_tls_settings(v: dict):
    """check_tls_settings for lint without --check-files: ssl_ecdh_curve and the
    ssl_conf_command lines that name no file (those wait for --check-files), each
    command alone so that a refusal is reported at its own line: (message, Pos or
    None), else None."""
    if not ossl.AVAILABLE:
        return None
    curve = v["ssl_ecdh_curve"]
    commands = v["ssl_conf_command"]
    _c, p = _scratch()
    if curve != "auto":
        problem = set_curves(p, curve)
        if problem:
            return problem, None
    types = ossl.conf_value_types([name for name, _v, _p in commands])
    for (name, value, pos), t in zip(commands, types):
        if t in (ossl.CONF_TYPE_FILE, ossl.CONF_TYPE_DIR):
            continue
        problem = ossl.conf_commands(p, [(name, value)])
        if problem:
            return problem, pos
    return None


# --- contexts -------------------------------------------------------------------------

_ALPN = {"pop3": b"pop3", "imap": b"imap", "smtp": b"smtp"}
VERIFY_OPTIONAL_NO_CA_ERRORS = (18, 19, 20, 27, 21)   # self-signed, in chain, no issuer
                                                     # locally, untrusted, leaf signature


@ossl.VERIFY_CB
def _verify_cb(ok, store):
    """Never abort the handshake for a bad client certificate: OpenSSL keeps the
    result (SSL_get_verify_result) and ssl_verify_client decides after the handshake,
    as Angie does (ssl-realip-proxy.md §2.3)."""
    return 1


def _alpn_cb(want: bytes):
    """Select ``want`` if the client offers it; otherwise a fatal no_application_protocol
    alert (SSL_TLSEXT_ERR_ALERT_FATAL), as Angie does."""
    def select(_ssl, out, outlen, inp, inlen, _arg):
        try:
            offered = ctypes.string_at(inp, inlen)
            i = 0
            while i < len(offered):
                n = offered[i]
                if offered[i + 1:i + 1 + n] == want:
                    out[0] = inp + i + 1
                    outlen[0] = n
                    return 0                        # SSL_TLSEXT_ERR_OK
                i += 1 + n
        except Exception:               # a callback must not raise into OpenSSL
            pass
        return 2                                    # SSL_TLSEXT_ERR_ALERT_FATAL
    return ossl.ALPN_CB(select)


class ServerTls:
    """A server's TLS context and what must live as long as it (ctypes callbacks, the
    buffers they use)."""
    __slots__ = ("context", "ptr", "keep")

    def __init__(self, context: ssl.SSLContext, ptr: int):
        self.context = context
        self.ptr = ptr
        self.keep = []

    def wrap(self, incoming, outgoing):
        return self.context.wrap_bio(incoming, outgoing, server_side=True)


def _session_id_context(server, p: int) -> bytes:
    """nginx's session id context (ngx_ssl_session_id_context with "MAIL"): SHA-1 over
    "MAIL", the SHA-1 of each certificate (the last configured first) and of each name
    of the client CA list.  A session made by one server never resumes on another that
    shares the cache or the ticket keys but not the certificate; and a session made by
    Angie or nginx with the same certificate and ticket keys resumes here (a farm that
    mixes them, or a move from one to the other, keeps its clients' sessions)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    h = hashlib.sha1(b"MAIL")
    for path in reversed(server.ssl_certificate):
        with open(path, "rb") as f:
            leaf = x509.load_pem_x509_certificate(f.read())
        h.update(leaf.fingerprint(hashes.SHA1()))
    for d in ossl.client_ca_name_digests(p):
        h.update(d)
    return h.digest()


def build_context(server, files=None) -> ServerTls:
    """The server's context, configured in nginx's order (``files``: a
    conf.tlsfiles.RunFiles, so that servers sharing a key load it once)."""
    from cryptography.hazmat.primitives import serialization
    from ..conf.tlsfiles import RunFiles
    from . import sslcache
    files = files or RunFiles()
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    p = ossl.ctx_ptr(c)
    t = ServerTls(c, p)
    ossl.ERR_clear_error()

    def need(ok, call):
        if not ok:
            raise ValueError(ossl.failed(call))

    ossl.SSL_CTX_clear_options(p, _ALL_BITS)
    opts = BASE_OPTIONS
    versions = [v for v in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
                if v in server.ssl_protocols]
    lo = _VERSION[versions[0]] if versions else 0
    hi = _VERSION[versions[-1]] if versions else 0
    ossl.ctrl(p, ossl.CTRL_SET_MIN_PROTO_VERSION, lo)
    ossl.ctrl(p, ossl.CTRL_SET_MAX_PROTO_VERSION, hi)
    for v in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"):
        if versions and versions[0] < v < versions[-1] and v not in versions:
            opts |= _NO_PROTO_OP[v]
    if server.ssl_prefer_server_ciphers:
        opts |= OP_CIPHER_SERVER_PREFERENCE
    if not server.ssl_session_tickets:
        opts |= OP_NO_TICKET
    ossl.SSL_CTX_set_options(p, opts)
    ossl.ctrl(p, ossl.CTRL_MODE, ossl.MODE_RELEASE_BUFFERS | ossl.MODE_NO_AUTO_CHAIN)
    need(ossl.SSL_CTX_set_cipher_list(p, server.ssl_ciphers.encode()) == 1,
         f'SSL_CTX_set_cipher_list("{server.ssl_ciphers}")')
    for cert, key in zip(server.ssl_certificate, server.ssl_certificate_key):
        need(ossl.SSL_CTX_use_certificate_chain_file(p, cert.encode()) == 1,
             f'SSL_CTX_use_certificate_chain_file("{cert}")')
        pkey = files.key(key, server.ssl_passwords)
        der = pkey.private_bytes(serialization.Encoding.DER,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        need(ossl.use_private_key_der(p, der), f'SSL_CTX_use_PrivateKey("{key}")')
    if server.ssl_certificate_compression and certificate_compression_supported():
        # nginx: clear SSL_OP_NO_TX_CERTIFICATE_COMPRESSION, compress with every
        # algorithm OpenSSL has (a failure is a warning there, and ignored here)
        ossl.SSL_CTX_clear_options(p, 1 << 32)
        fn = ossl.libssl.SSL_CTX_compress_certs
        fn.restype, fn.argtypes = ossl.c_int, [ossl.P, ossl.c_int]
        fn(p, 0)
        ossl.ERR_clear_error()
    curve = server.ssl_ecdh_curve
    if curve and curve != "auto":
        problem = set_curves(p, curve)
        if problem:
            raise ValueError(problem)
    if server.ssl_dhparam:
        c.load_dh_params(server.ssl_dhparam)
    if server.ssl_verify_client != "off":
        ossl.SSL_CTX_set_verify(p, ossl.VERIFY_PEER, _verify_cb)
        ossl.SSL_CTX_set_verify_depth(p, server.ssl_verify_depth)
        if server.ssl_client_certificate:
            c.load_verify_locations(cafile=server.ssl_client_certificate)
            names = ossl.SSL_load_client_CA_file(server.ssl_client_certificate.encode())
            need(names, f'SSL_load_client_CA_file("{server.ssl_client_certificate}")')
            ossl.SSL_CTX_set_client_CA_list(p, names)
        if server.ssl_trusted_certificate:
            c.load_verify_locations(cafile=server.ssl_trusted_certificate)
        if server.ssl_crl:
            c.load_verify_locations(cafile=server.ssl_crl)
            c.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF | ssl.VERIFY_CRL_CHECK_CHAIN
    # after the client CA list, as ngx_ssl_session_cache computes it
    sid = _session_id_context(server, p)
    ossl.SSL_CTX_set_session_id_context(p, sid, len(sid))
    sslcache.configure(t, server)
    want = _ALPN.get(server.protocol)
    if want:
        cb = _alpn_cb(want)
        t.keep.append(cb)
        ossl.SSL_CTX_set_alpn_select_cb(p, cb, None)
    if server.ssl_conf_command:
        problem = ossl.conf_commands(p, [(n, v) for n, v, _pos in server.ssl_conf_command])
        if problem:
            raise ValueError(problem)
    return t


_PREBUILT: dict = {}


def prebuild(config) -> None:
    """Build every TLS server's context now (in the master, before privileges drop),
    after the shared session caches they use."""
    from . import sslcache
    sslcache.prepare(config)
    _PREBUILT.clear()
    if not any(srv.ssl for srv in config.servers):
        return                  # (nor the certificate library: see process.master.preload)
    from ..conf.tlsfiles import RunFiles
    files = RunFiles()
    for srv in config.servers:
        if srv.ssl:
            _PREBUILT[id(srv)] = build_context(srv, files)


def context_for(server) -> ServerTls:
    ctx = _PREBUILT.get(id(server))
    if ctx is None:
        ctx = _PREBUILT[id(server)] = build_context(server)
    return ctx


def check_client_certificate(engine, mode: str):
    """After the handshake: None to continue, or (reply kind, log message) to refuse
    (ssl-realip-proxy.md §2.3)."""
    if mode == "off":
        return None
    err = engine.verify_result()
    if err and not (mode == "optional_no_ca" and err in VERIFY_OPTIONAL_NO_CA_ERRORS):
        return "cert_error", (f"client SSL certificate verify error: "
                              f"({err}:{ossl.verify_error_text(err)})")
    if mode == "on" and engine.peer_certificate() is None:
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
        der = engine.peer_certificate()
        cert = None
        if der is not None:
            from cryptography import x509
            cert = x509.load_der_x509_certificate(der)
        verify = ""
        if verify_mode != "off":
            e = engine.verify_result()
            if cert is None:
                verify = "NONE"
            elif e:
                verify = "FAILED:" + ossl.verify_error_text(e)
            else:
                verify = "SUCCESS"
        cipher = conn.cipher()
        return cls(conn.version() or "", cipher[0] if cipher else "", verify, cert,
                   engine.server_name())

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
