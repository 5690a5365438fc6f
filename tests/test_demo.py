"""The README's quick start: the demo serves conf/mail.conf, and the mechanisms that
configuration offers all log in (curl picks CRAM-MD5 when it is offered)."""

from __future__ import annotations

import fcntl
import os
import poplib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

# the demo listens on the sample configuration's fixed ports: one process runs these
pytestmark = pytest.mark.xdist_group("demo")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def demo_lock(tmp_path_factory):
    """One demo at a time on this machine: its ports are fixed, and test processes may
    each run some of these tests (the directory above basetemp is common to them)."""
    with open(tmp_path_factory.getbasetemp().parent / "demo.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
        fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, demo_lock):
    # the demo logs every session to its stderr: a file takes it all (a pipe nobody
    # reads would fill up and stop the proxy)
    out = open(tmp_path_factory.mktemp("demo") / "output", "w+b")
    proc = subprocess.Popen([sys.executable, "-m", "angie_mail.demo"], cwd=ROOT,
                            stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 15
        for port in (1110, 1143, 1587, 1025):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    out.seek(0)
                    assert proc.poll() is None, out.read().decode(errors="replace")
                    assert time.time() < deadline, "the demo did not start"
                    time.sleep(0.05)
        yield proc
        out.seek(0)
        assert proc.poll() is None, out.read().decode(errors="replace")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def test_user_pass_and_apop(demo):
    m = poplib.POP3("127.0.0.1", 1110, timeout=5)
    m.user("alice")
    assert m.pass_("secret").startswith(b"+OK")
    assert m.stat()[0] == 2
    m.quit()
    m = poplib.POP3("127.0.0.1", 1110, timeout=5)
    assert m.apop("bob", "secret").startswith(b"+OK")
    m.quit()


def test_curl_logs_in_with_the_mechanism_it_picks(demo):
    assert shutil.which("curl"), "curl is installed by .ci/setup"
    r = subprocess.run(["curl", "-sS", "-v", "--max-time", "10",
                        "pop3://alice:secret@127.0.0.1:1110/1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "AUTH CRAM-MD5" in r.stderr            # what curl chose among those offered
    assert "came through angie-mail" in r.stdout


def test_wrong_password_is_refused(demo):
    r = subprocess.run(["curl", "-sS", "--max-time", "10",
                        "pop3://alice:wrong@127.0.0.1:1110/1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0


def test_imap_login_select_fetch(demo):
    import imaplib
    deadline = time.time() + 10
    while True:
        try:
            m = imaplib.IMAP4("127.0.0.1", 1143, timeout=5)
            break
        except OSError:
            assert time.time() < deadline
            time.sleep(0.05)
    assert m.login("alice", "secret")[0] == "OK"
    assert m.select()[1] == [b"2"]
    typ, data = m.fetch("1", "(BODY[])")
    assert typ == "OK" and b"came through angie-mail" in data[0][1]
    m.logout()
    m = imaplib.IMAP4("127.0.0.1", 1143, timeout=5)
    assert m.login_cram_md5("bob", "secret")[0] == "OK"
    m.logout()


def test_curl_imap(demo):
    r = subprocess.run(["curl", "-sS", "--max-time", "10",
                        "imap://alice:secret@127.0.0.1:1143/INBOX;UID=1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "came through angie-mail" in r.stdout


def test_smtp_submission_and_mx(demo):
    import smtplib
    s = smtplib.SMTP("127.0.0.1", 1587, timeout=5)
    s.ehlo("client.example")
    assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN", "CRAM-MD5"]
    s.login("alice", "secret")
    assert s.sendmail("alice@example.test", ["bob@example.test"],
                      b"Subject: hi\r\n\r\nhello\r\n") == {}
    s.quit()
    s = smtplib.SMTP("127.0.0.1", 1025, timeout=5)
    assert s.sendmail("someone@elsewhere.example", ["bob@example.test"],
                      b"Subject: mx\r\n\r\nhello\r\n") == {}
    s.quit()
    s = smtplib.SMTP("127.0.0.1", 1025, timeout=5)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        s.sendmail("someone@elsewhere.example", ["x@elsewhere.example"], b"x\r\n")
    assert e.value.recipients["x@elsewhere.example"] == (550, b"5.7.1 relay access denied")
