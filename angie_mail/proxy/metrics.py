"""Prometheus metrics (``metrics_listen``, dialect angie-mail; docs/metrics.md).

Every process counts into prometheus_client's multiprocess files in one private
directory that the master makes before the workers start (mode 0700, given to the
workers' user); each worker serves ``GET /metrics`` on the ``metrics_listen`` address
(SO_REUSEPORT: the kernel picks a worker) with the sums over all processes, so the
figures do not depend on which worker answers.  Counters of workers that have exited
(a reload, a respawn) stay in the sums; their gauges are dropped.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time

ENV = "PROMETHEUS_MULTIPROC_DIR"
_dir = None                      # the directory, once made (inherited by the workers)
_maker = 0                       # the pid of the process that made it
M = None                         # the metric objects, in a process that counts


def make_dir(owner=None) -> str:
    """The master (or the single process): a fresh private directory for the files."""
    global _dir, _maker
    if _dir is None:
        _dir = tempfile.mkdtemp(prefix="angie-mail-metrics-")
        _maker = os.getpid()
        if owner is not None and os.geteuid() == 0:
            import grp
            import pwd
            os.chown(_dir, pwd.getpwnam(owner[0]).pw_uid, grp.getgrnam(owner[1]).gr_gid)
        # prometheus_client picks its multiprocess values when imported: the directory
        # is known first; and workers that switch user may not read the package later
        os.environ[ENV] = _dir
        import prometheus_client  # noqa: F401
        import prometheus_client.exposition  # noqa: F401
        import prometheus_client.multiprocess  # noqa: F401
    return _dir


class _Metrics:
    def __init__(self):
        from prometheus_client import Counter, Gauge, Histogram
        labels = ("protocol", "server")
        self.sessions = Counter("angie_mail_sessions", "Sessions ended, by outcome",
                                labels + ("outcome",))
        self.current = Gauge("angie_mail_sessions_current", "Sessions in progress",
                             labels, multiprocess_mode="livesum")
        self.auth_seconds = Histogram("angie_mail_auth_http_seconds",
                                      "auth_http request duration", ("server",),
                                      buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5,
                                               5, 10))
        self.auth_failures = Counter("angie_mail_auth_http_failures",
                                     "auth_http requests without a usable answer",
                                     ("server",))
        self.backend_failures = Counter("angie_mail_backend_failures",
                                        "Backend connections or logins that failed",
                                        labels)
        self.bytes = Counter("angie_mail_relayed_bytes", "Bytes relayed after login",
                             labels + ("direction",))
        self.tls = Counter("angie_mail_tls_handshakes", "TLS handshakes, by result",
                           ("server", "result"))
        self.throttle = Counter("angie_mail_throttle_decisions",
                                "Logins delayed or refused by auth_throttle, sessions "
                                "refused by limit_conn", ("server", "decision"))
        self._children = {}

    def of(self, protocol: str, server: str) -> "_Bound":
        """The metrics of one (protocol, server), their labels bound once."""
        b = self._children.get((protocol, server))
        if b is None:
            b = self._children[(protocol, server)] = _Bound(self, protocol, server)
        return b


class _Bound:
    """A server's metric children: a session touches these without label lookups."""
    __slots__ = ("current", "outcomes", "auth_seconds", "auth_failures",
                 "backend_failures", "bytes_in", "bytes_out", "_m", "_labels",
                 "decisions")

    def __init__(self, m, protocol, server):
        self._m = m
        self._labels = (protocol, server)
        self.current = m.current.labels(protocol, server)
        self.outcomes = {}
        self.auth_seconds = m.auth_seconds.labels(server)
        self.auth_failures = m.auth_failures.labels(server)
        self.backend_failures = m.backend_failures.labels(protocol, server)
        self.bytes_in = m.bytes.labels(protocol, server, "in")
        self.bytes_out = m.bytes.labels(protocol, server, "out")
        self.decisions = {}

    def throttled(self, decision: str):
        """A throttle decision: delayed, refused (auth_throttle), connections."""
        c = self.decisions.get(decision)
        if c is None:
            c = self.decisions[decision] = self._m.throttle.labels(self._labels[1], decision)
        c.inc()

    def ended(self, outcome: str):
        c = self.outcomes.get(outcome)
        if c is None:
            c = self.outcomes[outcome] = self._m.sessions.labels(*self._labels, outcome)
        c.inc()


def remove_dir() -> None:
    """The process that made the directory is done: the counts go with it."""
    if _dir is not None and os.getpid() == _maker:
        import shutil
        shutil.rmtree(_dir, ignore_errors=True)


def start_counting(directory: str) -> None:
    """In a process that serves sessions: count into ``directory``."""
    global M
    if M is None:
        os.environ[ENV] = directory
        M = _Metrics()


def exited(pid: int) -> None:
    """A worker is gone: its live gauges no longer count."""
    if _dir is not None:
        from prometheus_client import multiprocess
        os.environ.setdefault(ENV, _dir)
        multiprocess.mark_process_dead(pid, _dir)


def render() -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=os.environ[ENV])
    return generate_latest(registry)


async def serve(loop, addr) -> asyncio.AbstractServer:
    """``GET /metrics`` (any path) over HTTP/1.0 on ``addr`` = (family, host, port)."""
    family, host, port = addr
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(64)
    sock.setblocking(False)

    async def handle(reader, writer):
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            body = render()
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; "
                         b"charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError,
                asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
    return await asyncio.start_server(handle, sock=sock)


def now() -> float:
    return time.monotonic()
