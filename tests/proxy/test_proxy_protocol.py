"""PROXY protocol in (v1, v2) and out, realip, and several nodes behind real HAProxy."""

import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import pytest

import certs
from proxy.harness import AuthServer, Backend, Client, Proxy, free_port, ok_response


def pp_listen(port, extra=""):
    return f"listen 127.0.0.1:{port} proxy_protocol{extra};"


def v2_header(src, dst, sport, dport, family=socket.AF_INET):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if family == socket.AF_INET:
        body = socket.inet_pton(family, src) + socket.inet_pton(family, dst) + \
            struct.pack("!HH", sport, dport)
        fam = 0x11
    else:
        body = socket.inet_pton(family, src) + socket.inet_pton(family, dst) + \
            struct.pack("!HH", sport, dport)
        fam = 0x21
    body += b"\x03\x00\x04abcd"                       # a TLV, ignored
    return sig + bytes((0x21, fam)) + struct.pack("!H", len(body)) + body


@pytest.fixture
def recorder(backend):
    a = AuthServer(lambda req: ok_response(backend.port))
    yield a
    a.close()


def _login(c):
    c.line()
    c.send(b"USER test@example.com\r\nPASS secret\r\n")
    c.line()
    return c.line()


def test_v1_untrusted(recorder, start_proxy):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, port=port, listen=pp_listen(port))
    c = Client(port)
    c.send(b"PROXY TCP4 192.0.2.1 198.51.100.7 5555 110\r\n")
    assert _login(c) == b"+OK pass ok\r\n"
    r = recorder.requests[0]
    assert (r["Client-IP"], r["Proxy-Protocol-Addr"], r["Proxy-Protocol-Port"],
            r["Proxy-Protocol-Server-Addr"], r["Proxy-Protocol-Server-Port"]) == \
        (b"127.0.0.1", b"192.0.2.1", b"5555", b"198.51.100.7", b"110")
    assert r.raw.index(b"Client-IP") < r.raw.index(b"Proxy-Protocol-Addr")


def test_v1_trusted_realip(recorder, start_proxy):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, port=port, listen=pp_listen(port),
                       server_lines=["set_real_ip_from 127.0.0.0/8;"])
    c = Client(port)
    c.send(b"PROXY TCP4 192.0.2.1 198.51.100.7 5555 110\r\n")
    assert _login(c) == b"+OK pass ok\r\n"
    r = recorder.requests[0]
    assert (r["Client-IP"], r["Proxy-Protocol-Addr"]) == (b"192.0.2.1", b"192.0.2.1")
    log = p.wait_log("client logged in")
    assert 'client: "127.0.0.1:' in log               # logs keep the TCP peer (Angie)


def test_v2_binary_ipv6_trusted(recorder, start_proxy):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, port=port, listen=pp_listen(port),
                       server_lines=["set_real_ip_from 127.0.0.1;"])
    c = Client(port)
    c.send(v2_header("2001:db8::1", "2001:db8::2", 40000, 995, socket.AF_INET6))
    assert _login(c) == b"+OK pass ok\r\n"
    r = recorder.requests[0]
    assert (r["Client-IP"], r["Proxy-Protocol-Port"]) == (b"2001:db8::1", b"40000")


def test_untrusted_network_does_not_substitute(recorder, start_proxy):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, port=port, listen=pp_listen(port),
                       server_lines=["set_real_ip_from 10.0.0.0/8;"])
    c = Client(port)
    c.send(v2_header("192.0.2.9", "192.0.2.10", 1234, 110))
    assert _login(c) == b"+OK pass ok\r\n"
    assert recorder.requests[0]["Client-IP"] == b"127.0.0.1"


def test_unknown_and_local_carry_no_addresses(recorder, start_proxy):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, port=port, listen=pp_listen(port))
    for header in (b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
                   b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"):
        c = Client(port)
        c.send(header)
        assert _login(c) == b"+OK pass ok\r\n"
    assert all("Proxy-Protocol-Addr" not in r.headers for r in recorder.requests)


@pytest.mark.parametrize("data", [b"GET / HTTP/1.0\r\n\r\n", b"PROXY TCP4 1.2.3.4\r\n",
                                  b"PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\n",
                                  b"PROXY TCP5 1.1.1.1 1.1.1.1 1 2\r\n"])
def test_broken_header_closes_silently(recorder, start_proxy, data):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, port=port, listen=pp_listen(port))
    c = Client(port)
    c.send(data)
    assert c.closed()
    assert c.buf == b""
    p.wait_log("broken header")


def test_header_must_come_in_one_read(recorder, start_proxy):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, port=port, listen=pp_listen(port))
    c = Client(port)
    c.send(b"PROXY TCP4 192.0.2.1 ")
    time.sleep(0.3)
    try:
        c.send(b"127.0.0.1 1 2\r\n")
    except ConnectionResetError:
        pass                                        # already closed: fine
    assert c.closed()
    assert c.buf == b""


def test_proxy_header_then_tls(tmp_path, recorder, start_proxy):
    pki = certs.make(str(tmp_path / "pki"))
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, port=port,
                       listen=f"listen 127.0.0.1:{port} ssl proxy_protocol;",
                       mail_lines=[f"ssl_certificate {pki['server_rsa_crt']};",
                                   f"ssl_certificate_key {pki['server_rsa_key']};"],
                       server_lines=["set_real_ip_from 127.0.0.1;"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.check_hostname = False
    raw.sendall(b"PROXY TCP4 203.0.113.5 127.0.0.1 4444 995\r\n")
    s = ctx.wrap_socket(raw)
    assert s.recv(100) == b"+OK POP3 ready\r\n"
    s.sendall(b"USER test@example.com\r\nPASS secret\r\n")
    data = b""
    while data.count(b"\r\n") < 2:             # the PASS reply follows the auth request
        chunk = s.recv(100)
        assert chunk, data
        data += chunk
    r = recorder.requests[0]
    assert (r["Client-IP"], r["Auth-SSL"]) == (b"203.0.113.5", b"on")


def test_outbound_proxy_protocol(backend, recorder, start_proxy):
    port = free_port()
    p, _ = start_proxy(auth_url=recorder.url, port=port, listen=pp_listen(port),
                       mail_lines=["proxy_protocol on;"],
                       server_lines=["set_real_ip_from 127.0.0.1;"])
    backend.proxy_protocol = True          # it reads the header, then greets
    c = Client(port)
    c.send(b"PROXY TCP4 192.0.2.1 198.51.100.7 5555 110\r\n")
    assert _login(c) == b"+OK pass ok\r\n"         # the backend took the header, then USER
    assert backend.lines[0] == f"PROXY TCP4 192.0.2.1 127.0.0.1 5555 {port}".encode()


def test_outbound_proxy_protocol_untrusted(start_proxy):
    got = []

    def session(rfile, wfile):
        got.append(rfile.readline())
        wfile.write(b"+OK hi\r\n")
        wfile.flush()
        for _ in range(2):
            rfile.readline()
            wfile.write(b"+OK\r\n")
            wfile.flush()
    backend = Backend()
    backend.session = session
    auth = AuthServer(lambda req: ok_response(backend.port))
    try:
        p, port = start_proxy(auth_url=auth.url, mail_lines=["proxy_protocol on;"])
        c = Client(port)
        assert _login(c) == b"+OK\r\n"
        local_port = c.sock.getsockname()[1]
        assert got == [f"PROXY TCP4 127.0.0.1 127.0.0.1 {local_port} {port}\r\n".encode()]
    finally:
        auth.close()
        backend.close()


def test_unix_socket_listener(tmp_path, backend, recorder):
    d = tempfile.mkdtemp(prefix="am-")
    path = os.path.join(d, "pop3.sock")
    p = Proxy(tmp_path, f"mail {{ auth_http {recorder.url}; server {{ listen unix:{path}; "
                        f"protocol pop3; }} }}").start()
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(path)
        f = s.makefile("rb")
        assert f.readline() == b"+OK POP3 ready\r\n"
        s.sendall(b"USER test@example.com\r\nPASS secret\r\n")
        f.readline()
        assert f.readline() == b"+OK pass ok\r\n"
        assert recorder.requests[0]["Client-IP"] == b"unix:"
    finally:
        p.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_two_nodes_behind_haproxy(tmp_path, backend):
    """Scale-out: HAProxy spreads sessions over two angie-mail nodes with send-proxy-v2;
    the auth server sees every client's real address."""
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is not installed; run .ci/setup", pytrace=False)
    auth = AuthServer(lambda req: ok_response(backend.port))
    front = free_port()
    nodes = []
    try:
        ports = [free_port(), free_port()]
        for i, port in enumerate(ports):
            d = tmp_path / f"node{i}"
            d.mkdir()
            nodes.append(Proxy(d, f"mail {{ auth_http {auth.url}; server {{ "
                                  f"listen 127.0.0.1:{port} proxy_protocol; protocol pop3; "
                                  f"set_real_ip_from 127.0.0.1; server_name node{i}; }} }}")
                         .start())
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(f"""global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend pop3
    bind 127.0.0.1:{front}
    default_backend nodes
backend nodes
    balance roundrobin
    server n0 127.0.0.1:{ports[0]} send-proxy-v2
    server n1 127.0.0.1:{ports[1]} send-proxy-v2
""")
        hp = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", front), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            auth.requests.clear()
            sources = [f"127.0.0.{20 + i}" for i in range(8)]
            for src in sources:
                s = socket.socket()
                s.settimeout(5)
                s.bind((src, 0))
                s.connect(("127.0.0.1", front))
                f = s.makefile("rb")
                assert f.readline() == b"+OK POP3 ready\r\n"
                s.sendall(b"USER test@example.com\r\nPASS secret\r\n")
                f.readline()
                assert f.readline() == b"+OK pass ok\r\n"
                s.sendall(b"QUIT\r\n")
                f.readline()
                s.close()
        finally:
            hp.terminate()
            hp.wait(10)
            for pipe in (hp.stdout, hp.stderr):
                pipe.close()
        seen = sorted(r["Client-IP"].decode() for r in auth.requests)
        assert seen == sorted(sources)
        served = [n.log().count("client logged in") for n in nodes]
        assert served[0] > 0 and served[1] > 0 and sum(served) == len(sources)
    finally:
        for n in nodes:
            n.stop()
        auth.close()
