"""``metrics_listen`` (dialect angie-mail): Prometheus text over HTTP, summed over all
workers, matching a scripted workload exactly."""

from __future__ import annotations

import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from proxy.harness import Client, Proxy, free_port


def scrape(port) -> dict:
    """(sample name, sorted labels) -> value, from a real HTTP GET."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def until(port, check, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        m = scrape(port)
        if check(m) or time.time() > deadline:
            return m
        time.sleep(0.05)


def test_figures_match_a_scripted_workload_over_two_workers(tmp_path, auth, backend):
    port, mport = free_port(), free_port()
    p = Proxy(tmp_path, f"mail {{ auth_http {auth.url}; metrics_listen 127.0.0.1:{mport};\n"
                        f"server {{ listen 127.0.0.1:{port}; protocol pop3; }} }}",
              main="worker_processes 2;\n", workers=True)
    p.start()
    try:
        server = f"127.0.0.1:{port}"
        for _ in range(3):                       # logged in, STAT relayed
            c = Client(port)
            c.line()
            c.send(b"USER test@example.com\r\nPASS secret\r\n")
            c.line()
            assert c.line() == b"+OK pass ok\r\n"
            c.send(b"STAT\r\n")
            assert c.line() == b"+OK 1 22\r\n"
            c.close()
        for _ in range(2):                       # refused, then closed by the proxy
            c = Client(port)
            c.line()
            c.send(b"USER test@example.com\r\nPASS wrong\r\n")
            c.line()
            assert c.line().startswith(b"-ERR")
            assert c.closed()
        c = Client(port)                         # quits before logging in
        c.line()
        c.send(b"QUIT\r\n")
        c.line()
        assert c.closed()

        def key(name, **labels):
            return (name, tuple(sorted(labels.items())))
        done = key("angie_mail_sessions_total", protocol="pop3", server=server,
                   outcome="logged in")
        m = until(mport, lambda m: m.get(done) == 3 and
                  m.get(key("angie_mail_sessions_current", protocol="pop3",
                            server=server)) == 0)
        assert m[done] == 3, {k: v for k, v in m.items() if "sessions" in k[0]}
        assert m[key("angie_mail_sessions_total", protocol="pop3", server=server,
                     outcome="auth failed")] == 2
        assert m[key("angie_mail_sessions_total", protocol="pop3", server=server,
                     outcome="closed")] == 1
        assert m[key("angie_mail_sessions_current", protocol="pop3", server=server)] == 0
        assert m[key("angie_mail_auth_http_seconds_count", server=server)] == 5
        assert m[key("angie_mail_relayed_bytes_total", protocol="pop3", server=server,
                     direction="in")] == 3 * len(b"STAT\r\n")
        assert m[key("angie_mail_relayed_bytes_total", protocol="pop3", server=server,
                     direction="out")] == 3 * len(b"+OK 1 22\r\n")
        assert m[key("angie_mail_auth_http_failures_total", server=server)] == 0
        assert m[key("angie_mail_backend_failures_total", protocol="pop3", server=server)] == 0
        # whichever worker answers, the sums are the same
        for _ in range(6):
            assert scrape(mport) == m
    finally:
        p.stop()


def test_metrics_listen_is_an_extension(tmp_path):
    from angie_mail.conf.analyze import analyze
    from angie_mail.conf.parse import parse_string
    text = ("events {}\nmail { auth_http 127.0.0.1:9/a; metrics_listen 127.0.0.1:9101;\n"
            "server { listen 127.0.0.1:110; protocol pop3; } }\n")
    r = analyze(parse_string(text), check_files=False)
    assert r.ok and r.config.servers[0].metrics_listen[1:] == ("127.0.0.1", 9101)
    r = analyze(parse_string(text), dialect="angie", check_files=False)
    assert r.first_error.text().startswith('unknown directive "metrics_listen" in ')
    r = analyze(parse_string(text.replace("127.0.0.1:9101", "mail.example:9101")),
                check_files=False)
    assert "an IP address is needed" in r.first_error.text()
