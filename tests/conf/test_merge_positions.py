"""Errors found while merging mail{} (files read then) point where Angie and nginx
point: nginx merges when the block closes (its "}" line), Angie defers the merge
and reports the "mail {" line."""

from __future__ import annotations

import subprocess
import sys

import oracle
from certs import make as make_certs


def test_wrong_size_ticket_key(tmp_path):
    c = make_certs(str(tmp_path / "c"))
    key = tmp_path / "bad.key"
    key.write_bytes(b"0123456789")
    conf = tmp_path / "m.conf"
    conf.write_text(f"""load_module {oracle.MAIL_MODULE};
events {{}}
mail {{
    auth_http 127.0.0.1:9/a;
    server {{
        listen 127.0.0.1:17112;
        protocol pop3;
        starttls on;
        ssl_certificate {c['server_rsa_crt']};
        ssl_certificate_key {c['server_rsa_key']};
        ssl_session_ticket_key {key};
    }}
}}
""")
    want = f'"{key}" must be 48 or 80 bytes in {conf}:'
    oracle.require()
    n = subprocess.run([oracle.NGINX, "-t", "-p", f"{tmp_path}/", "-e", "/dev/null", "-c",
                        str(conf)], capture_output=True, text=True, timeout=60)
    assert f"[emerg] {want}13" in n.stderr             # nginx: the closing brace
    for dialect, line in (("nginx", 13), ("angie", 3), ("angie-mail", 3)):
        r = subprocess.run([sys.executable, "-m", "angie_mail", "-t", f"--dialect={dialect}",
                            "-p", f"{tmp_path}/", "-c", str(conf)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        assert f"[emerg] {want}{line}\n" in r.stderr, (dialect, r.stderr)
