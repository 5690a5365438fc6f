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

from proxy.harness import AuthServer, Proxy, free_port, ok_response, wait_exited


def mail_block(auth_url, pki, port, lines=()) -> str:
    """mail {} with one POP3 server on implicit TLS and the test certificate."""
    extra = "".join(f"    {l}\n" for l in lines)
    return (f"mail {{\n    auth_http {auth_url};\n"
            f"    ssl_certificate {pki['server_rsa_crt']};\n"
            f"    ssl_certificate_key {pki['server_rsa_key']};\n{extra}"
            f"    server {{ listen 127.0.0.1:{port} ssl; protocol pop3; }}\n}}\n")


@pytest.fixture
def two_workers(tmp_path, pki, backend):
    auth = AuthServer(lambda req: ok_response(backend.port))
    started = []

    def start(lines=()):
        port = free_port()
        block = mail_block(auth.url, pki, port, lines)
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

    start.proxies = started
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


# --- ssl_session_cache shared: one cache for every worker -----------------------------

VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


@pytest.mark.parametrize("cache", ["shared:SSL:1m", "builtin:1000 shared:SSL:1m"])
@pytest.mark.parametrize("version", VERSIONS)
def test_a_shared_cache_resumes_in_the_other_worker(two_workers, cache, version):
    """Without tickets, a session id (TLS 1.2) or a stateful ticket (TLS 1.3) is
    looked up in the shared cache, whichever worker made it."""
    port, (a, b) = two_workers(["ssl_session_tickets off;", f"ssl_session_cache {cache};"])
    reused, sess = on(a, (a, b), lambda: session(port, version))
    assert not reused
    assert on(b, (a, b), lambda: session(port, version, sess))[0]
    assert on(a, (a, b), lambda: session(port, version, sess))[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_builtin_cache_does_not_cross_workers(two_workers, version):
    """What the shared cache is for: the builtin cache belongs to one worker."""
    port, (a, b) = two_workers(["ssl_session_tickets off;", "ssl_session_cache builtin;"])
    reused, sess = on(a, (a, b), lambda: session(port, version))
    assert not reused
    assert not on(b, (a, b), lambda: session(port, version, sess))[0]


def test_shared_cache_sessions_expire_with_ssl_session_timeout(two_workers):
    port, (a, b) = two_workers(["ssl_session_tickets off;", "ssl_session_cache shared:S:1m;",
                                "ssl_session_timeout 1s;"])
    v = ssl.TLSVersion.TLSv1_2
    made = time.monotonic()
    reused, sess = on(a, (a, b), lambda: session(port, v))
    assert on(b, (a, b), lambda: session(port, v, sess))[0]
    deadline = made + 10
    while on(b, (a, b), lambda: session(port, v, sess))[0]:
        assert time.monotonic() < deadline, "the session never expired"
        time.sleep(0.1)
    # not before its second of life is over (OpenSSL counts whole seconds)
    assert time.monotonic() - made >= 1.0


def test_the_shared_cache_survives_a_reload(two_workers):
    """As nginx keeps a zone of unchanged name and size across a reload, sessions made
    by the old workers resume with the new ones."""
    port, old = two_workers(["ssl_session_tickets off;", "ssl_session_cache shared:S:1m;"])
    p = two_workers.proxies[-1]
    v = ssl.TLSVersion.TLSv1_2
    reused, sess = session(port, v)
    assert not reused
    p.signal(signal.SIGHUP)
    p.wait_log("reconfiguring")
    deadline = time.time() + 10
    while p.log().count("start worker process") < 4 and time.time() < deadline:
        time.sleep(0.02)
    assert p.log().count("start worker process") == 4
    wait_exited(old)                    # only the new workers accept from here on
    assert session(port, v, sess)[0]


def test_many_sessions_in_a_small_shared_cache(two_workers):
    """More sessions than the zone holds: the newest resume, nothing breaks."""
    port, (a, b) = two_workers(["ssl_session_tickets off;",
                                "ssl_session_cache shared:S:32k;"])
    v = ssl.TLSVersion.TLSv1_2
    made = on(a, (a, b), lambda: [session(port, v)[1] for _ in range(200)])
    assert on(b, (a, b), lambda: session(port, v, made[-1]))[0]
    assert not on(b, (a, b), lambda: session(port, v, made[0]))[0]


# --- ssl_session_ticket_key: tickets that outlive the process -------------------------

@pytest.fixture
def keys(tmp_path):
    def make(name, size):
        path = tmp_path / f"{name}.key"
        path.write_bytes(os.urandom(size))
        return str(path)
    return make


@pytest.mark.parametrize("size", [48, 80])
@pytest.mark.parametrize("version", VERSIONS)
def test_a_ticket_key_file_resumes_after_a_restart(two_workers, keys, size, version):
    k1 = keys("k1", size)
    port, pids = two_workers([f"ssl_session_ticket_key {k1};"])
    reused, sess = session(port, version)
    assert not reused and sess.has_ticket
    # another proxy (another master, other workers) with the same key file
    port2, _ = two_workers([f"ssl_session_ticket_key {k1};"])
    assert session(port2, version, sess)[0]
    # without the key file, each master makes its own keys: no resumption
    port3, _ = two_workers()
    assert not session(port3, version, sess)[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_ticket_key_rotation(two_workers, keys, version):
    """The first key encrypts, all decrypt: a ticket of the old key still resumes after
    a new key is put first, and the client gets a new ticket made with the new key."""
    old, new = keys("old", 80), keys("new", 48)
    port, _ = two_workers([f"ssl_session_ticket_key {old};"])
    _, sess_old = session(port, version)
    port2, _ = two_workers([f"ssl_session_ticket_key {new};",
                            f"ssl_session_ticket_key {old};"])
    reused, sess_renewed = session(port2, version, sess_old)
    assert reused
    # the old key retired: its ticket no longer resumes, the renewed one does
    port3, _ = two_workers([f"ssl_session_ticket_key {new};"])
    assert not session(port3, version, sess_old)[0]
    assert session(port3, version, sess_renewed)[0]


# --- one farm with Angie/nginx: the same session id context, the same ticket format --

@pytest.mark.parametrize("verify", [False, True])
@pytest.mark.parametrize("version", VERSIONS)
def test_sessions_resume_between_nginx_and_angie_mail(tmp_path, pki, backend, keys,
                                                      two_workers, verify, version):
    """With the same certificate, client CA list and ticket key file, a ticket made by
    nginx resumes on angie-mail and one made by angie-mail resumes on nginx: the session
    id context is computed as nginx computes it, and tickets are sealed as nginx seals
    them (a farm can mix the two, or move from one to the other, without a full
    handshake for every client)."""
    import oracle
    from proxy.harness import Nginx
    oracle.require()
    key = keys("farm", 80)
    # nginx 1.22 does not enable TLSv1.3 by default
    lines = [f"ssl_session_ticket_key {key};", "ssl_protocols TLSv1.2 TLSv1.3;"]
    if verify:
        lines += ["ssl_verify_client optional;", f"ssl_client_certificate {pki['ca']};"]
    auth = AuthServer(lambda req: ok_response(backend.port))
    ng_port = free_port()
    d = tmp_path / "nginx"
    d.mkdir()
    ng = Nginx(d, mail_block(auth.url, pki, ng_port, lines)).start()
    try:
        port, _ = two_workers(lines)
        reused, from_nginx = session(ng_port, version)
        assert not reused
        assert session(port, version, from_nginx)[0]
        reused, from_us = session(port, version)
        assert not reused
        assert session(ng_port, version, from_us)[0]
    finally:
        ng.stop()
        auth.close()
