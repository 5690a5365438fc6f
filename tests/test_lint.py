"""angie-mail lint: the rules, their positions and hints, rule selection, paths and
the output formats (the basics are in test_cli.py)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, cwd=None, stdin=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "angie_mail", *args], capture_output=True,
                       cwd=cwd, input=stdin, timeout=60, env=env)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def write(tmp_path, text, name="mail.conf"):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return str(p)


def mail(body, head="events {}\n"):
    return head + "mail {\n    auth_http 127.0.0.1:9000/auth;\n" + body + "}\n"


def rules_of(out):
    return [l.rsplit("[", 1)[1].rstrip("]") for l in out.splitlines()
            if l and not l.startswith(" ")]


# --- noise -------------------------------------------------------------------------------

def test_same_server_name_on_several_servers_is_normal(tmp_path):
    """A mail server_name only names the host in greetings and salts: no routing."""
    conf = write(tmp_path, mail("""    server {
        listen 127.0.0.1:110;
        server_name mx.example.com;
    }
    server {
        listen 127.0.0.1:1110;
        protocol pop3;
        server_name mx.example.com;
    }
"""))
    assert cli("lint", conf) == (0, "", "")


def tls_server(port, extra=""):
    return (f"    server {{\n        listen 127.0.0.1:{port};\n        protocol pop3;\n"
            f"        starttls on;\n{extra}    }}\n")


TLS_FILES = "    ssl_certificate a.crt;\n    ssl_certificate_key a.key;\n"


def openssl_major():
    import ssl
    return ssl.OPENSSL_VERSION_INFO[0]


def test_default_ssl_protocols_of_nginx_are_not_reported_when_openssl_refuses_them(tmp_path):
    """nginx 1.22's default ssl_protocols include TLSv1 and TLSv1.1, but OpenSSL 3 and
    later refuse to negotiate them at security level 1 and above (the default)."""
    if openssl_major() < 3:
        pytest.skip("OpenSSL 1.1 negotiates TLSv1 at its default security level")
    conf = write(tmp_path, mail(TLS_FILES + tls_server(110) + tls_server(1110)))
    assert cli("lint", "--dialect", "nginx", conf) == (0, "", "")


def test_default_ssl_protocols_reported_once_when_negotiable(tmp_path):
    conf = write(tmp_path, mail(TLS_FILES + "    ssl_ciphers HIGH:!aNULL:@SECLEVEL=0;\n"
                                + tls_server(110) + tls_server(1110)))
    rc, out, err = cli("lint", "--dialect", "nginx", conf)
    assert rc == 1
    lines = out.splitlines()
    assert lines[0] == (
        f"{conf}:10:9: warning: the default ssl_protocols (TLSv1 TLSv1.1 TLSv1.2 TLSv1.3 in "
        f"nginx 1.22) includes TLSv1 TLSv1.1, which this OpenSSL negotiates with "
        f'ssl_ciphers "HIGH:!aNULL:@SECLEVEL=0" [weak-tls-protocol]')
    assert lines[1] == '  hint: set "ssl_protocols TLSv1.2 TLSv1.3;" in mail {}'
    assert rules_of(out) == ["weak-tls-protocol"]
    # Angie's default is TLSv1.2 TLSv1.3 already
    assert cli("lint", "--dialect", "angie", conf) == (0, "", "")


def test_explicit_weak_protocols_reported_once_at_their_line(tmp_path):
    conf = write(tmp_path, mail(TLS_FILES + "    ssl_protocols TLSv1 TLSv1.2;\n"
                                + tls_server(110) + tls_server(1110)))
    rc, out, err = cli("lint", conf)
    assert rc == 1
    assert out.splitlines()[0] == (f"{conf}:6:5: warning: weak TLS protocols enabled: TLSv1 "
                                   f"[weak-tls-protocol]")
    assert rules_of(out) == ["weak-tls-protocol"]


# --- paths: the command line, the conf dir, the prefix ---------------------------------

FRAGMENT = """mail {
    auth_http 127.0.0.1:9000/auth;
    server {
        listen 127.0.0.1:110;
    }
}
"""


def test_context_main_fragment_needs_no_events(tmp_path):
    conf = write(tmp_path, FRAGMENT)
    assert cli("lint", "--context", "main", conf) == (0, "", "")
    rc, out, err = cli("lint", conf)           # a whole configuration needs events {}
    assert rc == 1 and 'no "events" section in configuration [error]' in out


def test_file_is_a_command_line_path_not_under_the_prefix(tmp_path):
    write(tmp_path, mail("    server {\n        listen 127.0.0.1:110;\n    }\n"), "etc/a.conf")
    (tmp_path / "prefix").mkdir()
    assert cli("lint", "-p", str(tmp_path / "prefix"), "etc/a.conf", cwd=str(tmp_path)) \
        == (0, "", "")


def test_load_module_is_under_the_prefix_and_checked_only_with_check_files(tmp_path):
    conf = write(tmp_path, "load_module modules/m.so;\n" + mail(
        "    server {\n        listen 127.0.0.1:110;\n    }\n"), "etc/a.conf")
    prefix = tmp_path / "prefix"
    (prefix / "modules").mkdir(parents=True)
    assert cli("lint", "-p", str(prefix), conf, cwd=str(tmp_path)) == (0, "", "")
    rc, out, err = cli("lint", "-p", str(prefix), "--check-files", conf, cwd=str(tmp_path))
    assert rc == 1 and f'dlopen() "{prefix}/modules/m.so" failed' in out
    (prefix / "modules" / "m.so").write_text("")
    assert cli("lint", "-p", str(prefix), "--check-files", conf, cwd=str(tmp_path)) \
        == (0, "", "")


def test_includes_are_under_the_main_files_directory(tmp_path):
    """nginx takes a relative include under the directory of the main configuration
    file, wherever lint runs and whatever the prefix."""
    write(tmp_path, "types { text/plain txt; }\n", "etc/nginx/mime.types")
    write(tmp_path, "server {\n    listen 127.0.0.1:110;\n    foo;\n}\n",
          "etc/nginx/mail.d/a.conf")
    write(tmp_path, "events {}\nhttp {\n    include mime.types;\n}\n"
          "mail {\n    auth_http 127.0.0.1:9000/auth;\n    include mail.d/*.conf;\n}\n",
          "etc/nginx/nginx.conf")
    (tmp_path / "elsewhere").mkdir()
    rc, out, err = cli("lint", "-p", str(tmp_path / "elsewhere"), "etc/nginx/nginx.conf",
                       cwd=str(tmp_path))
    assert (rc, err) == (1, "")
    assert out == 'etc/nginx/mail.d/a.conf:3:5: error: unknown directive "foo" [unknown]\n'


def test_fragment_includes_are_under_the_conf_dir(tmp_path):
    write(tmp_path, "timeout 5s;\n", "etc/snippets/t.conf")
    frag = write(tmp_path, "include snippets/t.conf;\nserver {\n    listen 127.0.0.1:110;\n"
                 "}\n", "frag/mailpart.conf")
    rc, out, err = cli("lint", "--context", "mail", "--conf-dir", "etc", "frag/mailpart.conf",
                       cwd=str(tmp_path))
    # no auth_http: the fragment inherits it from the mail {} that includes it
    assert 'open() "etc/snippets/t.conf" failed' not in out
    # without --conf-dir: the directory of the default main file, PREFIX/conf/
    rc, out, err = cli("lint", "--context", "mail", "frag/mailpart.conf", cwd=str(tmp_path))
    assert out.startswith('frag/mailpart.conf:1:1: error: open() "conf/snippets/t.conf" '
                          'failed (2: No such file or directory)')


def test_paths_stay_as_given(tmp_path):
    conf = write(tmp_path, mail("    server {\n        listen 127.0.0.1:110;\n        foo;\n"
                                "    }\n"))
    rc, out, err = cli("lint", conf, cwd=str(tmp_path))
    assert out == f'{conf}:6:9: error: unknown directive "foo" [unknown]\n'
    rc, out, err = cli("lint", "./mail.conf", cwd=str(tmp_path))
    assert out == './mail.conf:6:9: error: unknown directive "foo" [unknown]\n'


# --- host names: looked up only with --resolve -----------------------------------------

def run_in_process(argv, capsys):
    from angie_mail.lint import main
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


HOSTS = mail("""    resolver ns.example.invalid;
    server {
        listen 127.0.0.1:25;
        listen mx.example.invalid:2525;
    }
    server {
        listen 127.0.0.1:587;
    }
""").replace("127.0.0.1:9000/auth", "auth.example.invalid:9000/auth")


def test_lint_looks_up_no_host_name_unless_asked(tmp_path, capsys, monkeypatch):
    import socket

    def no_dns(*a, **kw):
        raise AssertionError(f"host name looked up: {a[0]}")
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    conf = write(tmp_path, HOSTS)
    rc, out, err = run_in_process(["--fail-on", "error", conf], capsys)
    assert (rc, err) == (0, "")
    # not loopback as far as lint knows: the auth request would cross the network
    assert sorted(rules_of(out)) == ["auth-http-cleartext", "mx-requires-auth",
                                     "plaintext-auth"]


def test_unresolvable_host_is_one_finding(tmp_path, capsys, monkeypatch):
    import socket
    asked = []

    def dns(host, *a, **kw):
        asked.append(host)
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 0))]
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    conf = write(tmp_path, HOSTS)
    rc, out, err = run_in_process(["--resolve", "--fail-on", "error", conf], capsys)
    assert rc == 1
    errors = [l for l in out.splitlines() if ": error: " in l]
    assert errors == [
        f'{conf}:3:5: error: host not found in auth_http "auth.example.invalid:9000/auth" '
        f'[host-not-found]',
        f'{conf}:4:5: error: host not found in resolver "ns.example.invalid" [host-not-found]',
        f'{conf}:7:9: error: host not found in "mx.example.invalid:2525" of the "listen" '
        f'directive [host-not-found]']
    assert sorted(set(asked)) == ["auth.example.invalid", "mx.example.invalid",
                                  "ns.example.invalid"]
    assert len(asked) == 3            # each name once


def test_t_still_resolves_as_nginx_does(tmp_path, monkeypatch):
    import socket

    from angie_mail.cli import Options
    from angie_mail.conf.load import load_config

    def dns(host, *a, **kw):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    o = Options()
    o.conf = write(tmp_path, HOSTS)
    res, conf = load_config(o)
    assert res.first_error.text() == \
        f'host not found in auth_http "auth.example.invalid:9000/auth" in {conf}:3'


# --- order, columns, file-level findings -----------------------------------------------

def test_findings_sorted_by_file_and_line_with_columns(tmp_path):
    write(tmp_path, "server {\n    listen 0.0.0.0:110;\n  bar;\n}\n", "conf/z.conf")
    write(tmp_path, "server {\n\tlisten 127.0.0.1:143;\n}\n", "conf/a.conf")
    write(tmp_path, 'events {}\nmail {\n    include z.conf;\n    server_name "é"; foo;\n'
          "    include a.conf;\n}\n", "conf/mail.conf")
    rc, out, err = cli("lint", "conf/mail.conf", cwd=str(tmp_path))
    assert out.splitlines() == [
        'conf/a.conf:1:1: error: no "auth_http" is defined for server in conf/a.conf:1 '
        '[merge]',
        'conf/mail.conf:4:22: error: unknown directive "foo" [unknown]',
        'conf/z.conf:1:1: error: no "auth_http" is defined for server in conf/z.conf:1 '
        '[merge]',
        'conf/z.conf:3:3: error: unknown directive "bar" [unknown]',
    ]
    conf = write(tmp_path, mail("  server {\n        listen 0.0.0.0:110;\n    }\n"))
    rc, out, err = cli("lint", conf)
    assert out.splitlines()[0] == (f"{conf}:5:9: warning: passwords are accepted in clear "
                                   f"text on 0.0.0.0:110 (pop3) [plaintext-auth]")
    conf = write(tmp_path, "events {}\nmail {\n    server {\n        listen 127.0.0.1:110;\n"
                 "    }\n}\n")
    rc, out, err = cli("lint", conf)
    assert out == (f'{conf}:3:5: error: no "auth_http" is defined for server in {conf}:3 '
                   f'[merge]\n')


def test_file_level_findings_name_the_file(tmp_path):
    conf = write(tmp_path, FRAGMENT)
    rc, out, err = cli("lint", "--format", "json", conf)
    f, = json.loads(out)["findings"]
    assert (f["file"], f["line"], f["column"], f["message"]) == (
        conf, None, None, 'no "events" section in configuration')
    rc, out, err = cli("lint", conf)
    assert out == f'{conf}: error: no "events" section in configuration [error]\n'
    rc, out, err = cli("lint", "none.conf", cwd=str(tmp_path))
    assert out == ('none.conf: error: open() "none.conf" failed (2: No such file or '
                   'directory) [include]\n')


# --- rule selection ----------------------------------------------------------------------

TWO_WARNINGS = """events {}
mail {
    auth_http 10.1.2.3:9000/auth;
    server {
        listen 0.0.0.0:110;
    }
}
"""


def test_select_and_ignore(tmp_path):
    conf = write(tmp_path, TWO_WARNINGS)
    assert rules_of(cli("lint", conf)[1]) == ["auth-http-cleartext", "plaintext-auth"]
    assert rules_of(cli("lint", "--select", "plaintext-auth", conf)[1]) == ["plaintext-auth"]
    assert rules_of(cli("lint", "--ignore", "plaintext-auth,auth-http-cleartext", conf)[1]) \
        == []
    assert cli("lint", "--ignore", "plaintext-auth,auth-http-cleartext", conf)[0] == 0
    rc, out, err = cli("lint", "--select", "plaintext-auht", conf)
    assert (rc, out) == (2, "")
    assert 'unknown rule "plaintext-auht"' in err


def test_inline_suppression(tmp_path):
    text = TWO_WARNINGS.replace("listen 0.0.0.0:110;",
                                "listen 0.0.0.0:110;  # angie-mail: ignore[plaintext-auth]")
    assert rules_of(cli("lint", write(tmp_path, text))[1]) == ["auth-http-cleartext"]
    text = TWO_WARNINGS.replace(
        "    auth_http", "    # angie-mail: ignore[auth-http-cleartext, plaintext-auth]\n"
        "    auth_http")
    assert rules_of(cli("lint", write(tmp_path, text))[1]) == ["plaintext-auth"]
    # only the line before: not further up, and not another rule
    text = TWO_WARNINGS.replace("    server {", "    # angie-mail: ignore[plaintext-auth]\n"
                                "    server {")
    assert rules_of(cli("lint", write(tmp_path, text))[1]) == ["auth-http-cleartext",
                                                              "plaintext-auth"]
    text = TWO_WARNINGS.replace("listen 0.0.0.0:110;",
                                "listen 0.0.0.0:110;  # angie-mail: ignore[not-portable]")
    assert rules_of(cli("lint", write(tmp_path, text))[1]) == ["auth-http-cleartext",
                                                              "plaintext-auth"]


def test_pyproject_defaults(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.angie-mail.lint]\nignore = ["plaintext-auth"]\n'
        'fail-on = "error"\ndialect = "nginx"\n')
    sub = tmp_path / "deploy" / "mail"
    sub.mkdir(parents=True)
    conf = write(sub, TWO_WARNINGS.replace("    server {", "    ssl off;\n    server {"))
    rc, out, err = cli("lint", conf, cwd=str(sub))
    assert rc == 0          # fail-on error; nginx knows "ssl"
    assert rules_of(out) == ["auth-http-cleartext", "nginx-warning"]
    rc, out, err = cli("lint", "--fail-on", "warning", "--ignore", "nginx-warning", conf,
                       cwd=str(sub))
    assert (rc, rules_of(out)) == (1, ["auth-http-cleartext"])
    rc, out, err = cli("lint", "--select", "plaintext-auth", conf, cwd=str(sub))
    assert rules_of(out) == []          # ignore still applies
    assert cli("lint", conf, cwd=str(tmp_path.parent))[0] == 1      # not found upward
    (tmp_path / "pyproject.toml").write_text('[tool.angie-mail.lint]\nfail_on = "error"\n')
    rc, out, err = cli("lint", conf, cwd=str(sub))
    assert rc == 2 and f'{tmp_path}/pyproject.toml: [tool.angie-mail.lint]: unknown ' \
        f'setting "fail_on"' in err


# --- mail-semantic warnings --------------------------------------------------------------

def lint_server(tmp_path, lines, protocol="imap", port=1143, extra_mail="", *opts):
    body = "".join(f"        {l}\n" for l in lines)
    conf = write(tmp_path, mail(extra_mail + f"    server {{\n        listen 127.0.0.1:{port};\n"
                                f"        protocol {protocol};\n{body}    }}\n"))
    rc, out, err = cli("lint", *opts, conf)
    assert err == ""
    return conf, rc, out


def test_other_protocols_directive_in_a_server(tmp_path):
    conf, rc, out = lint_server(tmp_path, ["smtp_auth plain;", "imap_auth plain;"])
    assert out == (f'{conf}:7:9: warning: "smtp_auth" has no effect in an imap server '
                   f'[other-protocol-directive]\n'
                   f'  hint: move it to the smtp server it is meant for, or to mail {{}}\n')
    # at mail level it is how settings are shared between servers
    conf, rc, out = lint_server(tmp_path, [], extra_mail="    smtp_auth plain;\n")
    assert (rc, out) == (0, "")


def test_capability_split_in_two(tmp_path):
    conf, rc, out = lint_server(tmp_path, ["smtp_capabilities SIZE 50000000 PIPELINING;"],
                                "smtp", 1587)
    assert out == (f'{conf}:7:9: warning: "SIZE" and "50000000" are two capabilities, two '
                   f'lines of the EHLO reply [split-capability]\n'
                   f'  hint: quote them as one: "SIZE 50000000"\n')
    conf, rc, out = lint_server(tmp_path, ["imap_capabilities IMAP4rev1 LITERAL +;"])
    assert out == (f'{conf}:7:9: warning: "LITERAL" and "+" are two capabilities '
                   f'[split-capability]\n  hint: write LITERAL+\n')
    conf, rc, out = lint_server(tmp_path, ["pop3_capabilities TOP USER EXPIRE NEVER;"],
                                "pop3", 1110)
    assert '"EXPIRE" and "NEVER" are two capabilities, two lines of the CAPA reply' in out
    conf, rc, out = lint_server(tmp_path, ['smtp_capabilities "SIZE 50000000" 8BITMIME '
                                           'PIPELINING;'], "smtp", 1587)
    assert (rc, out) == (0, "")


def test_misspelled_capability(tmp_path):
    conf, rc, out = lint_server(tmp_path, ['imap_capabilities IMAP4rev1 "LITERAL +";'])
    assert out == (f'{conf}:7:9: warning: "LITERAL +" is not an IMAP capability (IMAP '
                   f'capabilities are single words) [misspelled-capability]\n'
                   f'  hint: did you mean LITERAL+?\n')
    conf, rc, out = lint_server(tmp_path, ["smtp_capabilities PIPELINEING 8BITMIME;"],
                                "smtp", 1587)
    assert out == (f'{conf}:7:9: warning: "PIPELINEING" is not an SMTP capability '
                   f'[misspelled-capability]\n  hint: did you mean PIPELINING?\n')
    # names that resemble nothing known are left alone (X- extensions, vendors')
    conf, rc, out = lint_server(tmp_path, ["imap_capabilities IMAP4rev1 X-ACME-FOO;"])
    assert (rc, out) == (0, "")


def test_capability_the_proxy_cannot_serve(tmp_path):
    conf, rc, out = lint_server(tmp_path, ["imap_capabilities IMAP4rev1 ID IDLE;"])
    assert out == (f'{conf}:7:9: warning: "ID" makes clients send ID before login, which '
                   f'the proxy answers with "BAD invalid command" [unservable-capability]\n'
                   f'  hint: remove ID: the backend offers it after login\n')
    conf, rc, out = lint_server(tmp_path, ["smtp_capabilities PIPELINING CHUNKING;"],
                                "smtp", 1587)
    assert out.splitlines()[0] == (
        f'{conf}:7:9: warning: "CHUNKING" makes clients send BDAT with the message right '
        f'behind it; where the proxy answers itself (a refused RCPT, a failed AUTH) it '
        f'refuses BDAT and reads the message as commands [unservable-capability]')


def test_reply_text_in_capabilities(tmp_path):
    conf, rc, out = lint_server(tmp_path, ['smtp_capabilities "250-SIZE 1000" 8BITMIME;'],
                                "smtp", 1587)
    assert out == (f'{conf}:7:9: warning: "250-SIZE 1000" holds reply text: the proxy '
                   f'writes "250-" itself [capability-reply-text]\n'
                   f'  hint: write the capability only: "SIZE 1000"\n')
    conf, rc, out = lint_server(tmp_path, ['pop3_capabilities TOP "+OK USER";'], "pop3", 1110)
    assert '"+OK USER" holds reply text' in out


def test_starttls_in_capabilities(tmp_path):
    conf, rc, out = lint_server(tmp_path, ["smtp_capabilities PIPELINING STARTTLS;"],
                                "smtp", 1587)
    assert out == (f'{conf}:7:9: warning: STARTTLS is advertised but starttls is off: the '
                   f'proxy refuses STARTTLS [starttls-capability]\n'
                   f'  hint: remove STARTTLS from smtp_capabilities and set "starttls on;" '
                   f'(the proxy advertises it then)\n')
    conf, rc, out = lint_server(tmp_path, ["pop3_capabilities TOP USER STLS;", "starttls on;"],
                                "pop3", 1110, TLS_FILES)
    assert f'{conf}:9:9: warning: STLS is listed in pop3_capabilities and added by ' \
           f'"starttls on": clients see it twice [starttls-capability]' in out


def test_mail_without_server(tmp_path):
    conf = write(tmp_path, "events {}\nmail {\n    auth_http 127.0.0.1:9000/auth;\n}\n")
    rc, out, err = cli("lint", conf)
    assert out == (f"{conf}:2:1: warning: mail {{}} has no server {{}}: it opens no socket "
                   f"[mail-without-server]\n"
                   f"  hint: add a server {{ listen ...; }}, or remove mail {{}}\n")


def test_variables_in_auth_http_header(tmp_path):
    conf, rc, out = lint_server(tmp_path, ['auth_http_header X-Client "$remote_addr";',
                                           "auth_http_header X-Key secret$1;"])
    assert out == (f'{conf}:7:9: warning: "$remote_addr" is sent as it is: the mail modules '
                   f'expand no variables [auth-http-header-variable]\n'
                   f'  hint: the auth request carries Client-IP, Client-Host and Auth-* '
                   f'headers already (docs/auth_http.md)\n')


def test_auth_mechanisms_on_an_mx(tmp_path):
    conf, rc, out = lint_server(tmp_path, ["smtp_auth none plain;"], "smtp", 25)
    assert out == (f"{conf}:7:9: warning: smtp_auth offers AUTH PLAIN on port 25 (an MX): "
                   f"no MTA authenticates there, password guessers do [auth-on-mx]\n"
                   f'  hint: use "smtp_auth none;" on port 25 and offer AUTH on 587 or 465\n')
    conf, rc, out = lint_server(tmp_path, ["smtp_auth none plain;"], "smtp", 1587)
    assert (rc, out) == (0, "")


def test_ssl_directive_hint(tmp_path):
    conf = write(tmp_path, mail("    ssl on;\n    server {\n        listen 127.0.0.1:110;\n"
                                "    }\n"))
    rc, out, err = cli("lint", "--dialect", "angie", conf)
    assert out == (f'{conf}:4:5: error: unknown directive "ssl" [unknown]\n'
                   f'  hint: use "listen ... ssl" for implicit TLS (the "ssl" directive was '
                   f'removed from Angie)\n')
    rc, out, err = cli("lint", "--dialect", "nginx", conf)
    assert '  hint: use "listen ... ssl" for implicit TLS' in out


# --- SARIF ---------------------------------------------------------------------------------

def test_sarif_uris_rules_and_help(tmp_path):
    from urllib.parse import unquote, urlparse
    write(tmp_path, "events {}\nmail {\n    foo;\n}\n", "my conf/mail é.conf")
    rc, out, err = cli("lint", "--format", "sarif", "--select", "unknown",
                       "my conf/mail é.conf", "-",
                       cwd=str(tmp_path), stdin=b"events {}\nbar;\n")
    run = json.loads(out)["runs"][0]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.as_uri() + "/"
    assert run["columnKind"] == "unicodeCodePoints"
    locs = [r["locations"][0]["physicalLocation"] for r in run["results"]]
    assert [l["artifactLocation"] for l in locs] == [
        {"uri": "%3Cstdin%3E", "uriBaseId": "%SRCROOT%"},
        {"uri": "my%20conf/mail%20%C3%A9.conf", "uriBaseId": "%SRCROOT%"}]
    assert [(l["region"]["startLine"], l["region"]["startColumn"]) for l in locs] == \
        [(2, 1), (3, 5)]
    conf = str(tmp_path / "my conf" / "mail é.conf")
    rc, out, err = cli("lint", "--format", "sarif", "--select", "unknown", conf)
    loc = json.loads(out)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "file://" + conf.replace(" ", "%20").replace(
        "é", "%C3%A9")}
    rules = run["tool"]["driver"]["rules"]
    from angie_mail.lint import RULES
    assert [r["id"] for r in rules] == list(RULES)
    for r in run["results"]:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
    docs = open(os.path.join(ROOT, "docs", "lint.md")).read()
    for r in rules:
        assert r["help"]["text"] and r["fullDescription"]["text"]
        uri = urlparse(r["helpUri"])
        assert uri.scheme == "file" and uri.fragment == r["id"]
        assert os.path.samefile(unquote(uri.path), os.path.join(ROOT, "docs", "lint.md"))
        assert f"\n### {r['id']}\n" in docs, r["id"]


def test_a_syntax_error_hides_what_it_cut_off(tmp_path):
    conf = write(tmp_path, "events {}\nmail {\n    server {\n        listen 127.0.0.1:110\n"
                 "    }\n}\n")
    rc, out, err = cli("lint", conf)
    assert out == f'{conf}:5:1: error: unexpected "}}" [syntax]\n'


def test_misspelled_capability_transposed_letters(tmp_path):
    conf, rc, out = lint_server(tmp_path, ["imap_capabilities IMAP4rev1 IDEL;"])
    assert '"IDEL" is not an IMAP capability' in out and "did you mean IDLE?" in out


# --- pre-commit ----------------------------------------------------------------------------

def test_pre_commit_hook_lints_the_top_level_configuration_only(tmp_path):
    """The hook runs its entry with the args of the documented setup and no file names:
    fragments are linted through their include, other .conf files not at all."""
    import re
    import shlex
    hooks = open(os.path.join(ROOT, ".pre-commit-hooks.yaml")).read()
    assert re.search(r"^  pass_filenames: false$", hooks, re.M)
    entry = re.search(r"^  entry: (.*)$", hooks, re.M).group(1)
    docs = open(os.path.join(ROOT, "docs", "lint.md")).read()
    setup = docs[docs.index("### pre-commit"):]
    setup = setup[setup.index("```yaml"):]
    args = re.search(r"args: \[(.*?)\]", setup).group(1).split(", ")
    files = re.search(r"files: (\S+)", setup).group(1)
    write(tmp_path, "server {\n    listen 127.0.0.1:110;\n    protocl pop3;\n}\n",
          "conf/mail.d/pop3.conf")
    write(tmp_path, "events {}\nmail {\n    auth_http 127.0.0.1:9000/auth;\n"
          "    include mail.d/*.conf;\n}\n", "conf/mail.conf")
    write(tmp_path, "server { listen 80; location / { root /srv; } }\n", "site/www.conf")
    assert re.search(files, "conf/mail.d/pop3.conf") and not re.search(files, "site/www.conf")
    rc, out, err = cli(*shlex.split(entry)[1:], *args, cwd=str(tmp_path))
    assert rc == 1
    assert out == 'conf/mail.d/pop3.conf:3:5: error: unknown directive "protocl" [unknown]\n'


def test_mail_without_server_in_a_fragment_is_not_reported(tmp_path):
    """Angie joins every mail {} into one: a main-level fragment's mail {} may hold only
    settings, with the servers in another file's mail {}."""
    conf = write(tmp_path, "mail {\n    auth_http 127.0.0.1:9000/auth;\n}\n")
    assert cli("lint", "--context", "main", conf) == (0, "", "")


def test_backend_tls_without_verification(tmp_path):
    conf, rc, out = lint_server(tmp_path, ["proxy_ssl starttls;"], "imap", 1143, "",
                                "--select", "backend-tls-unverified,not-portable")
    assert out == (
        f"{conf}:7:9: warning: proxy_ssl starttls without proxy_ssl_verify: the backend's "
        f"certificate is not checked, so anyone on the path can take the passwords sent to "
        f"it [backend-tls-unverified]\n"
        f"  hint: proxy_ssl_verify on; with proxy_ssl_trusted_certificate and proxy_ssl_name\n"
        f'{conf}:7:9: warning: "proxy_ssl" is an angie-mail extension: Angie reports '
        f'"proxy_ssl" directive is not allowed here [not-portable]\n')
    ca = write(tmp_path, "", "ca.crt")
    conf, rc, out = lint_server(tmp_path, ["proxy_ssl on;", "proxy_ssl_verify on;",
                                           f"proxy_ssl_trusted_certificate {ca};"],
                                "imap", 1143, "", "--select", "backend-tls-unverified")
    assert out == ""


def test_throttling_that_locks_out_the_owner(tmp_path):
    zone = "    auth_throttle_zone zone=guard:1m;\n"
    conf, rc, out = lint_server(tmp_path, ["auth_throttle guard login=10/10m;",
                                           "auth_throttle_trust off;"], "imap", 1143, zone,
                                "--select", "owner-lockout")
    assert out == (
        f"{conf}:8:9: warning: auth_throttle counts failures per login (login=10/...) with "
        f"auth_throttle_trust off: anyone who knows a login can keep its owner locked out "
        f"from everywhere [owner-lockout]\n"
        f"  hint: keep auth_throttle_trust (7d by default), so clients that logged in "
        f"recently are exempt; or drop login=\n")
    for lines in (["auth_throttle guard login=10/10m;"],                   # trust 7d
                  ["auth_throttle guard addr=10/10m pair=5/1h;", "auth_throttle_trust off;"]):
        assert lint_server(tmp_path, lines, "imap", 1143, zone,
                           "--select", "owner-lockout")[2] == ""


def test_connection_limits_that_clients_exceed(tmp_path):
    zones = ("    limit_conn_zone $remote_user zone=user:1m;\n"
             "    limit_conn_zone $remote_addr zone=addr:1m;\n")
    conf, rc, out = lint_server(tmp_path, ["limit_conn user 2;", "limit_conn addr 4;"],
                                "imap", 1143, zones, "--select", "limit-conn-too-low")
    assert out == (
        f"{conf}:9:9: warning: limit_conn user 2 by $remote_user: IMAP clients open several "
        f"connections per account, and a client over the limit is refused with a temporary "
        f"error it may show as a password prompt [limit-conn-too-low]\n"
        f"  hint: allow at least 5 per user\n"
        f"{conf}:10:9: warning: limit_conn addr 4 by $remote_addr: users behind one NAT "
        f"address (an office, a carrier) share it, and a client over the limit is refused "
        f"with a temporary error it may show as a password prompt [limit-conn-too-low]\n"
        f"  hint: allow at least 10 per address\n")
    # one session per user is normal for POP3 (the maildrop is locked); enough is enough
    for proto, port, lines in (("pop3", 110, ["limit_conn user 1;"]),
                               ("imap", 1143, ["limit_conn user 10;", "limit_conn addr 50;"])):
        assert lint_server(tmp_path, lines, proto, port, zones,
                           "--select", "limit-conn-too-low")[2] == ""
    # inherited by two servers: reported once
    conf = write(tmp_path, mail(zones + "    limit_conn user 1;\n"
                                "    server {\n        listen 127.0.0.1:143;\n"
                                "        protocol imap;\n    }\n"
                                "    server {\n        listen 127.0.0.1:993;\n"
                                "        protocol imap;\n    }\n"))
    rc, out, err = cli("lint", "--select", "limit-conn-too-low", conf)
    assert rules_of(out) == ["limit-conn-too-low"]


def test_secret_files_readable_by_everyone(tmp_path):
    """secret-readable (with --check-files): a private key or a ticket key every local
    user can read; group-readable keys (Debian's ssl-cert group) are not reported."""
    import shutil
    pki = tmp_path / "pki"
    pki.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(pki / "k.pem"),
                    "-out", str(pki / "c.pem"), "-subj", "/CN=mail.example.test", "-days",
                    "2"], check=True, capture_output=True)
    (pki / "t.key").write_bytes(os.urandom(80))
    conf = write(tmp_path, mail("    ssl_certificate pki/c.pem;\n"
                                "    ssl_certificate_key pki/k.pem;\n"
                                "    ssl_session_ticket_key pki/t.key;\n"
                                "    server { listen 127.0.0.1:995 ssl; protocol pop3; }\n"
                                "    server { listen 127.0.0.1:993 ssl; protocol imap; }\n"))
    os.chmod(pki / "k.pem", 0o644)
    os.chmod(pki / "t.key", 0o640)
    rc, out, err = cli("lint", "--check-files", conf, cwd=str(tmp_path))
    assert rules_of(out) == ["secret-readable"], out + err      # once, for two servers
    assert f'{conf}:5:5: warning: private key "{pki}/k.pem" is readable by every user ' \
           f'of this machine (mode 0644) [secret-readable]' in out
    os.chmod(pki / "k.pem", 0o600)
    os.chmod(pki / "t.key", 0o604)
    rc, out, err = cli("lint", "--check-files", conf, cwd=str(tmp_path))
    assert rules_of(out) == ["secret-readable"] and "session ticket key" in out, out
    os.chmod(pki / "t.key", 0o600)
    assert cli("lint", "--check-files", conf, cwd=str(tmp_path))[:2] == (0, "")
    # without --check-files nothing is opened
    os.chmod(pki / "k.pem", 0o644)
    assert cli("lint", conf, cwd=str(tmp_path))[:2] == (0, "")
    shutil.rmtree(pki)


def test_user_accounts_are_the_deploy_hosts_unless_check_files(tmp_path):
    """`user angie;` (a stock package's account) lints clean on a machine that has no
    such account; --check-files looks it up here, as -t does."""
    conf = write(tmp_path, mail("    server { listen 127.0.0.1:1110; protocol pop3; }\n",
                                head="user no-such-account-here;\nevents {}\n"))
    rc, out, err = cli("lint", "--format", "json", conf)
    assert rc == 0 and "getpwnam" not in out + err, out + err
    rc, out, err = cli("lint", "--check-files", conf)
    if os.geteuid() == 0:           # (not root: nginx only warns that user is ignored)
        assert rc == 1 and 'getpwnam("no-such-account-here") failed' in out, out


def test_tls_values_openssl_refuses_are_found_without_check_files(tmp_path):
    """A typo in ssl_ecdh_curve or an ssl_conf_command value fails the start; lint finds
    it without reading any file (commands that name a file wait for --check-files),
    a command at its own line."""
    conf = write(tmp_path, mail(
        "    ssl_certificate /x.crt;\n    ssl_certificate_key /x.key;\n"
        "    server {\n        listen 127.0.0.1:1993 ssl;\n        protocol imap;\n"
        "        ssl_ecdh_curve X25519:secp384r:prime256v1;\n    }\n"
        "    server {\n        listen 127.0.0.1:1994 ssl;\n        protocol imap;\n"
        "        ssl_conf_command Certificate /nonexistent.crt;\n"
        "        ssl_conf_command Options Bogus;\n    }\n"))
    rc, out, err = cli("lint", conf)
    assert rc == 1
    lines = out.splitlines()
    assert any("SSL_CTX_set1_curves_list(\"X25519:secp384r:prime256v1\") failed" in l
               for l in lines), out
    assert any(l.startswith(f"{conf}:15:") and 'SSL_CONF_cmd("Options", "Bogus")' in l
               for l in lines), out
    assert "nonexistent.crt" not in out


def test_a_mail_fragment_may_inherit_auth_http_and_certificates(tmp_path):
    """`--context mail` on mail.d/imap.conf, included by a mail{} that sets auth_http
    and the certificates: their absence from the fragment is not an error (as for a
    server fragment, what it inherits is unknown); the whole configuration still
    reports them when they are missing everywhere."""
    frag = write(tmp_path, "server {\n    listen 127.0.0.1:1143;\n    protocol imap;\n"
                           "    starttls only;\n}\n", name="mail.d/imap.conf")
    rc, out, err = cli("lint", "--context", "mail", frag)
    assert "auth_http" not in out and "ssl_certificate" not in out, out
    assert rc == 0, out + err
    whole = write(tmp_path, "events {}\nmail {\n    include mail.d/imap.conf;\n}\n")
    rc, out, err = cli("lint", whole)
    assert rc == 1 and 'no "auth_http" is defined for server' in out, out


def test_an_mx_that_requires_auth_refuses_all_inbound_mail(tmp_path):
    """Port 25 without "none" in smtp_auth (explicit, or the default plain login):
    every MAIL FROM of another MTA gets 530; with none, or on 587, nothing is said."""
    def run(lines, port=25):
        conf, rc, out = lint_server(tmp_path, lines, "smtp", port)
        return [l for l in out.splitlines() if "[mx-requires-auth]" in l]
    assert run(["smtp_auth plain login;"])
    assert run([])                                       # the default: plain login
    assert not run(["smtp_auth none;"])
    assert not run(["smtp_auth plain login;"], port=587)


def test_a_server_header_list_that_drops_the_mail_level_headers(tmp_path):
    """auth_http_header is replaced per server, not extended (directives.md §5): the
    mail-level X-Auth-Key is not sent for a server with its own list without it."""
    head = "    auth_http_header X-Auth-Key secret123;\n    auth_http_header X-Site main;\n"
    conf, rc, out = lint_server(tmp_path, ["auth_http_header X-Site imap;"], extra_mail=head)
    lines = [l for l in out.splitlines() if "[auth-http-header-replaced]" in l]
    assert len(lines) == 1 and "X-Auth-Key is not sent" in lines[0] and ":9:9:" in lines[0]
    conf, rc, out = lint_server(tmp_path, ["auth_http_header x-auth-key other;",
                                           "auth_http_header X-Site imap;"], extra_mail=head)
    assert "auth-http-header-replaced" not in out            # repeated: nothing lost
    conf, rc, out = lint_server(tmp_path, [], extra_mail=head)
    assert "auth-http-header-replaced" not in out            # inherited whole
