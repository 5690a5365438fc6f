"""angie-mail in front of a real Dovecot POP3 and IMAP server (started by the test)."""

import imaplib
import poplib

import pytest

from fixtures.dovecot import dovecot  # noqa: F401  (pytest fixture)
from proxy.harness import AuthServer, Client, ok_response

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


def test_dovecot_imap_through_the_proxy(dovecot, start_proxy):   # noqa: F811
    """imaplib through angie-mail to a real Dovecot IMAP: LOGIN (sent to Dovecot as
    synchronizing literals), SELECT, byte-exact FETCH, a refused password, LOGOUT."""
    for m in MESSAGES:
        dovecot.deliver("alice", m)
    auth = AuthServer(lambda req: ok_response(dovecot.imap_port)
                      if req["Auth-Pass"] == b"secret" else
                      b"HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n\r\n")
    try:
        p, port = start_proxy(auth_url=auth.url, protocol="imap")
        m = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        assert m.welcome == b"* OK IMAP4 ready"
        typ, data = m.login("alice", "secret")
        assert typ == "OK" and data[0].endswith(b"Logged in")
        assert m.select("INBOX") == ("OK", [b"3"])
        for i, msg in enumerate(MESSAGES, 1):
            typ, data = m.fetch(str(i), "(BODY.PEEK[])")
            assert typ == "OK" and data[0][1] == msg
        typ, data = m.fetch("1:3", "(RFC822.SIZE)")
        assert [int(d.split()[-1].rstrip(b")")) for d in data] == [len(x) for x in MESSAGES]
        m.close()
        assert m.logout()[0] == "BYE"
        assert 'login: "alice"' in p.wait_log("proxied session done")
        assert "Login: user=<alice>" in dovecot.log()

        m = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        with pytest.raises(imaplib.IMAP4.error, match="Invalid login or password"):
            m.login("alice", "wrong")
    finally:
        auth.close()


def test_dovecot_imap_refusal_passed_through(dovecot, start_proxy):   # noqa: F811
    auth = AuthServer(lambda req: ok_response(dovecot.imap_port))
    try:
        p, port = start_proxy(auth_url=auth.url, protocol="imap",
                              mail_lines=["proxy_pass_error_message on;"])
        c = Client(port)
        assert c.line() == b"* OK IMAP4 ready\r\n"
        c.send(b"a1 LOGIN alice not-the-password\r\n")
        assert c.line() == b"a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
        assert c.closed()
        assert 'upstream sent invalid response: "NO [AUTHENTICATIONFAILED] Authentication ' \
               'failed."' in p.wait_log("upstream sent invalid response")
    finally:
        auth.close()


@pytest.mark.parametrize("mode", ["plain", "starttls", "ssl"])
def test_dovecot_imap_multi_megabyte_fetch_over_every_transport(dovecot, start_proxy, pki,  # noqa: F811
                                                                mode):
    """A 4 MB message through the proxy, byte for byte, over plain text, STARTTLS and
    implicit TLS, from a real Dovecot."""
    import random
    from proxy.harness import client_ctx, free_port, tls_lines
    rnd = random.Random(7)
    big = b"Subject: big\r\n\r\n" + b"".join(
        b".%08d %s\r\n" % (i, bytes(rnd.choice(b"abcdefghij .") for _ in range(60)))
        for i in range(60000))
    dovecot.deliver("alice", big)
    auth = AuthServer(lambda req: ok_response(dovecot.imap_port))
    try:
        port = free_port()
        server = list(tls_lines(pki)) if mode != "plain" else []
        listen = f"listen 127.0.0.1:{port}{' ssl' if mode == 'ssl' else ''};"
        if mode == "starttls":
            server.append("starttls on;")
        p, port = start_proxy(auth_url=auth.url, protocol="imap", port=port, listen=listen,
                              server_lines=server)
        ctx = client_ctx(pki)
        if mode == "ssl":
            m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=30)
        else:
            m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
            if mode == "starttls":
                assert m.starttls(ssl_context=ctx)[0] == "OK"
        assert m.login("alice", "secret")[0] == "OK"
        typ, data = m.select("INBOX")
        n = data[0].decode()
        typ, data = m.fetch(n, "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == big
        m.logout()
        if mode == "starttls":
            assert 'starttls: "true"' in p.wait_log("client logged in")
    finally:
        auth.close()
