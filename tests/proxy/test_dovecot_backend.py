"""angie-mail in front of a real Dovecot POP3 server (started by the test)."""

import poplib

from fixtures.dovecot import dovecot  # noqa: F401  (pytest fixture)
from proxy.harness import AuthServer, ok_response

MESSAGES = [
    b"From: a@example.com\r\nSubject: one\r\n\r\nfirst body\r\n.leading dot\r\n..two dots\r\n",
    b"From: b@example.com\r\nSubject: two\r\n\r\n" + b"".join(
        b"line %06d " % i + b"x" * 60 + b"\r\n" for i in range(20000)),
    b"From: c@example.com\r\nSubject: three\r\n\r\n.\r\nonly a dot above\r\n",
]


def test_dovecot_through_the_proxy(dovecot, start_proxy):   # noqa: F811
    for m in MESSAGES:
        dovecot.deliver("alice", m)
    auth = AuthServer(lambda req: ok_response(dovecot.pop3_port)
                      if req["Auth-Pass"] == b"secret" else
                      b"HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n\r\n")
    try:
        p, port = start_proxy(auth_url=auth.url)
        direct = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
        direct.user("alice")
        direct.pass_("secret")
        want_list = direct.list()[1]
        want_uidl = direct.uidl()[1]
        direct.quit()

        m = poplib.POP3("127.0.0.1", port, timeout=10)
        m.user("alice")
        assert m.pass_("secret").startswith(b"+OK")
        assert m.stat() == (3, sum(len(x) for x in MESSAGES))
        assert m.list()[1] == want_list
        assert m.uidl()[1] == want_uidl
        top = m.top(1, 1)[1]
        assert top == [b"From: a@example.com", b"Subject: one", b"", b"first body"]
        for i, msg in enumerate(MESSAGES, 1):
            lines = m.retr(i)[1]
            assert b"\r\n".join(lines) + b"\r\n" == msg
        m.dele(2)
        m.quit()

        m = poplib.POP3("127.0.0.1", port, timeout=10)
        m.user("alice")
        m.pass_("secret")
        assert m.stat() == (2, len(MESSAGES[0]) + len(MESSAGES[2]))
        m.quit()

        m = poplib.POP3("127.0.0.1", port, timeout=10)
        m.user("alice")
        try:
            m.pass_("wrong")
            raise AssertionError("login with a wrong password succeeded")
        except poplib.error_proto as e:
            assert str(e) == "b'-ERR Invalid login or password'"
    finally:
        auth.close()


def test_dovecot_refusal_passed_through(dovecot, start_proxy):   # noqa: F811
    auth = AuthServer(lambda req: ok_response(dovecot.pop3_port))
    try:
        p, port = start_proxy(auth_url=auth.url, mail_lines=["proxy_pass_error_message on;"])
        m = poplib.POP3("127.0.0.1", port, timeout=10)
        m.user("alice")
        try:
            m.pass_("not-the-password")
            raise AssertionError("accepted")
        except poplib.error_proto as e:
            assert str(e).startswith("b'-ERR [AUTH] Authentication failed")
    finally:
        auth.close()
