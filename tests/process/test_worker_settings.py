"""Main-context settings that act on worker processes: worker_priority and
worker_rlimit_core read back from /proc of a running worker, and env."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
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


def _nobody_gid() -> int:
    """The group of nginx's default user: nobody, or Debian's nogroup."""
    import grp
    try:
        return grp.getgrnam("nobody").gr_gid
    except KeyError:
        return grp.getgrnam("nogroup").gr_gid


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
        want = _nobody_gid()
        assert gid == want
        assert status["Groups"].split() == [str(want)]
        with open(f"/proc/{p.proc.pid}/status") as f:
            assert "Uid:\t0\t" in f.read()                   # the master stays root
    finally:
        p.stop()


def _fatal_worker(p) -> str:
    """The log once the master gave up on its worker; a respawn would have been logged
    before the master takes the next signal, so the USR1 line closes the question."""
    p.wait_log("cannot be respawned")
    p.signal(signal.SIGUSR1)
    log = p.wait_log("received, reopening logs")
    assert log.count("start worker process") == 1
    assert re.search(r"\[notice\] \d+#\d+: worker process \d+ exited with code 2\n", log)
    assert re.search(r"\[alert\] \d+#\d+: worker process \d+ exited with fatal code 2 and "
                     r"cannot be respawned\n", log)
    assert p.proc.poll() is None                            # the master itself stays
    return log


def test_a_worker_that_cannot_switch_user_says_so_as_nginx(tmp_path):
    port = free_port()
    p = Proxy(tmp_path, f"mail {{ auth_http 127.0.0.1:9/a; server {{ listen 127.0.0.1:{port};"
                        f" protocol pop3; }} }}", main="worker_processes 1;\n", workers=True)
    # setgid refused, as it is without CAP_SETGID
    p.args = [sys.executable, "-c",
              "import errno, os, sys\n"
              "def refused(gid):\n"
              "    raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))\n"
              "os.setgid = refused\n"
              "from angie_mail.cli import main\n"
              "sys.exit(main())\n", "-c", p.conf]
    p.start()
    try:
        gid = _nobody_gid()
        log = _fatal_worker(p)
        assert re.search(rf"\[emerg\] (\d+)#\1: setgid\({gid}\) failed "
                         rf"\(1: Operation not permitted\)\n", log)
    finally:
        p.stop()


def test_working_directory_is_entered_as_the_workers_user(tmp_path):
    """As nginx: after the switch to the workers' user, so a directory that user cannot
    enter stops the worker for good (fatal code 2) instead of being entered as root."""
    port = free_port()
    entered, private = tmp_path / "cores", tmp_path / "private"
    for d, mode in ((entered, 0o755), (private, 0o700), (tmp_path / "a", 0o755),
                    (tmp_path / "b", 0o755)):
        d.mkdir(mode=mode)
    block = (f"mail {{ auth_http 127.0.0.1:9/a; server {{ listen 127.0.0.1:{port};"
             f" protocol pop3; }} }}")
    p = Proxy(tmp_path / "a", block, main=f"worker_processes 1;\nworking_directory {entered};\n",
              workers=True)
    p.start()
    try:
        assert os.readlink(f"/proc/{_worker(p)}/cwd") == str(entered)
    finally:
        p.stop()
    p = Proxy(tmp_path / "b", block, main=f"worker_processes 1;\nworking_directory {private};\n",
              workers=True)
    p.start()
    try:
        log = _fatal_worker(p)
        assert re.search(rf'\[alert\] (\d+)#\1: chdir\("{private}"\) failed '
                         rf'\(13: Permission denied\)\n', log)
    finally:
        p.stop()


KEEP_FREEZE_COUNT = """\
import gc, json, os, runpy, sys
out = sys.argv.pop(1)
_exit = os._exit

def record_and_exit(code):
    # workers end through os._exit: note what their collector leaves alone
    with open(os.path.join(out, str(os.getpid())), "w") as f:
        json.dump({"frozen": gc.get_freeze_count()}, f)
    _exit(code)

os._exit = record_and_exit
sys.argv[0] = "angie-mail"
runpy.run_module("angie_mail", run_name="__main__", alter_sys=True)
"""


def test_workers_collector_leaves_the_masters_objects_shared(tmp_path):
    """What the master built before fork (modules, the configuration) is frozen for the
    garbage collector: a worker's collections never walk it, so its pages stay shared
    with the master instead of being copied into every worker."""
    port = free_port()
    p = Proxy(tmp_path, f"mail {{ auth_http 127.0.0.1:9/a; server {{ listen 127.0.0.1:{port};"
                        f" protocol pop3; }} }}", main="worker_processes 1;\n", workers=True)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o1777)                         # the worker runs as nobody
    wrapper = tmp_path / "record.py"
    wrapper.write_text(KEEP_FREEZE_COUNT)
    p.args = [sys.executable, str(wrapper), str(out), *p.args[3:]]
    p.start()
    try:
        worker = _worker(p)
    finally:
        p.stop()
    deadline = time.time() + 10
    while not (out / str(worker)).exists() and time.time() < deadline:
        time.sleep(0.02)
    frozen = json.loads((out / str(worker)).read_text())["frozen"]
    assert frozen > 10_000, frozen
