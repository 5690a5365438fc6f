"""What the master imports for its workers (process/master.py preload): workers of a
root master run as nobody, who here cannot read the interpreter's own library (it lives
under /root), so whatever a worker imports late must have been imported by the master.
The certificate and DNS libraries are large and loaded only for a configuration that
uses them, so a reload that brings TLS and a resolver must load them before the new
workers start."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time

from dns_server import zone
from proxy.harness import AuthServer, Proxy, free_port, ok_response, wait_exited


def _maps(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def test_libraries_follow_the_configuration_across_a_reload(tmp_path, pki, dns_servers,
                                                           backend):
    assert os.geteuid() == 0, "the tests run as root (as CI does)"
    d = dns_servers(zone(ptr={"1.0.0.127.in-addr.arpa.": "a.example.net."},
                         a={"a.example.net.": "127.0.0.1"}, aaaa={"a.example.net.": []}))
    auth = AuthServer(lambda req: ok_response(backend.port))
    pop, smtp, pops = free_port(), free_port(), free_port()
    plain = (f"mail {{\n    auth_http {auth.url};\n"
             f"    server {{ listen 127.0.0.1:{pop}; protocol pop3; }}\n}}\n")
    p = Proxy(tmp_path, plain, main="worker_processes 1;\n", workers=True).start()
    try:
        assert "_rust.abi3.so" not in _maps(p.proc.pid)     # no certificate library
        p.wait_log("start worker process")
        old = [int(line.rsplit(" ", 1)[1]) for line in p.log().splitlines()
               if "start worker process" in line]
        text = (f"daemon off;\npid {p.pid_path};\nerror_log {p.log_path} debug;\n"
                f"worker_processes 1;\nevents {{}}\n"
                f"mail {{\n    auth_http {auth.url};\n"
                f"    ssl_certificate {pki['server_rsa_crt']};\n"
                f"    ssl_certificate_key {pki['server_rsa_key']};\n"
                f"    server {{ listen 127.0.0.1:{pop}; protocol pop3; }}\n"
                f"    server {{ listen 127.0.0.1:{pops} ssl; protocol pop3; }}\n"
                f"    server {{ listen 127.0.0.1:{smtp}; protocol smtp; "
                f"server_name proxyhost; resolver 127.0.0.1:{d.port}; }}\n}}\n")
        with open(p.conf, "w") as f:
            f.write(text)
        p.signal(signal.SIGHUP)
        p.wait_log("reconfiguring")
        deadline = time.time() + 10
        while p.log().count("start worker process") < 2 and time.time() < deadline:
            time.sleep(0.02)
        wait_exited(old)                # only the new worker accepts from here on
        # the new worker resolves the SMTP client's name and serves TLS
        s = socket.create_connection(("127.0.0.1", smtp), timeout=5)
        assert s.recv(200) == b"220 proxyhost ESMTP ready\r\n"
        s.close()
        assert d.asked()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", pops), timeout=5)) as t:
            assert t.recv(100) == b"+OK POP3 ready\r\n"
        assert "_rust.abi3.so" in _maps(p.proc.pid)
        log = p.log()
        assert "Traceback" not in log and "ModuleNotFoundError" not in log \
            and "PermissionError" not in log, log[-3000:]
    finally:
        p.stop()
        auth.close()


def test_workers_that_run_as_nobody_still_get_uvloop(tmp_path):
    """The event loop is made in the worker, after it became nobody: uvloop (and what it
    imports) must have been loaded by the master, or the worker silently falls back to
    asyncio's loop."""
    import importlib.util
    assert os.geteuid() == 0, "the tests run as root (as CI does)"
    assert importlib.util.find_spec("uvloop") is not None     # a dependency on Linux
    port = free_port()
    p = Proxy(tmp_path, f"mail {{ auth_http 127.0.0.1:9/a; server {{ listen 127.0.0.1:{port};"
                        f" protocol pop3; }} }}", main="worker_processes 1;\n",
              workers=True).start()
    try:
        p.wait_log("event loop")
        assert 'using the "uvloop" event loop' in p.log(), p.log()[-2000:]
    finally:
        p.stop()
