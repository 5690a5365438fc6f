"""The POP3 proxy end to end: a real angie-mail process between a raw client (or
poplib), an in-test auth_http server and a scripted backend."""

import base64
import re
import poplib
import socket
import threading
import time

import pytest

from proxy.harness import AuthServer, Backend, Client, fail_response, free_port, ok_response


def login(c: Client, user=b"test@example.com", pw=b"secret"):
    c.send(b"USER " + user + b"\r\n")
    assert c.line() == b"+OK\r\n"
    c.send(b"PASS " + pw + b"\r\n")
    return c.line()


def test_user_pass_transcript_and_relay(auth, backend, start_proxy):
    p, port = start_proxy(auth_url=auth.url)
    c = Client(port)
    assert c.line() == b"+OK POP3 ready\r\n"
    assert login(c) == b"+OK pass ok\r\n"
    req = auth.requests[0]
    assert req.raw == (b"GET /mail/auth HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: plain\r\n"
                       b"Auth-User: test@example.com\r\nAuth-Pass: secret\r\n"
                       b"Auth-Protocol: pop3\r\nAuth-Login-Attempt: 1\r\n"
                       b"Client-IP: 127.0.0.1\r\n\r\n")
    assert backend.lines[:2] == [b"USER test@example.com", b"PASS secret"]
    c.send(b"STAT\r\n")
    assert c.line() == b"+OK 1 22\r\n"
    c.send(b"RETR 1\r\n")
    assert c.read_until(b"\r\n.\r\n") == b"+OK 22 octets\r\nSubject: hi\r\n\r\nhello\r\n.\r\n"
    c.send(b"QUIT\r\n")
    assert c.line() == b"+OK quit ok\r\n"
    assert c.closed()
    log = p.wait_log("proxied session done")
    assert "client logged in" in log
    assert 'login: "test@example.com", upstream: "127.0.0.1:%d"' % backend.port in log


def test_poplib_client(auth, backend, start_proxy):
    backend.messages = [b"Subject: a\r\n\r\n.dot line\r\n..two\r\nend\r\n"]
    p, port = start_proxy(auth_url=auth.url)
    m = poplib.POP3("127.0.0.1", port, timeout=5)
    m.user("test@example.com")
    assert m.pass_("secret") == b"+OK pass ok"
    assert m.stat() == (1, len(backend.messages[0]))
    resp, lines, octets = m.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == backend.messages[0]
    m.quit()


def test_auth_failure_without_wait_closes(auth, backend, start_proxy):
    p, port = start_proxy(auth_url=auth.url)
    c = Client(port)
    c.line()
    assert login(c, pw=b"wrong") == b"-ERR Invalid login or password\r\n"
    assert c.closed()
    assert 'client login failed: "Invalid login or password"' in p.wait_log("login failed")
    assert backend.connections == 0


def test_auth_failure_with_wait_keeps_session(backend, start_proxy):
    def handler(req):
        if req["Auth-Pass"] == b"secret":
            return ok_response(backend.port)
        return fail_response(wait=1)
    auth = AuthServer(handler)
    try:
        p, port = start_proxy(auth_url=auth.url)
        c = Client(port)
        c.line()
        t = time.time()
        assert login(c, pw=b"bad") == b"-ERR Invalid login or password\r\n"
        assert time.time() - t >= 0.9
        assert login(c) == b"+OK pass ok\r\n"
        assert [r["Auth-Login-Attempt"] for r in auth.requests] == [b"1", b"2"]
    finally:
        auth.close()


def test_wait_status_retries_same_attempt(backend, start_proxy):
    answers = [b"HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\nAuth-Wait: 1\r\n\r\n",
               b"HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\n\r\n",
               ok_response(backend.port)]
    auth = AuthServer(lambda req: answers.pop(0))
    try:
        p, port = start_proxy(auth_url=auth.url)
        c = Client(port)
        c.line()
        assert login(c) == b"+OK pass ok\r\n"
        assert [r["Auth-Login-Attempt"] for r in auth.requests] == [b"1", b"1", b"1"]
    finally:
        auth.close()


@pytest.mark.parametrize("response", [
    "close",                                                   # closes without answering
    b"garbage without an end",                                 # never ends the header
    b"HTTP/1.0 200 OK\r\nAuth_Status: OK\r\n\r\n",             # "_" in a header name
    b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n\r\n",             # no Auth-Server/Port
    b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: localhost\r\nAuth-Port: 110\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nX: " + b"a" * 1100 + b"\r\n\r\n",     # over 1024 bytes
    b"HTTP/1.0 200 OK\r\nBad Header: x\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nAuth-Status: OK\rX\r\n\r\n",          # bare CR
])
def test_auth_server_malfunction_is_internal_error(backend, start_proxy, response):
    auth = AuthServer(lambda req: response)
    try:
        p, port = start_proxy(auth_url=auth.url)
        c = Client(port)
        c.line()
        assert login(c) == b"-ERR internal server error\r\n"
        assert c.closed()
    finally:
        auth.close()


def test_auth_server_down_and_others_still_served(auth, backend, start_proxy):
    dead = free_port()
    p, port = start_proxy(auth_url=f"127.0.0.1:{dead}/x")
    c = Client(port)
    c.line()
    assert login(c) == b"-ERR internal server error\r\n"
    assert c.closed()
    assert "connect() failed (111: Connection refused)" in p.wait_log("connect() failed")
    c2 = Client(port)
    assert c2.line() == b"+OK POP3 ready\r\n"


def test_auth_server_timeout(backend, start_proxy):
    auth = AuthServer(lambda req: ("sleep", 3, ok_response(backend.port)))
    try:
        p, port = start_proxy(auth_url=auth.url, mail_lines=["auth_http_timeout 1s;"])
        c = Client(port)
        c.line()
        t = time.time()
        assert login(c) == b"-ERR internal server error\r\n"
        assert 0.9 <= time.time() - t < 2.5
        assert f"auth http server 127.0.0.1:{auth.port} timed out (110: Connection timed out)" \
            " while in http auth state," in p.wait_log("timed out")
    finally:
        auth.close()


def test_status_line_ignored_and_optional(backend, start_proxy):
    answers = [b"HTTP/1.0 500 Internal Server Error\r\n" + ok_response(backend.port)[17:],
               ok_response(backend.port)[17:]]           # no status line at all
    auth = AuthServer(lambda req: answers.pop(0))
    try:
        p, port = start_proxy(auth_url=auth.url)
        for _ in range(2):
            c = Client(port)
            c.line()
            assert login(c) == b"+OK pass ok\r\n"
            c.close()
    finally:
        auth.close()


def test_status_is_case_sensitive(backend, start_proxy):
    auth = AuthServer(lambda req: b"HTTP/1.0 200 OK\r\nAuth-Status: ok\r\n\r\n")
    try:
        p, port = start_proxy(auth_url=auth.url)
        c = Client(port)
        c.line()
        assert login(c) == b"-ERR ok\r\n"
    finally:
        auth.close()


def test_apop_salt_and_auth_pass_required(backend, start_proxy):
    answers = [ok_response(backend.port),
               ok_response(backend.port, extra=b"Auth-Pass: secret\r\n")]
    auth = AuthServer(lambda req: answers.pop(0))
    try:
        p, port = start_proxy(auth_url=auth.url, server_lines=["pop3_auth apop;"],
                              mail_lines=["server_name mail.example.com;"])
        c = Client(port)
        greeting = c.line()
        salt = greeting[len(b"+OK POP3 ready "):-2]
        assert greeting.startswith(b"+OK POP3 ready <") and salt.endswith(b"@mail.example.com>")
        c.send(b"APOP test@example.com " + b"0" * 32 + b"\r\n")
        assert c.line() == b"-ERR internal server error\r\n"
        assert "did not send password" in p.wait_log("did not send password")
        assert auth.requests[0]["Auth-Salt"] == salt
        assert auth.requests[0]["Auth-Method"] == b"apop"
        c = Client(port)
        c.line()
        c.send(b"APOP test@example.com " + b"0" * 32 + b"\r\n")
        assert c.line() == b"+OK pass ok\r\n"
        assert backend.lines[-1] == b"PASS secret"
    finally:
        auth.close()


def test_auth_user_overrides_login(backend, start_proxy):
    auth = AuthServer(lambda req: ok_response(backend.port, extra=b"Auth-User: test@example.com\r\n"))
    try:
        p, port = start_proxy(auth_url=auth.url)
        c = Client(port)
        c.line()
        assert login(c, user=b"alias") == b"+OK pass ok\r\n"
        assert backend.lines[0] == b"USER test@example.com"
    finally:
        auth.close()


def test_escaping_and_extra_headers(backend, start_proxy):
    auth = AuthServer(lambda req: fail_response())
    try:
        p, port = start_proxy(auth_url=auth.url,
                              mail_lines=["auth_http_header X-Auth-Key secret_string;",
                                          'auth_http_header X-Two "a b";'])
        c = Client(port)
        c.line()
        c.send(b"USER te st%\r\n")
        c.line()
        c.send(b"PASS p\xe9 %\r\n")
        c.line()
        raw = auth.requests[0].raw
        assert b"Auth-User: te%20st%25\r\n" in raw
        assert b"Auth-Pass: p\xe9%20%25\r\n" in raw
        assert raw.endswith(b"Client-IP: 127.0.0.1\r\nX-Auth-Key: secret_string\r\n"
                            b"X-Two: a b\r\n\r\n")
    finally:
        auth.close()


@pytest.mark.parametrize("pass_error", [False, True])
def test_backend_refuses_login(auth, backend, start_proxy, pass_error):
    backend.users = {}
    lines = ["proxy_pass_error_message on;"] if pass_error else []
    p, port = start_proxy(auth_url=auth.url, mail_lines=lines)
    c = Client(port)
    c.line()
    reply = login(c)
    if pass_error:
        assert reply == b"-ERR authentication failed\r\n"
    else:
        assert reply == b"-ERR internal server error\r\n"
    assert c.closed()
    # every read during the login is "reading response from upstream", as in Angie
    assert 'upstream sent invalid response: "-ERR authentication failed" while reading ' \
        'response from upstream,' in p.wait_log("invalid response")


@pytest.mark.parametrize("greeting,expect_log", [
    (b"-ERR go away\r\n", "upstream sent invalid response"),
    (None, ""),                                            # closes at once
    (b"+OK " + b"x" * 5000, "upstream sent too long response line"),
])
def test_backend_greeting_problems(auth, backend, start_proxy, greeting, expect_log):
    backend.greeting = greeting
    p, port = start_proxy(auth_url=auth.url)
    c = Client(port)
    c.line()
    assert login(c) == b"-ERR internal server error\r\n"
    assert c.closed()
    if expect_log:
        p.wait_log(expect_log)


def test_backend_unreachable(start_proxy):
    dead = free_port()
    auth = AuthServer(lambda req: ok_response(dead))
    try:
        p, port = start_proxy(auth_url=auth.url)
        c = Client(port)
        c.line()
        assert login(c) == b"-ERR internal server error\r\n"
        assert c.closed()
    finally:
        auth.close()


def test_backend_login_timeout(start_proxy):
    import socket as so
    silent = so.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    auth = AuthServer(lambda req: ok_response(silent.getsockname()[1]))
    try:
        p, port = start_proxy(auth_url=auth.url, mail_lines=["timeout 1s;"])
        c = Client(port)
        c.line()
        t = time.time()
        assert login(c) == b"-ERR internal server error\r\n"
        assert 0.9 <= time.time() - t < 3
        # nothing came: the action is still the connect's (Angie's log context)
        assert "upstream timed out (110: Connection timed out) while connecting to upstream," in \
            p.wait_log("upstream timed out")
    finally:
        auth.close()
        silent.close()


def test_backend_silent_after_greeting_times_out_sending_user(start_proxy):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    conns = []

    def greet():
        conn, _ = silent.accept()
        conns.append(conn)
        conn.sendall(b"+OK ready\r\n")
    t = threading.Thread(target=greet, daemon=True)
    t.start()
    auth = AuthServer(lambda req: ok_response(silent.getsockname()[1]))
    try:
        p, port = start_proxy(auth_url=auth.url, mail_lines=["timeout 1s;"])
        c = Client(port)
        c.line()
        assert login(c) == b"-ERR internal server error\r\n"
        # the last thing done was sending USER: that is the log context
        assert "upstream timed out (110: Connection timed out) while sending user name to upstream," in \
            p.wait_log("upstream timed out")
    finally:
        auth.close()
        silent.close()
        for conn in conns:
            conn.close()


def test_pipelined_commands_reach_backend_after_login(auth, backend, start_proxy):
    p, port = start_proxy(auth_url=auth.url)
    c = Client(port)
    c.line()
    c.send(b"USER test@example.com\r\nPASS secret\r\nSTAT\r\nNOOP\r\n")
    assert c.line() == b"+OK\r\n"
    assert c.line() == b"+OK pass ok\r\n"
    assert c.line() == b"+OK 1 22\r\n"
    assert c.line() == b"+OK\r\n"
    assert backend.lines[:4] == [b"USER test@example.com", b"PASS secret", b"STAT", b"NOOP"]


def test_auth_login_pipelined(auth, backend, start_proxy):
    p, port = start_proxy(auth_url=auth.url)
    c = Client(port)
    c.line()
    c.send(b"AUTH LOGIN\r\n" + base64.b64encode(b"test@example.com") + b"\r\n"
           + base64.b64encode(b"secret") + b"\r\n")
    assert c.line() == b"+ VXNlcm5hbWU6\r\n"
    assert c.line() == b"+ UGFzc3dvcmQ6\r\n"
    assert c.line() == b"+OK pass ok\r\n"


def test_preauth_timeout_closes_silently(auth, start_proxy):
    p, port = start_proxy(auth_url=auth.url, mail_lines=["timeout 1s;"])
    c = Client(port)
    c.line()
    t = time.time()
    c.send(b"NOOP\r\n")
    assert c.line() == b"+OK\r\n"
    assert c.closed(5)
    assert c.buf == b""
    assert 0.9 <= time.time() - t < 2.5            # a deadline, not refreshed by NOOP
    assert "client timed out (110: Connection timed out) while in auth state," in \
        p.wait_log("client timed out")


def test_proxy_timeout_closes_idle_session(auth, backend, start_proxy):
    p, port = start_proxy(auth_url=auth.url, mail_lines=["proxy_timeout 1s;"])
    c = Client(port)
    c.line()
    assert login(c) == b"+OK pass ok\r\n"
    t = time.time()
    assert c.closed(5)
    assert 0.9 <= time.time() - t < 3
    assert "client timed out (110: Connection timed out) while proxying," in \
        p.wait_log("client timed out")


def test_limits_over_the_wire(auth, start_proxy):
    p, port = start_proxy(auth_url=auth.url, mail_lines=["max_errors 2;"])
    c = Client(port)
    c.line()
    c.send(b"FOO\r\n")
    assert c.line() == b"-ERR invalid command\r\n"
    c.send(b"BAR\r\n")
    assert c.line() == b"-ERR invalid command\r\n"
    assert c.closed()
    c = Client(port)
    c.line()
    c.send(b"PASS " + b"s" * 200 + b"\r\n")
    assert c.line() == b"-ERR invalid command\r\n"
    assert c.closed()
    assert 'client sent too long command "PASS ***"' in p.wait_log("too long command")


def test_stls_without_tls_configured(auth, start_proxy):
    p, port = start_proxy(auth_url=auth.url)
    c = Client(port)
    c.line()
    c.send(b"STLS\r\nCAPA\r\n")
    assert c.line() == b"-ERR invalid command\r\n"
    assert c.read_until(b".\r\n") == (b"+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\n"
                                      b"SASL PLAIN LOGIN\r\n.\r\n")


def test_server_chosen_by_local_address(auth, start_proxy):
    port = free_port()
    block = (f"mail {{\n    auth_http {auth.url};\n    pop3_auth apop;\n"
             f"    server {{ listen {port}; protocol pop3; server_name wild; }}\n"
             f"    server {{ listen 127.0.0.2:{port}; protocol pop3; server_name two; }}\n}}\n")
    p, _ = start_proxy(mail_block=block)
    assert Client(port, "127.0.0.1").line().endswith(b"@wild>\r\n")
    assert Client(port, "127.0.0.2").line().endswith(b"@two>\r\n")


def test_pop3_imap_and_smtp_servers_in_one_configuration(tmp_path, auth):
    """Every mail protocol of Angie is served: a configuration with all three starts."""
    from proxy.harness import Proxy
    ports = [free_port() for _ in range(3)]
    p = Proxy(tmp_path, f"mail {{ auth_http {auth.url}; server_name proxyhost;\n"
                        + "".join(f"server {{ listen 127.0.0.1:{port}; protocol {proto}; }}\n"
                                  for port, proto in zip(ports, ("pop3", "imap", "smtp")))
                        + "}")
    p.start()
    try:
        assert Client(ports[0]).line() == b"+OK POP3 ready\r\n"
        assert Client(ports[1]).line() == b"* OK IMAP4 ready\r\n"
        assert Client(ports[2]).line() == b"220 proxyhost ESMTP ready\r\n"
    finally:
        p.stop()


def test_busy_port_is_a_clean_emerg(tmp_path, auth):
    import socket as so
    from proxy.harness import Proxy
    s = so.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    p = Proxy(tmp_path, f"mail {{ auth_http {auth.url}; server {{ listen 127.0.0.1:{port}; "
                        f"protocol pop3; }} }}")
    p.start(wait=False)
    p.proc.wait(10)
    err = p.proc.stderr.read().decode()
    p.stop()
    s.close()
    assert p.proc.returncode == 1
    assert f"angie-mail: [emerg] bind() to 127.0.0.1:{port} failed (98: Address already in use)" \
        in err


def test_secrets_never_logged(backend, start_proxy):
    auth = AuthServer(lambda req: ok_response(backend.port, extra=b"Auth-Pass: secret\r\n"))
    try:
        p, port = start_proxy(auth_url=auth.url, server_lines=["pop3_auth plain cram-md5;"])
        # (what is sent, the replies it gets: once they are in, its log lines are written)
        for send, replies in [
                (b"USER test@example.com\r\nPASS S3cr3tPass\r\n", 2),
                (b"AUTH PLAIN " + base64.b64encode(b"\0test@example.com\0S3cr3tPass")
                 + b"\r\n", 1),
                (b"PASS S3cr3tPass" + b"x" * 200 + b"\r\n", 1),
                (b"AUTH LOGIN\r\n" + base64.b64encode(b"u") + b"\r\n"
                 + base64.b64encode(b"S3cr3tPass") + b"\r\n", 3)]:
            c = Client(port)
            c.line()
            c.send(send)
            for _ in range(replies):
                assert c.line()
            c.close()
        # every session's last line before its last reply is in (the last one's backend
        # does not know the user "u": its refusal is logged)
        log = p.wait_log('upstream sent invalid response: "-ERR authentication failed"')
        assert log.count("client logged in") == 2
        assert "client sent too long command" in log
        assert "S3cr3tPass" not in log
        assert base64.b64encode(b"\0test@example.com\0S3cr3tPass").decode() not in log
        assert "secret" not in log.lower().replace("secret_", "")
    finally:
        auth.close()


def _echo_backend_session(rfile, wfile):
    wfile.write(b"+OK echo\r\n")
    wfile.flush()
    for _command in (b"USER", b"PASS"):      # the backend login: any answer is +OK
        rfile.readline()
        wfile.write(b"+OK\r\n")
        wfile.flush()
    while True:
        chunk = rfile.read1(1 << 20)
        if not chunk:
            return
        wfile.write(chunk)
        wfile.flush()


def test_large_transfer_both_ways_byte_exact(start_proxy):
    """50 MB through the relay in each direction, four sessions at once."""
    backend = Backend()
    backend.session = _echo_backend_session
    auth = AuthServer(lambda req: ok_response(backend.port))
    try:
        p, port = start_proxy(auth_url=auth.url, mail_lines=["proxy_buffer 16k;"])
        size = 50 * 1024 * 1024
        errors = []
        done = []

        def one(seed):
            try:
                transfer(seed)
                done.append(seed)
            except Exception as e:          # reported by the main thread
                errors.append((seed, repr(e)))

        def transfer(seed):
            import hashlib
            import random
            rnd = random.Random(seed)
            block = bytes(rnd.getrandbits(8) for _ in range(1 << 16))
            c = Client(port, timeout=60)
            c.line()
            assert login(c, pw=b"x") == b"+OK\r\n"
            sent = hashlib.sha256()
            got = hashlib.sha256()
            received = 0

            def reader():
                nonlocal received
                buf = c.buf
                c.buf = b""
                got.update(buf)
                received += len(buf)
                while received < size:
                    chunk = c.sock.recv(1 << 20)
                    if not chunk:
                        break
                    got.update(chunk)
                    received += len(chunk)
            t = threading.Thread(target=reader)
            t.start()
            n = 0
            while n < size:
                part = block[: min(len(block), size - n)]
                c.sock.sendall(part)
                sent.update(part)
                n += len(part)
            t.join(120)
            assert received == size, (received, size)
            assert sent.digest() == got.digest()
            c.close()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert errors == []
        assert sorted(done) == [0, 1, 2, 3]
    finally:
        auth.close()
        backend.close()


def test_out_of_descriptors_pauses_accepting(auth, backend, start_proxy):
    """EMFILE on accept: logged at crit as nginx does, accepting pauses (no spinning on
    the still-readable listening socket) and resumes once descriptors are free."""
    p, port = start_proxy(auth_url=auth.url, main="worker_rlimit_nofile 48;", workers=True)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(80)]
    try:
        p.wait_log("accept4() failed (24: Too many open files)")
        time.sleep(1.5)
        with open(p.log_path) as f:
            failures = [l for l in f if "accept4() failed (24:" in l]
        assert all("[crit]" in l for l in failures)
        # paused for half a second after each failure: a handful, not a busy loop
        assert len(failures) <= 10, len(failures)
    finally:
        for s in clients:
            s.close()
    c = Client(port, timeout=10)
    assert c.line() == b"+OK POP3 ready\r\n"
    assert login(c) == b"+OK pass ok\r\n"


def test_client_that_does_not_read_holds_back_the_proxy(start_proxy):
    """Pipelined commands whose replies are not read stop being answered (pre-auth),
    and the relay never outruns the client: the backend is read only as fast as the
    client reads.  Everything then arrives, byte for byte, once the client reads."""
    size = 40 * 1024 * 1024
    body = (b"0123456789abcdef" * 4 + b"\r\n") * (size // 66)
    message = b"+OK %d octets\r\n" % len(body) + body + b".\r\n"
    sent = [0]

    def session(rfile, wfile):
        wfile.write(b"+OK ready\r\n")
        wfile.flush()
        while True:
            line = rfile.readline()
            if not line:
                return
            cmd = line.split()[0].upper() if line.split() else b""
            if cmd == b"RETR":
                for off in range(0, len(message), 1 << 16):
                    wfile.write(message[off:off + (1 << 16)])
                    wfile.flush()
                    sent[0] = off + (1 << 16)
                continue
            wfile.write(b"+OK quit ok\r\n" if cmd == b"QUIT" else b"+OK\r\n")
            wfile.flush()
            if cmd == b"QUIT":
                return
    backend = Backend()
    backend.session = session
    auth = AuthServer(lambda req: ok_response(backend.port))
    try:
        caps = " ".join('"' + "X" * 1000 + str(i) + '"' for i in range(10))
        p, port = start_proxy(auth_url=auth.url, server_lines=[f"pop3_capabilities {caps};"])
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        s.sendall(b"CAPA\r\n" * 900 + b"USER test@example.com\r\nPASS secret\r\nRETR 1\r\n"
                  + b"QUIT\r\n")
        time.sleep(3)
        # the proxy has not read the 40 MB ahead of the client
        assert sent[0] < size // 2, sent[0]
        got = bytearray()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        s.close()
        assert got.count(b"+OK Capability list follows\r\n") == 900
        assert message in got
        assert got.endswith(b"+OK quit ok\r\n")
    finally:
        auth.close()
        backend.close()


def test_first_log_line_of_a_session_is_angies(auth, backend, start_proxy):
    p, port = start_proxy(auth_url=auth.url)
    c = Client(port)
    c.line()
    log = p.wait_log("client connected")
    peer = "127.0.0.1:%d" % c.sock.getsockname()[1]
    assert re.search(r'\[info\] \d+#\d+: \*\d+ client connected while initializing session, '
                     r'client: "%s", server: "127\.0\.0\.1:%d"$' % (re.escape(peer), port),
                     log, re.MULTILINE), log
