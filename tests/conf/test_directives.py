"""The analyzer and merge against the spec (directives.md), in the Angie dialects.

nginx-dialect behaviour is checked against the real nginx in test_oracle_config.py;
here are the Angie-only rules and the merged values the runtime reads."""

import pytest

from angie_mail.conf.analyze import analyze
from angie_mail.conf.parse import parse_string

HEAD = "events {}\nmail {\n    auth_http 127.0.0.1:9/auth;\n"


def run(text, dialect="angie-mail", **kw):
    return analyze(parse_string(text, name="t.conf"), dialect=dialect, hostname="host.test",
                   **kw)


def err(text, dialect="angie-mail"):
    r = run(text, dialect)
    assert not r.ok, "expected an error"
    return r.first_error.text()


def server(*lines, mail=(), dialect="angie-mail"):
    text = (HEAD + "".join(f"    {l}\n" for l in mail) + "    server {\n"
            "        listen 127.0.0.1:110;\n" + "".join(f"        {l}\n" for l in lines)
            + "    }\n}\n")
    r = run(text, dialect)
    assert r.ok, r.first_error.text()
    return r.config.servers[0]


def server_err(*lines, mail=(), dialect="angie-mail"):
    text = (HEAD + "".join(f"    {l}\n" for l in mail) + "    server {\n"
            "        listen 127.0.0.1:110;\n" + "".join(f"        {l}\n" for l in lines)
            + "    }\n}\n")
    return err(text, dialect)


# --- defaults after merge -------------------------------------------------------------

def test_defaults():
    s = server()
    assert s.protocol == "pop3" and s.server_name == "host.test"
    assert (s.timeout_ms, s.resolver, s.resolver_timeout_ms, s.max_errors, s.max_commands) \
        == (60000, None, 30000, 5, 1000)
    assert (s.auth_http.uri, s.auth_http.host_header, s.auth_http.addr.text) == \
        ("/auth", "127.0.0.1", "127.0.0.1:9")
    assert (s.auth_http_timeout_ms, s.auth_http_header, s.auth_http_pass_client_cert) == \
        (60000, (), False)
    assert (s.proxy, s.proxy_buffer, s.proxy_timeout_ms, s.proxy_pass_error_message,
            s.xclient, s.proxy_smtp_auth, s.proxy_protocol) == \
        (False, 4096, 86400000, False, True, False, False)
    assert s.set_real_ip_from == ()
    assert s.pop3_auth == {"plain"} and s.pop3_capabilities == ("TOP", "USER", "UIDL")
    assert s.pop3_client_buffer == 128
    assert s.imap_auth == {"plain"} and s.imap_capabilities == ("IMAP4", "IMAP4rev1", "UIDPLUS")
    assert s.smtp_auth == {"plain", "login"} and s.smtp_capabilities == ()
    assert (s.imap_client_buffer, s.smtp_client_buffer, s.smtp_greeting_delay_ms) == \
        (4096, 4096, 0)
    assert (s.starttls, s.ssl, s.ssl_protocols, s.ssl_ciphers, s.ssl_ecdh_curve) == \
        ("off", False, {"TLSv1.2", "TLSv1.3"}, "HIGH:!aNULL:!MD5", "auto")
    assert (s.ssl_session_cache.builtin, s.ssl_session_tickets, s.ssl_session_timeout) == \
        ("none", True, 300)
    assert (s.ssl_verify_client, s.ssl_verify_depth, s.ssl_prefer_server_ciphers) == \
        ("off", 1, False)


def test_nginx_dialect_protocol_default():
    assert server(dialect="nginx").ssl_protocols == {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}


# --- inheritance ---------------------------------------------------------------------

@pytest.mark.parametrize("mail_line,srv_line,attr,mail_val,srv_val", [
    ("timeout 5s;", "timeout 7s;", "timeout_ms", 5000, 7000),
    ("server_name m.test;", "server_name s.test;", "server_name", "m.test", "s.test"),
    ("max_errors 2;", "max_errors 3;", "max_errors", 2, 3),
    ("max_commands 9;", "max_commands 10;", "max_commands", 9, 10),
    ("proxy_buffer 16k;", "proxy_buffer 1m;", "proxy_buffer", 16384, 1048576),
    ("proxy_timeout 10m;", 'proxy_timeout "1h 30m";', "proxy_timeout_ms", 600000, 5400000),
    ("proxy_pass_error_message on;", "proxy_pass_error_message off;",
     "proxy_pass_error_message", True, False),
    ("starttls off;", "starttls off;", "starttls", "off", "off"),
    ("ssl_session_timeout 1y;", "ssl_session_timeout 10m;", "ssl_session_timeout",
     31536000, 600),
    ("auth_http_timeout 1s;", "auth_http_timeout 500ms;", "auth_http_timeout_ms", 1000, 500),
])
def test_scalar_inheritance(mail_line, srv_line, attr, mail_val, srv_val):
    assert getattr(server(mail=[mail_line]), attr) == mail_val
    assert getattr(server(srv_line, mail=[mail_line]), attr) == srv_val


def test_lists_replace_never_concatenate():
    s = server('pop3_capabilities "X-B";', mail=["pop3_capabilities TOP;",
                                                 "pop3_capabilities USER;"])
    assert s.pop3_capabilities == ("X-B",)
    s = server(mail=["pop3_capabilities TOP;", "pop3_capabilities USER;"])
    assert s.pop3_capabilities == ("TOP", "USER")
    s = server("auth_http_header X-B b;", mail=["auth_http_header X-A a;"])
    assert s.auth_http_header == (("X-B", "b"),)
    s = server(mail=["set_real_ip_from 10.0.0.0/8;", "set_real_ip_from unix:;"])
    assert [str(c) for c in s.set_real_ip_from] == ["10.0.0.0/8", "unix:"]


def test_bitmask_lines_in_one_block_or_together_and_server_replaces():
    assert server(mail=["pop3_auth apop;", "pop3_auth cram-md5;"]).pop3_auth == \
        {"apop", "cram-md5"}
    assert server("pop3_auth external;", mail=["pop3_auth apop;"]).pop3_auth == {"external"}



def test_bitmask_lines_seen_before_read_the_same():
    """A block's first line is remembered from an earlier block: the warnings,
    errors and OR-ing of every later block must be those of a first reading."""
    lines = ["pop3_auth apop plain;", "pop3_auth apop apop;", "pop3_auth APOP plain;",
             "pop3_auth xoauth2;", "pop3_auth apop plain; pop3_auth cram-md5;"]
    body = "".join(f"    server {{ protocol pop3; listen 127.0.0.1:{110 + i}; {l} }}\n"
                   for i, l in enumerate(lines * 2))
    text = HEAD + body + "}\n"
    for dialect in ("angie-mail", "nginx", "angie-mail"):
        r = run(text, dialect, mode="lint")
        found = [(f.line, f.message) for f in r.findings]
        if dialect == "nginx":
            assert found == [(5, 'duplicate value "apop"'), (7, 'invalid value "xoauth2"'),
                             (10, 'duplicate value "apop"'), (12, 'invalid value "xoauth2"')]
        else:
            assert found == [(5, 'duplicate value "apop"'), (10, 'duplicate value "apop"')]
            assert [set(s.pop3_auth) for s in r.config.servers] == [
                {"apop", "plain"}, {"apop"}, {"apop", "plain"}, {"xoauth2"},
                {"apop", "plain", "cram-md5"}] * 2


def test_auth_http_inherited_as_a_whole():
    s = server("auth_http unix:/run/auth.sock:/check;")
    assert (s.auth_http.host_header, s.auth_http.uri, s.auth_http.addr.text) == \
        ("localhost", "/check", "unix:/run/auth.sock")


def test_empty_server_name_falls_back_to_host_name():
    assert server('server_name "";').server_name == "host.test"


def test_ssl_certificate_and_key_inherit_independently(tmp_path):
    text = (HEAD + "    ssl_certificate_key /k.pem;\n    server {\n"
            "        listen 127.0.0.1:110;\n        ssl_certificate /c.pem;\n    }\n}\n")
    r = run(text, check_files=False)
    assert r.ok
    s = r.config.servers[0]
    assert (s.ssl_certificate, s.ssl_certificate_key) == (("/c.pem",), ("/k.pem",))


# --- Angie-only rules ------------------------------------------------------------------

def test_several_mail_blocks_are_one_configuration():
    text = ("events {}\nmail { auth_http 127.0.0.1:9/a; timeout 5s; }\n"
            "mail { server { listen 127.0.0.1:110; } }\n")
    s = run(text).config.servers[0]
    assert s.timeout_ms == 5000
    assert err("events {}\nmail { timeout 1s; }\nmail { timeout 2s; }\n") == \
        '"timeout" directive is duplicate in t.conf:3'
    assert err("events {}\nmail {}\nmail {}\n", "nginx") == \
        '"mail" directive is duplicate in t.conf:3'


def test_merge_errors_come_after_syntax_errors_in_angie():
    text = ("events {}\nmail { server { listen 127.0.0.1:1234; } }\nfoo;\n")
    assert err(text) == 'unknown directive "foo" in t.conf:3'
    assert err(text, "nginx") == "unknown mail protocol for server in t.conf:2"


@pytest.mark.parametrize("line", ["pop3_auth xoauth2 oauthbearer;", "imap_auth xoauth2;",
                                  "smtp_auth oauthbearer;", "max_commands 3;",
                                  "error_log_user_tag abc;", "ssl_certificate_compression on;"])
def test_angie_only_directives(line):
    server(line)
    assert "unknown directive" in server_err(line, dialect="nginx") or \
        "invalid value" in server_err(line, dialect="nginx")


def test_extension_only_in_angie_mail_dialect():
    assert server("pop3_client_buffer 4k;").pop3_client_buffer == 4096
    assert server_err("pop3_client_buffer 4k;", dialect="angie") == \
        'unknown directive "pop3_client_buffer" in t.conf:6'
    assert server_err("pop3_client_buffer 100;") == \
        '"pop3_client_buffer" directive value is too small, minimum is 128 in t.conf:6'
    assert server("auth_http_keepalive 16;").auth_http_keepalive == 16
    assert server("").auth_http_keepalive == 0
    assert server_err("auth_http_keepalive 16;", dialect="angie") == \
        'unknown directive "auth_http_keepalive" in t.conf:6'
    assert server_err("auth_http_keepalive 16;", dialect="nginx") == \
        'unknown directive "auth_http_keepalive" in t.conf:6'
    assert server_err("auth_http_keepalive many;") == \
        '"auth_http_keepalive" directive invalid number in t.conf:6'
    assert server_err("auth_http_keepalive 1 2;") == \
        'invalid number of arguments in "auth_http_keepalive" directive in t.conf:6'


def test_listen_parameters_angie():
    assert server_err("listen 127.0.0.1:111 reuseport;") == \
        'invalid parameter "reuseport" in t.conf:6'
    s = server("listen 127.0.0.1:111 multipath backlog=10 so_keepalive=30s:10s:3;")
    l = s.listens[1]
    assert (l.multipath, l.backlog, l.keepidle, l.keepintvl, l.keepcnt, l.bind) == \
        (True, 10, 30, 10, 3, True)


def test_listen_port_range_and_duplicates():
    s = server("listen 127.0.0.1:8110-8112;")
    assert [l.text for l in s.listens] == ["127.0.0.1:110", "127.0.0.1:8110",
                                           "127.0.0.1:8111", "127.0.0.1:8112"]
    assert server_err("listen 110;", "listen *:110;") == \
        'duplicate "0.0.0.0:110" address and port pair in t.conf:7'


def test_protocol_guessing():
    def proto(listen, extra=""):
        text = (HEAD + f"    server {{\n        listen {listen};\n{extra}    }}\n}}\n")
        r = run(text)
        return r.config.servers[0].protocol if r.ok else r.first_error.text()
    for port, p in [(110, "pop3"), (995, "pop3"), (143, "imap"), (993, "imap"),
                    (25, "smtp"), (465, "smtp"), (587, "smtp")]:
        assert proto(f"127.0.0.1:{port}") == p
    assert proto("127.0.0.1:1234") == "unknown mail protocol for server in t.conf:4"
    assert proto("127.0.0.1:1234", "        protocol smtp;\n") == "smtp"
    assert proto("127.0.0.1:110", "        protocol imap;\n") == "imap"
    assert proto("127.0.0.1:143", "        listen 127.0.0.1:110;\n") == "imap"
    assert proto("unix:/tmp/x.sock") == "unknown mail protocol for server in t.conf:4"


def test_resolver_angie_parameters():
    s = server("resolver 127.0.0.1 valid=30s ipv4=off status_zone=z;")
    assert s.resolver.valid == 30 and not s.resolver.ipv4
    assert server_err("resolver 127.0.0.1 ipv4=off ipv6=off;") == \
        '"ipv4" and "ipv6" cannot both be "off" in t.conf:6'
    assert server("resolver off;").resolver is None


def test_ssl_verify_client_message():
    text = (HEAD + "    server {\n        listen 127.0.0.1:110;\n        starttls on;\n"
            "        ssl_certificate /c;\n        ssl_certificate_key /k;\n"
            "        ssl_verify_client on;\n    }\n}\n")
    r = run(text, check_files=False)
    assert r.first_error.text() == \
        "no ssl_client_certificate or ssl_trusted_certificate for ssl_verify_client"


def test_no_ssl_directive_in_angie():
    assert server_err("ssl on;") == 'unknown directive "ssl" in t.conf:6'


@pytest.mark.parametrize("dialect", ["angie", "nginx"])
def test_proxy_protocol_flag_only_in_angie_and_nginx(dialect):
    assert server_err("proxy_protocol v2;", dialect=dialect) == \
        'invalid value "v2" in "proxy_protocol" directive, it must be "on" or "off" in t.conf:6'


def test_proxy_protocol_v2_is_an_extension():
    assert server("proxy_protocol v2;").proxy_protocol == 2
    assert server("proxy_protocol on;").proxy_protocol == 1
    assert server_err("proxy_protocol v3;") == \
        'invalid value "v3" in "proxy_protocol" directive, it must be "on" or "off" in t.conf:6'


@pytest.mark.parametrize("line,msg", [
    ("timeout 1y;", '"timeout" directive invalid value'),
    ("timeout 500;", None),
    ("auth_http_timeout 1M;", '"auth_http_timeout" directive invalid value'),
    ("ssl_session_timeout 500ms;", '"ssl_session_timeout" directive invalid value'),
    ("proxy_buffer 1g;", '"proxy_buffer" directive invalid value'),
    ("max_errors +1;", '"max_errors" directive invalid number'),
    ("starttls OFF;", None),
    ("protocol POP3;", 'unknown protocol "POP3"'),
    ("pop3_auth login;", 'invalid value "login"'),
    ("proxy YES;", 'invalid value "YES" in "proxy" directive, it must be "on" or "off"'),
    ("listen 127.0.0.1:0;", 'invalid port in "127.0.0.1:0" of the "listen" directive'),
    ("server_name a b;", 'invalid number of arguments in "server_name" directive'),
    ("listen;", 'invalid number of arguments in "listen" directive'),
])
def test_value_errors(line, msg):
    text = (HEAD + "    server {\n        listen 127.0.0.1:110;\n        " + line + "\n    }\n}\n")
    r = run(text)
    if msg is None:
        assert r.ok, r.first_error.text()
    else:
        assert r.first_error.text() == msg + " in t.conf:6"


def test_pop3_replies_precomputed():
    s = server("pop3_auth plain apop cram-md5 external;", "starttls off;")
    assert s.pop3.salt
    assert s.pop3.capa == (b"+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\n"
                           b"SASL PLAIN LOGIN CRAM-MD5 EXTERNAL\r\n.\r\n")
    assert s.pop3.auth_list == (b"+OK methods supported:\r\nPLAIN\r\nLOGIN\r\nCRAM-MD5\r\n"
                                b"EXTERNAL\r\n.\r\n")
    s = server("pop3_auth apop;")
    assert s.pop3.capa.endswith(b"UIDL\r\nSASL\r\n.\r\n")
    assert s.pop3.auth_list == b"+OK methods supported:\r\n.\r\n"
    assert s.pop3.capa_only == b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nSTLS\r\n.\r\n"
    assert s.pop3.capa_starttls.endswith(b"SASL\r\nSTLS\r\n.\r\n")
    assert not server().pop3.salt


def test_events_required_and_main_settings():
    r = run("worker_processes 3;\ndaemon off;\nerror_log stderr info;\n"
            "events { worker_connections 100; }\n")
    m = r.config.main
    assert (m.worker_processes, m.daemon, m.events.worker_connections,
            m.error_log[0].target, m.error_log[0].level) == (3, False, 100, "stderr", "info")
    assert err("daemon off;\n") == 'no "events" section in configuration'


def test_params_before_file_and_in_command_line():
    r = run("events {}\n", params="daemon off;")
    assert r.ok and not r.config.main.daemon
    r = run("events {}\ndaemon on;\n", params="daemon off;")
    assert r.first_error.text() == '"daemon" directive is duplicate in t.conf:2'
    r = run("events {}\n", params="daemon maybe;")
    assert r.first_error.text() == \
        'invalid value "maybe" in "daemon" directive, it must be "on" or "off" in command line'


def test_fragments():
    r = analyze(parse_string("listen 110;\nprotocol pop3;\nbad;\n", context="server"),
                mode="lint")
    assert [f.text() for f in r.errors] == ['unknown directive "bad" in <string>:3']
    # a mail{} fragment: auth_http may come from the including mail{} (unknown here)
    r = analyze(parse_string("timeout 1s;\nserver { listen 110; }\n", context="mail"))
    assert r.ok and not r.findings
    r = analyze(parse_string("timeout x;\nserver { listen 110; }\n", context="mail"))
    assert r.first_error.text() == '"timeout" directive invalid value in <string>:1'


def test_lint_mode_keeps_going():
    text = HEAD + "    foo;\n    bar;\n    server { listen 127.0.0.1:110; timeout x; }\n}\nbaz;\n"
    r = run(text, mode="lint")
    assert [f.text() for f in r.errors] == [
        'unknown directive "foo" in t.conf:4', 'unknown directive "bar" in t.conf:5',
        '"timeout" directive invalid value in t.conf:6', 'unknown directive "baz" in t.conf:8']


# --- http {} and stream {}: names and contexts from Angie's table -------------------------

def _http(*lines):
    return ("events {}\nhttp {\n    server {\n        listen 127.0.0.1:18080;\n"
            + "".join(f"        {l}\n" for l in lines) + "    }\n}\n")


@pytest.mark.parametrize("lines", [
    ("location / {", "    if ($x) {", "        proxy_http_version 1.1;", "    }", "}"),
    ("location = /a /b /c {}",),
    ("http3 on;",),
    ("location / {", "    proxy_pass_trailers on;", "}"),
])
def test_http_contents_follow_angies_table(lines):
    """Accepted by Angie, refused by nginx 1.22 (see the oracle cases)."""
    assert run(_http(*lines)).ok
    assert not run(_http(*lines), dialect="nginx").ok


@pytest.mark.parametrize("text, message", [
    ("events {}\nhttp {\n    foo;\n}\n", 'unknown directive "foo" in t.conf:3'),
    (_http("timeout 5s;"), '"timeout" directive is not allowed here in t.conf:5'),
    (_http("location / {", "    limit_except GET {", "        root /x;", "    }", "}"),
     '"root" directive is not allowed here in t.conf:7'),
    (_http("if ($x) {", "    location /a {}", "}"), '"location" directive is not allowed here '
     'in t.conf:6'),
    (_http("location /;"), 'directive "location" has no opening "{" in t.conf:5'),
    (_http("root /x {}"), 'directive "root" is not terminated by ";" in t.conf:5'),
    (_http("location {}"), 'invalid number of arguments in "location" directive in t.conf:5'),
    ("events {}\nstream {\n    server {\n        server_name a;\n        root /x;\n    }\n}\n",
     '"root" directive is not allowed here in t.conf:5'),
    ("events {}\nstream {\n    upstream u {\n        server 127.0.0.1:1 {}\n    }\n}\n",
     'directive "server" is not terminated by ";" in t.conf:4'),
])
def test_http_and_stream_errors(text, message):
    assert err(text) == message


def test_blocks_with_their_own_handler_are_not_looked_into():
    text = ("events {}\nhttp {\n    client {\n        anything goes;\n    }\n"
            "    map $a $b {\n        hostnames;\n        x y;\n    }\n"
            "    types {\n        text/html html;\n    }\n}\n"
            "stream {\n    map $a $b {\n        default 1;\n    }\n}\n")
    assert run(text).ok


def test_lint_reports_every_http_finding():
    text = _http("foo;", "location / {", "    if ($x) {", "        bar;", "    }", "}", "baz {}")
    r = run(text, mode="lint")
    assert [f.text() for f in r.errors] == [
        'unknown directive "foo" in t.conf:5', 'unknown directive "bar" in t.conf:8',
        'unknown directive "baz" in t.conf:11']


def test_stream_needs_its_module_in_the_nginx_dialect(tmp_path):
    so = tmp_path / "ngx_stream_module.so"       # known by its file name
    so.write_bytes(b"")
    text = "events {}\nstream {\n    server {\n        preread_timeout 1s;\n    }\n}\n"
    assert run(text).ok                                      # Angie: built in
    assert err(text, "nginx") == 'unknown directive "stream" in t.conf:2'
    assert run(f"load_module {so};\n" + text, "nginx").ok
    assert err(f"load_module {so};\nload_module {so};\n" + text, "nginx") == \
        'module "ngx_stream_module" is already loaded in t.conf:2'
    # another module's names are not stream's
    geoip = tmp_path / "ngx_http_geoip_module.so"
    geoip.write_bytes(b"")
    assert err(f"load_module {geoip};\n" + text, "nginx") == \
        'unknown directive "stream" in t.conf:3'
    assert run(f"load_module {geoip};\nevents {{}}\nhttp {{\n    geoip_proxy 10.0.0.1;\n}}\n",
               "nginx").ok


def test_nginx_table_agrees_with_the_names_nginx_knows():
    """The names nginx 1.22 compiles in (nginx-1.22-http-stream.tsv, file "-") are the
    http names of Angie's table it knows in the main context (nginx-1.22-unknown.txt),
    plus the ones Angie removed; the stream module's are the stream names it knows once
    ngx_stream_module.so is loaded."""
    from angie_mail.conf.registry import angie_names, nginx_http_stream, nginx_unknown_names
    known = {n.name for n in angie_names()} - nginx_unknown_names()
    http = {n.name for n in angie_names() if n.subsystem == "http"}
    builtin = {r.name for r in nginx_http_stream() if r.file == "-"}
    assert builtin - known == {"ssl"}
    assert (known & http) <= builtin | {n.name for n in angie_names()
                                        if n.subsystem not in ("http", "stream")}
    assert all(r.file.endswith(".so") or r.file == "-" for r in nginx_http_stream())
