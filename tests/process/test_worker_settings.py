"""Main-context settings that act on worker processes: worker_priority and
worker_rlimit_core read back from /proc of a running worker, and env."""

from __future__ import annotations

import os
import subprocess
import time

from proxy.harness import Proxy, free_port


def _worker(p) -> int:
    deadline = time.time() + 10
    while time.time() < deadline:
        kids = subprocess.run(["pgrep", "-P", str(p.proc.pid)], capture_output=True,
                              text=True).stdout.split()
        if kids:
            pid = int(kids[0])
            # the settings are applied before the worker's title is set
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"worker process" in f.read():
                    return pid
        time.sleep(0.02)
    raise AssertionError("no worker process")


def test_worker_priority_core_limit_and_environment(tmp_path):
    port = free_port()
    p = Proxy(tmp_path, f"mail {{ auth_http 127.0.0.1:9/a; server {{ listen 127.0.0.1:{port};"
                        f" protocol pop3; }} }}",
              main="worker_processes 1;\nworker_priority 5;\nworker_rlimit_core 1m;\n"
                   "env KEEP_ME;\n", workers=True)
    p.start()
    try:
        pid = _worker(p)
        with open(f"/proc/{pid}/stat") as f:
            nice = int(f.read().rsplit(")", 1)[1].split()[16])
        assert nice == 5
        with open(f"/proc/{pid}/limits") as f:
            core = next(l for l in f if l.startswith("Max core file size")).split()
        assert core[4:6] == ["1048576", "1048576"]
    finally:
        p.stop()


def test_worker_environment_is_nginxs():
    # (the process title overwrites the memory /proc/PID/environ shows, so the rule is
    # checked on the function the worker applies)
    from angie_mail.process.workers import worker_environ
    inherited = {"TZ": "UTC", "KEEP_ME": "kept", "DROP_ME": "dropped", "PATH": "/bin"}
    assert worker_environ(("KEEP_ME", "SET_ME=value", "ABSENT"), inherited) == \
        {"TZ": "UTC", "KEEP_ME": "kept", "SET_ME": "value"}
    assert worker_environ((), {"PATH": "/bin"}) == {}
    assert worker_environ(("TZ=Europe/Paris",), {"TZ": "UTC"}) == {"TZ": "Europe/Paris"}


def test_workers_of_a_root_master_run_as_nobody_without_user(tmp_path):
    import grp
    import pwd
    assert os.geteuid() == 0, "the tests run as root (as CI does)"
    port = free_port()
    p = Proxy(tmp_path, f"mail {{ auth_http 127.0.0.1:9/a; server {{ listen 127.0.0.1:{port};"
                        f" protocol pop3; }} }}", main="worker_processes 1;\n", workers=True)
    p.start()
    try:
        pid = _worker(p)
        with open(f"/proc/{pid}/status") as f:
            status = dict(l.split(":", 1) for l in f if ":" in l)
        uid = int(status["Uid"].split()[0])
        gid = int(status["Gid"].split()[0])
        assert uid == pwd.getpwnam("nobody").pw_uid
        try:
            want = grp.getgrnam("nobody").gr_gid
        except KeyError:
            want = grp.getgrnam("nogroup").gr_gid
        assert gid == want
        assert status["Groups"].split() == [str(want)]
        with open(f"/proc/{p.proc.pid}/status") as f:
            assert "Uid:\t0\t" in f.read()                   # the master stays root
    finally:
        p.stop()
