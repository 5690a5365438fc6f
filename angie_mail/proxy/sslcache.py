"""TLS session resumption as nginx sets it up (ngx_ssl_session_cache,
ngx_ssl_session_ticket_keys): the cache mode, the shared session cache of
``ssl_session_cache shared:NAME:SIZE`` and the ticket keys of ``ssl_session_ticket_key``.

A shared cache is a memfd the master creates before the workers fork (kept across a
reload while its name and size stay), holding a ring of serialized sessions (DER, as
i2d_SSL_SESSION makes them, at most 4 KB each as in nginx) and an index by session id.
The newest session overwrites the oldest when the ring is full, so the zone's memory is
its size whatever the load.  A POSIX record lock on the memfd serialises the workers
(one lock per full handshake or resumption; the kernel drops it if a worker dies).

OpenSSL calls the three cache callbacks (new, get, remove) from inside the handshake;
the ticket key callback encrypts tickets with the first key of ``ssl_session_ticket_key``
and decrypts with any of them, asking the client to take a new ticket when an older
key was used (as nginx).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import struct
import time
from typing import NamedTuple, Optional

from . import ossl, shm

MAX_SESSION = 4096                     # NGX_SSL_MAX_SESSION_SIZE
MEMFD_PREFIX = "angie-mail-ssl:"
_MAGIC = b"AMSC"
_HEADER = struct.Struct("<4sIIIQQQ16s")   # magic, version, buckets, -, ring offset,
                                          # ring size, head (logical), hash key
_ENTRY = struct.Struct("<QQII")           # hash, logical offset, length, expires
_WAYS = 8
_BUCKET = _ENTRY.size * _WAYS
_REC = struct.Struct("<B32sH")            # id length, id, DER length
_HEAD_AT = 4 + 4 + 4 + 4 + 8 + 8


class SessionStore:
    """One shared cache over a writable buffer (the memfd's mmap; a bytearray in tests)."""

    def __init__(self, buf, fd: Optional[int] = None, init: bool = False):
        self.buf = buf
        self.lock = shm.FileLock(fd) if fd is not None else None
        size = len(buf)
        if init:
            index = max(_BUCKET, (size // 8) // _BUCKET * _BUCKET)
            ring_off = (_HEADER.size + index + 63) // 64 * 64
            _HEADER.pack_into(buf, 0, _MAGIC, 1, index // _BUCKET, 0, ring_off,
                              size - ring_off, 0, os.urandom(16))
        magic, _v, self.buckets, _, self.ring_off, self.ring_size, _h, self.key = \
            _HEADER.unpack_from(buf, 0)
        if magic != _MAGIC or self.ring_size < MAX_SESSION + _REC.size:
            raise ValueError("not an angie-mail session cache")
        self.index_off = _HEADER.size

    # --- locking ---------------------------------------------------------------------

    def _lock(self):
        if self.lock is not None:
            self.lock.acquire()

    def _unlock(self):
        if self.lock is not None:
            self.lock.release()

    # --- the table -------------------------------------------------------------------

    def _hash(self, sid: bytes) -> int:
        return int.from_bytes(hashlib.blake2b(sid, digest_size=8, key=self.key).digest(),
                              "little") | 1

    def _bucket(self, h: int) -> int:
        return self.index_off + (h % self.buckets) * _BUCKET

    def _head(self) -> int:
        return struct.unpack_from("<Q", self.buf, _HEAD_AT)[0]

    def _live(self, off: int, head: int) -> bool:
        return off + self.ring_size >= head

    def put(self, sid: bytes, der: bytes, expires: int) -> bool:
        if not sid or len(sid) > 32 or len(der) > MAX_SESSION:
            return False
        need = (_REC.size + len(der) + 7) & ~7
        h = self._hash(sid)
        buf = self.buf
        self._lock()
        try:
            head = self._head()
            pos = head % self.ring_size
            if pos + need > self.ring_size:         # no record wraps: start again at 0
                head += self.ring_size - pos
                pos = 0
            off = head
            at = self.ring_off + pos
            _REC.pack_into(buf, at, len(sid), sid, len(der))
            buf[at + _REC.size:at + _REC.size + len(der)] = der
            struct.pack_into("<Q", buf, _HEAD_AT, head + need)
            b = self._bucket(h)
            victim, oldest = b, None
            for i in range(_WAYS):
                e = b + i * _ENTRY.size
                eh, eoff, _n, _exp = _ENTRY.unpack_from(buf, e)
                if eh == h or eh == 0 or not self._live(eoff, off):
                    victim = e
                    break
                if oldest is None or eoff < oldest:
                    oldest, victim = eoff, e
            _ENTRY.pack_into(buf, victim, h, off, len(der), expires)
        finally:
            self._unlock()
        return True

    def get(self, sid: bytes, now: int) -> Optional[bytes]:
        if not sid or len(sid) > 32:
            return None
        h = self._hash(sid)
        buf = self.buf
        self._lock()
        try:
            head = self._head()
            b = self._bucket(h)
            for i in range(_WAYS):
                e = b + i * _ENTRY.size
                eh, off, n, expires = _ENTRY.unpack_from(buf, e)
                if eh != h:
                    continue
                if expires < now or not self._live(off, head):
                    return None
                at = self.ring_off + off % self.ring_size
                idlen, rid, dlen = _REC.unpack_from(buf, at)
                if rid[:idlen] != sid or dlen != n:
                    return None
                return bytes(buf[at + _REC.size:at + _REC.size + n])
        finally:
            self._unlock()
        return None

    def remove(self, sid: bytes) -> None:
        if not sid or len(sid) > 32:
            return
        h = self._hash(sid)
        self._lock()
        try:
            b = self._bucket(h)
            for i in range(_WAYS):
                e = b + i * _ENTRY.size
                if _ENTRY.unpack_from(self.buf, e)[0] == h:
                    _ENTRY.pack_into(self.buf, e, 0, 0, 0, 0)
        finally:
            self._unlock()


def create_zone(name: str, size: int) -> shm.Zone:
    return shm.create(MEMFD_PREFIX, name, size,
                      lambda m, fd: SessionStore(m, fd, init=True))


ZONES: dict = {}


def wanted(config) -> dict:
    out = {}
    for srv in config.servers:
        sc = srv.ssl_session_cache
        if srv.ssl and sc.shared_name:
            out[sc.shared_name] = sc.shared_size
    return out


def prepare(config) -> None:
    """Create the shared caches of the configuration (in the master, before the
    workers fork), keeping those whose name and size are unchanged across a reload."""
    shm.reconcile(ZONES, wanted(config), create_zone, shm.close)


def _now() -> int:
    return int(time.time())


def _session_id(sess) -> bytes:
    n = ctypes.c_uint()
    idp = ossl.SSL_SESSION_get_id(sess, ctypes.byref(n))
    return ctypes.string_at(idp, n.value)


def _callbacks(store: SessionStore):
    """OpenSSL's new/get/remove session callbacks over ``store``."""

    def new(_ssl, sess):
        try:
            sid = _session_id(sess)
            size = ossl.i2d_SSL_SESSION(sess, None)
            if 0 < size <= MAX_SESSION:
                buf = ctypes.create_string_buffer(size)
                p = ctypes.cast(buf, ctypes.c_char_p)
                ossl.i2d_SSL_SESSION(sess, ctypes.byref(p))
                store.put(sid, buf.raw, _now() + ossl.SSL_SESSION_get_timeout(sess))
        except Exception:               # never raise into OpenSSL; not cached
            pass
        return 0                        # no reference kept on the session

    def get(_ssl, data, length, copy):
        try:
            copy[0] = 0
            der = store.get(ctypes.string_at(data, length), _now())
            if der is None:
                return None
            p = ctypes.c_char_p(der)
            return ossl.d2i_SSL_SESSION(None, ctypes.byref(p), len(der))
        except Exception:
            return None

    def remove(_ctx, sess):
        try:
            store.remove(_session_id(sess))
        except Exception:
            pass

    return (ossl.NEW_SESSION_CB(new), ossl.GET_SESSION_CB(get),
            ossl.REMOVE_SESSION_CB(remove))


# --- ticket keys -----------------------------------------------------------------------

class TicketKey(NamedTuple):
    name: bytes
    hmac: bytes
    aes: bytes
    size: int


def load_ticket_key(path: str) -> TicketKey:
    """A 48- or 80-byte key file, split as nginx does (ngx_ssl_session_ticket_keys)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) == 48:
        return TicketKey(buf[0:16], buf[32:48], buf[16:32], 48)
    if len(buf) == 80:
        return TicketKey(buf[0:16], buf[16:48], buf[48:80], 80)
    raise ValueError(f'"{path}" must be 48 or 80 bytes')


def _ticket_callback(keys: list):
    """SSL_CTX_set_tlsext_ticket_key_evp_cb: AES-CBC and HMAC-SHA256 with the first key
    to encrypt; any key to decrypt, 2 (renew) for one that is not the first."""

    def cb(_ssl, name, iv, cctx, hctx, enc):
        try:
            if enc == 1:
                k = keys[0]
                cipher = ossl.EVP_aes_128_cbc() if k.size == 48 else ossl.EVP_aes_256_cbc()
                ivb = os.urandom(16)
                ctypes.memmove(name, k.name, 16)
                ctypes.memmove(iv, ivb, 16)
                if ossl.EVP_EncryptInit_ex(cctx, cipher, None, k.aes, ivb) != 1:
                    return -1
                params, _keep = ossl.hmac_params(k.hmac)
                if ossl.EVP_MAC_CTX_set_params(hctx, params) != 1:
                    return -1
                return 1
            want = ctypes.string_at(name, 16)
            for i, k in enumerate(keys):
                if k.name == want:
                    break
            else:
                return 0                            # unknown key: a full handshake
            params, _keep = ossl.hmac_params(k.hmac)
            if ossl.EVP_MAC_CTX_set_params(hctx, params) != 1:
                return -1
            cipher = ossl.EVP_aes_128_cbc() if k.size == 48 else ossl.EVP_aes_256_cbc()
            if ossl.EVP_DecryptInit_ex(cctx, cipher, None, k.aes,
                                       ctypes.string_at(iv, 16)) != 1:
                return -1
            return 1 if i == 0 else 2
        except Exception:
            return -1

    return ossl.TICKET_CB(cb)


def configure(t, server) -> None:
    """Session cache mode, shared cache callbacks and ticket keys on a server's context
    (tls.ServerTls), as ngx_ssl_session_cache and ngx_ssl_session_ticket_keys."""
    p = t.ptr
    sc = server.ssl_session_cache
    if sc.builtin == "off":
        ossl.ctrl(p, ossl.CTRL_SET_SESS_CACHE_MODE, ossl.SESS_CACHE_OFF)
    elif sc.builtin == "none":
        # the server says it keeps no session, yet may resume by ticket
        ossl.ctrl(p, ossl.CTRL_SET_SESS_CACHE_MODE, ossl.SESS_CACHE_SERVER | 0x200)
        ossl.ctrl(p, ossl.CTRL_SET_SESS_CACHE_SIZE, 1)
    else:
        mode = ossl.SESS_CACHE_SERVER
        if sc.shared_name and sc.builtin == "no_builtin":
            mode |= ossl.SESS_CACHE_NO_INTERNAL
        ossl.ctrl(p, ossl.CTRL_SET_SESS_CACHE_MODE, mode)
        if sc.builtin == "builtin" and sc.builtin_size:
            ossl.ctrl(p, ossl.CTRL_SET_SESS_CACHE_SIZE, sc.builtin_size)
        if sc.shared_name:
            z = ZONES.get(sc.shared_name)
            if z is None:
                z = ZONES[sc.shared_name] = create_zone(sc.shared_name, sc.shared_size)
            new, get, remove = _callbacks(z.table)
            t.keep += [new, get, remove]
            ossl.SSL_CTX_sess_set_new_cb(p, new)
            ossl.SSL_CTX_sess_set_get_cb(p, get)
            ossl.SSL_CTX_sess_set_remove_cb(p, remove)
    ossl.SSL_CTX_set_timeout(p, server.ssl_session_timeout)
    if server.ssl_session_tickets and server.ssl_session_ticket_key:
        keys = [load_ticket_key(k) for k in server.ssl_session_ticket_key]
        cb = _ticket_callback(keys)
        t.keep.append(cb)
        if ossl.SSL_CTX_set_tlsext_ticket_key_evp_cb(p, cb) != 1:
            raise ValueError(ossl.failed("SSL_CTX_set_tlsext_ticket_key_evp_cb()"))
