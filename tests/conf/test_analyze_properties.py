"""Hypothesis: mutated valid configurations never crash the analyzer; every outcome
is a result with positioned findings, in test and lint mode, in every dialect."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from angie_mail.conf.analyze import analyze
from angie_mail.conf.parse import parse_string

BASE = """worker_processes 2;
events { worker_connections 100; }
mail {
    auth_http 127.0.0.1:9000/auth;
    server_name mail.example.test;
    pop3_auth plain apop cram-md5;
    pop3_capabilities TOP USER "SASL X";
    timeout 30s;
    server {
        listen 127.0.0.1:110;
        listen [::1]:995 ssl;
        protocol pop3;
        starttls on;
        ssl_certificate /nonexistent/c.pem;
        ssl_certificate_key /nonexistent/k.pem;
        set_real_ip_from 10.0.0.0/8;
        proxy_buffer 16k;
    }
    server {
        listen 127.0.0.1:143;
        imap_auth login;
        smtp_auth none;
    }
}
"""

WORDS = ["listen", "server", "mail", "events", "protocol", "pop3", "imap", "{", "}", ";",
         "on", "off", "1y", "500ms", "16k", "1g", "[::1]:1", "*:110", "unix:", "ssl",
         "include", "x.conf", '"', "'", "#", "\\", "$", "auth_http", "timeout",
         "ssl_protocols", "TLSv1.3", "resolver", "error_log", "stderr", "debug",
         "proxy_protocol", "backlog=0", "so_keepalive=1:2:3", "starttls", "only"]


@st.composite
def mutated(draw):
    lines = BASE.split("\n")
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "insert", "replace_word", "duplicate"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "insert":
            lines.insert(i, " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=5))))
        else:
            ws = lines[i].split(" ")
            j = draw(st.integers(0, max(len(ws) - 1, 0)))
            if ws:
                ws[j] = draw(st.sampled_from(WORDS))
            lines[i] = " ".join(ws)
        if not lines:
            lines = [""]
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.sampled_from(["angie-mail", "angie", "nginx"]),
       st.sampled_from(["test", "lint"]))
def test_mutated_configs_never_crash(text, dialect, mode):
    r = analyze(parse_string(text, name="m.conf", includes=False), dialect=dialect,
                mode=mode, hostname="h", check_files=False)
    for f in r.findings:
        assert f.text()
    if r.ok:
        assert r.config is not None
