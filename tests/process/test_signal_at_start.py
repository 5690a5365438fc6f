"""A stop signal sent as soon as the pid file appears stops the server: the event loop
passes signals to its handlers only while it runs, so until it does they wait
(blocked) instead of being lost."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from proxy.harness import free_port


def test_term_right_after_the_pid_file_stops_the_server(tmp_path):
    conf = tmp_path / "mail.conf"
    pid = tmp_path / "mail.pid"
    stuck = 0
    for i in range(15):
        port = free_port()
        conf.write_text(f"daemon off;\nmaster_process off;\npid {pid};\n"
                        f"error_log {tmp_path}/error.log info;\nevents {{}}\n"
                        f"mail {{ auth_http 127.0.0.1:9/a;\n"
                        f"  server {{ listen 127.0.0.1:{port}; protocol pop3; }} }}\n")
        proc = subprocess.Popen([sys.executable, "-m", "angie_mail", "-c", str(conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 20
            while not (pid.exists() and pid.read_text().endswith("\n")):
                assert proc.poll() is None and time.time() < deadline
                time.sleep(0.0005)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                stuck += 1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert stuck == 0


def test_a_signal_while_the_server_gets_ready_is_not_lost(tmp_path):
    """The deterministic form: TERM arrives while the server finishes getting ready
    (here: from its own on_ready callback, the last step before serving).  It must
    stop the server, not vanish."""
    port = free_port()
    conf = tmp_path / "mail.conf"
    conf.write_text(f"daemon off;\nmaster_process off;\npid {tmp_path}/mail.pid;\n"
                    f"error_log {tmp_path}/error.log info;\nevents {{}}\n"
                    f"mail {{ auth_http 127.0.0.1:9/a;\n"
                    f"  server {{ listen 127.0.0.1:{port}; protocol pop3; }} }}\n")
    script = ("import os, signal, sys\n"
              "import angie_mail.process.master as m\n"
              "original = m.run_loop\n"
              "def run_loop(config, sockets, log, **kw):\n"
              "    kw['on_ready'] = lambda rt: os.kill(os.getpid(), signal.SIGTERM)\n"
              "    return original(config, sockets, log, **kw)\n"
              "m.run_loop = run_loop\n"
              "from angie_mail.cli import main\n"
              "sys.exit(main())\n")
    proc = subprocess.Popen([sys.executable, "-c", script, "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
