"""The OpenSSL that Python's ``ssl`` module runs on, reached with ctypes for the calls
nginx makes and ``ssl`` does not expose: SSL_CONF_cmd, the session cache and ticket key
callbacks, the verify and ALPN callbacks, groups, signature algorithms, options, modes.

One library serves TLS to clients, TLS to backends and the ``-t`` checks: the
``libssl``/``libcrypto`` that ``_ssl`` already mapped into this process (found in
/proc/self/maps, so that no other copy on the system is loaded).  The SSL_CTX of an
``ssl.SSLContext`` and the SSL of an ``ssl.SSLObject`` are read from CPython's objects
(the pointer right after the object header); both are checked against OpenSSL itself
before use, so another layout fails loudly at start rather than corrupting memory.
"""

from __future__ import annotations

import ctypes
import functools
import ssl
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_char_p, c_int, c_long,
                    c_size_t, c_uint, c_uint64, c_ulong, c_void_p, create_string_buffer)

import _ssl  # noqa: F401  (maps the library into the process)


class OpenSSLUnavailable(RuntimeError):
    pass


def _library_paths():
    paths = {}
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.rstrip("\n").split(maxsplit=5)
                if len(p) == 6:
                    name = p[5].rsplit("/", 1)[-1]
                    for lib in ("libssl.so", "libcrypto.so"):
                        if name.startswith(lib):
                            paths.setdefault(lib, p[5])
    except OSError:
        pass
    return paths


def _load():
    paths = _library_paths()
    if "libssl.so" in paths and "libcrypto.so" in paths:
        return ctypes.CDLL(paths["libssl.so"]), ctypes.CDLL(paths["libcrypto.so"])
    # an interpreter with OpenSSL linked in (no libssl.so mapped): its symbols, if the
    # interpreter exports them
    try:
        me = ctypes.CDLL(None)
        if hasattr(me, "SSL_CONF_cmd") and hasattr(me, "OpenSSL_version_num"):
            return me, me
    except OSError:
        pass
    raise OpenSSLUnavailable("Python's ssl module is not linked to a shared OpenSSL "
                             "library (libssl.so) whose functions angie-mail can call")


class _Missing:
    """Stands for the library where it cannot be reached: functions can be declared,
    and calling one raises OpenSSLUnavailable (plain-text servers never call them)."""

    def __init__(self, reason: str):
        self.reason = reason

    def __getattr__(self, name):
        return _MissingFunction(self.reason)


class _MissingFunction:
    def __init__(self, reason: str):
        self.reason = reason

    def __call__(self, *args):
        raise OpenSSLUnavailable(self.reason)


try:
    libssl, libcrypto = _load()
    AVAILABLE, REASON = True, ""
except OpenSSLUnavailable as e:
    libssl = libcrypto = _Missing(str(e))
    AVAILABLE, REASON = False, str(e)


def _fn(lib, name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


P = c_void_p
OpenSSL_version_num = _fn(libcrypto, "OpenSSL_version_num", c_ulong)
if AVAILABLE and OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
    REASON = "the OpenSSL library found is not the one Python's ssl module uses"
    AVAILABLE = False
    libssl = libcrypto = _Missing(REASON)

ERR_get_error_all = _fn(libcrypto, "ERR_get_error_all", c_ulong, P, P, P,
                        POINTER(c_char_p), POINTER(c_int))
ERR_error_string_n = _fn(libcrypto, "ERR_error_string_n", None, c_ulong, c_char_p, c_size_t)
ERR_clear_error = _fn(libcrypto, "ERR_clear_error", None)
EVP_aes_128_cbc = _fn(libcrypto, "EVP_aes_128_cbc", P)
EVP_aes_256_cbc = _fn(libcrypto, "EVP_aes_256_cbc", P)
EVP_EncryptInit_ex = _fn(libcrypto, "EVP_EncryptInit_ex", c_int, P, P, P, c_char_p, c_char_p)
EVP_DecryptInit_ex = _fn(libcrypto, "EVP_DecryptInit_ex", c_int, P, P, P, c_char_p, c_char_p)
EVP_MAC_CTX_set_params = _fn(libcrypto, "EVP_MAC_CTX_set_params", c_int, P, P)
d2i_AutoPrivateKey = _fn(libcrypto, "d2i_AutoPrivateKey", P, P, POINTER(c_char_p), c_long)
EVP_PKEY_free = _fn(libcrypto, "EVP_PKEY_free", None, P)

SSL_CTX_get_options = _fn(libssl, "SSL_CTX_get_options", c_uint64, P)
SSL_CTX_set_options = _fn(libssl, "SSL_CTX_set_options", c_uint64, P, c_uint64)
SSL_CTX_clear_options = _fn(libssl, "SSL_CTX_clear_options", c_uint64, P, c_uint64)
SSL_CTX_ctrl = _fn(libssl, "SSL_CTX_ctrl", c_long, P, c_int, c_long, P)
SSL_CTX_set_cipher_list = _fn(libssl, "SSL_CTX_set_cipher_list", c_int, P, c_char_p)
SSL_CTX_get_security_level = _fn(libssl, "SSL_CTX_get_security_level", c_int, P)
SSL_CTX_use_certificate_chain_file = _fn(libssl, "SSL_CTX_use_certificate_chain_file",
                                         c_int, P, c_char_p)
SSL_CTX_use_PrivateKey = _fn(libssl, "SSL_CTX_use_PrivateKey", c_int, P, P)
SSL_load_client_CA_file = _fn(libssl, "SSL_load_client_CA_file", P, c_char_p)
SSL_CTX_set_client_CA_list = _fn(libssl, "SSL_CTX_set_client_CA_list", None, P, P)
SSL_CTX_get_client_CA_list = _fn(libssl, "SSL_CTX_get_client_CA_list", P, P)
OPENSSL_sk_num = _fn(libcrypto, "OPENSSL_sk_num", c_int, P)
OPENSSL_sk_value = _fn(libcrypto, "OPENSSL_sk_value", P, P, c_int)
EVP_sha1 = _fn(libcrypto, "EVP_sha1", P)
X509_NAME_digest = _fn(libcrypto, "X509_NAME_digest", c_int, P, P, c_char_p, POINTER(c_uint))
SSL_CTX_set_verify_depth = _fn(libssl, "SSL_CTX_set_verify_depth", None, P, c_int)
SSL_CTX_set_session_id_context = _fn(libssl, "SSL_CTX_set_session_id_context", c_int, P,
                                     c_char_p, c_uint)
SSL_CTX_set_timeout = _fn(libssl, "SSL_CTX_set_timeout", c_long, P, c_long)
SSL_CONF_CTX_new = _fn(libssl, "SSL_CONF_CTX_new", P)
SSL_CONF_CTX_free = _fn(libssl, "SSL_CONF_CTX_free", None, P)
SSL_CONF_CTX_set_flags = _fn(libssl, "SSL_CONF_CTX_set_flags", c_uint, P, c_uint)
SSL_CONF_CTX_set_ssl_ctx = _fn(libssl, "SSL_CONF_CTX_set_ssl_ctx", None, P, P)
SSL_CONF_cmd = _fn(libssl, "SSL_CONF_cmd", c_int, P, c_char_p, c_char_p)
SSL_CONF_CTX_finish = _fn(libssl, "SSL_CONF_CTX_finish", c_int, P)
SSL_CONF_cmd_value_type = _fn(libssl, "SSL_CONF_cmd_value_type", c_int, P, c_char_p)
SSL_get_SSL_CTX = _fn(libssl, "SSL_get_SSL_CTX", P, P)
SSL_get_verify_result = _fn(libssl, "SSL_get_verify_result", c_long, P)
SSL_get_servername = _fn(libssl, "SSL_get_servername", c_char_p, P, c_int)
i2d_SSL_SESSION = _fn(libssl, "i2d_SSL_SESSION", c_int, P, POINTER(c_char_p))
d2i_SSL_SESSION = _fn(libssl, "d2i_SSL_SESSION", P, P, POINTER(c_char_p), c_long)
SSL_SESSION_get_id = _fn(libssl, "SSL_SESSION_get_id", P, P, POINTER(c_uint))
SSL_SESSION_get_timeout = _fn(libssl, "SSL_SESSION_get_timeout", c_long, P)

# callbacks (the types OpenSSL declares)
VERIFY_CB = CFUNCTYPE(c_int, c_int, P)
ALPN_CB = CFUNCTYPE(c_int, P, POINTER(P), POINTER(ctypes.c_ubyte), P, c_uint, P)
NEW_SESSION_CB = CFUNCTYPE(c_int, P, P)
GET_SESSION_CB = CFUNCTYPE(P, P, P, c_int, POINTER(c_int))
REMOVE_SESSION_CB = CFUNCTYPE(None, P, P)
TICKET_CB = CFUNCTYPE(c_int, P, P, P, P, P, c_int)

SSL_CTX_set_verify = _fn(libssl, "SSL_CTX_set_verify", None, P, c_int, VERIFY_CB)
SSL_CTX_set_alpn_select_cb = _fn(libssl, "SSL_CTX_set_alpn_select_cb", None, P, ALPN_CB, P)
SSL_CTX_sess_set_new_cb = _fn(libssl, "SSL_CTX_sess_set_new_cb", None, P, NEW_SESSION_CB)
SSL_CTX_sess_set_get_cb = _fn(libssl, "SSL_CTX_sess_set_get_cb", None, P, GET_SESSION_CB)
SSL_CTX_sess_set_remove_cb = _fn(libssl, "SSL_CTX_sess_set_remove_cb", None, P,
                                 REMOVE_SESSION_CB)
SSL_CTX_set_tlsext_ticket_key_evp_cb = _fn(libssl, "SSL_CTX_set_tlsext_ticket_key_evp_cb",
                                           c_int, P, TICKET_CB)

# SSL_CTX_ctrl commands (the macros of ssl.h)
CTRL_MODE = 33
CTRL_SET_SESS_CACHE_SIZE = 42
CTRL_SET_SESS_CACHE_MODE = 44
CTRL_SET_GROUPS_LIST = 92
CTRL_SET_MIN_PROTO_VERSION = 123
CTRL_SET_MAX_PROTO_VERSION = 124

MODE_RELEASE_BUFFERS = 0x10
MODE_NO_AUTO_CHAIN = 0x8
SESS_CACHE_OFF = 0
SESS_CACHE_SERVER = 2
SESS_CACHE_NO_INTERNAL = 0x100 | 0x200
VERIFY_PEER = 0x01

# SSL_CONF_CTX flags, as nginx sets them (ngx_ssl_conf_commands)
CONF_FLAGS = 0x2 | 0x8 | 0x4 | 0x20 | 0x10     # FILE SERVER CLIENT CERTIFICATE SHOW_ERRORS

ERR_TXT_STRING = 0x02


def errors() -> str:
    """OpenSSL's error queue as nginx prints it (ngx_ssl_error): " error:...:data"
    for each entry, emptied."""
    out = []
    data = c_char_p()
    flags = c_int()
    buf = create_string_buffer(512)
    while True:
        e = ERR_get_error_all(None, None, None, byref(data), byref(flags))
        if not e:
            break
        ERR_error_string_n(e, buf, len(buf))
        s = buf.value.decode("utf-8", "replace")
        if data.value and flags.value & ERR_TXT_STRING:
            s += ":" + data.value.decode("utf-8", "replace")
        out.append(" " + s)
    return "".join(out)


def failed(call: str) -> str:
    """``<call> failed (SSL: <queue>)``, as nginx logs an OpenSSL failure."""
    q = errors()
    return f"{call} failed" + (f" (SSL:{q})" if q else "")


_strings = []


def _load_strings() -> None:
    """libssl's error texts ("SSL routines", "wrong version number"), once."""
    if not _strings:
        _strings.append(True)
        try:
            init = _fn(libssl, "OPENSSL_init_ssl", c_int, ctypes.c_uint64, P)
            init(0x00200000 | 0x00000002, None)    # LOAD_SSL_STRINGS | LOAD_CRYPTO_STRINGS
        except (AttributeError, OSError):
            pass


def error_text(e: ssl.SSLError) -> str:
    """`` (SSL: error:0A00010B:SSL routines::wrong version number)`` for an SSLError, as
    nginx prints OpenSSL's queue (ssl has consumed the queue: the code is rebuilt from
    the library and reason names it kept); "" when it names none."""
    reason = getattr(e, "reason", None)
    code = _error_codes().get((getattr(e, "library", None), reason))
    if code is not None:
        _load_strings()
        buf = ctypes.create_string_buffer(256)
        ERR_error_string_n(code, buf, 256)
        return f" (SSL: {buf.value.decode('utf-8', 'replace')})"
    return f" (SSL: {reason.lower().replace('_', ' ')})" if reason else ""


@functools.lru_cache(maxsize=1)
def _error_codes() -> dict:
    """(library name, reason name) -> OpenSSL's packed error code, from the tables
    CPython's _ssl keeps (built once, on the first failed handshake)."""
    import _ssl
    libs = getattr(_ssl, "lib_codes_to_names", {})
    return {(libs[lib], name): (lib << 23) | reason
            for (lib, reason), name in getattr(_ssl, "err_codes_to_names", {}).items()
            if lib in libs}


# --- CPython's objects -----------------------------------------------------------------

_HEAD = ctypes.sizeof(c_void_p) * 2            # PyObject_HEAD: refcount, type


def ctx_ptr(context: ssl.SSLContext) -> int:
    """The SSL_CTX* of an ssl.SSLContext."""
    p = c_void_p.from_address(id(context) + _HEAD).value
    if not p or SSL_CTX_get_options(p) != context.options:
        raise OpenSSLUnavailable("cannot find the SSL_CTX of an ssl.SSLContext")
    return p


def ssl_ptr(obj: ssl.SSLObject, ctx: int) -> int:
    """The SSL* of an ssl.SSLObject (its _ssl._SSLSocket: header, socket weakref, SSL*)
    made from the context whose SSL_CTX* is ``ctx``."""
    inner = obj._sslobj
    p = c_void_p.from_address(id(inner) + _HEAD + ctypes.sizeof(c_void_p)).value
    if not p or SSL_get_SSL_CTX(p) != ctx:
        raise OpenSSLUnavailable("cannot find the SSL of an ssl.SSLObject")
    return p


def ctrl(ctx: int, cmd: int, larg: int = 0, parg=None) -> int:
    return SSL_CTX_ctrl(ctx, cmd, larg, parg)


def set_groups(ctx: int, groups: str) -> bool:
    return ctrl(ctx, CTRL_SET_GROUPS_LIST, 0, c_char_p(groups.encode())) == 1


CONF_TYPE_FILE, CONF_TYPE_DIR = 2, 3     # SSL_CONF_TYPE_FILE, SSL_CONF_TYPE_DIR


def conf_value_types(names) -> list:
    """SSL_CONF_cmd_value_type of each command name, under nginx's flags."""
    cctx = SSL_CONF_CTX_new()
    if not cctx:
        return [0] * len(names)
    try:
        SSL_CONF_CTX_set_flags(cctx, CONF_FLAGS)
        return [SSL_CONF_cmd_value_type(cctx, n.encode()) for n in names]
    finally:
        SSL_CONF_CTX_free(cctx)


def conf_commands(ctx: int, commands) -> str | None:
    """Apply ``[(name, value), ...]`` with SSL_CONF_cmd as nginx does: None, or nginx's
    error message for the first command OpenSSL refused."""
    cctx = SSL_CONF_CTX_new()
    if not cctx:
        return failed("SSL_CONF_CTX_new()")
    try:
        SSL_CONF_CTX_set_flags(cctx, CONF_FLAGS)
        SSL_CONF_CTX_set_ssl_ctx(cctx, ctx)
        for name, value in commands:
            ERR_clear_error()
            if SSL_CONF_cmd(cctx, name.encode(), value.encode()) <= 0:
                return failed(f'SSL_CONF_cmd("{name}", "{value}")')
        if SSL_CONF_CTX_finish(cctx) != 1:
            return failed("SSL_CONF_finish()")
    finally:
        SSL_CONF_CTX_free(cctx)
    return None


def client_ca_name_digests(ctx: int) -> list:
    """SHA-1 of each name in the context's client CA list (X509_NAME_digest)."""
    out = []
    names = SSL_CTX_get_client_CA_list(ctx)
    if names:
        buf = create_string_buffer(64)
        n = c_uint()
        for i in range(OPENSSL_sk_num(names)):
            if X509_NAME_digest(OPENSSL_sk_value(names, i), EVP_sha1(), buf, byref(n)) == 1:
                out.append(buf.raw[:n.value])
    return out


def use_private_key_der(ctx: int, der: bytes) -> bool:
    p = c_char_p(der)
    pkey = d2i_AutoPrivateKey(None, byref(p), len(der))
    if not pkey:
        return False
    try:
        return SSL_CTX_use_PrivateKey(ctx, pkey) == 1
    finally:
        EVP_PKEY_free(pkey)


class OSSL_PARAM(Structure):
    _fields_ = [("key", c_char_p), ("data_type", c_uint), ("data", c_void_p),
                ("data_size", c_size_t), ("return_size", c_size_t)]


PARAM_UTF8_STRING = 4
PARAM_OCTET_STRING = 5
PARAM_UNMODIFIED = ctypes.c_size_t(-1).value


def hmac_params(key: bytes):
    """OSSL_PARAM[] {digest=SHA256, key=...} for an EVP_MAC_CTX (kept alive by the
    caller for the duration of the call)."""
    digest = create_string_buffer(b"SHA256")
    kbuf = create_string_buffer(key, len(key))
    arr = (OSSL_PARAM * 3)()
    arr[0] = OSSL_PARAM(b"digest", PARAM_UTF8_STRING, ctypes.cast(digest, c_void_p), 6,
                        PARAM_UNMODIFIED)
    arr[1] = OSSL_PARAM(b"key", PARAM_OCTET_STRING, ctypes.cast(kbuf, c_void_p), len(key),
                        PARAM_UNMODIFIED)
    return arr, (digest, kbuf)


X509_verify_cert_error_string = _fn(libcrypto, "X509_verify_cert_error_string", c_char_p,
                                    c_long)


def verify_error_text(n: int) -> str:
    """OpenSSL's reason for an X509_V_ERR_* number (what nginx logs)."""
    s = X509_verify_cert_error_string(n)
    return s.decode() if s else "unknown error"
