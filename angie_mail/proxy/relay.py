"""The backend side of a session: login, then the transparent relay.

During login the backend's bytes go to the sans-IO login machine
(angie_mail.pop3.backend).  After it, every byte is copied as it comes, in both
directions, with no parsing: the client's bytes are written to the backend in
ClientConnection.data_received, the backend's to the client here.  Flow control is
transport back-pressure: when one side's write buffer is full, the other side stops
being read (``pause_writing``/``resume_writing``), so memory stays bounded and nothing
is dropped.  The relay ends when either side closes (after what it sent was delivered);
a half-close is not propagated, as in Angie.
"""

from __future__ import annotations

import asyncio

from ..pop3.backend import AGAIN, SEND

# writes to a socket are buffered up to this before the other side stops being read
WRITE_HIGH = 1 << 20
WRITE_LOW = 1 << 18


class BackendConnection(asyncio.Protocol):
    """asyncio protocol of the connection to the backend."""

    __slots__ = ("client", "login", "done", "header", "transport", "relaying", "closed",
                 "reading")

    def __init__(self, client, login_machine, done: asyncio.Future, header: bytes | None):
        self.client = client
        self.login = login_machine
        self.done = done
        self.header = header
        self.transport = None
        self.relaying = False
        self.closed = False
        self.reading = True

    def connection_made(self, transport):
        self.transport = transport
        self.client.rt.backends += 1
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        if self.header is not None:
            # one PROXY protocol v1 header, before anything is read from the backend
            transport.write(self.header)

    def data_received(self, data):
        if self.relaying:
            self.client.transport.write(data)
            return
        if self.done.done():
            return
        result, out = self.login.feed(data)
        if result == AGAIN:
            return
        if result == SEND:
            self.transport.write(out)
            return
        # logged in, refused or too long: the driver takes it from here
        self.transport.pause_reading()
        self.reading = False
        self.done.set_result((result, out))

    def start_relay(self):
        self.relaying = True
        self.client.transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        if not self.reading:
            self.reading = True
            self.transport.resume_reading()

    def pause_reading(self):
        if self.reading and not self.closed:
            self.reading = False
            self.transport.pause_reading()

    def resume_reading(self):
        if not self.reading and not self.closed:
            self.reading = True
            self.transport.resume_reading()

    def pause_writing(self):
        self.client.pause_reading_for_backend()

    def resume_writing(self):
        self.client.resume_reading_for_backend()

    def eof_received(self):
        if self.relaying:
            self.client.end_relay()
        elif not self.done.done():
            self.done.set_result((REFUSED_EOF, b""))
        return False

    def connection_lost(self, exc):
        self.closed = True
        self.client.rt.backends -= 1
        if self.relaying:
            self.client.end_relay()
        elif not self.done.done():
            self.done.set_result((REFUSED_EOF, b""))

    def close(self):
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


REFUSED_EOF = -1      # the backend closed (or failed) before finishing the login
