"""The command line: nginx's -t/-T conventions, lint output and exit codes."""

import json
import os
import subprocess
import sys

import pytest

GOOD = """events {}
mail {
    auth_http 127.0.0.1:9/auth;
    server {
        listen 127.0.0.1:110;
    }
}
"""


def cli(*args, cwd=None, stdin=None):
    r = subprocess.run([sys.executable, "-m", "angie_mail", *args], capture_output=True,
                       cwd=cwd, input=stdin, timeout=60)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def write(tmp_path, text, name="mail.conf"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_t_success(tmp_path):
    conf = write(tmp_path, GOOD)
    rc, out, err = cli("-t", "-c", conf)
    assert rc == 0 and out == ""
    assert err == (f"angie-mail: the configuration file {conf} syntax is ok\n"
                   f"angie-mail: configuration file {conf} test is successful\n")


def test_t_quiet_and_combined_flags(tmp_path):
    conf = write(tmp_path, GOOD)
    assert cli("-tq", "-c", conf) == (0, "", "")
    assert cli("-qt", f"-c{conf}") == (0, "", "")


def test_t_failure(tmp_path):
    conf = write(tmp_path, GOOD.replace("listen 127.0.0.1:110;", "listen 127.0.0.1:110 x;"))
    rc, out, err = cli("-t", "-c", conf)
    assert rc == 1
    assert err == (f'angie-mail: [emerg] invalid parameter "x" in {conf}:5\n'
                   f"angie-mail: configuration file {conf} test failed\n")
    rc, out, err = cli("-t", "-q", "-c", conf)
    assert rc == 1 and "test failed" in err


def test_t_warnings_do_not_change_the_verdict(tmp_path):
    conf = write(tmp_path, GOOD.replace("    server {", "    pop3_auth plain plain;\n    server {"))
    rc, out, err = cli("-t", "-c", conf)
    assert rc == 0
    assert err.splitlines()[0] == f'angie-mail: [warn] duplicate value "plain" in {conf}:4'


def test_prefix_and_relative_conf(tmp_path):
    write(tmp_path, GOOD, "x.conf")
    rc, out, err = cli("-t", "-p", str(tmp_path), "-c", "x.conf", cwd="/")
    assert rc == 0 and f"{tmp_path}/x.conf syntax is ok" in err
    rc, out, err = cli("-t", "-c", "x.conf", cwd=str(tmp_path))
    assert rc == 0


def test_default_conf_under_prefix(tmp_path):
    (tmp_path / "conf").mkdir()
    write(tmp_path, GOOD, "conf/mail.conf")
    rc, out, err = cli("-t", "-p", str(tmp_path))
    assert rc == 0 and f"{tmp_path}/conf/mail.conf" in err


def test_missing_conf(tmp_path):
    rc, out, err = cli("-t", "-c", f"{tmp_path}/none.conf")
    assert rc == 1
    assert err.startswith(f'angie-mail: [emerg] open() "{tmp_path}/none.conf" failed '
                          f'(2: No such file or directory)\n')


def test_g_directives(tmp_path):
    conf = write(tmp_path, GOOD)
    assert cli("-t", "-q", "-c", conf, "-g", "daemon off;")[0] == 0
    rc, out, err = cli("-t", "-c", conf, "-g", "daemon off")
    assert rc == 1 and 'unexpected end of parameter, expecting ";" in command line' in err


def test_T_dumps_every_file_once(tmp_path):
    write(tmp_path, "server_name x;\n", "inc.conf")
    conf = write(tmp_path, GOOD.replace("    server {", "    include inc.conf;\n"
                                        "    include inc.conf;\n    server {").replace(
        "server_name x;", ""))
    conf = write(tmp_path, GOOD.replace("    server {", "    include inc.conf;\n    server {"))
    rc, out, err = cli("-T", "-c", conf)
    assert rc == 0
    assert out == (f"# configuration file {conf}:\n" + open(conf).read() + "\n"
                   f"# configuration file {tmp_path}/inc.conf:\nserver_name x;\n\n")


def test_dialect_option(tmp_path):
    conf = write(tmp_path, GOOD.replace("    server {", "    max_commands 5;\n    server {"))
    assert cli("-t", "-q", "-c", conf)[0] == 0
    assert cli("-t", "-q", "-c", conf, "--dialect=angie")[0] == 0
    rc, out, err = cli("-t", "-q", "--dialect", "nginx", "-c", conf)
    assert rc == 1 and 'unknown directive "max_commands"' in err


def test_version_and_help():
    rc, out, err = cli("-v")
    assert rc == 0 and err.startswith("angie-mail version: angie-mail/")
    rc, out, err = cli("-V")
    assert rc == 0 and "dialects:" in err
    assert "mail protocols: imap, pop3, smtp\n" in err
    # the one OpenSSL that serves TLS (clients and backends) and checks it at -t
    import ssl
    assert f"built with Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}\n" in err
    assert "OpenSSL" not in err.replace(ssl.OPENSSL_VERSION, "")
    # what harnesses written for nginx read of -V (Test::Nginx's has() and
    # has_version()): the mail modules are there, and which nginx behaviour is followed
    import re
    assert re.search(r"^nginx version: nginx/\d+\.\d+\.\d+$", err, re.M)
    assert re.search(r"^configure arguments: .*--with-mail(?!\S)", err, re.M)
    assert "--with-mail_ssl_module" in err and "--without-mail" not in err
    rc, out, err = cli("-h")
    assert rc == 0 and "Usage:" in err


def test_bad_option():
    rc, out, err = cli("-x")
    assert rc == 1 and err == 'angie-mail: invalid option: "x"\n'
    rc, out, err = cli("-c")
    assert rc == 1 and err == 'angie-mail: option "-c" requires file name\n'


# --- lint --------------------------------------------------------------------------------

BAD = """events {}
mail {
    auth_http 10.1.2.3:9000/auth;
    server {
        listen 0.0.0.0:110;
        foo;
        timeout 1y;
    }
}
"""


def test_lint_text_reports_everything(tmp_path):
    conf = write(tmp_path, BAD)
    rc, out, err = cli("lint", conf)
    assert rc == 1
    lines = out.splitlines()
    assert f"{conf}:6:9: error: unknown directive \"foo\" [unknown]" in lines
    assert f"{conf}:7:9: error: \"timeout\" directive invalid value [value]" in lines


def test_lint_warnings_and_fail_on(tmp_path):
    conf = write(tmp_path, BAD.replace("        foo;\n", "").replace("timeout 1y", "timeout 1s"))
    rc, out, err = cli("lint", conf)
    assert rc == 1
    rules = [l.rsplit("[", 1)[1].rstrip("]") for l in out.splitlines()
             if not l.startswith("  hint: ")]
    assert sorted(rules) == ["auth-http-cleartext", "plaintext-auth"]
    assert cli("lint", "--fail-on", "error", conf)[0] == 0


def test_lint_warns_when_starttls_only_lets_mail_in_clear_text(tmp_path):
    """smtp.md §6/§17: starttls only refuses AUTH alone; with smtp_auth none an MX
    accepts mail without TLS."""
    conf = write(tmp_path, """events {}
mail {
    auth_http 127.0.0.1:9000/auth;
    server {
        listen 0.0.0.0:25;
        listen 127.0.0.1:2525;
        protocol smtp;
        smtp_auth none;
        ssl_certificate a.crt;
        ssl_certificate_key a.key;
        starttls only;
    }
}
""")
    rc, out, err = cli("lint", conf)
    assert rc == 1
    assert out.splitlines() == [
        f"{conf}:11:9: warning: starttls only does not cover MAIL and RCPT: with smtp_auth "
        f"none, mail is accepted in clear text on 0.0.0.0:25 [smtp-mail-without-tls]",
        "  hint: accept this for an MX (RFC 3207 forbids requiring TLS on port 25), or use "
        "listen ... ssl"]
    conf = write(tmp_path, open(conf).read().replace("smtp_auth none;", "smtp_auth plain;"))
    rc, out, err = cli("lint", conf)
    # no clear-text mail any more: instead an MX that refuses all inbound mail
    assert "smtp-mail-without-tls" not in out
    assert [l.rsplit("[", 1)[1] for l in out.splitlines() if "[" in l] == \
        ["mx-requires-auth]"], out


def test_lint_json_and_sarif(tmp_path):
    conf = write(tmp_path, BAD)
    rc, out, err = cli("lint", "--format", "json", conf)
    doc = json.loads(out)
    assert doc["summary"]["errors"] == 2
    f = next(f for f in doc["findings"] if f["level"] == "error")
    assert (f["line"], f["column"], f["rule"], f["level"]) == (6, 9, "unknown", "error")
    rc, out, err = cli("lint", "--format", "sarif", conf)
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0"
    res = [r for r in sarif["runs"][0]["results"] if r["level"] == "error"]
    region = res[0]["locations"][0]["physicalLocation"]["region"]
    assert (res[0]["ruleId"], region["startLine"], region["startColumn"]) == ("unknown", 6, 9)
    ids = {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in res} <= ids


def test_lint_stdin_fragment():
    rc, out, err = cli("lint", "--context", "server", "-", stdin=b"listen 110;\nprotocol pop3;\n")
    assert rc == 0 and out == ""
    rc, out, err = cli("lint", "--context", "server", "-", stdin=b"listen 110;\nprotocl pop3;\n")
    assert rc == 1 and out == '<stdin>:2:1: error: unknown directive "protocl" [unknown]\n'


def test_lint_not_portable(tmp_path):
    conf = write(tmp_path, GOOD.replace("listen 127.0.0.1:110;",
                                        "listen 127.0.0.1:110;\n        pop3_client_buffer 4k;"))
    rc, out, err = cli("lint", conf)
    assert rc == 1 and "[not-portable]" in out
    rc, out, err = cli("lint", "--dialect", "angie", conf)
    assert "unknown directive" in out


def test_lint_usage_error_is_2():
    assert cli("lint", "--format", "xml")[0] == 2


def test_directive_docs_are_current():
    from angie_mail.conf.docs import render
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "directives.md")
    with open(path) as f:
        assert f.read() == render(), "run: python -m angie_mail.conf.docs > docs/directives.md"


# --- TLS problems found by -t ------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    import certs
    return certs.make(str(tmp_path_factory.mktemp("pki")))


def tls_conf(tmp_path, lines):
    body = "".join(f"        {l}\n" for l in lines)
    return write(tmp_path, "events {}\nmail {\n    auth_http 127.0.0.1:9/auth;\n    server {\n"
                 f"        listen 127.0.0.1:995 ssl;\n{body}    }}\n}}\n")


def test_t_tls_listener_without_certificate(tmp_path):
    conf = tls_conf(tmp_path, [])
    rc, out, err = cli("-t", "-c", conf)
    assert rc == 1
    assert err.splitlines()[0] == (f'angie-mail: [emerg] no "ssl_certificate" is defined for '
                                   f'the "listen ... ssl" directive in {conf}:5')


def test_t_key_does_not_match(tmp_path, pki):
    conf = tls_conf(tmp_path, [f"ssl_certificate {pki['server_rsa_crt']};",
                               f"ssl_certificate_key {pki['client_key']};"])
    rc, out, err = cli("-t", "-c", conf)
    assert rc == 1
    assert err.splitlines()[0] == (
        f'angie-mail: [emerg] SSL_CTX_use_PrivateKey("{pki["client_key"]}") failed '
        f'(SSL: error:05800074:x509 certificate routines::key values mismatch)')


def test_t_unreadable_key(tmp_path, pki):
    conf = tls_conf(tmp_path, [f"ssl_certificate {pki['server_rsa_crt']};",
                               f"ssl_certificate_key {tmp_path};"])
    rc, out, err = cli("-t", "-c", conf)
    assert rc == 1
    assert err.startswith(f'angie-mail: [emerg] cannot load certificate key "{tmp_path}": '
                          f'BIO_new_file() failed')


def test_t_wrong_password_file(tmp_path, pki):
    bad = write(tmp_path, "nope\n", "pw")
    conf = tls_conf(tmp_path, [f"ssl_certificate {pki['server_enc_crt']};",
                               f"ssl_certificate_key {pki['server_enc_key']};",
                               f"ssl_password_file {bad};"])
    rc, out, err = cli("-t", "-c", conf)
    assert rc == 1
    assert err.splitlines()[0] == (
        f'angie-mail: [emerg] cannot load certificate key "{pki["server_enc_key"]}": '
        f'PEM_read_bio_PrivateKey() failed (SSL: error:1C800064:Provider routines::bad decrypt)')
    good = write(tmp_path, "nope\ns3cret\n", "pw2")
    conf = tls_conf(tmp_path, [f"ssl_certificate {pki['server_enc_crt']};",
                               f"ssl_certificate_key {pki['server_enc_key']};",
                               f"ssl_password_file {good};"])
    assert cli("-t", "-q", "-c", conf)[0] == 0


def test_t_missing_password_file_at_its_line(tmp_path, pki):
    conf = tls_conf(tmp_path, [f"ssl_password_file {tmp_path}/none;"])
    rc, out, err = cli("-t", "-c", conf)
    assert err.splitlines()[0] == (f'angie-mail: [emerg] open() "{tmp_path}/none" failed '
                                   f'(2: No such file or directory) in {conf}:6')


def test_cipher_list_checked_by_the_library_that_serves_tls(tmp_path):
    import certs
    pki = certs.make(str(tmp_path / "pki"))
    conf = write(tmp_path, f"""events {{}}
mail {{
    auth_http 127.0.0.1:9/a;
    ssl_ciphers FOO;
    server {{
        listen 127.0.0.1:9110 ssl;
        protocol pop3;
        ssl_certificate {pki['server_rsa_crt']};
        ssl_certificate_key {pki['server_rsa_key']};
    }}
}}
""")
    rc, out, err = cli("-t", "-c", conf)
    assert rc == 1
    assert 'SSL_CTX_set_cipher_list("FOO") failed (SSL: error:0A0000B9:SSL routines::no ' \
        'cipher match)' in err


# --- -t binds the listening sockets; nginx's two message forms ----------------------------

_FULL = __import__("re").compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: ")


def _norm(text: str, prog: str) -> list:
    """stderr lines with the time and pid of full error-log lines and the program name
    of short ones replaced (their format is kept: the regex requires it)."""
    out = []
    for line in text.splitlines():
        line = _FULL.sub(r"TIME [\1] PID#TID: ", line)
        if line.startswith(prog + ": "):
            line = "PROG: " + line[len(prog) + 2:]
        out.append(line)
    return out


def _both(conf: str, *args, test=True, pid=None):
    """(nginx's, angie-mail's) exit status and normalized stderr for the same file."""
    import oracle
    oracle.require()
    prefix = os.path.dirname(conf) + "/"
    run = ["-t"] if test else ["-g", f"pid {pid or prefix + 'run.pid'}; daemon off;"]
    n = subprocess.run([oracle.NGINX, *run, "-p", prefix, "-c", conf, *args],
                       capture_output=True, timeout=30)
    rc, _, err = cli("--dialect", "nginx", *run, "-p", prefix, "-c", conf, *args)
    return ((n.returncode, _norm(n.stderr.decode(), "nginx")),
            (rc, _norm(err, "angie-mail")))


def _mail_conf(tmp_path, listen, main=""):
    import oracle
    return write(tmp_path, f"load_module {oracle.MAIL_MODULE};\n{main}events {{}}\nmail {{\n"
                           f"    auth_http 127.0.0.1:9/auth;\n    server {{\n"
                           f"        listen {listen};\n        protocol pop3;\n    }}\n}}\n")


@pytest.mark.parametrize("args, main", [
    (("-e", "stderr"), ""), (("-e", "/dev/null"), ""), (("-e", "/dev/null", "-q"), ""),
    (("-e", "/dev/null"), "error_log stderr;\n"), (("-e", "stderr"), "error_log {log};\n"),
])
def test_t_reports_an_address_not_on_the_host_as_nginx(tmp_path, args, main):
    conf = _mail_conf(tmp_path, "192.0.2.1:110", main.format(log=tmp_path / "e.log"))
    theirs, ours = _both(conf, *args)
    assert ours == theirs
    assert ours[0] == 1
    assert "bind() to 192.0.2.1:110 failed (99: Cannot assign requested address)" in \
        " ".join(ours[1])
    if main:
        log = (tmp_path / "e.log").read_text() if "{log}" in main else ""
        assert log.count("bind() to 192.0.2.1:110 failed") == (2 if "{log}" in main else 0)


def test_t_bind_errors_of_unix_sockets(tmp_path):
    conf = _mail_conf(tmp_path, "unix:/nonexistent/dir/mail.sock")
    theirs, ours = _both(conf, "-e", "stderr")
    assert ours == theirs and ours[0] == 1
    assert "bind() to unix:/nonexistent/dir/mail.sock failed (2: No such file or directory)" \
        in ours[1][1]


def test_t_leaves_no_socket_file_and_tolerates_addresses_in_use(tmp_path):
    import socket
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        for listen in (f"127.0.0.1:{port}", f"unix:{tmp_path}/mail.sock"):
            conf = _mail_conf(tmp_path, listen)
            theirs, ours = _both(conf, "-e", "stderr")
            assert ours == theirs
            assert ours[0] == 0, ours
            assert not os.path.exists(f"{tmp_path}/mail.sock")
        # an existing socket file (a running server's) is in use, and stays
        (tmp_path / "mail.sock").write_bytes(b"")
        theirs, ours = _both(_mail_conf(tmp_path, f"unix:{tmp_path}/mail.sock"))
        assert ours == theirs and ours[0] == 0
        assert os.path.exists(f"{tmp_path}/mail.sock")
    finally:
        busy.close()


def test_t_binds_and_closes(tmp_path):
    """The sockets -t opens are closed when it ends: binding them again works."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf = _mail_conf(tmp_path, f"127.0.0.1:{port}")
    assert cli("-t", "-q", "-c", conf)[0] == 0
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.close()


@pytest.mark.parametrize("text", [
    "events {{}}\nfoo;\n",
    "events {{}}\nerror_log /nonexistent/dir/e.log;\n",
    "events {{}}\nmail {{\n    ssl on;\n    server {{\n        listen 127.0.0.1:110;\n"
    "        protocol pop3;\n        auth_http 127.0.0.1:9;\n    }}\n}}\n",
    "error_log stderr;\nevents {{}}\nfoo;\n",
])
@pytest.mark.parametrize("args", [("-e", "stderr"), ("-e", "/dev/null"), ()])
def test_t_message_forms_as_nginx(tmp_path, text, args):
    """With -e stderr nginx writes full error-log lines while it reads the
    configuration; the short "nginx: [emerg]" form when its log is elsewhere; the verdict
    lines always in the short form.  (No -e: angie-mail's default has no log file, as
    with -e /dev/null; Debian's nginx was built with stderr as its default.)"""
    import oracle
    conf = write(tmp_path, f"load_module {oracle.MAIL_MODULE};\n" + text.format())
    theirs, ours = _both(conf, *(args or ("-e", "/dev/null")))
    if args:
        assert ours == theirs
    else:
        assert cli("--dialect", "nginx", "-t", "-p", f"{tmp_path}/", "-c", conf)[2] == \
            cli("--dialect", "nginx", "-t", "-p", f"{tmp_path}/", "-c", conf, "-e",
                "/dev/null")[2]


@pytest.mark.parametrize("text", [
    "events {{}}\nfoo;\n",
    "events {{}}\nmail {{\n    server {{\n        listen 192.0.2.1:110;\n"
    "        protocol pop3;\n        auth_http 127.0.0.1:9;\n    }}\n}}\n",
    "error_log stderr;\nevents {{}}\nmail {{\n    server {{\n        listen 192.0.2.1:110;\n"
    "        protocol pop3;\n        auth_http 127.0.0.1:9;\n    }}\n}}\n",
])
@pytest.mark.parametrize("args", [("-e", "stderr"), ("-e", "/dev/null")])
def test_start_up_message_forms_as_nginx(tmp_path, text, args):
    import oracle
    conf = write(tmp_path, f"load_module {oracle.MAIL_MODULE};\n" + text.format())
    theirs, ours = _both(conf, *args, test=False)
    assert ours == theirs and ours[0] == 1


@pytest.mark.parametrize("main", ["", "error_log stderr;\n"])
def test_start_up_pid_file_error_as_nginx(tmp_path, main):
    import oracle
    conf = write(tmp_path, f"load_module {oracle.MAIL_MODULE};\n{main}events {{}}\n")
    theirs, ours = _both(conf, "-e", "/dev/null", test=False, pid="/nonexistent/dir/x.pid")
    assert ours == theirs and ours[0] == 1


NO_LIBSSL = """
import builtins, ctypes, io, sys
real_open, real_cdll = builtins.open, ctypes.CDLL
def fake_open(path, *a, **k):
    if path == "/proc/self/maps":
        return io.StringIO("")
    return real_open(path, *a, **k)
class FakeCDLL:                         # an interpreter that exports no OpenSSL symbols
    def __init__(self, name, *a, **k):
        if name is not None:
            raise OSError(name)
builtins.open = fake_open
ctypes.CDLL = FakeCDLL
import angie_mail.proxy.ossl
builtins.open, ctypes.CDLL = real_open, real_cdll
from angie_mail.cli import main
sys.argv = ["angie-mail"] + sys.argv[1:]
sys.exit(main())
"""


def test_without_a_reachable_libssl_plain_text_still_works(tmp_path):
    """An interpreter whose ssl module has OpenSSL linked in (no libssl.so to call):
    plain-text configurations are unaffected; a TLS server is refused by -t with the
    reason, not a traceback."""
    conf = tmp_path / "plain.conf"
    conf.write_text("events {}\nmail {\n    auth_http 127.0.0.1:9000;\n"
                    "    server { listen 127.0.0.1:110; protocol pop3; }\n}\n")
    r = subprocess.run([sys.executable, "-c", NO_LIBSSL, "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "test is successful" in r.stderr, r.stderr
    key = tmp_path / "k.pem"
    cert = tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-subj", "/CN=x", "-days", "2"], check=True,
                   capture_output=True)
    tls = tmp_path / "tls.conf"
    tls.write_text("events {}\nmail {\n    auth_http 127.0.0.1:9000;\n"
                   f"    ssl_certificate {cert};\n    ssl_certificate_key {key};\n"
                   "    server { listen 127.0.0.1:995 ssl; protocol pop3; }\n}\n")
    r = subprocess.run([sys.executable, "-c", NO_LIBSSL, "-t", "-c", str(tls)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "TLS cannot be served here: Python's ssl module is not linked to a shared " \
           "OpenSSL library" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_t_opens_a_configured_pid_file_as_nginx_does(tmp_path):
    """nginx -t opens (creates empty) the pid file: a path the start would fail on
    fails the test; the default pid path is left alone."""
    bad = write(tmp_path, "pid /nonexistent-dir/x.pid;\n" + GOOD)
    rc, out, err = cli("-t", "-c", bad)
    assert rc == 1 and '[emerg] open() "/nonexistent-dir/x.pid" failed (2: No such file ' \
                       'or directory)\n' in err, err
    pid = tmp_path / "run" / "x.pid"
    (tmp_path / "run").mkdir()
    good = write(tmp_path, f"pid {pid};\n" + GOOD, name="good.conf")
    assert cli("-t", "-c", good)[0] == 0
    assert pid.exists() and pid.read_text() == ""
    pid.write_text("123\n")                         # never truncated by -t
    assert cli("-t", "-c", good)[0] == 0 and pid.read_text() == "123\n"
    assert cli("-t", "-c", write(tmp_path, GOOD, name="nopid.conf"), "-p",
               str(tmp_path / "nowhere"))[0] == 0
