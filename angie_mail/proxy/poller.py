"""The edge-triggered poller of the proxied sockets (clients, backends, auth_http).

Each socket is registered once, for input and output, edge-triggered, as nginx does;
reading is paused and resumed without a system call, and closing the socket removes it
from the set.  The event loop's own fd watchers would cost several epoll_ctl calls each
time a reader is added or removed (libuv checks, re-arms and deletes the descriptor),
which is most of the system calls of a short session.

The poller's epoll descriptor is itself watched by the event loop: when it is readable
the ready events are fetched without blocking and handed to the socket's handler as an
event mask.  A socket closed while a batch is dispatched has its remaining events in
that batch dropped, so a new socket that reuses the descriptor number at once never
sees an event meant for the old one; handlers still take a spurious event calmly (a
recv that finds nothing), as the kernel allows.
"""

from __future__ import annotations

import select

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLERR = select.EPOLLERR
EPOLLHUP = select.EPOLLHUP
EPOLLRDHUP = getattr(select, "EPOLLRDHUP", 0x2000)
IN_EVENTS = EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP
OUT_EVENTS = EPOLLOUT | EPOLLERR | EPOLLHUP
# the peer closed or the socket failed: a short read no longer means "drained", the
# end must be read too (no further edge will announce it)
END_EVENTS = EPOLLRDHUP | EPOLLERR | EPOLLHUP
_MASK = EPOLLIN | EPOLLOUT | EPOLLRDHUP | select.EPOLLET
BATCH = 512


class Poller:
    __slots__ = ("loop", "ep", "fd", "handlers", "running", "stale")

    def __init__(self, loop):
        self.loop = loop
        self.ep = select.epoll()
        self.fd = self.ep.fileno()
        self.handlers: dict = {}
        self.running = False            # a batch is being dispatched
        self.stale: set = set()         # descriptors closed during this batch
        loop.add_reader(self.fd, self._run)

    def register(self, fd: int, handler) -> None:
        """Watch ``fd``; ``handler(events)`` is called on each edge."""
        self.handlers[fd] = handler
        self.ep.register(fd, _MASK)

    def unregister(self, fd: int) -> None:
        """Forget ``fd`` just before closing it (the close takes it out of the set)."""
        self.handlers.pop(fd, None)
        if self.running:
            self.stale.add(fd)

    def _run(self) -> None:
        handlers = self.handlers
        stale = self.stale
        self.running = True
        try:
            for fd, events in self.ep.poll(0, BATCH):
                if stale and fd in stale:
                    continue            # fetched for a socket closed since
                h = handlers.get(fd)
                if h is not None:
                    try:
                        h(events)
                    except Exception as e:     # one session's bug must not stall others:
                        self._failed(h, e)     # this batch's edges will not come again
        finally:
            self.running = False
            stale.clear()

    def call_soon(self, handler, *args) -> None:
        """Run ``handler(*args)`` soon (a read that goes on after a pause or a long
        burst), guarded as an event's handler is: an exception ends the handler's own
        session instead of leaving it stalled with its socket open."""
        self.loop.call_soon(self._guarded, handler, args)

    def _guarded(self, handler, args) -> None:
        try:
            handler(*args)
        except Exception as e:
            self._failed(handler, e)

    def _failed(self, handler, exc) -> None:
        """Report a handler's exception and close its socket (the session cannot be
        trusted to go on); the rest of the batch is still dispatched."""
        self.loop.call_exception_handler({"message": "poller callback failed",
                                          "exception": exc})
        owner = getattr(handler, "__self__", None)
        for name in ("abort", "close"):
            end = getattr(owner, name, None)
            if end is not None:
                try:
                    end()
                except Exception:
                    pass
                return

    def close(self) -> None:
        if self.fd >= 0:
            try:
                self.loop.remove_reader(self.fd)
            except (ValueError, OSError):
                pass
            self.ep.close()
            self.fd = -1
            self.handlers.clear()
