"""The worker's deadlines (timers.py) on a real uvloop loop: order, cancelling, what a
callback may do, a failing callback, and the heap's size under cancel-heavy use."""

import asyncio

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from angie_mail.proxy.timers import Timers


@pytest.fixture
def loop():
    lp = uvloop.new_event_loop()
    yield lp
    lp.close()


def run_for(loop, seconds):
    loop.run_until_complete(asyncio.sleep(seconds))


def test_deadlines_fire_in_order_and_cancelled_ones_never(loop):
    t = Timers(loop)
    fired = []
    start = loop.time()

    def note(d):
        fired.append((d, loop.time() - start))

    for d in (0.05, 0.01, 0.03, 0.02, 0.04):
        t.call_later(d, note, d)
    t.call_later(0.015, note, "cancelled").cancel()
    late = t.call_later(0.025, note, "cancelled later")
    t.call_later(0.012, late.cancel)          # in its own pass, or earlier in a late one
    run_for(loop, 0.08)
    assert [d for d, _ in fired] == [0.01, 0.02, 0.03, 0.04, 0.05]
    for d, at in fired:                       # none before its time (1 ms resolution)
        assert at >= d - 0.001, (d, at)
    assert len(t) == 0 and t.heap == [] and t.dead == 0
    assert t.handle is None                   # nothing left armed


def test_not_before_the_delay(loop):
    t = Timers(loop)
    at = []
    start = loop.time()
    h = t.call_later(0.05, lambda: at.append(loop.time()))
    assert h.when() == pytest.approx(start + 0.05)
    run_for(loop, 0.1)
    assert at and at[0] - start >= 0.049


def test_an_earlier_deadline_rearms_the_loop_timer(loop):
    t = Timers(loop)
    fired = []
    t.call_later(10, fired.append, "late")
    t.call_later(0.01, fired.append, "early")
    run_for(loop, 0.05)
    assert fired == ["early"]
    assert t.armed_at > loop.time() + 9       # armed again for the late one


def test_callbacks_may_add_and_cancel_deadlines(loop):
    t = Timers(loop)
    fired = []
    other = t.call_later(0.02, fired.append, "other")

    def first():
        fired.append("first")
        other.cancel()                        # due in the same pass or later
        t.call_later(0, fired.append, "added")  # waits for the next pass

    t.call_later(0.01, first)
    t.call_later(0.01, fired.append, "second")
    run_for(loop, 0.05)
    assert fired == ["first", "second", "added"]
    assert len(t) == 0 and t.dead == 0


def test_cancel_during_the_pass_of_a_due_timer(loop):
    t = Timers(loop)
    fired = []
    holder = {}
    t.call_later(0.01, lambda: holder["b"].cancel())
    holder["b"] = t.call_later(0.01, fired.append, "b")
    run_for(loop, 0.05)
    assert fired == [] and t.dead == 0 and t.heap == []


def test_a_failing_callback_is_reported_and_the_others_run(loop):
    t = Timers(loop)
    errors, fired = [], []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx["exception"]))

    def boom():
        raise RuntimeError("bug")

    t.call_later(0.01, boom)
    t.call_later(0.01, fired.append, "after")
    t.call_later(0.03, fired.append, "later")
    run_for(loop, 0.06)
    assert [type(e) for e in errors] == [RuntimeError]
    assert fired == ["after", "later"]


def test_cancelled_entries_do_not_pile_up(loop):
    """Sessions cancel nearly every deadline they set: the heap stays near twice the
    live deadlines however many were cancelled."""
    t = Timers(loop)
    live = [t.call_later(3600, lambda: None) for _ in range(100)]
    for _ in range(50_000):
        t.call_later(60, lambda: None).cancel()
    assert len(t) == 100
    assert len(t.heap) <= 2 * 100 + 1100
    for h in live:
        h.cancel()
    assert len(t) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.booleans()), min_size=1, max_size=25))
def test_what_fires_is_what_was_not_cancelled_in_deadline_order(plan):
    lp = uvloop.new_event_loop()
    try:
        t = Timers(lp)
        fired, kept = [], []
        for i, (ms, cancel) in enumerate(plan):
            h = t.call_later(ms / 1000.0, fired.append, (ms, i))
            if cancel:
                h.cancel()
            else:
                kept.append((h.when(), i, ms))
        lp.run_until_complete(asyncio.sleep(0.06))
        # the loop's clock may move on while the plan is being set up (a slow machine):
        # the order is that of the deadlines each call made, ties in the order made
        want = [(ms, i) for _, i, ms in sorted(kept)]
        assert fired == want
        assert len(t) == 0 and t.heap == [] and t.dead == 0
    finally:
        lp.close()
