"""A finished session is freed by reference counting: nothing of it is left for the
cyclic garbage collector (which would otherwise run for every few dozen sessions of a
busy worker and walk all of them).  A real angie-mail process runs under a small
wrapper that keeps everything the collector finds (gc.DEBUG_SAVEALL) and, at exit,
writes what kinds of objects those were."""

from __future__ import annotations

import base64
import imaplib
import json
import os
import poplib
import smtplib
import sys
import textwrap

import pytest

from proxy.harness import (AuthServer, Backend, ImapBackend, Proxy, SmtpBackend,
                           fail_response, free_port, ok_response)

WRAPPER = textwrap.dedent("""\
    import atexit, collections, gc, json, runpy, sys
    gc.set_debug(gc.DEBUG_SAVEALL)
    out = sys.argv.pop(1)

    def dump():
        gc.collect()
        kinds = collections.Counter(type(o).__name__ for o in gc.garbage)
        with open(out, "w") as f:
            json.dump(kinds, f)

    atexit.register(dump)
    sys.argv[0] = "angie-mail"
    runpy.run_module("angie_mail", run_name="__main__", alter_sys=True)
    """)

SESSIONS = 12
# what one session is made of: none may be in the garbage after the sessions
SESSION_KINDS = {"ClientConnection", "SocketTransport", "Backend", "Pop3Session",
                 "ImapSession", "SmtpSession", "SaslExchange", "Pop3BackendLogin",
                 "ImapBackendLogin", "SmtpBackendLogin", "SmtpFacts", "AuthExchange",
                 "AuthConnection"}


@pytest.fixture
def backends():
    b = {"pop3": Backend(), "imap": ImapBackend(), "smtp": SmtpBackend()}
    yield b
    for x in b.values():
        x.close()


def test_finished_sessions_leave_no_cyclic_garbage(tmp_path, backends):
    ports = {name: free_port() for name in backends}

    def decide(req):
        if req.get("Auth-Pass") != b"secret":
            return fail_response()
        return ok_response(backends[req["Auth-Protocol"].decode()].port)

    auth = AuthServer(decide)
    servers = "".join(
        f"    server {{\n        listen 127.0.0.1:{ports[name]};\n"
        f"        protocol {name};\n    }}\n" for name in backends)
    mail = f"mail {{\n    auth_http {auth.url};\n    xclient off;\n{servers}}}\n"
    wrapper = tmp_path / "keep_garbage.py"
    wrapper.write_text(WRAPPER)
    out = tmp_path / "garbage.json"
    (tmp_path / "p").mkdir()
    p = Proxy(tmp_path / "p", mail)
    p.args = [sys.executable, str(wrapper), str(out), *p.args[3:]]
    try:
        p.start()
        for i in range(SESSIONS):
            # a rejected login and a relayed session of each protocol
            good = i % 2 == 0
            password = "secret" if good else "wrong"
            pop = poplib.POP3("127.0.0.1", ports["pop3"], timeout=5)
            pop.user("test@example.com")
            if good:
                pop.pass_(password)
                assert pop.stat()[0] == 1
                pop.quit()
            else:
                with pytest.raises(poplib.error_proto):
                    pop.pass_(password)
                pop.close()
            imap = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=5)
            if good:
                imap.login("test@example.com", password)
                imap.logout()
            else:
                with pytest.raises(imaplib.IMAP4.error):
                    imap.login("test@example.com", password)
                imap.shutdown()
            smtp = smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=5)
            smtp.ehlo("client.example")
            if good:
                smtp.login("test@example.com", password)
                smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nhi\r\n")
                smtp.quit()
            else:
                plain = base64.b64encode(b"\0test@example.com\0" + password.encode())
                assert smtp.docmd("AUTH", "PLAIN " + plain.decode())[0] == 535
                smtp.close()
        assert len(backends["smtp"].messages) == SESSIONS // 2
        p.wait_log("proxied session done")
    finally:
        p.stop()
        auth.close()
    assert p.proc.returncode == 0, p.proc.returncode
    kinds = json.loads(out.read_text())          # written at exit, after the sessions
    left = {k: n for k, n in kinds.items() if k in SESSION_KINDS}
    assert left == {}, left
