"""The STARTTLS dialogue before the backend login (proxy_ssl starttls), sans I/O: one
shared machine (mail.upstream.StartTlsLogin) with each protocol's plan."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from angie_mail.imap.backend import STARTTLS_PLAN as IMAP_PLAN, ImapBackendLogin
from angie_mail.mail.protocol import AGAIN, LOGGED_IN, REFUSED, SECURE, SEND, TOO_LONG
from angie_mail.mail.upstream import STARTTLS_ACTION, StartTlsLogin
from angie_mail.pop3.backend import STARTTLS_PLAN as POP3_PLAN, Pop3BackendLogin
from angie_mail.smtp.backend import SmtpBackendLogin, SmtpFacts, starttls_plan


def pop3(limit=4096):
    return StartTlsLogin(Pop3BackendLogin(b"alice", b"secret", limit), POP3_PLAN, limit)


def imap(limit=4096):
    return StartTlsLogin(ImapBackendLogin(b"a1 ", b"alice", b"secret", limit), IMAP_PLAN,
                         limit)


def smtp(limit=4096):
    facts = SmtpFacts(server_name=b"proxy.example", xclient=True, smtp_auth=False,
                      esmtp=True, helo=b"client.example", none=False, addr=b"192.0.2.1",
                      ipv6=False, host=b"[UNAVAILABLE]", mail_from=b"", rcpt_to=b"")
    return StartTlsLogin(SmtpBackendLogin(facts, b"alice", b"secret", limit),
                         starttls_plan(b"proxy.example"), limit)


def test_pop3_stls_then_login():
    m = pop3()
    assert m.action == ""
    assert m.feed(b"+OK Dovecot ready.\r\n") == (SEND, b"STLS\r\n")
    assert m.action == STARTTLS_ACTION
    assert m.feed(b"+OK Begin TLS negotiation now.\r\n") == (SECURE, b"")
    # over TLS: no new greeting, the login starts from the one read before
    assert m.secured() == (SEND, b"USER alice\r\n")
    assert m.action == "sending user name to upstream"
    assert m.feed(b"+OK\r\n") == (SEND, b"PASS secret\r\n")
    assert m.feed(b"+OK Logged in.\r\n") == (LOGGED_IN, b"+OK Logged in.\r\n")


def test_pop3_greeting_refused_as_without_tls():
    m = pop3()
    assert m.feed(b"-ERR go away\r\n") == (REFUSED, b"-ERR go away\r\n")
    assert m.text == b"-ERR go away"


def test_pop3_stls_refused():
    m = pop3()
    m.feed(b"+OK hi\r\n")
    assert m.feed(b"-ERR no TLS\r\n") == (REFUSED, b"-ERR no TLS\r\n")
    assert m.text == b"-ERR no TLS"


def test_pop3_bytes_after_the_stls_reply_refused():
    m = pop3()
    m.feed(b"+OK hi\r\n")
    code, _ = m.feed(b"+OK go\r\n+OK injected\r\n")
    assert code == REFUSED
    assert m.text == b"+OK go\r\n+OK injected"


def test_reply_longer_than_proxy_buffer():
    m = pop3(limit=16)
    assert m.feed(b"+OK " + b"x" * 40) == (TOO_LONG, b"+OK " + b"x" * 12)


def test_imap_starttls_with_an_untagged_line_first():
    m = imap()
    assert m.feed(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n") == \
        (SEND, b"s STARTTLS\r\n")
    assert m.feed(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n") == (AGAIN, b"")
    assert m.feed(b"s OK Begin TLS negotiation now.\r\n") == (SECURE, b"")
    assert m.secured() == (SEND, b"a1 LOGIN {5}\r\n")
    assert m.feed(b"+ OK\r\n") == (SEND, b"alice {6}\r\n")
    assert m.feed(b"+ OK\r\n") == (SEND, b"secret\r\n")
    assert m.feed(b"a1 OK Logged in\r\n")[0] == LOGGED_IN


def test_imap_starttls_refused_and_injection():
    m = imap()
    m.feed(b"* OK ready\r\n")
    assert m.feed(b"s BAD no\r\n") == (REFUSED, b"s BAD no\r\n")
    m = imap()
    m.feed(b"* OK ready\r\n")
    assert m.feed(b"s OK go\r\n* OK injected\r\n")[0] == REFUSED


def test_smtp_ehlo_starttls_then_the_whole_dialogue_again():
    m = smtp()
    assert m.feed(b"220-mx.example ESMTP\r\n") == (AGAIN, b"")
    assert m.feed(b"220 ready\r\n") == (SEND, b"EHLO proxy.example\r\n")
    assert m.feed(b"250-mx.example\r\n250-STARTTLS\r\n") == (AGAIN, b"")
    assert m.feed(b"250 XCLIENT ADDR NAME\r\n") == (SEND, b"STARTTLS\r\n")
    assert m.feed(b"220 2.0.0 Ready to start TLS\r\n") == (SECURE, b"")
    # RFC 3207: the client forgets what it knew and starts with EHLO
    assert m.secured() == (SEND, b"EHLO proxy.example\r\n")
    assert m.feed(b"250 mx.example\r\n") == \
        (SEND, b"XCLIENT ADDR=192.0.2.1 LOGIN=alice NAME=[UNAVAILABLE]\r\n")


def test_smtp_starttls_not_offered():
    m = smtp()
    m.feed(b"220 ready\r\n")
    m.feed(b"250 mx.example\r\n")
    assert m.feed(b"454 4.7.0 TLS not available\r\n") == \
        (REFUSED, b"454 4.7.0 TLS not available\r\n")
    assert m.text == b"454 4.7.0 TLS not available"


SCRIPTS = [
    (pop3, [b"+OK hi\r\n", b"+OK go\r\n"]),
    (imap, [b"* OK hi\r\n", b"* CAPABILITY IMAP4rev1\r\ns OK go\r\n"]),
    (smtp, [b"220-a\r\n220 b\r\n", b"250-x\r\n250 y\r\n", b"220 go\r\n"]),
]


@settings(max_examples=200, deadline=None)
@given(which=st.integers(0, len(SCRIPTS) - 1), data=st.data())
def test_any_split_of_the_replies_gives_the_same_dialogue(which, data):
    make, replies = SCRIPTS[which]
    m = make()
    sent = []
    outcome = None
    for reply in replies:
        cuts = sorted(data.draw(st.lists(st.integers(1, len(reply) - 1), max_size=4,
                                         unique=True)))
        parts = [reply[i:j] for i, j in zip([0, *cuts], [*cuts, len(reply)])]
        for k, part in enumerate(parts):
            code, out = m.feed(part)
            if k < len(parts) - 1:
                assert code == AGAIN
        if code == SEND:
            sent.append(out)
        outcome = code
    assert outcome == SECURE
    want = {pop3: [b"STLS\r\n"], imap: [b"s STARTTLS\r\n"],
            smtp: [b"EHLO proxy.example\r\n", b"STARTTLS\r\n"]}[make]
    assert sent == want
