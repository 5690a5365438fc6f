"""The built wheel, installed into a fresh virtual environment, runs the proxy with
workers: every module and data file the proxy needs is in it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from proxy.harness import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.xdist_group("wheel")      # one build for both tests


def _run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{args}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The angie-mail command of a fresh venv holding only the wheel and its
    dependencies (built from the committed files, not the working tree's leftovers)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    files = _run(["git", "ls-files", "-z"], cwd=ROOT).stdout.split("\0")
    for f in filter(None, files):
        if not os.path.lexists(os.path.join(ROOT, f)):
            continue
        dst = src / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), dst, follow_symlinks=False)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"),
          str(src)])
    wheel = next((tmp / "dist").glob("angie_mail-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)])
    return venv / "bin" / "angie-mail", tmp


def test_wheel_checks_a_configuration(installed):
    exe, tmp = installed
    conf = tmp / "t.conf"
    conf.write_text("events {}\nmail { server { listen 127.0.0.1:9110; protocol pop3; "
                    "auth_http 127.0.0.1:9/a; } }\n")
    r = subprocess.run([str(exe), "-t", "-c", str(conf)], capture_output=True, text=True,
                       timeout=60, cwd=str(tmp))
    assert r.returncode == 0, r.stderr
    assert "test is successful" in r.stderr


def test_wheel_serves_with_two_workers(installed):
    exe, tmp = installed
    port = free_port()
    run = tmp / "run"
    run.mkdir()
    conf = run / "mail.conf"
    conf.write_text(
        f"daemon off;\nmaster_process on;\nworker_processes 2;\npid {run}/p.pid;\n"
        f"error_log {run}/error.log info;\nevents {{}}\n"
        f"mail {{ auth_http 127.0.0.1:9/a; server {{ listen 127.0.0.1:{port}; "
        f"protocol pop3; }} }}\n")
    proc = subprocess.Popen([str(exe), "-c", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=str(run))
    try:
        deadline = time.time() + 20
        greeting = None
        while time.time() < deadline and greeting is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    greeting = s.recv(100)
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.05)
        assert greeting is not None and greeting.startswith(b"+OK POP3 ready")
        log = (run / "error.log").read_text()
        assert "ModuleNotFoundError" not in log and "Traceback" not in log
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                 text=True).stdout.split()
        assert len(workers) == 2
        proc.send_signal(signal.SIGQUIT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
