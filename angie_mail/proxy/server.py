"""One event loop serving the mail servers of a resolved configuration.

A worker (or the single process with ``master_process off``) builds a Runtime over the
listening sockets it was given and serves until told to stop: ``stop()`` closes
everything at once (TERM/INT), ``graceful()`` stops accepting and lets sessions finish
(QUIT, reload), bounded by ``worker_shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import itertools

from ..log import ErrorLog
from .client import ClientConnection
from .poller import Poller
from .sockio import plain_acceptor
from .timers import Timers


class Runtime:
    def __init__(self, loop, config, main_log: ErrorLog):
        self.loop = loop
        self.config = config
        self.main_log = main_log
        self.connections: set = set()
        # events { worker_connections }: every socket counts (client and backend), as
        # in nginx; a client that would exceed it is closed at once
        self.max_connections = config.main.events.worker_connections
        self.backends = 0
        self.pending = 0                 # connections in their PROXY header or TLS handshake
        self.auth_requests = 0           # auth_http connections of sessions
        self.servers: list = []          # acceptors of the listening sockets
        self._conn = itertools.count(1)
        self._logs: dict = {}
        self._ssl: dict = {}
        self._auth_pools: dict = {}      # auth_http_keepalive: address -> AuthPool
        self._resolvers: dict = {}       # id(conf.Resolver) -> (Resolver, its conf)
        self.metrics_server = None       # metrics_listen's HTTP server
        self.poller = Poller(loop)       # the proxied sockets (poller.py)
        self.timers = Timers(loop)       # the sessions' deadlines (timers.py)

    def over_limit(self) -> bool:
        """Every socket a worker holds counts, as nginx's connections do: sessions,
        connections still in their PROXY header or TLS handshake, backends, auth_http."""
        if len(self.connections) + self.pending + self.backends + self.auth_requests < \
                self.max_connections:
            return False
        self.main_log.log("alert", f"{self.max_connections} worker_connections are not enough")
        return True

    def next_connection(self) -> int:
        return next(self._conn)

    def auth_pool(self, server):
        """The pool of idle connections to the server's auth_http address (servers that
        share the address share the pool; the largest auth_http_keepalive wins)."""
        addr = server.auth_http.addr
        key = (addr.family, addr.sockaddr())
        pool = self._auth_pools.get(key)
        if pool is None:
            from .auth_http import AuthPool
            pool = self._auth_pools[key] = AuthPool(server.auth_http_keepalive)
        elif pool.limit < server.auth_http_keepalive:
            pool.limit = server.auth_http_keepalive
        return pool

    def close_auth_pools(self) -> None:
        for pool in self._auth_pools.values():
            pool.close()

    def resolver_for(self, server):
        """The Resolver of the server's ``resolver`` directive: servers that inherit one
        directive share it, and its cache (smtp.md §2)."""
        conf = server.resolver
        r = self._resolvers.get(id(conf))
        if r is None:
            from .resolver import Resolver
            r = self._resolvers[id(conf)] = (Resolver(self.loop, conf, self.main_log), conf)
        return r[0]

    def close_resolvers(self) -> None:
        for r, _ in self._resolvers.values():
            r.close()
        self._resolvers.clear()

    def ssl_context(self, server):
        from .tls import context_for
        return context_for(server)

    def log_for(self, server) -> ErrorLog:
        log = self._logs.get(id(server))
        if log is None:
            log = self._logs[id(server)] = ErrorLog.for_targets(server.error_log,
                                                                self.main_log)
        return log

    async def start(self, listen_sockets) -> None:
        """Serve every planned socket (proxy_listeners.ListenSocket with .sock set)."""
        from .handshake import accept_with_handshake
        for ls in listen_sockets:
            l = ls.listen
            needs_handshake = l.proxy_protocol or l.ssl or any(
                c.listen.ssl or c.listen.proxy_protocol for c in ls.addrs.values())
            if needs_handshake:
                self.servers.append(accept_with_handshake(self, ls))
                continue
            self.servers.append(plain_acceptor(self, ls, lambda ls=ls: ClientConnection(self, ls)))

    def stop_accepting(self) -> None:
        for srv in self.servers:
            srv.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None

    async def graceful(self, timeout_ms: int = 0) -> None:
        """Stop accepting; wait for sessions to end (or the shutdown timeout)."""
        self.stop_accepting()
        deadline = None if not timeout_ms else self.loop.time() + timeout_ms / 1000.0
        # connections still in their PROXY header or TLS handshake become sessions too
        while self.connections or self.pending:
            if deadline is not None and self.loop.time() >= deadline:
                for c in list(self.connections):
                    c.shutdown()
                break
            await asyncio.sleep(0.05)
        self.close_auth_pools()
        self.close_resolvers()

    def stop(self) -> None:
        """Close everything now."""
        self.stop_accepting()
        for c in list(self.connections):
            c.abort()
        self.close_auth_pools()
        self.close_resolvers()
