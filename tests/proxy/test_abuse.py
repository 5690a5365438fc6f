"""Brute-force defence (dialect angie-mail, docs/abuse.md) end to end: a scripted
attacker is slowed, then refused without the auth server being asked, while the real
user logs in at once; limits hold over two workers and a reload; limit_conn as
freenginx's; AUTH refused on an MX; the operator's list and clear."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from proxy.harness import AuthServer, Proxy, free_port, ok_response

ATTACKER = "127.0.0.3"
OWNER_HOME = "127.0.0.2"

THROTTLE = "auth_throttle guard addr=30/10m login=10/10m pair=5/10m delay=20ms max_delay=160ms;"


class Counting:
    """auth_http: "secret" logs in; counts the requests per client address."""

    def __init__(self, backend_port):
        self.by_addr = {}

        def handler(req):
            ip = req.get("Client-IP").decode()
            self.by_addr[ip] = self.by_addr.get(ip, 0) + 1
            if req.get("Auth-Pass") == b"secret":
                return ok_response(backend_port)
            return b"HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n\r\n"
        self.server = AuthServer(handler)

    @property
    def url(self):
        return self.server.url

    def close(self):
        self.server.close()


@pytest.fixture
def counting(backend):
    backend.users = {b"alice": b"secret", b"u": b"secret"}
    a = Counting(backend.port)
    yield a
    a.close()


def pop3_login(port, user: bytes, pw: bytes, src="127.0.0.1"):
    """(reply to PASS, seconds it took, reply to STAT or None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(src, 0))
    f = s.makefile("rb")
    try:
        f.readline()
        s.sendall(b"USER " + user + b"\r\n")
        f.readline()
        t = time.monotonic()
        s.sendall(b"PASS " + pw + b"\r\n")
        reply = f.readline()
        took = time.monotonic() - t
        stat = None
        if reply.startswith(b"+OK"):
            s.sendall(b"STAT\r\n")
            stat = f.readline()
        return reply, took, stat
    finally:
        f.close()
        s.close()


def proxy(tmp_path, auth_url, port, server_lines=(), mail_lines=(), workers=False,
          protocol="pop3", main=""):
    srv = "".join(f"        {l}\n" for l in server_lines)
    mail = "".join(f"    {l}\n" for l in mail_lines)
    block = (f"mail {{\n    auth_http {auth_url};\n    auth_throttle_zone zone=guard:1m;\n"
             f"{mail}    server {{\n        listen 127.0.0.1:{port};\n"
             f"        protocol {protocol};\n{srv}    }}\n}}\n")
    return Proxy(tmp_path, block, workers=workers,
                 main=main + ("worker_processes 2;\n" if workers else "")).start()


def test_attacker_is_slowed_then_refused_while_the_owner_logs_in_at_once(
        tmp_path, counting):
    port = free_port()
    p = proxy(tmp_path, counting.url, port, [THROTTLE])
    try:
        # the owner logged in earlier from the address the attacker now shares (NAT)
        assert pop3_login(port, b"alice", b"secret", ATTACKER)[0] == b"+OK pass ok\r\n"
        replies, times = [], []
        for i in range(300):                  # wrong passwords, spread over 60 logins
            reply, took, _ = pop3_login(port, b"user%d" % (i % 60), b"guess%d" % i, ATTACKER)
            replies.append(reply)
            times.append(took)
        failed = [i for i, r in enumerate(replies) if r == b"-ERR Invalid login or password\r\n"]
        refused = [i for i, r in enumerate(replies)
                   if r == b"-ERR [SYS/TEMP] Too many failed logins, try again later\r\n"]
        # slowed: each failure doubles the wait (20 ms ... capped at 160 ms)
        assert failed == list(range(30)) and refused == list(range(30, 300))
        assert min(times[1:30]) >= 0.018 and min(times[5:30]) >= 0.15
        # then refused at once, and the auth server was not asked again (1 + 30 requests)
        assert sorted(times[30:])[135] < 0.05 and max(times[30:]) < 0.5
        assert counting.by_addr[ATTACKER] == 31
        # the owner from home logs in at once, and from the shared address too (trusted)
        for src in (OWNER_HOME, ATTACKER):
            reply, took, stat = pop3_login(port, b"alice", b"secret", src)
            assert (reply, stat) == (b"+OK pass ok\r\n", b"+OK 1 22\r\n") and took < 0.5
        log = p.log()
        throttled = [line for line in log.splitlines() if "throttled" in line]
        assert len(throttled) == 299 and all('login: "u***"' in line for line in throttled)
        assert re.search(r'\[warn\] .* login throttled by zone "guard": refused, addr limit '
                         r'reached \(failures: addr 30/30, login [01]/10, pair 0/5\) while in '
                         r'http auth state, client: "127\.0\.0\.3:\d+", server: '
                         r'"127\.0\.0\.1:\d+", login: "u\*\*\*"', log)
        assert re.search(r'login throttled by zone "guard": delayed 0\.16s \(failures: '
                         r'addr 29/30, login 0/10, pair 0/5\)', log)
        assert "guess" not in log and "secret" not in log
    finally:
        p.stop()


def test_the_login_count_stops_a_distributed_attack_but_not_the_trusted_owner(
        tmp_path, counting):
    port = free_port()
    p = proxy(tmp_path, counting.url, port, [THROTTLE])
    try:
        assert pop3_login(port, b"alice", b"secret", OWNER_HOME)[0] == b"+OK pass ok\r\n"
        for i in range(12):                  # one guess from each of 12 addresses
            pop3_login(port, b"Alice", b"guess", f"127.0.1.{i + 1}")
        reply, _, _ = pop3_login(port, b"alice", b"secret", "127.0.2.1")
        assert reply == b"-ERR [SYS/TEMP] Too many failed logins, try again later\r\n"
        assert "127.0.2.1" not in counting.by_addr             # not asked
        reply, took, _ = pop3_login(port, b"alice", b"secret", OWNER_HOME)
        assert reply == b"+OK pass ok\r\n" and took < 0.1
    finally:
        p.stop()


def worker_pids(p, n):
    """The pids of the last ``n`` workers the master started (its log)."""
    deadline = time.time() + 10
    while True:
        pids = [int(line.rsplit(" ", 1)[1]) for line in p.log().splitlines()
                if "start worker process" in line]
        if len(pids) >= n or time.time() > deadline:
            return pids[-2:]
        time.sleep(0.02)


def test_limits_hold_across_two_workers_and_a_reload(tmp_path, counting):
    port = free_port()
    p = proxy(tmp_path, counting.url, port,
              ["auth_throttle guard addr=8/10m delay=0;"], workers=True)
    try:
        first = worker_pids(p, 2)
        # four failures served by each worker: the other one is stopped meanwhile
        for stopped in first:
            os.kill(stopped, signal.SIGSTOP)
            try:
                for i in range(4):
                    assert pop3_login(port, b"u%d" % i, b"x", ATTACKER)[0].startswith(
                        b"-ERR Invalid")
            finally:
                os.kill(stopped, signal.SIGCONT)
        served = {int(line.split("#")[0].split()[-1]) for line in p.log().splitlines()
                  if "client login failed" in line}
        assert served == set(first)
        for stopped in first:               # each worker refuses the ninth
            os.kill(stopped, signal.SIGSTOP)
            try:
                assert pop3_login(port, b"u", b"x", ATTACKER)[0].startswith(
                    b"-ERR [SYS/TEMP]")
            finally:
                os.kill(stopped, signal.SIGCONT)
        p.signal(signal.SIGHUP)
        p.wait_log("reconfiguring")
        second = worker_pids(p, 4)
        assert not set(second) & set(first)
        time.sleep(0.3)                     # the old workers have closed their listeners
        for _ in range(4):
            assert pop3_login(port, b"u", b"x", ATTACKER)[0].startswith(b"-ERR [SYS/TEMP]")
        refusers = {int(line.split("#")[0].split()[-1]) for line in p.log().splitlines()
                    if "refused, addr limit reached" in line}
        assert refusers & set(second)
        assert counting.by_addr[ATTACKER] == 8
    finally:
        p.stop()


def test_a_changed_zone_size_starts_empty_after_reload(tmp_path, counting):
    port = free_port()
    p = proxy(tmp_path, counting.url, port, ["auth_throttle guard addr=2/10m delay=0;"],
              workers=True)
    try:
        worker_pids(p, 2)
        for _ in range(3):
            pop3_login(port, b"u", b"x", ATTACKER)
        assert counting.by_addr[ATTACKER] == 2
        conf = open(p.conf).read().replace("zone=guard:1m", "zone=guard:2m")
        open(p.conf, "w").write(conf)
        p.signal(signal.SIGHUP)
        p.wait_log("reconfiguring")
        worker_pids(p, 4)
        time.sleep(0.3)
        assert pop3_login(port, b"u", b"x", ATTACKER)[0].startswith(b"-ERR Invalid")
    finally:
        p.stop()


def test_throttled_replies_in_imap_and_smtp(tmp_path, counting):
    import imaplib
    import smtplib
    iport, sport = free_port(), free_port()
    block = (f"mail {{\n    auth_http {counting.url};\n    auth_throttle_zone zone=guard:1m;\n"
             f"    auth_throttle guard pair=1/10m delay=0;\n"
             f"    server {{ listen 127.0.0.1:{iport}; protocol imap; }}\n"
             f"    server {{ listen 127.0.0.1:{sport}; protocol smtp; smtp_auth login plain; }}\n"
             f"}}\n")
    p = Proxy(tmp_path, block).start()
    try:
        m = imaplib.IMAP4("127.0.0.1", iport, timeout=10)
        with pytest.raises(imaplib.IMAP4.error):
            m.login("bob", "wrong")
        m = imaplib.IMAP4("127.0.0.1", iport, timeout=10)
        typ, data = m._simple_command("LOGIN", "bob", "wrong2")
        assert typ == "NO" and data == [b"[UNAVAILABLE] Too many failed logins, try again later"]
        s = smtplib.SMTP("127.0.0.1", sport, timeout=10)
        s.ehlo("x")
        assert s.docmd("AUTH", "PLAIN AGNhcm9sAHdyb25n")[0] == 535
        s = smtplib.SMTP("127.0.0.1", sport, timeout=10)
        s.ehlo("x")
        code, text = s.docmd("AUTH", "PLAIN AGNhcm9sAHdyb25n")       # carol / wrong
        assert (code, text) == (421, b"4.7.0 Too many failed logins, try again later")
        assert len(counting.server.requests) == 2
    finally:
        p.stop()


@pytest.mark.parametrize("protocol", ["pop3", "imap", "smtp"])
def test_limit_conn_per_user_as_freenginx(tmp_path, protocol):
    from proxy.harness import Backend, ImapBackend, SmtpBackend
    b = {"pop3": Backend, "imap": ImapBackend, "smtp": SmtpBackend}[protocol]()
    b.users = {b"alice": b"secret"}
    auth = AuthServer(lambda req: ok_response(b.port))
    port = free_port()
    extra = "smtp_auth login plain;" if protocol == "smtp" else ""
    block = (f"mail {{\n    auth_http {auth.url};\n"
             f"    limit_conn_zone $remote_user zone=user:1m;\n"
             f"    server {{ listen 127.0.0.1:{port}; protocol {protocol}; {extra}\n"
             f"             limit_conn user 1; limit_conn_log_level warn; }}\n}}\n")
    p = Proxy(tmp_path, block).start()
    login = {"pop3": b"USER alice\r\nPASS secret\r\n",
             "imap": b"a LOGIN alice secret\r\n",
             "smtp": b"EHLO x\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"}[protocol]
    refused = {"pop3": b"-ERR [SYS/TEMP] Too many connections\r\n",
               "imap": b"a NO [UNAVAILABLE] Too many connections\r\n",
               "smtp": b"421 4.7.0 Too many connections\r\n"}[protocol]

    success = {"pop3": b"+OK pass ok\r\n", "imap": b"a OK", "smtp": b"235 "}[protocol]

    def session():
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(login)
        data = b""
        while refused not in data and success not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return s, data

    try:
        first, data = session()
        assert refused not in data, data
        second, data = session()
        assert data.endswith(refused), data
        second.settimeout(5)
        assert second.recv(100) == b""                       # closed
        second.close()
        assert 'limiting connections by zone "user"' in p.wait_log("limiting connections")
        first.close()
        deadline = time.time() + 5
        while True:                                           # released at the session end
            third, data = session()
            third.close()
            if refused not in data or time.time() > deadline:
                break
            time.sleep(0.05)
        assert refused not in data
    finally:
        p.stop()
        auth.close()
        b.close()


def test_limit_conn_dry_run_only_logs(tmp_path, backend, auth):
    backend.users = {b"a": b"secret", b"b": b"secret"}
    port = free_port()
    block = (f"mail {{\n    auth_http {auth.url};\n"
             f"    limit_conn_zone $remote_addr zone=addr:1m;\n"
             f"    server {{ listen 127.0.0.1:{port}; protocol pop3;\n"
             f"             limit_conn addr 1; limit_conn_dry_run on; }}\n}}\n")
    p = Proxy(tmp_path, block).start()
    try:
        keep = socket.create_connection(("127.0.0.1", port), timeout=10)
        f = keep.makefile("rb")
        f.readline()
        keep.sendall(b"USER a\r\nPASS secret\r\n")
        f.readline()
        assert f.readline() == b"+OK pass ok\r\n"
        assert pop3_login(port, b"b", b"secret")[0] == b"+OK pass ok\r\n"
        p.wait_log('limiting connections, dry run, by zone "addr"')
        keep.close()
    finally:
        p.stop()


def test_limit_conn_by_auth_server_header(tmp_path, backend):
    """$auth_http_<name>: a key the auth server chooses (freenginx)."""
    backend.users = {b"a@example.org": b"x", b"b@example.org": b"x"}
    auth = AuthServer(lambda req: ok_response(backend.port, extra=b"X-Domain: example.org\r\n"))
    port = free_port()
    block = (f"mail {{\n    auth_http {auth.url};\n"
             f"    limit_conn_zone $auth_http_x_domain zone=dom:1m;\n"
             f"    server {{ listen 127.0.0.1:{port}; protocol pop3; limit_conn dom 1; }}\n}}\n")
    p = Proxy(tmp_path, block).start()
    try:
        keep = socket.create_connection(("127.0.0.1", port), timeout=10)
        f = keep.makefile("rb")
        f.readline()
        keep.sendall(b"USER a@example.org\r\nPASS x\r\n")
        f.readline()
        assert f.readline() == b"+OK pass ok\r\n"
        assert pop3_login(port, b"b@example.org", b"x")[0] == \
            b"-ERR [SYS/TEMP] Too many connections\r\n"
        keep.close()
    finally:
        p.stop()
        auth.close()


def test_mx_refuses_auth_without_asking_the_auth_server(tmp_path):
    import smtplib
    from proxy.harness import SmtpBackend
    b = SmtpBackend()
    auth = AuthServer(lambda req: ok_response(b.port))
    port = free_port()
    block = (f"mail {{\n    auth_http {auth.url};\n"
             f"    server {{ listen 127.0.0.1:{port}; protocol smtp; smtp_auth none;\n"
             f"             smtp_refuse_auth on; max_errors 3; }}\n}}\n")
    p = Proxy(tmp_path, block).start()
    try:
        s = smtplib.SMTP("127.0.0.1", port, timeout=10)
        s.ehlo("x")
        assert not s.has_extn("auth")
        assert s.docmd("AUTH", "PLAIN AGEAYg==") == (503, b"5.5.1 Authentication not enabled")
        assert s.docmd("AUTH", "LOGIN") == (503, b"5.5.1 Authentication not enabled")
        assert s.docmd("AUTH", "PLAIN AGEAYg==") == (503, b"5.5.1 Authentication not enabled")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.docmd("NOOP")
        # mail is still accepted (the none flow asks the auth server at RCPT)
        s = smtplib.SMTP("127.0.0.1", port, timeout=10)
        s.ehlo("x")
        assert s.docmd("MAIL", "FROM:<a@example.org>")[0] == 250
        assert [r.get("Auth-Method") for r in auth.requests] == []
        s.docmd("RCPT", "TO:<b@example.org>")
        assert [r.get("Auth-Method") for r in auth.requests] == [b"none"]
        s.close()
    finally:
        p.stop()
        auth.close()
        b.close()


def test_operator_lists_and_clears_penalties(tmp_path, counting):
    port = free_port()
    p = proxy(tmp_path, counting.url, port, ["auth_throttle guard addr=3/10m delay=0;"],
              workers=True)
    cmd = [sys.executable, "-m", "angie_mail", "throttle"]
    try:
        for _ in range(4):
            pop3_login(port, b"u", b"x", ATTACKER)
        assert pop3_login(port, b"u", b"x", ATTACKER)[0].startswith(b"-ERR [SYS/TEMP]")
        out = subprocess.run(cmd + ["list", "-c", p.conf], capture_output=True, text=True,
                             check=True).stdout
        assert f"  addr  {ATTACKER}  failures 3 (window since" in out
        assert out.startswith("zone guard: ")
        out = subprocess.run(cmd + ["clear", "--addr", ATTACKER, "-c", p.conf],
                             capture_output=True, text=True, check=True).stdout
        assert out == "zone guard: 1 entry cleared\n"
        assert pop3_login(port, b"u", b"x", ATTACKER)[0].startswith(b"-ERR Invalid")
        r = subprocess.run(cmd + ["list", "--zone", "nope", "-c", p.conf],
                           capture_output=True, text=True)
        assert r.returncode == 1 and 'no zone "nope"' in r.stderr
    finally:
        p.stop()


def test_decisions_are_counted_in_the_metrics(tmp_path, counting):
    from proxy.test_metrics import scrape
    port, mport = free_port(), free_port()
    p = proxy(tmp_path, counting.url, port,
              ["auth_throttle guard addr=3/10m delay=10ms;"],
              mail_lines=[f"metrics_listen 127.0.0.1:{mport};"])
    try:
        for _ in range(6):         # 1 asked at once, 2 delayed then asked, 3 refused
            pop3_login(port, b"u", b"x", ATTACKER)
        m = scrape(mport)
        server = (("server", f"127.0.0.1:{port}"),)
        got = {d: m.get(("angie_mail_throttle_decisions_total",
                         tuple(sorted(server + (("decision", d),)))))
               for d in ("delayed", "refused")}
        assert got == {"delayed": 2.0, "refused": 3.0}
        assert counting.by_addr[ATTACKER] == 3
    finally:
        p.stop()


def test_ipv6_clients_are_counted_by_their_64(tmp_path, counting):
    port = free_port()
    block = (f"mail {{\n    auth_http {counting.url};\n    auth_throttle_zone zone=guard:1m;\n"
             f"    server {{ listen [::1]:{port}; protocol pop3;\n"
             f"             auth_throttle guard addr=2/10m delay=0; }}\n}}\n")
    p = Proxy(tmp_path, block).start()
    try:
        for _ in range(2):
            s = socket.create_connection(("::1", port), timeout=10)
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"USER u\r\nPASS x\r\n")
            f.readline()
            assert f.readline().startswith(b"-ERR Invalid")
            s.close()
        out = subprocess.run([sys.executable, "-m", "angie_mail", "throttle", "list",
                              "-c", p.conf], capture_output=True, text=True).stdout
        assert "  addr  ::/64  failures 2 (window since" in out, out
    finally:
        p.stop()


def test_ipv4_clients_of_a_dual_stack_socket_are_counted_by_their_address(tmp_path, counting):
    """listen [::]:port ipv6only=off: IPv4 clients arrive as ::ffff:a.b.c.d; each is
    counted by its IPv4 address, not lumped into one /64 with every other one."""
    port = free_port()
    block = (f"mail {{\n    auth_http {counting.url};\n    auth_throttle_zone zone=guard:1m;\n"
             f"    server {{ listen [::]:{port} ipv6only=off; protocol pop3;\n"
             f"             auth_throttle guard addr=2/10m delay=0; }}\n}}\n")
    p = Proxy(tmp_path, block).start()
    try:
        for _ in range(2):
            assert pop3_login(port, b"u", b"x", ATTACKER)[0].startswith(b"-ERR Invalid")
        assert pop3_login(port, b"u", b"x", ATTACKER)[0].startswith(b"-ERR [SYS/TEMP]")
        assert pop3_login(port, b"u", b"x", OWNER_HOME)[0].startswith(b"-ERR Invalid")
        out = subprocess.run([sys.executable, "-m", "angie_mail", "throttle", "list",
                              "-c", p.conf], capture_output=True, text=True).stdout
        assert f"  addr  {ATTACKER}  failures 2 (window since" in out, out
    finally:
        p.stop()
