"""``login_events`` (dialect angie-mail): one JSON line per session end, with what
became of it, and never the password."""

from __future__ import annotations

import base64
import json
import os
import signal
import time

from proxy.harness import AuthServer, Client, ImapBackend, fail_response, free_port, \
    ok_response


def lines(path, n, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                out = [json.loads(l) for l in f if l.strip()]
            if len(out) >= n:
                return out
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} events in {path}")


def test_pop3_sessions(tmp_path, auth, backend, start_proxy):
    path = str(tmp_path / "events.json")
    p, port = start_proxy(mail_lines=[f"login_events {path};"], auth_url=auth.url)
    c = Client(port)
    c.line()
    c.send(b"USER test@example.com\r\nPASS secret\r\nSTAT\r\nQUIT\r\n")
    for _ in range(4):
        c.line()
    assert c.closed()
    c = Client(port)
    c.line()
    c.send(b"USER test@example.com\r\nPASS hunter2\r\n")
    c.line()
    assert c.line().startswith(b"-ERR")
    assert c.closed()
    ok, failed = lines(path, 2)
    assert ok["protocol"] == "pop3" and ok["outcome"] == "logged in"
    assert ok["server"] == f"127.0.0.1:{port}" and ok["client"] == "127.0.0.1"
    assert ok["login"] == "test@example.com" and ok["backend"] == f"127.0.0.1:{backend.port}"
    assert ok["attempts"] == 1 and ok["reason"] is None and ok["tls"] is None
    # STAT and QUIT went to the backend; its answers came back
    assert ok["bytes_in"] == len(b"STAT\r\nQUIT\r\n")
    assert ok["bytes_out"] == len(b"+OK 1 23\r\n+OK quit ok\r\n")
    assert ok["duration"] >= 0 and ok["time"].endswith("Z")
    assert (failed["outcome"], failed["reason"], failed["backend"]) == \
        ("auth failed", "Invalid login or password", None)
    with open(path) as f:
        assert "hunter2" not in f.read() and "secret" not in open(path).read()


def test_smtp_timeout_and_tls(tmp_path, pki, start_proxy):
    from proxy.harness import SmtpBackend, client_ctx, tls_lines
    b = SmtpBackend()
    auth = AuthServer(lambda req: ok_response(b.port) if req["Auth-Pass"] == b"secret"
                      else fail_response())
    path = str(tmp_path / "events.json")
    port = free_port()
    try:
        p, _ = start_proxy(("protocol smtp;", "timeout 1s;", "starttls on;", *tls_lines(pki),
                            f"login_events {path};"), port=port, auth_url=auth.url)
        c = Client(port)
        c.line()
        assert c.closed(3)                       # the pre-auth deadline
        c = Client(port)
        c.line()
        c.send(b"STARTTLS\r\n")
        assert c.line() == b"220 2.0.0 Start TLS\r\n"
        t = client_ctx(pki).wrap_socket(c.sock)
        t.sendall(b"AUTH PLAIN " + base64.b64encode(b"\0u\0secret") + b"\r\n")
        assert t.recv(100) == b"235 2.0.0 OK\r\n"
        t.close()
        timed_out, ok = lines(path, 2)
        assert timed_out["outcome"] == "timed out" and timed_out["login"] == ""
        assert ok["outcome"] == "logged in" and ok["protocol"] == "smtp"
        assert ok["tls"]["protocol"] == "TLSv1.3" and ok["tls"]["starttls"] is True
    finally:
        auth.close()
        b.close()


def test_reopened_on_usr1(tmp_path, auth, start_proxy):
    path = str(tmp_path / "events.json")
    p, port = start_proxy(mail_lines=[f"login_events {path};"], auth_url=auth.url)
    Client(port).close()
    lines(path, 1)
    os.rename(path, path + ".1")
    p.signal(signal.SIGUSR1)
    p.wait_log("reopening logs")
    c = Client(port)
    c.line()
    c.send(b"QUIT\r\n")
    c.line()
    assert c.closed()
    (event,) = lines(path, 1)
    assert event["outcome"] == "closed"


def test_imap_error_outcome(tmp_path, start_proxy):
    backend = ImapBackend(greeting=b"* BYE go away\r\n")
    auth = AuthServer(lambda req: ok_response(backend.port))
    path = str(tmp_path / "events.json")
    try:
        p, port = start_proxy(("protocol imap;", f"login_events {path};"),
                              auth_url=auth.url)
        c = Client(port)
        c.line()
        c.send(b"a LOGIN user pass\r\n")
        assert c.line() == b"* BAD internal server error\r\n"
        (event,) = lines(path, 1)
        assert (event["outcome"], event["login"], event["protocol"]) == \
            ("error", "user", "imap")
    finally:
        auth.close()
        backend.close()
