"""Framing of the backend's replies during login, shared by every protocol
(ngx_mail_proxy_read_response): a reply is complete once at least 4 bytes are
buffered and they end with CRLF (and, for SMTP's multi-line replies, once the last
line has come); ``proxy_buffer`` bounds what is read for one reply."""

from __future__ import annotations

READY, MORE, TOO_LONG = range(3)


def _whole(buf: bytes) -> bool:
    return True


def read_reply(buf: bytes, data: bytes, limit: int, complete=_whole):
    """(status, reply, rest): READY with the reply and the bytes after it (read
    beyond the buffer, they wait as they would in the socket); MORE with everything
    kept in ``rest``; TOO_LONG with the buffer's content in ``reply``."""
    buf += data
    rest = b""
    if len(buf) > limit:
        buf, rest = buf[:limit], buf[limit:]
    if len(buf) >= 4 and buf.endswith(b"\r\n") and complete(buf):
        return READY, buf, rest
    if len(buf) >= limit and not buf.endswith(b"\r\n"):
        return TOO_LONG, buf, b""
    return MORE, b"", buf + rest
