"""Angie's error_log extras: format=json records, error_log_user_tag, filter=; and
client text that cannot forge a log line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from proxy.harness import AuthServer, Client, Proxy, fail_response, free_port


def _t(tmp_path, text):
    conf = tmp_path / "t.conf"
    conf.write_text(text)
    r = subprocess.run([sys.executable, "-m", "angie_mail", "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stderr, str(conf)


@pytest.mark.parametrize("params,message", [
    ("format=xml", 'unknown log format "xml"'),
    ("format=json format=default", 'duplicate format= parameter ("default")'),
    ("filter=blue", 'missing filter type in "blue"'),
    ("filter=tag:", 'empty filter pattern "tag:"'),
    ("filter=tag:=", 'empty filter pattern "tag:="'),
    ("filter=sourcefile:x.c", '"error_log" directive source file filtering requires debug '
                              'build'),
])
def test_bad_parameters_are_refused_at_t(tmp_path, params, message):
    rc, err, conf = _t(tmp_path, f"events {{}}\n\nerror_log {tmp_path}/e.log info {params};\n")
    assert rc == 1
    assert f"[emerg] {message} in {conf}:3" in err


def test_good_parameters_pass(tmp_path):
    rc, err, _ = _t(tmp_path, f"events {{}}\nerror_log {tmp_path}/e.log info format=json "
                              f"filter=tag:blue filter=message:~^client filter=client:=x;\n")
    assert rc == 0, err


def _wait(path, text, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            data = open(path).read()
        except FileNotFoundError:
            data = ""
        if text in data:
            return data
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not in {path}")


def test_json_records_tags_and_filters(tmp_path):
    tagged, plain = free_port(), free_port()
    js, filtered, every = tmp_path / "j.log", tmp_path / "f.log", tmp_path / "a.log"
    auth = AuthServer(lambda req: fail_response())
    p = Proxy(tmp_path, f"""mail {{
        auth_http {auth.url};
        error_log {every} info;
        error_log {filtered} info filter=tag:blue;
        error_log {js} info format=json;
        timeout 1s;
        server {{ listen 127.0.0.1:{tagged}; protocol pop3; error_log_user_tag blue;
                  error_log_user_tag red; }}
        server {{ listen 127.0.0.1:{plain}; protocol pop3; }}
    }}""")
    p.start()
    try:
        a = Client(tagged)
        a.line()
        b = Client(plain)
        b.line()
        log = _wait(every, f'server: "127.0.0.1:{plain}"')
        assert f'server: "127.0.0.1:{tagged}"' in log
        # the tag filter passed the tagged server's lines only
        f = open(filtered).read()
        assert f'server: "127.0.0.1:{tagged}"' in f and f"127.0.0.1:{plain}" not in f
        # a timeout, to see the errno member
        _wait(every, "client timed out")
        records = [json.loads(line) for line in open(js).read().splitlines()]
        conn = next(r for r in records if r["message"] == "client connected"
                    and r["context"]["server"] == f"127.0.0.1:{tagged}")
        assert list(conn) == ["time", "level", "pid", "tid", "connection", "message",
                              "context", "tags"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z", conn["time"])
        assert conn["level"] == "info" and conn["pid"] == p.proc.pid
        assert conn["context"] == {"action": "initializing session",
                                   "client": f"127.0.0.1:{a.sock.getsockname()[1]}",
                                   "server": f"127.0.0.1:{tagged}"}
        assert conn["tags"] == ["blue", "red"]
        timed = next(r for r in records if r["message"] == "client timed out"
                     and r["context"]["server"] == f"127.0.0.1:{tagged}")
        assert timed["error"] == {"code": 110, "message": "Connection timed out"}
        assert timed["context"]["action"] == "in auth state"
        other = next(r for r in records if r["message"] == "client connected"
                     and r["context"]["server"] == f"127.0.0.1:{plain}")
        assert "tags" not in other
    finally:
        p.stop()
        auth.close()


def test_client_text_cannot_forge_a_log_line(tmp_path):
    """An IMAP login is a literal: it may hold CR LF, and it is in every log line of
    the session."""
    port = free_port()
    auth = AuthServer(lambda req: fail_response())
    p = Proxy(tmp_path, f"mail {{ auth_http {auth.url}; server {{ listen 127.0.0.1:{port}; "
                        f"protocol imap; }} }}")
    p.start()
    try:
        c = Client(port)
        c.line()
        forged = b"x\r\n2026/01/01 00:00:00 [alert] 1#1: forged\0\x1b[2J\tend"
        c.send(b"a LOGIN {%d+}\r\n" % len(forged) + forged + b" pw\r\n")
        assert c.line() == b"a NO Invalid login or password\r\n"
        log = p.wait_log("client login failed")
        assert not any(line.startswith("2026/01/01") for line in log.splitlines())
        # a NUL or a terminal escape is written escaped too; a TAB is left as it is
        assert 'login: "x\\r\\n2026/01/01 00:00:00 [alert] 1#1: forged\\x00\\x1b[2J\tend"' \
            in log
        assert "\0" not in log and "\x1b" not in log
    finally:
        p.stop()
        auth.close()
