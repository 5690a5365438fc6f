"""TLS session resumption as a client sees it, with two workers: tickets resume in
whichever worker accepts (the contexts and their ticket keys are made once, in the
master); ssl_session_cache none/off and ssl_session_tickets off resume nothing; a
session cache without tickets resumes TLS 1.2 sessions in the worker that made them."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time

import pytest

from proxy.harness import AuthServer, Proxy, free_port, ok_response


@pytest.fixture
def two_workers(tmp_path, pki, backend):
    auth = AuthServer(lambda req: ok_response(backend.port))
    started = []

    def start(lines=()):
        port = free_port()
        extra = "".join(f"    {l}\n" for l in lines)
        block = (f"mail {{\n    auth_http {auth.url};\n"
                 f"    ssl_certificate {pki['server_rsa_crt']};\n"
                 f"    ssl_certificate_key {pki['server_rsa_key']};\n{extra}"
                 f"    server {{ listen 127.0.0.1:{port} ssl; protocol pop3; }}\n}}\n")
        d = tmp_path / f"p{len(started)}"
        d.mkdir()
        p = Proxy(d, block, main="worker_processes 2;\n", workers=True).start()
        started.append(p)
        deadline = time.time() + 10
        while True:
            pids = [int(line.rsplit(" ", 1)[1]) for line in p.log().splitlines()
                    if "start worker process" in line]
            if len(pids) == 2 or time.time() > deadline:
                break
            time.sleep(0.02)
        assert len(pids) == 2
        return port, pids

    yield start
    for p in started:
        p.stop()
    auth.close()


_CLIENTS: dict = {}


def session(port, version, resume=None):
    """(resumed?, session) of one POP3S connection that greets and quits (one client
    context per version: a session resumes only through the context that made it)."""
    ctx = _CLIENTS.get(version)
    if ctx is None:
        ctx = _CLIENTS[version] = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ctx.maximum_version = version
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                        session=resume)
    try:
        assert s.recv(100) == b"+OK POP3 ready\r\n"
        s.sendall(b"QUIT\r\n")
        s.recv(100)                      # (a TLS 1.3 ticket arrives with the data)
        return s.session_reused, s.session
    finally:
        s.close()


def on(pid_running, pids, fn):
    """Run ``fn`` while only ``pid_running`` accepts (the other worker stopped)."""
    stopped = [p for p in pids if p != pid_running]
    for p in stopped:
        os.kill(p, signal.SIGSTOP)
    try:
        return fn()
    finally:
        for p in stopped:
            os.kill(p, signal.SIGCONT)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tickets_resume_in_the_other_worker(two_workers, version):
    port, (a, b) = two_workers()
    reused, sess = on(a, (a, b), lambda: session(port, version))
    assert not reused
    assert on(b, (a, b), lambda: session(port, version, sess))[0]
    assert on(a, (a, b), lambda: session(port, version, sess))[0]


@pytest.mark.parametrize("lines", [
    ["ssl_session_tickets off;", "ssl_session_cache none;"],
    ["ssl_session_tickets off;", "ssl_session_cache off;"],
])
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_no_resumption_without_tickets_or_cache(two_workers, lines, version):
    port, (a, b) = two_workers(lines)
    reused, sess = on(a, (a, b), lambda: session(port, version))
    assert not reused
    assert not on(a, (a, b), lambda: session(port, version, sess))[0]


@pytest.mark.parametrize("cache", ["builtin", "shared:SSL:1m", "builtin:1000 shared:SSL:1m"])
def test_a_session_cache_without_tickets_resumes_in_the_same_worker(two_workers, cache):
    port, (a, b) = two_workers(["ssl_session_tickets off;", f"ssl_session_cache {cache};"])
    v = ssl.TLSVersion.TLSv1_2
    reused, sess = on(a, (a, b), lambda: session(port, v))
    assert not reused
    assert on(a, (a, b), lambda: session(port, v, sess))[0]
