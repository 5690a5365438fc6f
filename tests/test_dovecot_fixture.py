"""Prove tests/fixtures/dovecot.py against a real Dovecot using only the stdlib."""

import imaplib
import os
import poplib
import re
import socket
import time

import pytest

from fixtures.dovecot import (DEFAULT_PASSWORD, DEFAULT_USER, Dovecot, DovecotError,
                              dovecot, dovecot_dir, free_port)  # noqa: F401  (dovecot is a fixture)

TIMEOUT = 10


def make_msg(subject: str, body_lines: list[bytes]) -> bytes:
    head = (f"From: sender@example.org\r\nTo: {DEFAULT_USER}@example.org\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject}@test>\r\n").encode()
    return head + b"\r\n" + b"".join(line + b"\r\n" for line in body_lines)


SIMPLE = make_msg("simple", [b"hello", b"world"])
DOTS = make_msg("dots", [
    b".starts with a dot",
    b"..two dots",
    b".",  # a lone dot would end the response if not stuffed
    b"middle",
    b"...",
    b". space",
    b"last line",
])


def big_msg() -> bytes:
    lines = []
    i = 0
    size = 0
    while size < 1024 * 1024:
        if i % 97 == 0:
            line = b"." + b"dotted line %d" % i
        else:
            line = (b"line %07d " % i) + bytes(65 + (i * 7 + j) % 26 for j in range(60))
        lines.append(line)
        size += len(line) + 2
        i += 1
    return make_msg("big", lines)


BIG = big_msg()


def pop_login(dc, user=DEFAULT_USER, password=DEFAULT_PASSWORD) -> poplib.POP3:
    p = poplib.POP3(dc.host, dc.pop3_port, timeout=TIMEOUT)
    p.user(user)
    p.pass_(password)
    return p


def retr_bytes(p: poplib.POP3, which: int) -> bytes:
    resp, lines, _octets = p.retr(which)
    assert resp.startswith(b"+OK")
    return b"".join(line + b"\r\n" for line in lines)


def test_big_message_is_about_1mb():
    assert 1024 * 1024 <= len(BIG) < 1024 * 1024 + 200
    assert max(len(x) for x in BIG.split(b"\r\n")) < 2048  # poplib._MAXLINE


def test_pop3_stat_list_uidl_top_retr(dovecot):
    msgs = [SIMPLE, DOTS, BIG]
    for m in msgs:
        dovecot.deliver(DEFAULT_USER, m)

    p = pop_login(dovecot)
    try:
        assert p.getwelcome().startswith(b"+OK")
        assert p.stat() == (3, sum(len(m) for m in msgs))

        resp, listing, _ = p.list()
        assert resp.startswith(b"+OK")
        assert listing == [b"%d %d" % (i, len(m)) for i, m in enumerate(msgs, 1)]
        assert p.list(2).split() == [b"+OK", b"2", str(len(DOTS)).encode()]

        resp, uidls, _ = p.uidl()
        uids = [line.split() for line in uidls]
        assert [n for n, _ in uids] == [b"1", b"2", b"3"]
        # pop3_uidl_format = %08Xu%08Xv -- NB: dovecot's %X is *lowercase* hex
        for i, (_, uidl) in enumerate(uids, 1):
            assert re.fullmatch(rb"[0-9a-f]{16}", uidl), uidl
            assert int(uidl[:8], 16) == i
        assert len({u[8:] for _, u in uids}) == 1  # same UIDVALIDITY
        assert p.uidl(3).split()[1:] == [b"3", uids[2][1]]

        # TOP: headers, blank line, first n body lines (dot-unstuffed)
        head, body = DOTS.split(b"\r\n\r\n", 1)
        resp, lines, _ = p.top(2, 3)
        assert resp.startswith(b"+OK")
        assert b"".join(x + b"\r\n" for x in lines) == \
            head + b"\r\n\r\n" + b"".join(x + b"\r\n" for x in body.split(b"\r\n")[:3])
        resp, lines, _ = p.top(3, 0)
        assert b"".join(x + b"\r\n" for x in lines) == BIG.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"

        for i, m in enumerate(msgs, 1):
            assert retr_bytes(p, i) == m, f"message {i} differs"
    finally:
        p.quit()


def test_dele_quit_persists(dovecot):
    gone = dovecot.deliver(DEFAULT_USER, SIMPLE).name
    dovecot.deliver(DEFAULT_USER, DOTS)

    p = pop_login(dovecot)
    assert p.stat()[0] == 2
    assert p.dele(1).startswith(b"+OK")
    assert p.stat()[0] == 1  # deleted messages are hidden in-session
    assert p.quit().startswith(b"+OK")

    p = pop_login(dovecot)
    try:
        assert p.stat() == (1, len(DOTS))
        assert retr_bytes(p, 1) == DOTS
        assert int(p.uidl(1).split()[2][:8], 16) == 2  # the surviving one
    finally:
        p.quit()
    md = dovecot.maildir(DEFAULT_USER)
    files = os.listdir(md / "new") + os.listdir(md / "cur")
    assert len(files) == 1 and not files[0].startswith(gone)


def test_rset_and_no_quit_do_not_delete(dovecot):
    dovecot.deliver(DEFAULT_USER, SIMPLE)
    p = pop_login(dovecot)
    p.dele(1)
    p.rset()
    p.quit()
    p = pop_login(dovecot)
    p.dele(1)
    p.close()  # connection dropped without QUIT: no UPDATE state
    p = pop_login(dovecot)
    try:
        assert p.stat() == (1, len(SIMPLE))
    finally:
        p.quit()


def test_wrong_password_and_unknown_user_rejected(dovecot):
    for user, pw in [(DEFAULT_USER, "wrong"), ("nosuchuser", "x")]:
        p = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=TIMEOUT)
        try:
            p.user(user)
            with pytest.raises(poplib.error_proto) as ei:
                p.pass_(pw)
            assert ei.value.args[0].startswith(b"-ERR")
        finally:
            p.close()
    assert "auth failed" in dovecot.log() or "password mismatch" in dovecot.log()


def test_imap_login_select(dovecot):
    dovecot.deliver(DEFAULT_USER, SIMPLE)
    dovecot.deliver(DEFAULT_USER, DOTS)
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT)
    try:
        typ, _ = imap.login(DEFAULT_USER, DEFAULT_PASSWORD)
        assert typ == "OK"
        typ, data = imap.select("INBOX")
        assert (typ, data) == ("OK", [b"2"])
        typ, data = imap.fetch("2", "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == DOTS
        imap.close()
    finally:
        imap.logout()
    with pytest.raises(imaplib.IMAP4.error):
        bad = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT)
        try:
            bad.login(DEFAULT_USER, "wrong")
        finally:
            bad.shutdown()


def test_deliver_while_running_and_add_user_while_running(dovecot):
    p = pop_login(dovecot)
    assert p.stat() == (0, 0)
    p.quit()

    dovecot.deliver(DEFAULT_USER, SIMPLE)
    dovecot.add_user("bob", "pw with spaces")
    dovecot.deliver("bob", DOTS)

    p = pop_login(dovecot)
    assert p.stat() == (1, len(SIMPLE))
    p.quit()
    p = pop_login(dovecot, "bob", "pw with spaces")
    try:
        assert retr_bytes(p, 1) == DOTS
    finally:
        p.quit()


def test_context_manager_fixed_ports_and_clean_stop():
    with dovecot_dir() as d:
        dc = Dovecot(d)
        dc.add_user("carol", "pw")
        dc.deliver("carol", SIMPLE)  # before start
        assert dc.maildir("carol") == d / "mail" / "carol" / "Maildir"
        assert len(os.listdir(dc.maildir("carol") / "new")) == 1

        t0 = time.monotonic()
        with dc:
            t1 = time.monotonic()
            pid = dc.pid
            p = pop_login(dc, "carol", "pw")
            assert p.stat() == (1, len(SIMPLE))
            p.quit()
            t2 = time.monotonic()
        t3 = time.monotonic()
        start, stop = t1 - t0, t3 - t2
        print(f"dovecot start {start:.3f}s stop {stop:.3f}s")
        assert start + stop < 5, (start, stop)  # typically ~0.05 s
        assert not dc.running
        # master and all its children are gone (zombies reparented to PID 1
        # may linger until init reaps them, so do not use killpg(pid, 0))
        assert Dovecot._group_members(pid) == []
        assert "starting up for pop3, imap" in dc.log()

        # restart on the same directory: users and mail are still there
        with Dovecot(d) as dc2:
            p = pop_login(dc2, "carol", "pw")
            assert retr_bytes(p, 1) == SIMPLE
            p.quit()


def test_start_failure_reports_log():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with dovecot_dir() as d:
            # both ports fixed: no retry with other ports
            dc = Dovecot(d, pop3_port=port, imap_port=free_port(), start=False, start_timeout=5)
            with pytest.raises(DovecotError) as ei:
                dc.start()
            dc.close()
    assert "Address already in use" in str(ei.value)
    assert "dovecot log" in str(ei.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="only relevant when running as root")
def test_root_rejects_untraversable_dir(tmp_path):
    # pytest's tmp_path lives under /tmp/pytest-of-root (mode 0700):
    # dovecot's unprivileged processes could not reach it.
    with pytest.raises(DovecotError, match="dovecot_dir"):
        Dovecot(tmp_path / "dc", start=False)
