"""The client socket transport over the edge-triggered poller, against a real peer
socket: flow control both ways, pausing, the end of input, and closing; and what a
failing handler does to its session, on the client and the backend side."""

import asyncio
import select
import socket
import types

import pytest
import uvloop

from angie_mail.proxy.poller import Poller
from angie_mail.proxy.sockio import READ_CHUNK, SocketTransport


class Recorder(asyncio.Protocol):
    def __init__(self):
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.lost = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        self.data += data
        self.events.append("data")

    def eof_received(self):
        self.events.append("eof")
        return False

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost = exc

    def pause_writing(self):
        self.events.append("pause_writing")

    def resume_writing(self):
        self.events.append("resume_writing")


@pytest.fixture
def env():
    loop = uvloop.new_event_loop()
    rt = types.SimpleNamespace(loop=loop, poller=Poller(loop))
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    proto = Recorder()
    t = SocketTransport(rt, ours, ("127.0.0.1", 1), proto)
    t.start()
    yield loop, t, proto, peer
    t.abort()
    peer.close()
    loop.run_until_complete(asyncio.sleep(0))
    rt.poller.close()
    loop.close()


def spin(loop, until, timeout=5.0):
    async def wait():
        deadline = loop.time() + timeout
        while not until():
            assert loop.time() < deadline, "timed out"
            await asyncio.sleep(0.001)
    loop.run_until_complete(wait())


def drain(peer):
    out = bytearray()
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return bytes(out)
        if not chunk:
            return bytes(out)
        out += chunk


def test_data_then_end_in_one_edge(env):
    loop, t, proto, peer = env
    peer.sendall(b"USER a\r\n")
    peer.shutdown(socket.SHUT_WR)
    spin(loop, lambda: "lost" in proto.events)
    assert bytes(proto.data) == b"USER a\r\n"
    assert proto.events == ["made", "data", "eof", "lost"]


def test_more_than_one_read_chunk_arrives_whole(env):
    loop, t, proto, peer = env
    blob = bytes(range(256)) * (3 * READ_CHUNK // 256 + 7)
    peer.setblocking(True)
    peer.sendall(blob)
    spin(loop, lambda: len(proto.data) >= len(blob))
    assert bytes(proto.data) == blob


def test_paused_reading_keeps_input_for_later(env):
    loop, t, proto, peer = env
    t.pause_reading()
    peer.sendall(b"PASS x\r\n")
    peer.shutdown(socket.SHUT_WR)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert proto.events == ["made"] and not proto.data
    t.resume_reading()
    spin(loop, lambda: "lost" in proto.events)
    assert bytes(proto.data) == b"PASS x\r\n"
    assert proto.events == ["made", "data", "eof", "lost"]


def test_write_backpressure_and_close_flushes_everything(env):
    loop, t, proto, peer = env
    blob = b"".join(i.to_bytes(4, "big") for i in range(1 << 20))     # 4 MiB
    for off in range(0, len(blob), 256 * 1024):
        t.write(blob[off:off + 256 * 1024])
    assert "pause_writing" in proto.events
    assert t.get_write_buffer_size() > 0
    t.close()
    assert "lost" not in proto.events          # not before the buffer is sent
    got = bytearray()

    def more():
        got.extend(drain(peer))
        return "lost" in proto.events and len(got) >= len(blob)
    spin(loop, more)
    got.extend(drain(peer))
    assert bytes(got) == blob
    assert proto.lost is None
    assert peer.recv(10) == b""                # closed after the last byte


def test_resume_writing_below_low_mark(env):
    loop, t, proto, peer = env
    t.write(b"x" * (8 << 20))
    assert proto.events[-1] == "pause_writing"
    got = 0

    def more():
        nonlocal got
        got += len(drain(peer))
        return "resume_writing" in proto.events
    spin(loop, more)
    assert t.get_write_buffer_size() <= 16 * 1024


def test_abort_drops_output_and_reports_once_later(env):
    loop, t, proto, peer = env
    t.write(b"y" * (8 << 20))
    t.abort()
    assert "lost" not in proto.events          # never from inside the caller
    loop.run_until_complete(asyncio.sleep(0.01))
    assert proto.events.count("lost") == 1
    t.close()
    t.write(b"ignored")
    loop.run_until_complete(asyncio.sleep(0.01))
    assert proto.events.count("lost") == 1


def test_peer_reset_is_connection_lost_with_error(env):
    loop, t, proto, peer = env
    import struct
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    t.write(b"z" * (8 << 20))
    peer.close()
    spin(loop, lambda: "lost" in proto.events)
    assert proto.events.count("lost") == 1


def test_extra_info(env):
    loop, t, proto, peer = env
    assert t.get_extra_info("peername") == ("127.0.0.1", 1)
    assert t.get_extra_info("socket") is not None
    assert t.get_extra_info("ssl_object") is None
    assert t.get_extra_info("nothing", 7) == 7


def test_close_gives_up_on_a_peer_that_never_reads(env, monkeypatch):
    import angie_mail.proxy.sockio as sockio
    monkeypatch.setattr(sockio, "CLOSE_LINGER", 0.05)
    loop, t, proto, peer = env
    t.write(b"w" * (8 << 20))
    t.close()
    assert "lost" not in proto.events
    spin(loop, lambda: "lost" in proto.events)
    assert proto.events.count("lost") == 1


def test_events_of_a_socket_closed_in_the_same_batch_are_dropped():
    """A handler closes socket A and a new socket B gets A's descriptor number in the
    same batch: B must not receive A's pending event."""
    loop = uvloop.new_event_loop()
    poller = Poller(loop)
    a, a_peer = socket.socketpair()
    b_peer_holder = []
    seen = []
    try:
        def on_a(events):
            seen.append(("a", events))
        fd = a.fileno()

        def on_first(events):
            # first handler of the batch: close A, open B on the same number
            poller.unregister(fd)
            a.close()
            b, b_peer = socket.socketpair()
            b_peer_holder.extend([b, b_peer])
            if b.fileno() == fd:
                poller.register(b.fileno(), lambda ev: seen.append(("b", ev)))
        first, first_peer = socket.socketpair()
        poller.register(first.fileno(), on_first)
        poller.register(fd, on_a)
        # both have input pending before the batch is fetched
        first_peer.send(b"x")
        a_peer.send(b"y")
        loop.run_until_complete(asyncio.sleep(0.05))
        assert b_peer_holder and b_peer_holder[0].fileno() == fd, "descriptor not reused"
        assert not [ev for who, ev in seen if who == "a"]
        # B has had nothing to read: no input event may have reached it (its own
        # "writable" edge from the registration is fine)
        assert not [ev for who, ev in seen if who == "b" and ev & select.EPOLLIN]
        # B's own input is delivered
        b_peer_holder[1].send(b"z")
        loop.run_until_complete(asyncio.sleep(0.05))
        assert [ev for who, ev in seen if who == "b" and ev & select.EPOLLIN]
    finally:
        for s in [a_peer, first, first_peer] + b_peer_holder:
            s.close()
        poller.close()
        loop.close()


def test_a_failing_handler_does_not_stall_the_rest_of_the_batch():
    loop = uvloop.new_event_loop()
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx.get("exception")))
    rt = types.SimpleNamespace(loop=loop, poller=Poller(loop))
    pairs, protos = [], []

    class Boom(Recorder):
        def data_received(self, data):
            raise RuntimeError("bug")
    try:
        for i in range(20):
            ours, peer = socket.socketpair()
            proto = Boom() if i == 0 else Recorder()
            SocketTransport(rt, ours, None, proto).start()
            pairs.append(peer)
            protos.append(proto)
        for peer in pairs:
            peer.send(b"NOOP\r\n")
        spin(loop, lambda: all(p.data for p in protos[1:]) and "lost" in protos[0].events)
        assert [type(e) for e in errors] == [RuntimeError]
        assert protos[0].events == ["made", "lost"]       # its socket was closed
    finally:
        for peer in pairs:
            peer.close()
        loop.run_until_complete(asyncio.sleep(0))
        rt.poller.close()
        loop.close()


def test_a_handler_failing_after_a_pause_closes_its_socket(env):
    """The read that goes on after a pause is guarded as an event's handler is: the
    failing session is closed, not left stalled with its input unread."""
    loop, t, proto, peer = env
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx.get("exception")))

    def boom(data):
        raise RuntimeError("bug")
    t.pause_reading()
    peer.sendall(b"NOOP\r\n")
    spin(loop, lambda: t._rready)               # the input came while paused
    proto.data_received = boom
    t.resume_reading()
    spin(loop, lambda: "lost" in proto.events)
    assert [type(e) for e in errors] == [RuntimeError]


class Session:
    """What the backend side of a session calls on its client."""

    def __init__(self, rt):
        self.rt = rt
        self.server = types.SimpleNamespace(proxy_ssl=None)     # plain TCP to the backend
        self.events = []
        self.bytes_out = 0
        self.transport = types.SimpleNamespace(write=lambda d: self.events.append(d),
                                               get_write_buffer_size=lambda: 0,
                                               get_write_buffer_limits=lambda: (16384, 65536))

    def backend_connected(self):
        self.events.append("connected")

    def abort(self):
        self.events.append("abort")


def test_a_backend_handler_failing_after_a_pause_ends_the_session(monkeypatch):
    """The backend's read that goes on after a pause (its client was slow) fails: the
    session is ended at once, as when the failure comes with an event."""
    from angie_mail.proxy.relay import Backend
    loop = uvloop.new_event_loop()
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx.get("exception")))
    rt = types.SimpleNamespace(loop=loop, poller=Poller(loop), backends=0)
    session = Session(rt)
    listener = socket.create_server(("127.0.0.1", 0))
    backend = Backend(session, None, None)
    peer = None
    try:
        backend.connect(socket.AF_INET, "127.0.0.1", listener.getsockname()[1])
        peer, _ = listener.accept()
        backend.start_relay()
        peer.sendall(b"+OK 1 22\r\n")
        spin(loop, lambda: b"+OK 1 22\r\n" in session.events)     # relayed
        backend.pause_reading()
        peer.sendall(b"+OK\r\n")
        spin(loop, lambda: backend.rready)       # the input came while paused

        def boom(self):
            raise RuntimeError("bug")
        monkeypatch.setattr(Backend, "_on_relay_data", boom)
        backend.resume_reading()
        spin(loop, lambda: "abort" in session.events)
        assert backend.closed and rt.backends == 0
        assert [type(e) for e in errors] == [RuntimeError]
    finally:
        for s in (listener, peer):
            if s is not None:
                s.close()
        backend._close_now()
        loop.run_until_complete(asyncio.sleep(0))
        rt.poller.close()
        loop.close()


def test_resume_writing_when_a_partial_send_crosses_the_low_mark(env):
    loop, t, proto, peer = env
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    t.write(b"r" * (1 << 20))
    assert proto.events[-1] == "pause_writing"

    def some():
        # read a little at a time, so sends stay partial
        try:
            peer.recv(4096)
        except BlockingIOError:
            pass
        return "resume_writing" in proto.events
    spin(loop, some)


def test_close_waits_for_a_slow_reader_that_keeps_reading(env, monkeypatch):
    import angie_mail.proxy.sockio as sockio
    monkeypatch.setattr(sockio, "CLOSE_LINGER", 0.3)
    loop, t, proto, peer = env
    blob = bytes(range(256)) * 16384                # 4 MiB: read over ~1.3 s
    t.write(blob)
    t.close()
    got = bytearray()

    async def slow():
        while True:
            await asyncio.sleep(0.02)
            try:
                chunk = peer.recv(64 * 1024)
            except BlockingIOError:
                continue
            if not chunk:
                return
            got.extend(chunk)
    loop.run_until_complete(asyncio.wait_for(slow(), 20))
    assert bytes(got) == blob
