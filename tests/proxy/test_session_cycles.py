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
                           client_ctx, fail_response, free_port, ok_response, tls_lines)

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
                 "AuthConnection", "TlsTransport", "TlsEngine", "SSLObject", "MemoryBIO"}


@pytest.fixture
def backends():
    b = {"pop3": Backend(), "imap": ImapBackend(), "smtp": SmtpBackend()}
    yield b
    for x in b.values():
        x.close()


def _garbage_after(tmp_path, backends, servers: str, drive) -> dict:
    """Run ``drive()`` against angie-mail serving ``servers`` (server {} blocks); the
    kinds of session objects the cyclic collector found, counted at exit."""
    def decide(req):
        if req.get("Auth-Pass") != b"secret":
            return fail_response()
        return ok_response(backends[req["Auth-Protocol"].decode()].port)

    auth = AuthServer(decide)
    mail = f"mail {{\n    auth_http {auth.url};\n    xclient off;\n{servers}}}\n"
    wrapper = tmp_path / "keep_garbage.py"
    wrapper.write_text(WRAPPER)
    out = tmp_path / "garbage.json"
    (tmp_path / "p").mkdir()
    p = Proxy(tmp_path / "p", mail)
    p.args = [sys.executable, str(wrapper), str(out), *p.args[3:]]
    try:
        p.start()
        drive()
        p.wait_log("proxied session done")
    finally:
        p.stop()
        auth.close()
    assert p.proc.returncode == 0, p.proc.returncode
    kinds = json.loads(out.read_text())          # written at exit, after the sessions
    return {k: n for k, n in kinds.items() if k in SESSION_KINDS}


def _server(port: int, protocol: str, *lines, ssl: bool = False) -> str:
    extra = "".join(f"        {l}\n" for l in lines)
    return (f"    server {{\n        listen 127.0.0.1:{port}{' ssl' if ssl else ''};\n"
            f"        protocol {protocol};\n{extra}    }}\n")


def _pop3(pop, good: bool) -> None:
    """A POP3 login, relayed (and a STAT through the backend) or rejected."""
    pop.user("test@example.com")
    if good:
        pop.pass_("secret")
        assert pop.stat()[0] == 1
        pop.quit()
    else:
        with pytest.raises(poplib.error_proto):
            pop.pass_("wrong")
        pop.close()


def _imap(imap, good: bool) -> None:
    if good:
        imap.login("test@example.com", "secret")
        imap.logout()
    else:
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("test@example.com", "wrong")
        imap.shutdown()


def test_finished_sessions_leave_no_cyclic_garbage(tmp_path, backends):
    ports = {name: free_port() for name in backends}

    def drive():
        for i in range(SESSIONS):
            # a rejected login and a relayed session of each protocol
            good = i % 2 == 0
            password = "secret" if good else "wrong"
            _pop3(poplib.POP3("127.0.0.1", ports["pop3"], timeout=5), good)
            _imap(imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=5), good)
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

    servers = "".join(_server(ports[name], name) for name in backends)
    left = _garbage_after(tmp_path, backends, servers, drive)
    assert left == {}, left


def test_finished_tls_sessions_leave_no_cyclic_garbage(tmp_path, backends, pki):
    """The same over implicit TLS (POP3) and STARTTLS (IMAP)."""
    pop3s, imap = free_port(), free_port()

    def drive():
        for i in range(SESSIONS):
            good = i % 2 == 0
            _pop3(poplib.POP3_SSL("127.0.0.1", pop3s, timeout=5, context=client_ctx(pki)),
                  good)
            c = imaplib.IMAP4("127.0.0.1", imap, timeout=5)
            c.starttls(client_ctx(pki))
            _imap(c, good)

    servers = (_server(pop3s, "pop3", *tls_lines(pki), ssl=True)
               + _server(imap, "imap", "starttls on;", *tls_lines(pki)))
    left = _garbage_after(tmp_path, backends, servers, drive)
    assert left == {}, left
