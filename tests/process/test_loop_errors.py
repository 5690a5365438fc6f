"""An exception escaping a callback becomes one error-log line without a traceback
and without the exception's text (which may quote client input)."""

from angie_mail.process.master import log_loop_error


class Log:
    def __init__(self):
        self.lines = []

    def log(self, level, message, *rest):
        self.lines.append((level, message))


def test_exception_is_one_line_without_its_text():
    log = Log()
    try:
        b"PASS hunter2".decode("ascii").encode("idna")[999]
    except Exception as e:
        exc = e
    log_loop_error(log, {"message": "poller callback failed", "exception": exc})
    assert len(log.lines) == 1
    level, message = log.lines[0]
    assert level == "alert"
    assert message.startswith("unexpected IndexError at test_loop_errors.py:")
    assert "hunter2" not in message and "\n" not in message


def test_message_without_exception():
    log = Log()
    log_loop_error(log, {"message": "something odd"})
    assert log.lines == [("alert", "something odd")]


def test_failing_backend_handler_ends_the_session_at_once(tmp_path):
    """A bug in the backend socket's handler closes that session (client and backend)
    at once, with one [alert] line; other sessions go on."""
    import sys
    import time

    from proxy.harness import AuthServer, Backend, Client, Proxy, free_port, ok_response

    backend = Backend()
    auth = AuthServer(lambda req: ok_response(backend.port))
    port = free_port()
    p = Proxy(tmp_path, f"mail {{ auth_http {auth.url}; server {{ listen 127.0.0.1:{port}; "
                        f"protocol pop3; }} }}")
    # the proxy itself, with the relay's read of backend data made to fail
    p.args = [sys.executable, "-c",
              "import sys\n"
              "import angie_mail.proxy.relay as relay\n"
              "def boom(self):\n"
              "    raise RuntimeError('injected')\n"
              "relay.Backend._on_relay_data = boom\n"
              "from angie_mail.cli import main\n"
              "sys.argv[0] = 'angie-mail'\n"
              "sys.exit(main())\n", "-c", p.conf]
    p.start()
    try:
        c = Client(port)
        c.line()
        c.send(b"USER test@example.com\r\nPASS secret\r\n")
        assert c.line() == b"+OK\r\n"
        assert c.line() == b"+OK pass ok\r\n"
        t = time.time()
        c.send(b"STAT\r\n")                 # the backend answers: its handler fails
        assert c.closed(3)
        assert time.time() - t < 2
        log = p.wait_log("unexpected RuntimeError")
        assert any("[alert]" in line and "unexpected RuntimeError at " in line
                   for line in log.splitlines())
        assert "injected" not in log
        c2 = Client(port)                   # the worker still serves
        assert c2.line().startswith(b"+OK POP3 ready")
    finally:
        p.stop()
        auth.close()
        backend.close()


def test_worker_failing_at_start_is_logged_once_and_not_respawned(tmp_path):
    """An exception before a worker serves kills it with the fatal code 2: the master
    logs nginx's lines and does not start it again (no fork storm)."""
    import re
    import sys
    import time

    from proxy.harness import Proxy, free_port

    port = free_port()
    p = Proxy(tmp_path, f"mail {{ auth_http 127.0.0.1:9/a; server {{ listen 127.0.0.1:{port}; "
                        f"protocol pop3; }} }}", main="worker_processes 2;", workers=True)
    p.args = [sys.executable, "-c",
              "import sys\n"
              "import angie_mail.process.workers as w\n"
              "def boom(*a, **k):\n"
              "    raise KeyError('secret')\n"
              "w.run_loop = boom\n"
              "from angie_mail.cli import main\n"
              "sys.exit(main())\n", "-c", p.conf]
    p.start(wait=False)
    try:
        deadline = time.time() + 10
        while p.log().count("cannot be respawned") < 2:
            assert time.time() < deadline, p.log()
            time.sleep(0.02)
        # the master handles signals in order: once it has logged a later one, a
        # respawn of those workers would have been logged before it
        import signal
        p.signal(signal.SIGUSR1)
        log = p.wait_log("signal 10 (SIGUSR1) received")
        assert log.count("start worker process") == 2
        assert len(re.findall(r"\[alert\] \d+#\d+: unexpected KeyError at <string>:4", log)) == 2
        assert len(re.findall(r"\[notice\] \d+#\d+: worker process \d+ exited with code 2",
                              log)) == 2
        assert len(re.findall(r"\[alert\] \d+#\d+: worker process \d+ exited with fatal "
                              r"code 2 and cannot be respawned", log)) == 2
        assert "secret" not in log
        assert p.proc.poll() is None        # the master itself stays
    finally:
        p.stop()
