"""Logging in to the IMAP backend (imap.md §12), exact bytes, any split of the replies."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from angie_mail.imap.backend import ImapBackendLogin
from angie_mail.mail.protocol import AGAIN, LOGGED_IN, REFUSED, SEND, TOO_LONG

GREETING = b"* OK fake imap server ready\r\n"


def run(replies, tag=b"a01 ", login=b"test@example.com", passwd=b"secret", limit=4096):
    m = ImapBackendLogin(tag, login, passwd, limit)
    out = []
    for r in replies:
        out.append(m.feed(r))
    return m, out


def test_the_whole_login():
    m, out = run([GREETING, b"+ \r\n", b"+ go ahead\r\n",
                  b"* CAPABILITY IMAP4rev1\r\na01 OK login ok\r\n"])
    assert out == [(SEND, b"a01 LOGIN {16}\r\n"), (SEND, b"test@example.com {6}\r\n"),
                   (SEND, b"secret\r\n"),
                   (LOGGED_IN, b"* CAPABILITY IMAP4rev1\r\na01 OK login ok\r\n")]


def test_empty_login_and_tag():
    m, out = run([GREETING], tag=b" ", login=b"", passwd=b"")
    assert out == [(SEND, b" LOGIN {0}\r\n")]


@pytest.mark.parametrize("greeting,ok", [(b"* OKAY\r\n", True), (b"* PREAUTH x\r\n", False),
                                         (b"* BYE go away\r\n", False),
                                         (b"* ok lower\r\n", False)])
def test_greeting_must_begin_with_star_ok(greeting, ok):
    m, out = run([greeting])
    if ok:
        assert out[0][0] == SEND
    else:
        assert out == [(REFUSED, greeting)]
        assert m.text == greeting[:-2]


def test_bare_plus_stalls():
    m, out = run([GREETING, b"+\r\n"])
    assert out[1] == (AGAIN, b"")


@pytest.mark.parametrize("reply,text", [
    (b"a01 NO [AUTHENTICATIONFAILED] backend says no\r\n",
     b"NO [AUTHENTICATIONFAILED] backend says no"),
    (b"a01 ok lower\r\n", b"ok lower"),
    (b"A01 OK wrong case\r\n", b"A01 OK wrong case"),
    (b"* CAPABILITY IMAP4\r\n* OK extra\r\na01 OK login ok\r\n",
     b"* OK extra\r\na01 OK login ok"),
])
def test_tagged_reply_refusals(reply, text):
    m, out = run([GREETING, b"+ \r\n", b"+ \r\n", reply])
    assert out[-1] == (REFUSED, reply)
    assert m.text == text


def test_okay_counts():
    m, out = run([GREETING, b"+ \r\n", b"+ \r\n", b"a01 OKAY\r\n"])
    assert out[-1] == (LOGGED_IN, b"a01 OKAY\r\n")


def test_untagged_line_then_wait_for_more():
    m, out = run([GREETING, b"+ \r\n", b"+ \r\n", b"* CAPABILITY X\r\n", b"a01 OK\r\n"])
    assert out[-2] == (AGAIN, b"")
    assert out[-1] == (LOGGED_IN, b"* CAPABILITY X\r\na01 OK\r\n")


def test_too_long():
    m, out = run([b"* OK " + b"x" * 100], limit=64)
    assert out == [(TOO_LONG, (b"* OK " + b"x" * 100)[:64])]


def test_bytes_after_the_tagged_reply_are_kept_for_the_client():
    m, out = run([GREETING, b"+ \r\n", b"+ \r\n", b"a01 OK\r\n"])
    assert m.pending() == b""


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=20),
       st.binary(min_size=0, max_size=30), st.binary(min_size=0, max_size=30))
def test_any_split_gives_the_same_outcome(cuts, login, passwd):
    stream = [GREETING, b"+ \r\n", b"+ \r\n", b"* CAPABILITY IMAP4rev1\r\na01 OK login ok\r\n"]
    m = ImapBackendLogin(b"a01 ", login, passwd, 4096)
    sent = []
    for reply in stream:
        pieces, rest = [], reply
        for c in cuts:
            if not rest:
                break
            pieces.append(rest[:c])
            rest = rest[c:]
        if rest:
            pieces.append(rest)
        results = [m.feed(p) for p in pieces]
        assert all(r == (AGAIN, b"") for r in results[:-1])
        sent.append(results[-1])
    assert sent == [(SEND, b"a01 LOGIN {%d}\r\n" % len(login)),
                    (SEND, login + b" {%d}\r\n" % len(passwd)), (SEND, passwd + b"\r\n"),
                    (LOGGED_IN, stream[-1])]
