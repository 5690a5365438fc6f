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
