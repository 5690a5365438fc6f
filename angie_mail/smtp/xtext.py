"""RFC 3461 xtext, as Angie writes ``XCLIENT LOGIN=`` (smtp.md §12): bytes 0x00-0x20,
``+``, ``=`` and 0x7F-0xFF become ``+`` and two upper-case hex digits."""

from __future__ import annotations

_PLAIN = frozenset(range(0x21, 0x7F)) - {0x2B, 0x3D}
_TABLE = [bytes([b]) if b in _PLAIN else b"+%02X" % b for b in range(256)]


def xtext(data: bytes) -> bytes:
    return b"".join(_TABLE[b] for b in data)
