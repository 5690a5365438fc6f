"""The brute-force defence's shared table and decisions (angie_mail.proxy.guard),
without I/O: counting windows, delays, refusals, trust, eviction, the memory cap."""

from __future__ import annotations

import mmap
import os

from hypothesis import given, settings, strategies as st

from angie_mail.conf.model import AuthThrottle
from angie_mail.proxy import guard
from angie_mail.proxy.guard import DELAY, PASS, REFUSE

P = AuthThrottle(zone="z", addr=(20, 600), login=(10, 600), pair=(5, 600), delay=1.0,
                 max_delay=8.0, trust=86400, trust_certificate=True, log_level="warn",
                 mask_login=True)


def table(size=64 * 1024):
    return guard.Table(bytearray(size), init=True)


def fail(t, p, addr, login, now):
    """An attempt checked, then refused by the auth server."""
    return guard.failed(t, p, guard.check(t, p, addr, login, b"", now)[1], now)


def verdict(t, p, addr, login, cert, now):
    """(decision, delay, scope, counts, trusted) of an attempt."""
    v = guard.check(t, p, addr, login, cert, now)[0]
    return guard.Verdict(PASS, 0.0, "", (), "") if v is None else v


def fail_n(t, p, addr, login, n, now):
    for _ in range(n):
        fail(t, p, addr, login, now)


def test_first_attempt_passes_and_failures_delay_progressively():
    t = table()
    assert verdict(t, P, b"198.51.100.1", b"alice", b"", 1000).decision == PASS
    delays = []
    for n in range(1, 5):
        fail(t, P, b"198.51.100.1", b"alice", 1000)
        v = verdict(t, P, b"198.51.100.1", b"alice", b"", 1000)
        delays.append((v.decision, v.delay, v.counts))
    assert delays == [(DELAY, 1.0, (1, 1, 1)), (DELAY, 2.0, (2, 2, 2)),
                      (DELAY, 4.0, (3, 3, 3)), (DELAY, 8.0, (4, 4, 4))]
    fail(t, P, b"198.51.100.1", b"alice", 1000)
    v = verdict(t, P, b"198.51.100.1", b"alice", b"", 1000)
    assert (v.decision, v.scope) == (REFUSE, "pair")


def test_the_delay_is_capped_and_counts_end_with_their_window():
    p = P._replace(pair=None, login=None, addr=(100, 60))
    t = table()
    fail_n(t, p, b"a", b"x", 30, 1000)
    v = verdict(t, p, b"a", b"x", b"", 1000)
    assert (v.decision, v.delay) == (DELAY, 8.0)
    assert verdict(t, p, b"a", b"x", b"", 1059).decision == DELAY
    assert verdict(t, p, b"a", b"x", b"", 1060).decision == PASS
    # a failure after the window starts a new one
    fail(t, p, b"a", b"x", 1061)
    assert verdict(t, p, b"a", b"x", b"", 1061).counts[0] == 1


def test_an_address_spraying_logins_is_refused_by_its_address_count():
    t = table()
    for i in range(20):
        fail(t, P, b"203.0.113.9", b"user%d" % i, 1000)
    v = verdict(t, P, b"203.0.113.9", b"newuser", b"", 1000)
    assert (v.decision, v.scope) == (REFUSE, "addr")
    # the same logins from elsewhere are untouched
    assert verdict(t, P, b"192.0.2.1", b"user3", b"", 1000).decision == DELAY  # login 1


def test_owner_with_a_recent_success_is_exempt_from_address_and_login_counts():
    t = table()
    guard.succeeded(t, P, b"192.0.2.50", b"alice", b"", 900)      # the owner, at the NAT
    for i in range(50):                  # the attacker at the same NAT address, and elsewhere
        fail(t, P, b"192.0.2.50", b"bob%d" % i, 1000)
        fail(t, P, b"203.0.113.%d" % i, b"alice", 1000)
    assert verdict(t, P, b"192.0.2.50", b"alice", b"", 1000).decision == PASS
    # one failure of its own: delayed, and its address and login counts not looked at
    fail(t, P, b"192.0.2.50", b"alice", 1000)
    v = verdict(t, P, b"192.0.2.50", b"alice", b"", 1000)
    assert (v.decision, v.counts, v.trusted) == (DELAY, (None, None, 1), "pair")
    # an untrusted client: refused by the login count
    v = verdict(t, P, b"198.51.100.7", b"alice", b"", 1000)
    assert (v.decision, v.scope, v.trusted) == (REFUSE, "login", "")
    # trust ends with its time (here 60 s after the success)
    short = P._replace(trust=60)
    assert verdict(t, short, b"192.0.2.50", b"alice", b"", 1000).decision == REFUSE


def test_the_pair_count_applies_to_the_trusted_pair_too():
    t = table()
    guard.succeeded(t, P, b"192.0.2.50", b"alice", b"", 900)
    fail_n(t, P, b"192.0.2.50", b"alice", 5, 1000)
    v = verdict(t, P, b"192.0.2.50", b"alice", b"", 1000)
    assert (v.decision, v.scope) == (REFUSE, "pair")
    # a success forgets the pair's failures
    guard.succeeded(t, P, b"192.0.2.50", b"alice", b"", 1001)
    assert verdict(t, P, b"192.0.2.50", b"alice", b"", 1001).decision == PASS


def test_a_certificate_seen_at_a_success_is_trusted_from_a_new_address():
    t = table()
    guard.succeeded(t, P, b"192.0.2.50", b"alice", b"ab12", 900)
    fail_n(t, P, b"203.0.113.1", b"alice", 10, 1000)             # login count full
    assert verdict(t, P, b"198.51.100.3", b"alice", b"ab12", 1000).decision == PASS
    assert verdict(t, P, b"198.51.100.3", b"alice", b"ff00", 1000).decision == REFUSE
    off = P._replace(trust_certificate=False)
    assert verdict(t, off, b"198.51.100.3", b"alice", b"ab12", 1000).decision == REFUSE


def test_logins_count_case_insensitively():
    t = table()
    fail_n(t, P, b"a", b"Alice", 3, 1000)
    assert verdict(t, P, b"b", b"ALICE", b"", 1000).counts[1] == 3


def test_clear_forgets_one_key_or_all():
    t = table()
    fail_n(t, P, b"a", b"x", 5, 1000)
    fail_n(t, P, b"b", b"y", 5, 1000)
    assert t.clear(guard.KIND_ADDR, b"a") == 1
    assert t.count(guard.KIND_ADDR, b"a", 600, 1000) == 0
    assert t.count(guard.KIND_ADDR, b"b", 600, 1000) == 5
    assert t.clear() == 5                  # addr b, login x and y, pairs a x and b y
    assert t.used() == 0


def test_connections_are_counted_and_released():
    t = table()
    assert [t.add_conn(b"alice", 2, 1000, False) for _ in range(3)] == [0, 1, 2]
    assert t.get(guard.KIND_CONN, b"alice")[3] == 2        # the refused one took none
    t.release_conn(b"alice", 1001)
    assert t.add_conn(b"alice", 2, 1002, False) == 1
    assert t.add_conn(b"alice", 2, 1002, True) == 2        # dry run: counted anyway
    assert t.get(guard.KIND_CONN, b"alice")[3] == 3


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=60), min_size=1, max_size=3000),
       st.integers(min_value=guard.HEADER + guard.SLOT * guard.WAYS, max_value=40000))
def test_the_table_never_outgrows_its_zone(keys, size):
    """A flood of distinct addresses: the table's memory is the zone's size, whatever
    comes; the newest keys are kept, and live connections are never evicted."""
    buf = bytearray(size)
    t = guard.Table(buf, init=True)
    capacity = t.buckets * guard.WAYS
    assert guard.HEADER + capacity * guard.SLOT <= size
    live = keys[0]
    t.add_conn(live, 10, 1, False)
    for i, k in enumerate(keys):
        fail(t, P, k, b"", 2 + i)
        assert len(buf) == size
        assert t.used() <= capacity
    assert t.get(guard.KIND_CONN, live)[3] == 1
    last = keys[-1]
    assert verdict(t, P, last, b"", b"", 2 + len(keys)).counts[0] >= 1


def test_a_zone_is_shared_memory_seen_by_a_forked_process():
    z = guard.create_zone("t", 64 * 1024)
    try:
        pid = os.fork()
        if pid == 0:                                          # the "other worker"
            try:
                fail(z.table, P, b"a", b"x", 1000)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert verdict(z.table, P, b"a", b"x", b"", 1000).counts == (1, 1, 1)
        # and the memfd is what an operator's command opens (no path on disk)
        assert os.readlink(f"/proc/self/fd/{z.fd}").startswith(
            "/memfd:" + guard.MEMFD_PREFIX + "t")
    finally:
        z.table.buf.close()
        os.close(z.fd)


def test_a_zone_table_rejects_a_foreign_buffer():
    import pytest
    with pytest.raises(ValueError):
        guard.Table(mmap.mmap(-1, 4096))


def test_a_failure_counted_after_its_slot_was_evicted_goes_to_a_new_slot():
    """check() remembers where the keys were; when a flood moved them out before the
    auth server answered, the failure is not written into another key's slot."""
    size = guard.HEADER + guard.SLOT * guard.WAYS            # one bucket of 8
    t = guard.Table(bytearray(size), init=True)
    p = P._replace(login=None, pair=None)
    fail(t, p, b"victim", b"", 1)
    attempt = guard.check(t, p, b"victim", b"", b"", 2)[1]
    assert attempt[2][1] >= 0
    for i in range(8):                                        # evicts "victim"
        fail(t, p, b"flood%d" % i, b"", 3 + i)
    assert t.count(guard.KIND_ADDR, b"victim", 600, 20) == 0
    assert guard.failed(t, p, attempt, 20) == (1, 0, 0)
    assert [t.count(guard.KIND_ADDR, b"flood%d" % i, 600, 20) for i in range(8)].count(1) == 7


def test_a_hash_seen_inside_another_slots_key_is_not_taken_for_its_slot():
    """Slots are found by searching the bucket for the hash's bytes: a match inside
    another field (here a key text made of those bytes) is not a slot."""
    t = guard.Table(bytearray(guard.HEADER + guard.SLOT * guard.WAYS), init=True)
    p = P._replace(login=None, pair=None)
    target = b"198.51.100.1"
    hb = t.ref(guard.KIND_ADDR, target)[1]
    fail_n(t, p, b"x" + hb, b"", 3, 1000)          # slot 0: its key text holds hb
    fail_n(t, p, target, b"", 2, 1000)             # slot 1
    assert t.count(guard.KIND_ADDR, target, 600, 1000) == 2
    assert t.count(guard.KIND_ADDR, b"x" + hb, 600, 1000) == 3
    assert verdict(t, p, target, b"", b"", 1000).counts[0] == 2
