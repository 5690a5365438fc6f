"""angie-mail fmt (canonical layout, comments kept) and angie-mail dump (-T as text or
as crossplane's JSON)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, cwd=None, stdin=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "angie_mail", *args], capture_output=True,
                       cwd=cwd, input=stdin, timeout=60, env=env)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


MESSY = """# mail front end
events{}

mail   {
  auth_http   127.0.0.1:9000/auth;   # local auth server
        server_name "mail.example.com";


    # POP3
    server { listen 127.0.0.1:110;
      protocol pop3 ;
      pop3_capabilities TOP USER
          "SASL PLAIN" ;  }
    server {
        listen 127.0.0.1:143; protocol imap;
        imap_capabilities IMAP4rev1 # the base
            IDLE;
        # empty now
    }
}
"""

CANONICAL = """# mail front end
events {}

mail {
    auth_http 127.0.0.1:9000/auth;  # local auth server
    server_name "mail.example.com";

    # POP3
    server {
        listen 127.0.0.1:110;
        protocol pop3;
        pop3_capabilities TOP USER "SASL PLAIN";
    }
    server {
        listen 127.0.0.1:143;
        protocol imap;
        imap_capabilities IMAP4rev1  # the base
            IDLE;
        # empty now
    }
}
"""


def test_fmt_canonical_layout_keeps_comments():
    from angie_mail.fmt import format_bytes
    assert format_bytes(MESSY.encode()).decode() == CANONICAL
    assert format_bytes(CANONICAL.encode()).decode() == CANONICAL       # a fixpoint


def test_fmt_keeps_words_as_written():
    from angie_mail.fmt import format_bytes
    text = ("a  'b c'\t\"d\\\"e\"  ${x}  f}g  \"é\" ;\nb \"x\")\"  ;\n")
    assert format_bytes(text.encode()).decode() == \
        "a 'b c' \"d\\\"e\" ${x} f}g \"é\";\nb \"x\" )\";\n"


def test_fmt_command_in_place_check_and_diff(tmp_path):
    p = tmp_path / "mail.conf"
    p.write_text(MESSY)
    rc, out, err = cli("fmt", "--check", "mail.conf", cwd=str(tmp_path))
    assert (rc, out) == (1, "would reformat mail.conf\n")
    assert p.read_text() == MESSY
    rc, out, err = cli("fmt", "--diff", "mail.conf", cwd=str(tmp_path))
    assert rc == 1
    assert out.startswith("--- mail.conf\n+++ mail.conf\n@@ ")
    assert "-events{}\n+events {}\n" in out
    assert p.read_text() == MESSY
    rc, out, err = cli("fmt", "mail.conf", cwd=str(tmp_path))
    assert (rc, out, err) == (0, "", "reformatted mail.conf\n")
    assert p.read_text() == CANONICAL
    assert cli("fmt", "--check", "mail.conf", cwd=str(tmp_path)) == (0, "", "")
    assert cli("fmt", "-", stdin=MESSY.encode()) == (0, CANONICAL, "")


def test_fmt_refuses_what_does_not_parse(tmp_path):
    p = tmp_path / "bad.conf"
    p.write_text("mail {\n    server {\n")
    rc, out, err = cli("fmt", str(p))
    assert rc == 2
    assert err == (f"angie-mail fmt: unexpected end of file, expecting \"}}\" in {p}:3\n")
    assert p.read_text() == "mail {\n    server {\n"


# --- dump ----------------------------------------------------------------------------------

def test_dump_json_is_crossplanes_payload(tmp_path, monkeypatch):
    import crossplane                   # a test extra
    (tmp_path / "mail.d").mkdir()
    (tmp_path / "mail.d" / "pop3.conf").write_text(
        "server {\n    listen 127.0.0.1:110;\n    pop3_capabilities TOP \"SASL X\";\n}\n")
    main = tmp_path / "mail.conf"
    main.write_text("events {\n    worker_connections 10;\n}\nmail {\n"
                    "    auth_http 127.0.0.1:9000/auth;\n    include mail.d/*.conf;\n}\n")
    rc, out, err = cli("dump", "--format", "json", "mail.conf", cwd=str(tmp_path))
    assert (rc, err) == (0, "")
    monkeypatch.chdir(tmp_path)
    theirs = crossplane.parse("mail.conf")
    assert [c["file"] for c in theirs["config"]] == ["mail.conf", "mail.d/pop3.conf"]
    assert json.loads(out) == theirs
    rc, out, err = cli("dump", "--format", "json", str(main))
    assert json.loads(out) == crossplane.parse(str(main))


def test_dump_json_reports_errors_and_fails(tmp_path):
    main = tmp_path / "mail.conf"
    main.write_text("events {}\nmail {\n    server {\n        listen 127.0.0.1:110;\n"
                    "        protocl pop3;\n    }\n}\n")
    rc, out, err = cli("dump", "--format", "json", str(main))
    assert rc == 1
    doc = json.loads(out)
    assert doc["status"] == "failed"
    assert {"file": str(main), "line": 5,
            "error": f'unknown directive "protocl" in {main}:5'} in doc["errors"]


def test_dump_text_is_what_T_prints(tmp_path):
    (tmp_path / "inc.conf").write_text("server_name x;\n")
    main = tmp_path / "mail.conf"
    main.write_text("events {}\nmail {\n    auth_http 127.0.0.1:9/auth;\n"
                    "    include inc.conf;\n    server {\n        listen 127.0.0.1:110;\n"
                    "    }\n}\n")
    rc, out, err = cli("dump", str(main))
    assert rc == 0
    assert out == cli("-T", "-q", "-c", str(main))[1]
