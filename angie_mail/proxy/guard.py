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

import fcntl
import hashlib
import mmap
import os
import struct
import time
from typing import NamedTuple, Optional

MAGIC = b"AMGUARD1"
HEADER = 64
SLOT = 64
WAYS = 8                                  # slots per bucket
_HDR = struct.Struct("<8sII16s")          # magic, buckets, reserved, secret
# hash, touched, window start, failures, last success, connections, kind, key length, key
_SLOT = struct.Struct("<QIIIIiBB34s")
KEY_TEXT = 34                             # bytes of the key kept for listing

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

    __slots__ = ("buf", "buckets", "secret", "lock", "name")

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

    # --- the lock -------------------------------------------------------------------

    def __enter__(self):
        if self.lock is not None:
            self.lock.acquire()
        return self

    def __exit__(self, *exc):
        if self.lock is not None:
            self.lock.release()

    # --- slots ----------------------------------------------------------------------

    def key_hash(self, kind: int, key: bytes) -> int:
        h = int.from_bytes(hashlib.blake2b(bytes((kind,)) + key, digest_size=8,
                                           key=self.secret).digest(), "little")
        return h or 1                               # 0 marks a free slot

    def _find(self, h: int, create: bool, now: int, kind: int, key: bytes):
        """The slot offset of hash ``h`` (created when asked), or -1."""
        base = HEADER + (h % self.buckets) * WAYS * SLOT
        buf = self.buf
        free = -1
        oldest = trusted = -1                       # the slots to evict, in this order
        oldest_t = trusted_t = 1 << 33
        for i in range(WAYS):
            off = base + i * SLOT
            sh, touched, _, _, ok, conns = struct.unpack_from("<QIIIIi", buf, off)
            if sh == h:
                return off
            if not create:
                continue
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
        if not create:
            return -1
        off = free if free >= 0 else oldest if oldest >= 0 else trusted
        if off < 0:
            return -1                               # every slot holds live connections
        text = key[:KEY_TEXT]
        _SLOT.pack_into(buf, off, h, now, now, 0, 0, 0, kind, len(text), text)
        return off

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
        off = self._find(self.key_hash(kind, key), False, 0, kind, key)
        if off < 0:
            return 0
        start, fails = struct.unpack_from("<II", self.buf, off + 12)
        return fails if now - start < window else 0

    def fail(self, kind: int, key: bytes, window: int, now: int) -> int:
        off = self._find(self.key_hash(kind, key), True, now, kind, key)
        if off < 0:
            return 0
        start, fails = struct.unpack_from("<II", self.buf, off + 12)
        if now - start >= window:
            start, fails = now, 0
        fails += 1
        struct.pack_into("<III", self.buf, off + 8, now, start, fails)
        return fails

    def succeed(self, kind: int, key: bytes, now: int) -> None:
        """A success: the key's failures are forgotten and the time is kept."""
        off = self._find(self.key_hash(kind, key), True, now, kind, key)
        if off >= 0:
            struct.pack_into("<IIII", self.buf, off + 8, now, now, 0, now)

    def last_success(self, kind: int, key: bytes) -> int:
        off = self._find(self.key_hash(kind, key), False, 0, kind, key)
        return struct.unpack_from("<I", self.buf, off + 20)[0] if off >= 0 else 0

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


class FileLock:
    """A POSIX record lock on the zone's memfd: released by the kernel when the
    process holding it dies."""

    __slots__ = ("fd",)

    def __init__(self, fd: int):
        self.fd = fd

    def acquire(self):
        fcntl.lockf(self.fd, fcntl.LOCK_EX)

    def release(self):
        fcntl.lockf(self.fd, fcntl.LOCK_UN)


MEMFD_PREFIX = "angie-mail-zone:"


class Zone(NamedTuple):
    name: str
    size: int
    fd: int
    table: Table


def create_zone(name: str, size: int) -> Zone:
    fd = os.memfd_create(MEMFD_PREFIX + name, os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    return Zone(name, size, fd, Table(m, FileLock(fd), name, init=True))


def open_zone_fd(fd: int, name: str) -> Zone:
    """A zone of another process (the operator's ``throttle`` command), from the path
    of its memfd in /proc."""
    size = os.fstat(fd).st_size
    m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    return Zone(name, size, fd, Table(m, FileLock(fd), name))


# the zones of this process: created by the master (or the single process) before the
# workers are forked, inherited by them
ZONES: dict = {}


def prepare(config) -> None:
    """Create the configuration's zones, keeping those of the same name and size (a
    reload keeps their state); zones no longer configured are dropped."""
    wanted = dict(config.zones)
    for name in list(ZONES):
        if wanted.get(name) != ZONES[name].size:
            z = ZONES.pop(name)
            z.table.buf.close()
            os.close(z.fd)
    for name, size in wanted.items():
        if name not in ZONES:
            ZONES[name] = create_zone(name, size)


def zone(name: str) -> Optional[Table]:
    z = ZONES.get(name)
    return z.table if z is not None else None


# --- the decisions -------------------------------------------------------------------------

class Verdict(NamedTuple):
    decision: int            # PASS, DELAY, REFUSE
    delay: float             # seconds (DELAY)
    scope: str               # the count that decided ("addr", "login", "pair")
    counts: tuple            # (addr, login, pair) failures in their windows
    trusted: str             # "", "pair" or "certificate"


def _login_key(login: bytes) -> bytes:
    return login.lower()


def check(t: Table, p, addr: bytes, login: bytes, cert: bytes, now: int) -> Verdict:
    """What to do with an attempt of ``login`` from ``addr`` under settings ``p``
    (model.AuthThrottle), before asking the auth server."""
    login = _login_key(login)
    pair = addr + b" " + login
    with t:
        trusted = ""
        if p.trust:
            ok = t.last_success(KIND_PAIR, pair)
            if ok and now - ok <= p.trust:
                trusted = "pair"
            elif p.trust_certificate and cert:
                ok = t.last_success(KIND_CERT, cert + b" " + login)
                if ok and now - ok <= p.trust:
                    trusted = "certificate"
        a = t.count(KIND_ADDR, addr, p.addr[1], now) if p.addr else 0
        lg = t.count(KIND_LOGIN, login, p.login[1], now) if p.login and login else 0
        pr = t.count(KIND_PAIR, pair, p.pair[1], now) if p.pair and login else 0
    counts = (a, lg, pr)
    worst = 0
    scope = ""
    for name, n, limit in (("pair", pr, p.pair), ("addr", a, p.addr),
                           ("login", lg, p.login)):
        if limit is None or trusted and name != "pair":
            continue
        if n >= limit[0]:
            return Verdict(REFUSE, 0.0, name, counts, trusted)
        if n > worst:
            worst, scope = n, name
    if worst and p.delay:
        return Verdict(DELAY, min(p.max_delay, p.delay * (1 << min(worst - 1, 30))),
                       scope, counts, trusted)
    return Verdict(PASS, 0.0, "", counts, trusted)


def failed(t: Table, p, addr: bytes, login: bytes, now: int) -> tuple:
    """Count a refused authentication: the new (addr, login, pair) counts."""
    login = _login_key(login)
    with t:
        a = t.fail(KIND_ADDR, addr, p.addr[1], now) if p.addr else 0
        lg = t.fail(KIND_LOGIN, login, p.login[1], now) if p.login and login else 0
        pr = t.fail(KIND_PAIR, addr + b" " + login, p.pair[1], now) \
            if p.pair and login else 0
    return a, lg, pr


def succeeded(t: Table, p, addr: bytes, login: bytes, cert: bytes, now: int) -> None:
    """A successful authentication: the pair (and the certificate) are trusted from
    now on, and the pair's failures forgotten."""
    login = _login_key(login)
    with t:
        t.succeed(KIND_PAIR, addr + b" " + login, now)
        if cert and p.trust_certificate:
            t.succeed(KIND_CERT, cert + b" " + login, now)


def now() -> int:
    return int(time.time())
