"""The SMTP backend dialogue (smtp.md §12), exact bytes, and XCLIENT's xtext."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from angie_mail.mail.protocol import AGAIN, ERROR, LOGGED_IN, REFUSED, SEND, TOO_LONG
from angie_mail.smtp.backend import SmtpBackendLogin, SmtpFacts
from angie_mail.smtp.xtext import xtext

GREETING = b"220 fake esmtp server ready\r\n"


def facts(**kw):
    base = dict(server_name=b"N", xclient=True, smtp_auth=False, esmtp=False, helo=b"",
                none=False, addr=b"127.0.0.1", ipv6=False, host=b"[UNAVAILABLE]",
                mail_from=b"", rcpt_to=b"")
    base.update(kw)
    return SmtpFacts(**base)


def dialogue(f, replies, login=b"test@example.com", passwd=b"secret"):
    m = SmtpBackendLogin(f, login, passwd, 4096)
    return m, [m.feed(r) for r in replies]


def sent(out):
    return [d for code, d in out if code == SEND]


def test_xclient_off_auth():
    m, out = dialogue(facts(xclient=False), [GREETING, b"250 hello ok\r\n"])
    assert out == [(SEND, b"HELO N\r\n"), (LOGGED_IN, b"235 2.0.0 OK\r\n")]
    m, out = dialogue(facts(xclient=False, esmtp=True), [GREETING])
    assert out == [(SEND, b"EHLO N\r\n")]


def test_xclient_ehlo_auth():
    m, out = dialogue(facts(esmtp=True, helo=b"x"),
                      [GREETING, b"250 hello ok\r\n", b"220 xclient ok\r\n", b"250 ok\r\n"])
    assert sent(out) == [b"EHLO N\r\n",
                         b"XCLIENT ADDR=127.0.0.1 LOGIN=test@example.com NAME=[UNAVAILABLE]\r\n",
                         b"EHLO x\r\n"]
    assert out[-1] == (LOGGED_IN, b"235 2.0.0 OK\r\n")


def test_xclient_none_flow():
    f = facts(helo=b"x", none=True, mail_from=b"MAIL FROM:<a@b> SIZE=10",
              rcpt_to=b"rcpt  TO:<c@d>")
    m, out = dialogue(f, [GREETING, b"250 ok\r\n", b"250 ok\r\n", b"250 ok\r\n",
                          b"250 mail from ok\r\n", b"500 rcpt to error\r\n"], login=b"")
    assert sent(out) == [b"EHLO N\r\n", b"XCLIENT ADDR=127.0.0.1 NAME=[UNAVAILABLE]\r\n",
                         b"HELO x\r\n", b"MAIL FROM:<a@b> SIZE=10\r\n", b"rcpt  TO:<c@d>\r\n"]
    assert out[-1] == (LOGGED_IN, b"500 rcpt to error\r\n")     # any RCPT reply is relayed


def test_proxy_smtp_auth():
    m, out = dialogue(facts(smtp_auth=True, esmtp=True, helo=b"x"),
                      [GREETING, b"250 ok\r\n", b"220 ok\r\n", b"250 ok\r\n",
                       b"235 auth ok\r\n"])
    assert sent(out) == [b"EHLO N\r\n", b"XCLIENT ADDR=127.0.0.1 NAME=[UNAVAILABLE]\r\n",
                         b"EHLO x\r\n", b"AUTH PLAIN AHRlc3RAZXhhbXBsZS5jb20Ac2VjcmV0\r\n"]
    assert out[-1] == (LOGGED_IN, b"235 2.0.0 OK\r\n")


def test_no_password_available():
    m = SmtpBackendLogin(facts(xclient=False, smtp_auth=True), b"u", None, 4096)
    m.feed(GREETING)
    assert m.feed(b"250 ok\r\n") == (ERROR, b"no password available")
    assert m.action == "sending AUTH to upstream"


def test_ipv6_address_and_xtext_login():
    m, out = dialogue(facts(addr=b"::1", ipv6=True), [GREETING, b"250 ok\r\n"],
                      login=b"other user+x=y\n")
    assert out[1] == (SEND, b"XCLIENT ADDR=IPV6:::1 LOGIN=other+20user+2Bx+3Dy+0A "
                            b"NAME=[UNAVAILABLE]\r\n")


@pytest.mark.parametrize("replies,text", [
    ([b"554 go away\r\n"], b"554 go away"),
    ([GREETING, b"550 no\r\n"], b"550 no"),
    ([GREETING, b"250 ok\r\n", b"550 xclient denied\r\n"], b"550 xclient denied"),
])
def test_wrong_codes_refuse(replies, text):
    m, out = dialogue(facts(), replies)
    assert out[-1] == (REFUSED, replies[-1])
    assert m.text == text


def test_multi_line_replies_wait_for_the_last_line():
    m = SmtpBackendLogin(facts(esmtp=True), b"u", b"p", 4096)
    assert m.feed(b"220-first\r\n") == (AGAIN, b"")
    assert m.feed(b"220 ready\r\n") == (SEND, b"EHLO N\r\n")
    assert m.feed(b"250-N\r\n250-SIZE 10\r\n") == (AGAIN, b"")
    assert m.feed(b"250 AUTH PLAIN\r\n")[0] == SEND


def test_too_long():
    m = SmtpBackendLogin(facts(), b"u", b"p", 64)
    assert m.feed(b"220 " + b"x" * 100) == (TOO_LONG, (b"220 " + b"x" * 100)[:64])


def test_xtext():
    assert xtext(b"plain@example.com") == b"plain@example.com"
    assert xtext(b"a b+c=d\x7f\xff\x00") == b"a+20b+2Bc+3Dd+7F+FF+00"


@given(st.binary(max_size=40))
def test_xtext_never_leaves_a_space_or_line_break(login):
    out = xtext(login)
    assert all(0x21 <= b <= 0x7E for b in out)
