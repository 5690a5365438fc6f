"""``proxy_protocol v2``: a binary PROXY v2 header to the backend, with the client's TLS
facts as TLVs (dialect angie-mail; Angie sends only v1)."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
import time
import types

import pytest

from angie_mail.proxy.proxy_protocol import V2_SIG, outbound_header_v2, parse
from proxy.harness import AuthServer, Backend, ScriptedBackend, client_ctx, free_port, \
    ok_response, tls_lines


def tlvs(header: bytes) -> dict:
    """type -> value of the TLVs after the address block."""
    fam = header[13]
    pos = 16 + {0x11: 12, 0x21: 36, 0x00: 0}[fam]
    out = {}
    while pos < len(header):
        kind, n = struct.unpack("!BH", header[pos:pos + 3])
        out[kind] = header[pos + 3:pos + 3 + n]
        pos += 3 + n
    return out


def fake(ip, port, local, tls_info=None):
    return types.SimpleNamespace(client_ip=ip, client_port=port, local=local,
                                 tls_info=tls_info)


def test_v2_header_addresses():
    h = outbound_header_v2(fake("192.0.2.1", 5555, ("127.0.0.1", 110)))
    assert h == V2_SIG + b"\x21\x11\x00\x0c" + bytes([192, 0, 2, 1, 127, 0, 0, 1]) + \
        struct.pack("!HH", 5555, 110)
    p = parse(h)
    assert (p.length, p.src_addr, p.src_port, p.dst_addr, p.dst_port) == \
        (len(h), "192.0.2.1", 5555, "127.0.0.1", 110)
    h = outbound_header_v2(fake("2001:db8::5", 40000, ("::1", 143)))
    p = parse(h)
    assert (h[13], p.src_addr, p.dst_addr) == (0x21, "2001:db8::5", "::1")
    # a v6 client (realip) on a v4 listener: both as IPv6, the local one v4-mapped
    p = parse(outbound_header_v2(fake("2001:db8::5", 1, ("127.0.0.1", 25))))
    assert p.dst_addr == "::ffff:7f00:1"
    h = outbound_header_v2(fake("unix:", 0, ""))
    assert h == V2_SIG + b"\x21\x00\x00\x00"


def test_v2_tls_tlvs():
    info = types.SimpleNamespace(protocol="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384",
                                 verify="", cert=None, sni=b"mail.example.com")
    h = outbound_header_v2(fake("192.0.2.1", 5555, ("127.0.0.1", 993), info))
    assert parse(h).length == len(h)
    t = tlvs(h)
    assert t[0x02] == b"mail.example.com"
    ssl = t[0x20]
    assert ssl[:5] == b"\x01\x00\x00\x00\x00"             # PP2_CLIENT_SSL, verified 0
    assert ssl[5:] == b"\x21\x00\x07TLSv1.3\x23\x00\x16TLS_AES_256_GCM_SHA384"
    info.verify = "FAILED:certificate has expired"
    assert tlvs(outbound_header_v2(fake("192.0.2.1", 1, ("127.0.0.1", 993), info)))[
        0x20][1:5] == b"\x00\x00\x00\x01"


def test_v2_is_an_extension(tmp_path):
    from angie_mail.conf.analyze import analyze
    from angie_mail.conf.parse import parse_string
    text = ("events {}\nmail { auth_http 127.0.0.1:9/a; proxy_protocol v2;\n"
            "server { listen 127.0.0.1:110; protocol pop3; } }\n")
    r = analyze(parse_string(text), check_files=False)
    assert r.ok and r.config.servers[0].proxy_protocol == 2
    r = analyze(parse_string(text), dialect="angie", check_files=False)
    assert r.first_error.text().startswith(
        'invalid value "v2" in "proxy_protocol" directive, it must be "on" or "off" in ')
    r = analyze(parse_string(text), check_files=False, mode="lint")
    assert [w.rule for w in r.warnings] == ["not-portable"]


class RawV2Backend(ScriptedBackend):
    """A POP3 backend that reads a binary PROXY v2 header first."""

    def __init__(self):
        self.headers = []
        super().__init__(b"+OK ready\r\n")

    def session(self, rfile, wfile):
        head = rfile.read(16)
        body = rfile.read(struct.unpack("!H", head[14:16])[0])
        self.headers.append(head + body)
        wfile.write(self.greeting)
        wfile.flush()
        while True:
            line = rfile.readline()
            if not line:
                return
            wfile.write(b"+OK\r\n")
            wfile.flush()


def test_backend_gets_v2_with_the_tls_facts(start_proxy, pki):
    backend = RawV2Backend()
    auth = AuthServer(lambda req: ok_response(backend.port))
    port = free_port()
    try:
        p, _ = start_proxy(tls_lines(pki), port=port, listen=f"listen 127.0.0.1:{port} ssl;",
                           mail_lines=["proxy_protocol v2;"], auth_url=auth.url)
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        s = client_ctx(pki).wrap_socket(raw, server_hostname="pop.example.test")
        f = s.makefile("rwb")
        assert f.readline() == b"+OK POP3 ready\r\n"
        f.write(b"USER u\r\nPASS p\r\n")
        f.flush()
        assert f.readline() == b"+OK\r\n"
        assert f.readline() == b"+OK\r\n"
        (h,) = backend.headers
        hp = parse(h)
        assert (hp.src_addr, hp.src_port, hp.dst_port) == \
            ("127.0.0.1", s.getsockname()[1], port)
        t = tlvs(h)
        assert t[0x02] == b"pop.example.test"
        assert t[0x20][0] == 0x01 and b"TLSv1.3" in t[0x20]
        s.close()
    finally:
        auth.close()
        backend.close()


def test_haproxy_reads_the_v2_header(tmp_path, start_proxy):
    """A real peer: HAProxy accepts our v2 header (accept-proxy) and passes the client's
    address on as v1 to the backend behind it."""
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is not installed; run .ci/setup", pytrace=False)
    backend = Backend()
    backend.proxy_protocol = True
    hport = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend in
    bind 127.0.0.1:{hport} accept-proxy
    default_backend out
backend out
    server b 127.0.0.1:{backend.port} send-proxy
""")
    hp = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    auth = AuthServer(lambda req: ok_response(hport))
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", hport), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "haproxy did not start"
                time.sleep(0.05)
        backend.lines.clear()
        backend.raw.clear()
        p, port = start_proxy(mail_lines=["proxy_protocol v2;"], auth_url=auth.url)
        s = socket.socket()
        s.settimeout(5)
        s.bind(("127.0.0.33", 0))
        s.connect(("127.0.0.1", port))
        f = s.makefile("rb")
        assert f.readline() == b"+OK POP3 ready\r\n"
        s.sendall(b"USER test@example.com\r\nPASS secret\r\n")
        f.readline()
        assert f.readline() == b"+OK pass ok\r\n"
        header = [l for l in backend.lines if l.startswith(b"PROXY ")][-1]
        assert header == b"PROXY TCP4 127.0.0.33 127.0.0.1 %d %d" % (
            s.getsockname()[1], port)
        s.close()
    finally:
        hp.terminate()
        hp.wait(10)
        for pipe in (hp.stdout, hp.stderr):
            pipe.close()
        auth.close()
        backend.close()
