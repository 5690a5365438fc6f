"""Without an error_log directive the error log is at nginx's default level, error."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from proxy.harness import free_port


def test_default_error_log_level_is_error(tmp_path):
    port, dead = free_port(), free_port()
    log = tmp_path / "err.log"
    conf = tmp_path / "mail.conf"
    conf.write_text(f"daemon off;\nmaster_process on;\nworker_processes 1;\npid {tmp_path}/p.pid;\nevents {{}}\n"
                    f"mail {{ auth_http 127.0.0.1:{dead}/a; server {{ "
                    f"listen 127.0.0.1:{port}; protocol pop3; }} }}\n")
    proc = subprocess.Popen([sys.executable, "-m", "angie_mail", "-c", str(conf),
                             "-e", str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 15
        while True:
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline
                time.sleep(0.05)
        c.recv(100)
        c.sendall(b"USER u\r\nPASS p\r\n")
        c.recv(100)
        c.recv(100)               # -ERR internal server error: the auth server is down
        c.close()
        # the error the dead auth server causes is logged: the log is written
        while "connect() failed" not in log.read_text():
            assert time.time() < deadline, log.read_text()
            time.sleep(0.02)
        text = log.read_text()
        assert "[error]" in text
        assert "[info]" not in text and "[notice]" not in text, text
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
