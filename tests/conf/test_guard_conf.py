"""-t and lint of the brute-force defence's directives (auth_throttle*, limit_conn*,
smtp_refuse_auth; dialect angie-mail): every error in nginx's words, and the other
dialects refuse them as Angie and nginx do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GOOD = """events {}
mail {
    auth_http 127.0.0.1:9000;
    auth_throttle_zone zone=guard:1m;
    limit_conn_zone $remote_addr zone=peraddr:1m;
    limit_conn_zone $remote_user zone=peruser:1m;
    server {
        listen 127.0.0.1:1110;
        protocol pop3;
        auth_throttle guard addr=20/10m login=10/10m pair=5/10m delay=1s max_delay=8s;
        limit_conn peraddr 10;
        limit_conn peruser 5;
    }
    server {
        listen 127.0.0.1:1025;
        protocol smtp;
        smtp_auth none;
        smtp_refuse_auth on;
        auth_throttle off;
    }
}
"""


def t(tmp_path, text, *opts):
    conf = tmp_path / "mail.conf"
    conf.write_text(text)
    r = subprocess.run([sys.executable, "-m", "angie_mail", "-t", "-c", str(conf), *opts],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    return r.returncode, r.stderr, str(conf)


def test_a_complete_configuration_passes(tmp_path):
    rc, err, conf = t(tmp_path, GOOD)
    assert rc == 0, err
    assert err.endswith(f"configuration file {conf} test is successful\n")


@pytest.mark.parametrize("old,new,message", [
    ("smtp_auth none;", "smtp_auth none login;",
     '"smtp_refuse_auth on" needs "smtp_auth none" in server in {conf}:14'),
    ("auth_throttle guard", "auth_throttle other", 'zero size shared memory zone "other"'),
    ("limit_conn peruser 5", "limit_conn nouser 5", 'zero size shared memory zone "nouser"'),
    ("zone=guard:1m", "zone=guard:1k", 'zone "guard" is too small in {conf}:4'),
    ("zone=guard:1m", "zone=guard:1x", 'invalid zone size "zone=guard:1x" in {conf}:4'),
    ("pair=5/10m", "pair=x", 'invalid parameter "pair=x" in {conf}:10'),
    ("pair=5/10m", "pair=5", 'invalid parameter "pair=5" in {conf}:10'),
    ("pair=5/10m", "pair=0/10m", 'invalid parameter "pair=0/10m" in {conf}:10'),
    ("delay=1s", "delay=1q", 'invalid parameter "delay=1q" in {conf}:10'),
    ("delay=1s", "sleep=1s", 'invalid parameter "sleep=1s" in {conf}:10'),
    ("guard addr=20/10m login=10/10m pair=5/10m delay=1s max_delay=8s", "guard delay=1s",
     '"auth_throttle" needs at least one of "addr=", "login=" or "pair=" in {conf}:10'),
    ("zone=peraddr:1m", "zone=guard:1m",
     'the shared memory zone "guard" is already declared for a different use in {conf}:5'),
    # one namespace with ssl_session_cache's shared caches, as nginx's, either order
    ("auth_http 127.0.0.1:9000;", "auth_http 127.0.0.1:9000; ssl_session_cache shared:guard:1m;",
     'the shared memory zone "guard" is already declared for a different use in {conf}:4'),
    ("zone=peruser:1m;", "zone=peruser:1m; ssl_session_cache shared:peraddr:1m;",
     'the shared memory zone "peraddr" is already declared for a different use in {conf}:6'),
    ("limit_conn peraddr 10;", "limit_conn peraddr 10; limit_conn peraddr 3;",
     '"limit_conn" directive is duplicate in {conf}:11'),
    ("limit_conn peraddr 10;", "limit_conn peraddr 0;",
     'invalid number of connections "0" in {conf}:11'),
    ("$remote_user zone", "$foo zone",
     'invalid key "$foo" in "limit_conn_zone" directive, it must be $remote_addr, '
     '$remote_user or $auth_http_<name> in {conf}:6'),
    ("$remote_user zone=peruser:1m", "$remote_user",
     'invalid number of arguments in "limit_conn_zone" directive in {conf}:6'),
    ("$remote_user zone=peruser:1m", "zone=peruser:1m $remote_user",
     'invalid parameter "$remote_user" in {conf}:6'),
    ("limit_conn_zone $remote_user zone=peruser:1m;",
     "limit_conn_zone $remote_user zone=peruser:1m; limit_conn_zone $remote_addr "
     "zone=peruser:1m;",
     'limit_conn_zone "peruser" is already bound to key "$remote_user" in {conf}:6'),
    ("auth_throttle off;", "auth_throttle off; auth_throttle guard addr=1/1m;",
     '"auth_throttle" directive is duplicate in {conf}:19'),
    ("smtp_refuse_auth on;", "smtp_refuse_auth maybe;",
     'invalid value "maybe" in "smtp_refuse_auth" directive, it must be "on" or "off" '
     'in {conf}:18'),
])
def test_errors_in_nginx_words(tmp_path, old, new, message):
    assert old in GOOD
    rc, err, conf = t(tmp_path, GOOD.replace(old, new, 1))
    assert rc == 1
    assert f"[emerg] {message.format(conf=conf)}\n" in err, err


@pytest.mark.parametrize("dialect,first", [
    ("angie", 'unknown directive "auth_throttle_zone" in {conf}:4'),
    ("nginx", 'unknown directive "auth_throttle_zone" in {conf}:4'),
])
def test_other_dialects_refuse_them(tmp_path, dialect, first):
    rc, err, conf = t(tmp_path, GOOD, f"--dialect={dialect}")
    assert rc == 1 and f"[emerg] {first.format(conf=conf)}\n" in err, err
    # limit_conn is an http/stream directive to Angie: "not allowed here" in mail
    text = GOOD.replace("    auth_throttle_zone zone=guard:1m;\n", "")
    rc, err, conf = t(tmp_path, text, "--dialect=angie")
    assert f'[emerg] "limit_conn_zone" directive is not allowed here in {conf}:4\n' in err


def test_lint_flags_every_extension_as_not_portable(tmp_path):
    conf = tmp_path / "mail.conf"
    conf.write_text(GOOD)
    r = subprocess.run([sys.executable, "-m", "angie_mail", "lint", "--select", "not-portable",
                        str(conf)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    flagged = [line.split(": warning: ")[1].split(" is an")[0]
               for line in r.stdout.splitlines() if "[not-portable]" in line]
    assert flagged == ['"auth_throttle_zone"', '"limit_conn_zone"', '"limit_conn_zone"',
                       '"auth_throttle"', '"limit_conn"', '"limit_conn"',
                       '"smtp_refuse_auth"', '"auth_throttle"']
    assert f'{conf}:11:9: warning: "limit_conn" is an angie-mail extension: Angie reports ' \
           f'"limit_conn" directive is not allowed here [not-portable]' in r.stdout
