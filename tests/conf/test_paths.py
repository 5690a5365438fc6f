"""Relative paths resolve as nginx resolves them, with nginx's own layout: the
configuration in PREFIX/conf/, logs in PREFIX/logs/.  Files the server writes (pid,
error_log, -e) and load_module are under the prefix; include and the ssl_* files are
under the directory of the main configuration file.  Each rule is checked against
nginx 1.22 itself: a missing file makes both name the path they tried."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

import oracle
from certs import make as make_certs
from proxy.harness import free_port

SERVER = "mail {{ auth_http 127.0.0.1:9/a; server {{ listen 127.0.0.1:{port}; " \
         "protocol pop3; {extra} }} }}\n"
TLS = "ssl_certificate {crt}; ssl_certificate_key {key}; "


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


def layout(tmp_path, certs, main="", extra="", load=True):
    """PREFIX/{conf,logs}; the config in conf/; (prefix, conf path)."""
    prefix = tmp_path / "srv"
    (prefix / "conf").mkdir(parents=True)
    (prefix / "logs").mkdir()
    extra = extra.format(crt=certs["server_rsa_crt"], key=certs["server_rsa_key"])
    text = (f"load_module {oracle.MAIL_MODULE};\n" if load else "") + \
        f"error_log /dev/null;\n{main}\nevents {{}}\n" + \
        SERVER.format(port=free_port(), extra=extra)
    (prefix / "conf" / "mail.conf").write_text(text)
    return str(prefix) + "/", str(prefix / "conf" / "mail.conf")


def quoted_paths(text: str) -> list:
    return re.findall(r'"(/[^"]*)"', text)


def angie_t(prefix, conf):
    r = subprocess.run([sys.executable, "-m", "angie_mail", "-t", "-p", prefix, "-c", conf],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stderr


def nginx_t(prefix, conf):
    oracle.require()
    r = subprocess.run([oracle.NGINX, "-t", "-p", prefix, "-e", "/dev/null", "-c", conf],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stderr


# (case, main-context text, server text, the path both must name, relative to PREFIX)
CASES = [
    ("error_log", "error_log logs/none/error.log;", "", "logs/none/error.log"),
    ("server error_log", "", "error_log logs/none/server.log;", "logs/none/server.log"),
    ("include", "include inc/missing.conf;", "", "conf/inc/missing.conf"),
    ("ssl_certificate", "", "ssl_certificate certs/none.crt; ssl_certificate_key certs/none.key;"
     " starttls on;", "conf/certs/none.crt"),
    ("ssl_dhparam", "", TLS + "starttls on; ssl_dhparam certs/dh.pem;", "conf/certs/dh.pem"),
    ("ssl_client_certificate", "", TLS + "starttls on; ssl_verify_client on; "
     "ssl_client_certificate certs/ca.crt;", "conf/certs/ca.crt"),
    ("ssl_trusted_certificate", "", TLS + "starttls on; ssl_verify_client optional_no_ca; "
     "ssl_trusted_certificate certs/trusted.crt;", "conf/certs/trusted.crt"),
    ("ssl_crl", "", TLS + "starttls on; ssl_verify_client optional_no_ca; "
     "ssl_crl certs/ca.crl;", "conf/certs/ca.crl"),
    ("ssl_password_file", "", TLS + "starttls on; ssl_password_file certs/pw;",
     "conf/certs/pw"),
    ("ssl_session_ticket_key", "", TLS + "starttls on; ssl_session_ticket_key certs/t.key;",
     "conf/certs/t.key"),
]


@pytest.mark.parametrize("name,main,extra,expect", CASES, ids=[c[0] for c in CASES])
def test_missing_relative_file_is_looked_for_where_nginx_looks(tmp_path, certs, name, main,
                                                                 extra, expect):
    prefix, conf = layout(tmp_path, certs, main, extra)
    n_rc, n_err = nginx_t(prefix, conf)
    a_rc, a_err = angie_t(prefix, conf)
    want = prefix + expect
    assert n_rc == 1 and want in quoted_paths(n_err), n_err       # the rule, from nginx
    assert a_rc == 1 and want in quoted_paths(a_err), a_err       # and ours


def test_load_module_is_under_the_prefix(tmp_path, certs):
    prefix, conf = layout(tmp_path, certs, load=False)
    text = open(conf).read()
    with open(conf, "w") as f:
        f.write("load_module modules/none.so;\n" + text)
    n_rc, n_err = nginx_t(prefix, conf)
    a_rc, a_err = angie_t(prefix, conf)
    assert n_rc == 1 and f'"{prefix}modules/none.so"' in n_err, n_err
    assert a_rc == 1 and f'"{prefix}modules/none.so"' in a_err, a_err


def test_pid_error_log_and_e_at_run_time(tmp_path, certs):
    """The documented layout runs: pid and error_log land in PREFIX/logs, and so does a
    relative -e."""
    prefix, conf = layout(tmp_path, certs, main="pid logs/mail.pid;\n"
                          "error_log logs/error.log info;\ndaemon off;\nmaster_process off;",
                          load=False)
    text = open(conf).read().replace("error_log /dev/null;\n", "")
    with open(conf, "w") as f:
        f.write(text)
    port = int(re.search(r"listen 127\.0\.0\.1:(\d+)", text).group(1))
    proc = subprocess.Popen([sys.executable, "-m", "angie_mail", "-p", prefix, "-c", conf,
                             "-e", "logs/startup.log"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 15
        pid_file = prefix + "logs/mail.pid"
        while not (os.path.exists(pid_file) and open(pid_file).read().endswith("\n")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "no pid file under the prefix"
            time.sleep(0.05)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with open(prefix + "logs/mail.pid") as f:
            assert int(f.read()) == proc.pid
        assert os.path.exists(prefix + "logs/error.log")
        assert os.path.exists(prefix + "logs/startup.log")
        assert not os.path.exists(prefix + "conf/logs")
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    shutil.rmtree(prefix)
