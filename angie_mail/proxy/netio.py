"""Non-blocking outgoing connections for the loop-driven auth_http and backend sockets."""

from __future__ import annotations

import _socket
import errno
import os
import socket

# non-blocking from creation: one system call less than setblocking(False)
_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)
IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK)
NOT_CONNECTED_YET = IN_PROGRESS + (errno.ENOTCONN, errno.EINTR)


def start_connect(family: int, sockaddr, nodelay: bool = False):
    """A non-blocking socket whose connect() has begun: (socket, None), or
    (socket or None, OSError) when creating or connecting failed at once."""
    sock = None
    try:
        # the C socket type: socket.socket's Python-level __init__ adds nothing used here
        sock = _socket.socket(family, socket.SOCK_STREAM | _NONBLOCK)
        if not _NONBLOCK:
            sock.setblocking(False)
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(sockaddr)
    except OSError as e:
        return sock, e
    if err and err not in IN_PROGRESS:
        return sock, OSError(err, os.strerror(err))
    return sock, None


def first_send(sock, data: bytes):
    """send() on a socket whose connect() may still be in progress: the count sent, or
    None while it is not connected yet (its writable edge is still to come); other
    errors are raised."""
    try:
        return sock.send(data)
    except OSError as e:
        if e.errno in NOT_CONNECTED_YET:
            return None
        raise


def connect_error(sock: socket.socket):
    """The outcome of a connect() once the socket is writable: None or OSError."""
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return OSError(err, os.strerror(err)) if err else None
