"""Brute-force defence and connection limits (angie-mail): the shared state and the
decisions (docs/abuse.md).

State lives in *zones*: fixed-size tables in shared memory that the master creates
before it forks the workers (a ``memfd``: no path another user could write, nothing
left on disk) and keeps across a reload while the zone keeps its name and size, as
nginx keeps its shared memory zones.  Every worker maps the same pages; a POSIX
record lock on the memfd (``lockf``) serialises the short updates and is released by
the kernel if its holder dies.

A table is ``buckets x 8`` slots of 64 bytes.  A key (``addr 192.0.2.7``,
``login alice``, ``pair 192.0.2.7 alice``, ``cert <fingerprint> alice``, or a
``limit_conn`` key) is found by its keyed 64-bit hash (BLAKE2b with the zone's random
secret, so a client cannot aim keys at one bucket); a new key takes a free slot of its
bucket, else the one touched longest ago that holds no live connection and no
success (those go last: a flood of failures does not push the owners' trust out).  The memory of a
zone is therefore its size, whatever the number of keys a flood brings: old keys are
forgotten first.

Failed-login throttling (``auth_throttle``): each refused authentication counts
against the client address, the login and the (address, login) pair, each in a fixed
window; an attempt is delayed by ``delay * 2^(n-1)`` (at most ``max_delay``) for the
largest count ``n`` that applies, and refused without asking the auth server once a
count reaches its limit.  A pair that logged in successfully within
``auth_throttle_trust`` (and, with ``auth_throttle_trust_certificate``, a client
certificate that did) is exempt from the address and login counts, so an attacker
elsewhere, or behind the owner's NAT address, cannot lock the owner out.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import time
from typing import NamedTuple, Optional

from . import shm

MAGIC = b"AMGUARD1"
HEADER = 64
SLOT = 64
WAYS = 8                                  # slots per bucket
BUCKET = WAYS * SLOT
_HDR = struct.Struct("<8sII16s")          # magic, buckets, reserved, secret
# hash, touched, window start, failures, last success, connections, kind, key length, key
_SLOT = struct.Struct("<QIIIIiBB34s")
KEY_TEXT = 34                             # bytes of the key kept for listing
_BUCKET_HASHES = struct.Struct("<" + "Q56x" * 7 + "Q")   # the 8 hashes of a bucket
HASH_CACHE = 4096                         # key hashes remembered by a process
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_START_FAILS = struct.Struct("<II")       # at +12: window start, failures
_TOUCH_START_FAILS = struct.Struct("<III")  # at +8: touched, window start, failures

KIND_ADDR, KIND_LOGIN, KIND_PAIR, KIND_CERT, KIND_CONN = range(1, 6)
KIND_NAME = {KIND_ADDR: "addr", KIND_LOGIN: "login", KIND_PAIR: "pair",
             KIND_CERT: "cert", KIND_CONN: "conn"}

# decisions
PASS, DELAY, REFUSE = range(3)


def slots_for(size: int) -> int:
    """Buckets of a zone of ``size`` bytes (at least one)."""
    return max(1, (size - HEADER) // (SLOT * WAYS))


class Table:
    """A zone's table over a writable buffer (an mmap, or a bytearray in tests) and a
    lock (``acquire``/``release``)."""

    __slots__ = ("buf", "buckets", "secret", "lock", "name", "hashes")

    def __init__(self, buf, lock=None, name: str = "", init: bool = False):
        self.buf = buf
        self.lock = lock
        self.name = name
        if init:
            buckets = slots_for(len(buf))
            _HDR.pack_into(buf, 0, MAGIC, buckets, 0, os.urandom(16))
        magic, buckets, _, secret = _HDR.unpack_from(buf, 0)
        if magic != MAGIC:
            raise ValueError("not an angie-mail zone")
        self.buckets = buckets
        self.secret = secret
        self.hashes = {}                    # (kind, key) -> hash: this process's cache

    # --- the lock -------------------------------------------------------------------

    def __enter__(self):
        if self.lock is not None:
            self.lock.acquire()
        return self

    def __exit__(self, *exc):
        if self.lock is not None:
            self.lock.release()

    # --- slots ----------------------------------------------------------------------

    def ref(self, kind: int, key: bytes) -> tuple:
        """(hash, its 8 bytes as stored, its bucket's offset) of a key."""
        cache = self.hashes
        r = cache.get((kind, key))
        if r is None:
            h = int.from_bytes(hashlib.blake2b(bytes((kind,)) + key, digest_size=8,
                                               key=self.secret).digest(), "little") or 1
            r = (h, h.to_bytes(8, "little"), HEADER + (h % self.buckets) * BUCKET)
            if len(cache) >= HASH_CACHE:    # 0 marks a free slot, hence "or 1"
                cache.clear()
            cache[(kind, key)] = r
        return r

    def key_hash(self, kind: int, key: bytes) -> int:
        return self.ref(kind, key)[0]

    def at(self, kind: int, key: bytes, r: tuple) -> int:
        """The slot of a key (``r``: its ref), or -1; no lock.  The hash is looked
        for with one bytes search over its bucket: a match is a slot's hash field when
        aligned on a slot (an unaligned one, inside another field, is looked at again
        slot by slot)."""
        base = r[2]
        off = self.buf.find(r[1], base, base + BUCKET)
        if off >= 0 and (off - HEADER) % SLOT:
            off = self._find(r[0], False, 0, kind, key)
        return off

    def _find(self, h: int, create: bool, now: int, kind: int, key: bytes):
        """The slot offset of hash ``h`` (created when asked), or -1."""
        base = HEADER + (h % self.buckets) * BUCKET
        buf = self.buf
        hs = _BUCKET_HASHES.unpack_from(buf, base)
        if h in hs:
            return base + hs.index(h) * SLOT
        if not create:
            return -1
        free = -1
        oldest = trusted = -1                       # the slots to evict, in this order
        oldest_t = trusted_t = 1 << 33
        for i in range(WAYS):
            off = base + i * SLOT
            sh, touched, _, _, ok, conns = struct.unpack_from("<QIIIIi", buf, off)
            if sh == 0:
                if free < 0:
                    free = off
            elif conns > 0:
                continue                            # a live session's count stays
            elif ok:                                # a success kept for trust
                if touched < trusted_t:
                    trusted, trusted_t = off, touched
            elif touched < oldest_t:
                oldest, oldest_t = off, touched
        off = free if free >= 0 else oldest if oldest >= 0 else trusted
        if off < 0:
            return -1                               # every slot holds live connections
        text = key[:KEY_TEXT]
        _SLOT.pack_into(buf, off, h, now, now, 0, 0, 0, kind, len(text), text)
        return off

    def offset(self, kind: int, key: bytes) -> int:
        """The slot of a key, or -1 (no lock)."""
        return self._find(self.key_hash(kind, key), False, 0, kind, key)

    def get(self, kind: int, key: bytes):
        """(window start, failures, last success, connections) or None (no lock)."""
        off = self._find(self.key_hash(kind, key), False, 0, kind, key)
        if off < 0:
            return None
        return struct.unpack_from("<IIIi", self.buf, off + 12)

    def entries(self):
        """Every used slot: (kind, key text, touched, window start, failures, last
        success, connections)."""
        out = []
        for b in range(self.buckets * WAYS):
            h, touched, start, fails, ok, conns, kind, n, key = _SLOT.unpack_from(
                self.buf, HEADER + b * SLOT)
            if h:
                out.append((kind, key[:n], touched, start, fails, ok, conns))
        return out

    def used(self) -> int:
        return sum(1 for b in range(self.buckets * WAYS)
                   if struct.unpack_from("<Q", self.buf, HEADER + b * SLOT)[0])

    def clear(self, kind: int = 0, key: Optional[bytes] = None) -> int:
        """Forget the throttling state of one key, of every key of a kind, or all;
        connection counts are kept (they belong to live sessions).  The number of
        entries cleared."""
        n = 0
        buf = self.buf
        for b in range(self.buckets * WAYS):
            off = HEADER + b * SLOT
            h, touched, start, fails, ok, conns, k, ln, text = _SLOT.unpack_from(buf, off)
            if not h or k == KIND_CONN:
                continue
            if kind and k != kind:
                continue
            if key is not None and (h != self.key_hash(k, key)):
                continue
            struct.pack_into("<QIIIIi", buf, off, 0, 0, 0, 0, 0, 0)
            n += 1
        return n

    # --- counting ---------------------------------------------------------------------

    def count(self, kind: int, key: bytes, window: int, now: int) -> int:
        """Failures of the key in its current window (no lock)."""
        off = self.at(kind, key, self.hashes.get((kind, key)) or self.ref(kind, key))
        if off < 0:
            return 0
        start, fails = _START_FAILS.unpack_from(self.buf, off + 12)
        return fails if now - start < window else 0

    def _slot(self, kind: int, key: bytes, now: int) -> int:
        """The slot of a key, created under the lock when it is new (-1: a bucket full
        of live connections).  Updating an existing slot takes no lock: a worker's
        update is a few aligned 32-bit stores, and two failures counted at the same
        instant by two workers may count as one, which a throttle can afford; a
        slot is never created twice."""
        h = self.key_hash(kind, key)
        off = self._find(h, False, 0, kind, key)
        if off < 0:
            with self:
                off = self._find(h, True, now, kind, key)
        return off

    def fail(self, kind: int, key: bytes, window: int, now: int) -> int:
        r = self.hashes.get((kind, key)) or self.ref(kind, key)
        buf = self.buf
        off = self.at(kind, key, r)
        if off < 0:
            with self:                      # a new key: see _slot
                off = self._find(r[0], True, now, kind, key)
            if off < 0:
                return 0
        start, fails = _START_FAILS.unpack_from(buf, off + 12)
        if now - start >= window:
            start, fails = now, 0
        fails += 1
        _TOUCH_START_FAILS.pack_into(self.buf, off + 8, now, start, fails)
        return fails

    def succeed(self, kind: int, key: bytes, now: int) -> None:
        """A success: the key's failures are forgotten and the time is kept."""
        off = self._slot(kind, key, now)
        if off >= 0:
            struct.pack_into("<IIII", self.buf, off + 8, now, now, 0, now)

    def last_success(self, kind: int, key: bytes) -> int:
        off = self._find(self.key_hash(kind, key), False, 0, kind, key)
        return _U32.unpack_from(self.buf, off + 20)[0] if off >= 0 else 0

    def add_conn(self, key: bytes, limit: int, now: int, dry_run: bool) -> int:
        """Take one connection of ``key`` unless ``limit`` are taken: the count before
        (``limit`` or more: refused, nothing taken unless ``dry_run``), or -1 when the
        bucket is full of live keys (not counted)."""
        off = self._find(self.key_hash(KIND_CONN, key), True, now, KIND_CONN, key)
        if off < 0:
            return -1
        (conns,) = struct.unpack_from("<i", self.buf, off + 24)
        if conns < limit or dry_run:
            struct.pack_into("<I", self.buf, off + 8, now)
            struct.pack_into("<i", self.buf, off + 24, conns + 1)
        return conns

    def release_conn(self, key: bytes, now: int) -> None:
        off = self._find(self.key_hash(KIND_CONN, key), False, 0, KIND_CONN, key)
        if off >= 0:
            (conns,) = struct.unpack_from("<i", self.buf, off + 24)
            struct.pack_into("<I", self.buf, off + 8, now)
            struct.pack_into("<i", self.buf, off + 24, max(0, conns - 1))


MEMFD_PREFIX = "angie-mail-zone:"


def create_zone(name: str, size: int) -> shm.Zone:
    return shm.create(MEMFD_PREFIX, name, size,
                      lambda m, fd: Table(m, shm.FileLock(fd), name, init=True))


def open_zone_fd(fd: int, name: str) -> shm.Zone:
    """A zone of another process (the operator's ``throttle`` command), from the path
    of its memfd in /proc."""
    size = os.fstat(fd).st_size
    m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    return shm.Zone(name, size, fd, Table(m, shm.FileLock(fd), name))


# the zones of this process: created by the master (or the single process) before the
# workers are forked, inherited by them
ZONES: dict = {}


def prepare(config) -> None:
    """Create the configuration's zones, keeping those of the same name and size (a
    reload keeps their state); zones no longer configured are dropped."""
    shm.reconcile(ZONES, dict(config.zones), create_zone, shm.close)


def zone(name: str) -> Optional[Table]:
    z = ZONES.get(name)
    return z.table if z is not None else None


# --- the decisions -------------------------------------------------------------------------

_START_FAILS_OK = struct.Struct("<III")   # at +12: window start, failures, last success
_HASH_TOUCH_START_FAILS = struct.Struct("<QIII")
_NOWHERE = (0, -1)


def _locate(t: Table, kind: int, key: bytes):
    """(hash, slot offset or -1) of a key, without the lock."""
    r = t.hashes.get((kind, key)) or t.ref(kind, key)
    base = r[2]
    off = t.buf.find(r[1], base, base + BUCKET)
    if off >= 0 and (off - HEADER) % SLOT:
        off = t._find(r[0], False, 0, kind, key)
    return r[0], off


class Verdict(NamedTuple):
    """A throttle decision other than PASS."""
    decision: int            # DELAY or REFUSE
    delay: float             # seconds (DELAY)
    scope: str               # the count that decided ("addr", "login", "pair")
    counts: tuple            # (addr, login, pair) failures, None where not looked at
    trusted: str             # "", "pair" or "certificate"


def check(t: Table, p, addr: bytes, login: bytes, cert: bytes, now: int):
    """What to do with an attempt of ``login`` from ``addr`` under settings ``p``
    (model.AuthThrottle), before asking the auth server: (None to go on, or a
    Verdict; the attempt, to give to ``failed`` once the auth server refused it).

    The attempt is (address, login, and the (hash, slot) of each key): counting its
    failure then does not look the keys up again.  Read without the lock: each field
    is one aligned 32-bit store, and a count read while another worker adds to it is
    at most one behind."""
    login = login.lower()
    buf = t.buf
    a = lg = pr = 0
    trusted = ""
    wa = wl = wp = _NOWHERE
    if login:
        wp = _locate(t, KIND_PAIR, addr + b" " + login)
        off = wp[1]
        if off >= 0:
            start, fails, ok = _START_FAILS_OK.unpack_from(buf, off + 12)
            if p.pair and now - start < p.pair[1]:
                pr = fails
            if p.trust and ok and now - ok <= p.trust:
                trusted = "pair"
        if not trusted and p.trust and p.trust_certificate and cert:
            off = _locate(t, KIND_CERT, cert + b" " + login)[1]
            if off >= 0:
                ok = _U32.unpack_from(buf, off + 20)[0]
                if ok and now - ok <= p.trust:
                    trusted = "certificate"
    if p.addr:
        wa = _locate(t, KIND_ADDR, addr)
        if wa[1] >= 0:
            start, fails = _START_FAILS.unpack_from(buf, wa[1] + 12)
            if now - start < p.addr[1]:
                a = fails
    if p.login and login:
        wl = _locate(t, KIND_LOGIN, login)
        if wl[1] >= 0:
            start, fails = _START_FAILS.unpack_from(buf, wl[1] + 12)
            if now - start < p.login[1]:
                lg = fails
    attempt = (addr, login, wa, wl, wp)
    if trusted:
        a = lg = None
    if not (a or lg or pr):
        return None, attempt
    counts = (a, lg, pr)
    worst = 0
    scope = ""
    for name, n, limit in (("pair", pr, p.pair), ("addr", a, p.addr),
                           ("login", lg, p.login)):
        if limit is None or n is None:
            continue
        if n >= limit[0]:
            return Verdict(REFUSE, 0.0, name, counts, trusted), attempt
        if n > worst:
            worst, scope = n, name
    if worst and p.delay:
        return Verdict(DELAY, min(p.max_delay, p.delay * (1 << min(worst - 1, 30))),
                       scope, counts, trusted), attempt
    return None, attempt


def _bump(t: Table, kind: int, key: bytes, where, window: int, now: int) -> int:
    """One more failure of a key, at the slot ``check`` found when it is still the
    key's (a flood may have evicted it since), else looked up or created."""
    h, off = where
    buf = t.buf
    if off < 0:
        return t.fail(kind, key, window, now)
    sh, _, start, fails = _HASH_TOUCH_START_FAILS.unpack_from(buf, off)
    if sh != h:
        return t.fail(kind, key, window, now)
    if now - start >= window:
        start, fails = now, 0
    fails += 1
    _TOUCH_START_FAILS.pack_into(buf, off + 8, now, start, fails)
    return fails


def failed(t: Table, p, attempt, now: int) -> tuple:
    """Count a refused authentication (``attempt`` from ``check``): the new (addr,
    login, pair) counts."""
    addr, login, wa, wl, wp = attempt
    a = _bump(t, KIND_ADDR, addr, wa, p.addr[1], now) if p.addr else 0
    lg = _bump(t, KIND_LOGIN, login, wl, p.login[1], now) if p.login and login else 0
    pr = _bump(t, KIND_PAIR, addr + b" " + login, wp, p.pair[1], now) \
        if p.pair and login else 0
    return a, lg, pr


def succeeded(t: Table, p, addr: bytes, login: bytes, cert: bytes, now: int) -> None:
    """A successful authentication: the pair (and the certificate) are trusted from
    now on, and the pair's failures forgotten."""
    login = login.lower()
    t.succeed(KIND_PAIR, addr + b" " + login, now)
    if cert and p.trust_certificate:
        t.succeed(KIND_CERT, cert + b" " + login, now)


def now() -> int:
    return int(time.time())
