"""The deadlines of a worker's sessions: one heap, one event-loop timer for the earliest.

A session sets up to four deadlines (the pre-auth ``timeout``, its auth_http request,
the backend login, the relay's ``proxy_timeout``) and cancels nearly all of them before
they expire.  uvloop makes a handle and a libuv timer for every ``call_later`` (1.6 µs
with its ``cancel``); a heap entry costs a quarter of that.  A cancelled entry stays in
the heap until it comes to the top or the heap is compacted (when more than half of it
is cancelled), so the heap holds at most about twice the live deadlines.

``call_later(delay, callback, *args)`` returns a handle with ``cancel()`` and
``when()``, as the event loop's does; callbacks run from the loop's timer, earliest first (entries due within
the loop's 1 ms timer resolution together; one added by a callback waits for the next
pass), and an exception in one goes to the loop's exception handler without stopping
the others.
"""

from __future__ import annotations

import heapq
import itertools

_COMPACT_AFTER = 1024       # cancelled entries before a compaction is considered
_RESOLUTION = 0.001         # libuv's timers count milliseconds


class Timer:
    """One deadline; ``cancel()`` is idempotent and harmless after it fired."""

    __slots__ = ("callback", "args", "timers", "deadline")

    def __init__(self, callback, args, timers, deadline):
        self.callback = callback
        self.args = args
        self.timers = timers
        self.deadline = deadline

    def when(self) -> float:
        """The loop time it is due at."""
        return self.deadline

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback = self.args = None
            self.timers._cancelled()

    def cancelled(self) -> bool:
        return self.callback is None


class Timers:
    __slots__ = ("loop", "heap", "seq", "armed_at", "handle", "dead")

    def __init__(self, loop):
        self.loop = loop
        self.heap: list = []            # (when, sequence, Timer)
        self.seq = itertools.count()
        self.armed_at = float("inf")    # when the loop's timer is due
        self.handle = None              # the loop's timer
        self.dead = 0                   # cancelled entries still in the heap

    def call_later(self, delay: float, callback, *args) -> Timer:
        when = self.loop.time() + delay
        t = Timer(callback, args, self, when)
        heapq.heappush(self.heap, (when, next(self.seq), t))
        if when < self.armed_at:
            self._arm(when)
        return t

    def __len__(self) -> int:
        """Deadlines not cancelled yet."""
        return len(self.heap) - self.dead

    def _cancelled(self) -> None:
        self.dead += 1
        if self.dead > _COMPACT_AFTER and self.dead * 2 > len(self.heap):
            self.heap = [e for e in self.heap if e[2].callback is not None]
            heapq.heapify(self.heap)
            self.dead = 0

    def _arm(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.armed_at = when
        self.handle = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self.handle = None
        self.armed_at = float("-inf")       # what callbacks add is armed below
        heap = self.heap
        due = self.loop.time() + _RESOLUTION
        ready = []                          # what is due now; later additions wait
        while heap and heap[0][0] <= due:
            ready.append(heapq.heappop(heap)[2])
        try:
            for t in ready:
                callback = t.callback
                if callback is None:        # cancelled (before or during this pass)
                    self.dead -= 1
                    continue
                args = t.args
                t.callback = t.args = None
                try:
                    callback(*args)
                except Exception as e:      # as the loop reports a failing callback
                    self.loop.call_exception_handler({
                        "message": f"Exception in timer callback {callback!r}",
                        "exception": e})
        finally:
            while heap and heap[0][2].callback is None:
                heapq.heappop(heap)
                self.dead -= 1
            self.armed_at = float("inf")
            if heap:
                self._arm(heap[0][0])
