"""Angie's client buffer, as the IMAP and SMTP pre-auth machines keep it (imap.md §9,
smtp.md §9): one buffer of at most ``limit`` bytes holds the command being parsed;
bytes the client sent beyond it wait (as they would in the socket) until there is room;
after a command the bytes that follow move to the buffer's start (compaction), unless
the protocol keeps the authenticating lines in front of them.

A mixin: the session class declares ``buf`` (bytearray), ``extra`` (bytes), ``pos``
(where parsing goes on) and ``limit`` in its ``__slots__``."""

from __future__ import annotations

import re

# a CR, as the int "CR in line" looks for: a bytes needle makes CPython first try it as
# an integer and build, then drop, a TypeError (142 ns against 18 ns per test)
CR = 0x0D

def secret_command(words: tuple, tagged: bool = False, bounded: bool = True,
                   mechanism: tuple = ()):
    """A pattern that matches the start of a log-bound line whose command carries a
    secret (LOGIN, PASS, AUTH ...), up to the command word; after a command named in
    ``mechanism``, up to the SASL mechanism that follows it after spaces (it stays
    readable).  Looser than any parser on purpose: a command after a TAB, a NUL, a
    stray byte or leading junk, which the parser rejects, is still the client typing a
    password, and the rejected line is what the log would show."""
    # junk before the command (or the tag), then a tag: tag bytes and what ends them
    tag = rb"(?:[A-Za-z0-9._-]*[^A-Za-z0-9._-]+)?" if tagged else b""
    end = rb"(?![A-Za-z])" if bounded else b""
    alts = [re.escape(w) + end + (rb"(?: +[A-Za-z0-9_-]+)?" if w in mechanism else b"")
            for w in words]
    return re.compile(rb"\A[^A-Za-z]*" + tag + rb"(?:" + b"|".join(alts) + rb")",
                      re.IGNORECASE)


class ClientBuffer:
    __slots__ = ()

    def feed(self, data: bytes) -> None:
        if self.extra:
            self.extra += data
        else:
            self.extra = data
        self._fill()

    def _fill(self) -> None:
        room = self.limit - len(self.buf)
        if room > 0 and self.extra:
            self.buf += self.extra[:room]
            self.extra = self.extra[room:]

    def pending(self) -> int:
        """Client bytes buffered and not yet consumed."""
        return len(self.buf) - self.pos + len(self.extra)

    def leftover(self) -> bytes:
        """Client bytes after the authenticating line (sent to the backend)."""
        out = bytes(self.buf[self.pos:]) + self.extra
        self._drop_input()
        return out

    def _drop_input(self) -> None:
        """Forget every byte the client sent (STARTTLS drops what follows it)."""
        self.buf = bytearray()
        self.extra = b""
        self.pos = 0

    def _compact(self) -> None:
        """What follows the answered command moves to the buffer's start."""
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
            self._fill()


def continuation_args(line: bytes, max_args: int):
    """The tokens of a SASL continuation line without its LF (pop3.md §6, smtp.md §4):
    the first one up to the first space (empty for an empty line or one starting with a
    space), then runs of spaces separate the others.  None when a CR other than the
    last byte is in the line or there are more than ``max_args`` tokens."""
    if line[-1:] == b"\r":
        line = line[:-1]
    if CR in line:
        return None
    sp = line.find(b" ")
    if sp < 0:
        return [line]
    args = [line[:sp]] + [a for a in line[sp + 1:].split(b" ") if a]
    if len(args) > max_args:
        return None
    return args
