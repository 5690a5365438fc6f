"""The shared session cache's store (proxy/sslcache.py) on a plain buffer: what goes in
comes out byte for byte until newer sessions overwrite it, expired or removed sessions
are not returned, and no lookup ever returns another session's bytes."""

from __future__ import annotations

import os

from hypothesis import given, settings, strategies as st

from angie_mail.proxy.sslcache import MAX_SESSION, SessionStore, load_ticket_key


def store(size=32 * 1024):
    return SessionStore(bytearray(size), init=True)


def test_put_get_remove():
    s = store()
    assert s.put(b"a" * 32, b"der-a", 100)
    assert s.get(b"a" * 32, 50) == b"der-a"
    assert s.get(b"a" * 32, 100) == b"der-a"         # OpenSSL: expired after, not at
    assert s.get(b"a" * 32, 101) is None            # expired
    assert s.get(b"b" * 32, 50) is None
    s.remove(b"a" * 32)
    assert s.get(b"a" * 32, 50) is None


def test_limits_as_nginx():
    s = store()
    assert not s.put(b"x" * 32, b"d" * (MAX_SESSION + 1), 100)    # too big: not cached
    assert not s.put(b"", b"d", 100)
    assert not s.put(b"x" * 33, b"d", 100)
    assert s.get(b"x" * 33, 0) is None


def test_the_ring_overwrites_the_oldest():
    s = store()
    ids = [os.urandom(32) for _ in range(400)]
    for i, sid in enumerate(ids):
        assert s.put(sid, sid * 8, 1000)           # 256 bytes each: ~110 fit
    assert s.get(ids[-1], 0) == ids[-1] * 8
    assert s.get(ids[0], 0) is None
    live = sum(s.get(sid, 0) is not None for sid in ids)
    assert 50 < live < 130


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=32),
                          st.binary(min_size=0, max_size=3000)), max_size=60))
def test_never_another_sessions_bytes(items):
    s = store()
    last = {}
    for sid, der in items:
        s.put(sid, der, 10)
        last[sid] = der
    for sid, der in last.items():
        got = s.get(sid, 0)
        assert got is None or got == der


def test_ticket_key_layout_as_nginx(tmp_path):
    k48 = tmp_path / "48"
    k48.write_bytes(bytes(range(48)))
    k = load_ticket_key(str(k48))
    assert (k.name, k.aes, k.hmac, k.size) == (bytes(range(16)), bytes(range(16, 32)),
                                               bytes(range(32, 48)), 48)
    k80 = tmp_path / "80"
    k80.write_bytes(bytes(range(80)))
    k = load_ticket_key(str(k80))
    assert (k.name, k.hmac, k.aes, k.size) == (bytes(range(16)), bytes(range(16, 48)),
                                               bytes(range(48, 80)), 80)
