"""Operations: master and workers, reload under load, signals, -s, logs, daemon."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from proxy.conftest import pki  # noqa: F401  (the test certificates fixture)
from proxy.harness import AuthServer, Backend, Client, Proxy, free_port, ok_response


@pytest.fixture
def peers():
    backend = Backend()
    auth = AuthServer(lambda req: ok_response(backend.port))
    yield auth, backend
    auth.close()
    backend.close()


def mail_block(auth, port, caps="TOP USER UIDL", extra=""):
    return (f"mail {{\n    auth_http {auth.url};\n    pop3_capabilities {caps};\n{extra}"
            f"    server {{\n        listen 127.0.0.1:{port};\n        protocol pop3;\n    }}\n}}\n")


def start(tmp_path, auth, port, main="worker_processes 2;", **kw):
    p = Proxy(tmp_path, mail_block(auth, port, **kw), main=main, workers=True)
    p.start()
    return p


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [l.split(None, 1) for l in out.strip().splitlines() if l.strip()]


def wait_for(cond, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def login(c):
    c.line()
    c.send(b"USER test@example.com\r\nPASS secret\r\n")
    assert c.line() == b"+OK\r\n"
    assert c.line() == b"+OK pass ok\r\n"


def capa(port):
    c = Client(port)
    c.line()
    c.send(b"CAPA\r\n")
    out = c.read_until(b".\r\n")
    c.close()
    return out


def test_master_and_workers_with_titles(tmp_path, peers):
    auth, backend = peers
    port = free_port()
    p = start(tmp_path, auth, port)
    try:
        # a worker takes its title once its settings are applied, after the fork
        assert wait_for(lambda: [a for _, a in children(p.proc.pid)] ==
                        ["angie-mail: worker process #1"] * 2)
        with open(f"/proc/{p.proc.pid}/cmdline") as f:
            out = f.read().replace("\0", " ")
        from angie_mail import __version__
        assert out.startswith(f"angie-mail: master process v{__version__} #1 [")
        assert out.rstrip().endswith(f"-c {p.conf}]")
        with open(p.pid_path) as f:
            assert int(f.read()) == p.proc.pid
        for _ in range(6):
            c = Client(port)
            login(c)
            c.close()
    finally:
        p.stop()
    assert not os.path.exists(p.pid_path)


def test_reload_under_load(tmp_path, peers):
    auth, backend = peers
    port = free_port()
    p = start(tmp_path, auth, port)
    try:
        backend.messages = [b"Subject: big\r\n\r\n" + b"".join(
            b"line %07d of the message\r\n" % i for i in range(40000))]
        sessions = []
        for _ in range(3):
            c = Client(port)
            login(c)
            sessions.append(c)
        text = open(p.conf).read()
        with open(p.conf, "w") as f:
            f.write(text.replace("TOP USER UIDL", "TOP USER UIDL X-RELOADED"))
        p.signal(signal.SIGHUP)
        p.wait_log("reconfiguring")
        assert wait_for(lambda: b"X-RELOADED" in capa(port))
        for c in sessions:                       # old sessions still work, byte for byte
            c.send(b"RETR 1\r\n")
            got = c.read_until(b"\r\n.\r\n")
            assert got == b"+OK %d octets\r\n" % len(backend.messages[0]) + \
                backend.messages[0] + b".\r\n"
            c.send(b"QUIT\r\n")
            assert c.line() == b"+OK quit ok\r\n"
        assert wait_for(lambda: len(children(p.proc.pid)) == 2)
    finally:
        p.stop()


def test_titles_carry_the_reload_generation(tmp_path, peers):
    auth, backend = peers
    port = free_port()
    p = start(tmp_path, auth, port, main="worker_processes 1;")
    try:
        assert wait_for(lambda: [a for _, a in children(p.proc.pid)] ==
                        ["angie-mail: worker process #1"])
        c = Client(port)
        login(c)                            # keeps a generation-1 worker busy
        p.signal(signal.SIGHUP)
        assert wait_for(lambda: sorted(a for _, a in children(p.proc.pid)) ==
                        ["angie-mail: worker process #2",
                         "angie-mail: worker process is shutting down #1"])
        out = subprocess.run(["ps", "-o", "args=", "-p", str(p.proc.pid)],
                             capture_output=True, text=True).stdout
        assert " #2 [" in out
        c.send(b"QUIT\r\n")
        c.line()
        assert wait_for(lambda: [a for _, a in children(p.proc.pid)] ==
                        ["angie-mail: worker process #2"])
    finally:
        p.stop()


def test_broken_config_on_reload_keeps_old_one(tmp_path, peers):
    auth, backend = peers
    port = free_port()
    p = start(tmp_path, auth, port)
    try:
        # both workers forked and running (the pid file comes before them)
        assert wait_for(lambda: sum("worker process" in a for _, a in children(p.proc.pid))
                        == 2)
        before = sorted(pid for pid, _ in children(p.proc.pid))
        good = open(p.conf).read()
        with open(p.conf, "w") as f:
            f.write(good.replace("protocol pop3;", "protocol pop4;"))
        p.signal(signal.SIGHUP)
        log = p.wait_log('[emerg]')
        assert f'unknown protocol "pop4" in {p.conf}' in log
        # the failed reload returned before starting anything: no wait is needed
        assert sorted(pid for pid, _ in children(p.proc.pid)) == before
        assert b"TOP" in capa(port)
    finally:
        p.stop()


def refused_within(port, seconds=0.5) -> float:
    """Seconds until a connect to ``port`` is refused (ECONNREFUSED: no process holds
    the listening socket any more); fails after ``seconds``."""
    import socket
    t = time.time()
    while True:
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
        except (ConnectionRefusedError, ConnectionResetError):
            # refused; or reset: queued on the listening socket just as it was closed
            return time.time() - t
        finally:
            s.close()
        assert time.time() - t < seconds, "the port still accepts connections"
        time.sleep(0.01)


@pytest.mark.parametrize("main", ["worker_processes 2;", "master_process off;"])
def test_quit_stops_accepting_at_once_and_lets_sessions_finish(tmp_path, peers, main):
    auth, backend = peers
    port = free_port()
    p = start(tmp_path, auth, port, main=main)
    try:
        c = Client(port)
        login(c)
        p.signal(signal.SIGQUIT)
        refused_within(port)
        assert p.proc.poll() is None              # still serving the open session
        c.send(b"STAT\r\n")
        assert c.line() == b"+OK 1 22\r\n"
        c.send(b"QUIT\r\n")
        c.line()
        p.proc.wait(10)
        assert p.proc.returncode == 0
    finally:
        p.stop()


def test_reload_that_drops_a_listener_closes_it_everywhere(tmp_path, peers):
    auth, backend = peers
    port, gone = free_port(), free_port()
    p = start(tmp_path, auth, port, extra=f"    server {{ listen 127.0.0.1:{gone}; "
                                           f"protocol pop3; }}\n")
    try:
        c = Client(gone)
        login(c)                                  # a session on the port to be removed
        text = open(p.conf).read()
        with open(p.conf, "w") as f:
            f.write(text.replace(f"listen 127.0.0.1:{gone};", f"listen 127.0.0.1:{port};"
                                 ).replace(f"    server {{ listen 127.0.0.1:{port}; "
                                           f"protocol pop3; }}\n", ""))
        p.signal(signal.SIGHUP)
        p.wait_log("reconfiguring")
        refused_within(gone, 3)                   # neither old nor new workers hold it
        c.send(b"STAT\r\n")                       # the old session goes on
        assert c.line() == b"+OK 1 22\r\n"
        c2 = Client(port)
        login(c2)                                 # the kept port is served by new workers
    finally:
        p.stop()


def test_term_stops_at_once(tmp_path, peers):
    auth, backend = peers
    port = free_port()
    p = start(tmp_path, auth, port)
    try:
        c = Client(port)
        login(c)
        t = time.time()
        p.signal(signal.SIGTERM)
        p.proc.wait(10)
        assert time.time() - t < 3
        assert c.closed(3)
    finally:
        p.stop()


def test_worker_shutdown_timeout(tmp_path, peers):
    auth, backend = peers
    port = free_port()
    p = start(tmp_path, auth, port, main="worker_processes 1;\nworker_shutdown_timeout 1s;")
    try:
        c = Client(port)
        login(c)
        t = time.time()
        p.signal(signal.SIGQUIT)
        assert c.closed(5)
        assert 0.8 < time.time() - t < 4
        p.proc.wait(10)
    finally:
        p.stop()


def test_usr1_reopens_logs(tmp_path, peers):
    auth, backend = peers
    port = free_port()
    p = start(tmp_path, auth, port)
    try:
        Client(port).line()
        p.wait_log("client connected")
        moved = p.log_path + ".1"
        os.rename(p.log_path, moved)
        p.signal(signal.SIGUSR1)
        # each worker says so just before it reopens, in the same signal callback:
        # once both have, every later line goes to the new file
        assert wait_for(lambda: len(re.findall(r"\d+#\d+: reopening logs",
                                               open(moved).read())) == 2)
        assert os.path.exists(p.log_path)
        c = Client(port)
        c.line()
        p.wait_log("client connected")
        assert "signal 10 (SIGUSR1) received, reopening logs" in open(moved).read()
    finally:
        p.stop()


def test_killed_worker_is_replaced(tmp_path, peers):
    auth, backend = peers
    port = free_port()
    p = start(tmp_path, auth, port)
    try:
        assert wait_for(lambda: len(children(p.proc.pid)) == 2)
        victim = int(children(p.proc.pid)[0][0])
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(children(p.proc.pid)) == 2 and
                        victim not in [int(x) for x, _ in children(p.proc.pid)])
        assert f"worker process {victim} exited on signal 9" in p.wait_log("exited on signal")
        for _ in range(6):                        # every worker still accepts
            c = Client(port)
            login(c)
            c.close()
    finally:
        p.stop()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "angie_mail", *args], capture_output=True,
                          text=True, timeout=30)


def test_s_signals(tmp_path, peers):
    auth, backend = peers
    port = free_port()
    p = start(tmp_path, auth, port)
    try:
        r = _cli("-c", p.conf, "-s", "reopen")
        assert r.returncode == 0, r.stderr
        p.wait_log("reopening logs")
        r = _cli("-c", p.conf, "-s", "reload")
        assert r.returncode == 0
        p.wait_log("reconfiguring")
        r = _cli("-c", p.conf, "-s", "quit")
        assert r.returncode == 0
        p.proc.wait(10)
    finally:
        p.stop()
    r = _cli("-c", p.conf, "-s", "stop")
    assert r.returncode == 1
    assert r.stderr == (f'angie-mail: [error] open() "{p.pid_path}" failed '
                        f'(2: No such file or directory)\n')


def test_daemon_detaches(tmp_path, peers):
    auth, backend = peers
    port = free_port()
    pid_path = tmp_path / "d.pid"
    conf = tmp_path / "d.conf"
    conf.write_text(f"pid {pid_path};\nerror_log {tmp_path}/d.log info;\nevents {{}}\n"
                    + mail_block(auth, port))
    r = subprocess.run([sys.executable, "-m", "angie_mail", "-c", str(conf)],
                       capture_output=True, timeout=20)
    assert r.returncode == 0 and r.stderr == b""
    try:
        # (the file is created, then written: wait for its number)
        assert wait_for(lambda: pid_path.exists() and pid_path.read_text().strip())
        master = int(pid_path.read_text())
        c = Client(port)
        assert c.line() == b"+OK POP3 ready\r\n"
        assert os.getsid(master) == master            # its own session: detached
    finally:
        _cli("-c", str(conf), "-s", "stop")
    assert wait_for(lambda: not pid_path.exists())


def test_bind_error_in_master_mode(tmp_path, peers):
    import socket
    auth, backend = peers
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    p = Proxy(tmp_path, mail_block(auth, port), main="worker_processes 2;", workers=True)
    p.start(wait=False)
    p.proc.wait(10)
    err = p.proc.stderr.read().decode()
    p.stop()
    s.close()
    assert p.proc.returncode == 1
    assert err == (f"angie-mail: [emerg] bind() to 127.0.0.1:{port} failed "
                   f"(98: Address already in use)\n")


def test_worker_connections_limit(tmp_path, peers):
    auth, backend = peers
    port = free_port()
    p = Proxy(tmp_path, mail_block(auth, port), workers=False)
    text = open(p.conf).read().replace("events {}", "events { worker_connections 3; }")
    with open(p.conf, "w") as f:
        f.write(text)
    p.start()
    try:
        held = []
        for _ in range(3):
            c = Client(port)
            assert c.line() == b"+OK POP3 ready\r\n"
            held.append(c)
        extra = Client(port)
        assert extra.closed()
        assert extra.buf == b""
        assert "3 worker_connections are not enough" in p.wait_log("not enough")
        held[0].close()

        def served():
            c = Client(port, timeout=2)
            try:
                return c.line() == b"+OK POP3 ready\r\n"
            except OSError:
                return False
            finally:
                c.close()
        assert wait_for(served)             # the freed slot takes a new client
    finally:
        p.stop()


def test_user_drops_privileges(tmp_path, peers):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")   # CI runs as root
    auth, backend = peers
    port = free_port()
    p = start(tmp_path, auth, port, main="worker_processes 1;\nuser nobody nogroup;")
    try:
        assert wait_for(lambda: len(children(p.proc.pid)) == 1)
        pid = children(p.proc.pid)[0][0]
        owner = subprocess.run(["ps", "-o", "user=", "-p", pid], capture_output=True,
                               text=True).stdout.strip()
        assert owner == "nobody"
        c = Client(port)
        login(c)
    finally:
        p.stop()


def test_syslog_target(tmp_path, peers):
    import socket as so
    auth, backend = peers
    rx = so.socket(so.AF_INET, so.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    port = free_port()
    block = mail_block(auth, port, extra=f"    error_log syslog:server=127.0.0.1:"
                                         f"{rx.getsockname()[1]},tag=mailtest info;\n")
    p = Proxy(tmp_path, block, workers=False)
    p.start()
    try:
        Client(port).line()
        msg = rx.recv(4096).decode()
        # nginx's syslog MSG is the whole log line, its time and [level] included
        # (Angie's mail_error_log.t counts the levels in it)
        assert re.match(r"<190>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ mailtest: "
                        r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[info\] \d+#\d+: \*1 client "
                        r"connected while initializing session, ", msg), msg
    finally:
        p.stop()
        rx.close()


def test_signals_while_workers_start_do_not_kill_them(tmp_path, peers):
    """USR1 forwarded to a worker that is still starting waits for its handler
    (nginx's workers never die of a reopen)."""
    auth, backend = peers
    port = free_port()
    p = start(tmp_path, auth, port)
    try:
        assert wait_for(lambda: os.path.exists(p.pid_path) and open(p.pid_path).read())
        deadline = time.time() + 1.0
        while time.time() < deadline:           # every new worker gets some mid-start
            p.signal(signal.SIGUSR1)
            time.sleep(0.005)
        c = Client(port)
        login(c)
        log = p.log()
        assert "exited on signal" not in log, log
    finally:
        p.stop()


def test_connections_in_handshake_count_against_worker_connections(tmp_path, peers, pki):
    """Silent clients on an ssl listener hold a connection each, as in nginx: past
    worker_connections they are closed at once, with nginx's alert."""
    import socket
    from proxy.harness import tls_lines
    auth, backend = peers
    port = free_port()
    lines = "".join(f"        {l}\n" for l in tls_lines(pki))
    block = (f"mail {{\n    auth_http {auth.url};\n    server {{\n"
             f"        listen 127.0.0.1:{port} ssl;\n        protocol pop3;\n{lines}    }}\n}}\n")
    p = Proxy(tmp_path, block)
    text = open(p.conf).read().replace("events {}", "events { worker_connections 4; }")
    with open(p.conf, "w") as f:
        f.write(text)
    p.start()
    silent = []
    try:
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", port), timeout=3)
            silent.append(s)
        closed = 0
        for s in silent:
            s.settimeout(1.5)
            try:
                closed += s.recv(10) == b""
            except ConnectionResetError:
                closed += 1
            except socket.timeout:
                pass
        assert closed == 6
        assert "4 worker_connections are not enough" in p.wait_log("not enough")
    finally:
        for s in silent:
            s.close()
        p.stop()


@pytest.mark.parametrize("limit,reply", [(1, b"-ERR internal server error\r\n"),
                                         (2, b"+OK pass ok\r\n")])
def test_auth_and_backend_connections_count_against_worker_connections(tmp_path, peers,
                                                                       limit, reply):
    """A session needs one connection and its auth request a second; the auth
    connection is closed before the backend's is opened (as nginx's): without the
    second the login gets the internal-error reply."""
    auth, backend = peers
    port = free_port()
    p = Proxy(tmp_path, mail_block(auth, port))
    text = open(p.conf).read().replace("events {}",
                                       f"events {{ worker_connections {limit}; }}")
    with open(p.conf, "w") as f:
        f.write(text)
    p.start()
    try:
        c = Client(port)
        c.line()
        c.send(b"USER test@example.com\r\nPASS secret\r\n")
        assert c.line() == b"+OK\r\n"
        assert c.line() == reply
        if limit < 2:
            assert f"{limit} worker_connections are not enough" in p.wait_log("not enough")
    finally:
        p.stop()


def test_graceful_stop_completes_handshakes_in_progress(tmp_path, peers, pki):
    """A client in the middle of its TLS handshake when QUIT comes gets its session, as
    in nginx; the port refuses new connections meanwhile."""
    import socket
    from proxy.harness import client_ctx, tls_lines
    auth, backend = peers
    port = free_port()
    lines = "".join(f"        {l}\n" for l in tls_lines(pki))
    block = (f"mail {{\n    auth_http {auth.url};\n    server {{\n"
             f"        listen 127.0.0.1:{port} ssl;\n        protocol pop3;\n{lines}    }}\n}}\n")
    p = Proxy(tmp_path, block)
    p.start()
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        p.wait_log("client connected")            # accepted: its handshake waits for us
        p.signal(signal.SIGQUIT)
        refused_within(port, 2)
        s = client_ctx(pki).wrap_socket(raw)       # the handshake happens now
        assert s.recv(100) == b"+OK POP3 ready\r\n"
        s.sendall(b"USER test@example.com\r\nPASS secret\r\n")
        data = b""
        while data.count(b"\r\n") < 2:
            data += s.recv(100)
        assert data == b"+OK\r\n+OK pass ok\r\n"
        s.sendall(b"QUIT\r\n")
        s.recv(100)
        s.close()
        assert p.proc.wait(10) == 0
    finally:
        p.stop()


@pytest.mark.parametrize("workers", [True, False])
def test_start_up_notice_names_the_version(tmp_path, peers, workers):
    """nginx writes its version at start (``[notice] nginx/1.22.1``), and harnesses
    look for ``nginx/<version>`` in the global error log (Angie's mail_error_log.t)."""
    from angie_mail import NGINX_COMPAT, __version__
    auth, backend = peers
    port = free_port()
    p = Proxy(tmp_path, mail_block(auth, port), main="worker_processes 1;" if workers else "",
              workers=workers)
    p.start()
    try:
        log = p.wait_log("(nginx/")
        assert re.search(r"\[notice\] \d+#\d+: angie-mail/%s \(nginx/%s\)\n"
                         % (re.escape(__version__), re.escape(NGINX_COMPAT)), log), log
        assert log.count("(nginx/") == 1
    finally:
        p.stop()
