"""Shared memory zones of the master: anonymous memory files (memfd) that the workers
inherit at fork, kept across a reload while a zone keeps its name and size (as nginx
keeps its zones).  proxy.guard (auth_throttle, limit_conn) and proxy.sslcache (the
shared TLS session cache) build their tables on them."""

from __future__ import annotations

import fcntl
import mmap
import os
from typing import NamedTuple


def memfd(label: str, size: int):
    """(fd, writable shared mmap) of a new zone of ``size`` bytes, zero-filled; the
    pages are allocated when first touched."""
    fd = os.memfd_create(label, os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    return fd, mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)


def reconcile(zones: dict, wanted: dict, create, close) -> None:
    """Make ``zones`` (name -> zone with a ``size``) the ``wanted`` ones (name -> size):
    a zone whose name and size are unchanged is kept with its contents, the others are
    closed (``close(zone)``) and new ones made (``create(name, size)``)."""
    for name in list(zones):
        if wanted.get(name) != zones[name].size:
            close(zones.pop(name))
    for name, size in wanted.items():
        if name not in zones:
            zones[name] = create(name, size)


class Zone(NamedTuple):
    """A zone: its name and size, its memfd, and the table built on its memory (which
    keeps the mapping as ``buf``)."""
    name: str
    size: int
    fd: int
    table: object


def create(label: str, name: str, size: int, build) -> Zone:
    """A new zone whose memfd is labelled ``label + name``; ``build(mapping, fd)`` makes
    its table."""
    fd, m = memfd(label + name, size)
    return Zone(name, size, fd, build(m, fd))


def close(zone: Zone) -> None:
    zone.table.buf.close()
    os.close(zone.fd)


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
