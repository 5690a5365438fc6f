"""Parsing files: include, bad input, the crossplane payload, the builder."""

import json
import os

import pytest

from angie_mail.conf.build import (build_payload, build_stmts, format_text, needs_quotes,
                                   stmt_shape)
from angie_mail.conf.parse import parse_file, parse_string
from angie_mail.conf.payload import to_payload
from angie_mail.conf.tree import walk


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
    return path


def names(parsed):
    return [st.name for st, _ in walk(parsed)]


# --- include -----------------------------------------------------------------

def test_include_relative_to_main_file_directory(tmp_path):
    main = write(f"{tmp_path}/etc/main.conf", "a;\ninclude sub/x.conf;\nb;\n")
    write(f"{tmp_path}/etc/sub/x.conf", "x1;\nx2;\n")
    p = parse_file(main)
    assert names(p) == ["a", "include", "x1", "x2", "b"]
    inc = p.main.stmts[1]
    assert inc.includes == (1,) and p.files[1].path == f"{tmp_path}/etc/sub/x.conf"


def test_include_in_any_context_parsed_in_place(tmp_path):
    main = write(f"{tmp_path}/m.conf", "mail {\n server {\n  include s.conf;\n }\n}\n")
    write(f"{tmp_path}/s.conf", "listen 110;\n")
    p = parse_file(main)
    assert [(n, d) for n, d in [(s.name, d) for s, d in walk(p)]] == \
        [("mail", 0), ("server", 1), ("include", 2), ("listen", 2)]


def test_glob_sorted_and_may_match_nothing(tmp_path):
    main = write(f"{tmp_path}/m.conf", "include d/*.conf;\ninclude none/*.conf;\n")
    for n in ["b", "a", "c"]:
        write(f"{tmp_path}/d/{n}.conf", f"{n};\n")
    p = parse_file(main)
    assert names(p) == ["include", "a", "b", "c", "include"]
    assert all(f.error is None for f in p.files)


def test_missing_include_is_nginx_open_error(tmp_path):
    main = write(f"{tmp_path}/m.conf", "a;\ninclude missing.conf;\n")
    p = parse_file(main)
    errs = p.errors()
    assert [e.text() for e in errs] == [
        f'open() "{tmp_path}/missing.conf" failed (2: No such file or directory) in {main}:2']


def test_directory_as_file(tmp_path):
    os.makedirs(f"{tmp_path}/d")
    main = write(f"{tmp_path}/m.conf", "include d;\n")
    assert [e.text() for e in parse_file(main).errors()] == [
        f'pread() "{tmp_path}/d" failed (21: Is a directory)']
    assert parse_file(f"{tmp_path}/d").errors()[0].level == "crit"


def test_missing_main_file(tmp_path):
    errs = parse_file(f"{tmp_path}/nope.conf").errors()
    assert [e.text() for e in errs] == [
        f'open() "{tmp_path}/nope.conf" failed (2: No such file or directory)']


def test_block_cannot_span_files(tmp_path):
    main = write(f"{tmp_path}/m.conf", "events {\ninclude x.conf;\n")
    write(f"{tmp_path}/x.conf", "}\n")
    p = parse_file(main)
    assert [e.text() for e in p.errors()] == [
        f'unexpected "}}" in {tmp_path}/x.conf:1',
        f'unexpected end of file, expecting "}}" in {main}:3']


def test_include_cycle_is_an_error_not_a_hang(tmp_path):
    main = write(f"{tmp_path}/m.conf", "include a.conf;\n")
    write(f"{tmp_path}/a.conf", "x;\ninclude b.conf;\n")
    write(f"{tmp_path}/b.conf", "include a.conf;\n")
    errs = [e.text() for e in parse_file(main).errors()]
    assert errs == [f'include cycle: "{tmp_path}/a.conf" is already being included '
                    f'({tmp_path}/a.conf -> {tmp_path}/b.conf -> {tmp_path}/a.conf) '
                    f'in {tmp_path}/b.conf:1']


def test_self_include_via_glob(tmp_path):
    main = write(f"{tmp_path}/m.conf", "include *.conf;\n")
    errs = [e.text() for e in parse_file(main).errors()]
    assert len(errs) == 1 and "include cycle" in errs[0]


def test_non_utf8_file(tmp_path):
    main = write(f"{tmp_path}/m.conf", b"server_name \xff\xfe;\n")
    p = parse_file(main)
    assert p.main.error is None
    assert p.main.stmts[0].words[1].value.encode("utf-8", "surrogateescape") == b"\xff\xfe"


def test_fragment_context():
    p = parse_string("listen 110;\nprotocol pop3;\n", context="server")
    assert p.context == "server" and [s.name for s in p.main.stmts] == ["listen", "protocol"]
    with pytest.raises(ValueError):
        parse_string("x;", context="nowhere")


# --- crossplane payload --------------------------------------------------------

def test_payload_shape(tmp_path):
    main = write(f"{tmp_path}/m.conf", "events { }\nmail {\n  include x.conf;\n}\n")
    write(f"{tmp_path}/x.conf", 'server { listen 110 "ssl"; }\n')
    pl = to_payload(parse_file(main))
    json.dumps(pl)
    assert pl["status"] == "ok" and pl["errors"] == []
    c0, c1 = pl["config"]
    assert c0["file"] == main and c0["status"] == "ok"
    assert c0["parsed"] == [
        {"directive": "events", "line": 1, "args": [], "block": []},
        {"directive": "mail", "line": 2, "args": [], "block": [
            {"directive": "include", "line": 3, "args": ["x.conf"], "includes": [1]}]}]
    assert c1["parsed"] == [{"directive": "server", "line": 1, "args": [], "block": [
        {"directive": "listen", "line": 1, "args": ["110", "ssl"]}]}]


def test_payload_errors(tmp_path):
    main = write(f"{tmp_path}/m.conf", "a;\n}\n")
    pl = to_payload(parse_file(main))
    assert pl["status"] == "failed"
    assert pl["errors"] == [{"file": main, "line": 2, "error": f'unexpected "}}" in {main}:2'}]
    assert pl["config"][0]["errors"] == [{"error": f'unexpected "}}" in {main}:2', "line": 2}]


def test_payload_matches_crossplane(tmp_path):
    import crossplane                   # a test extra
    text = ('events { worker_connections 10; }\nmail {\n  server_name "a b";\n'
            '  server {\n    listen 127.0.0.1:110;\n    pop3_capabilities TOP "SASL X";\n  }\n}\n')
    main = write(f"{tmp_path}/m.conf", text)
    ours = to_payload(parse_file(main))
    theirs = crossplane.parse(main, check_ctx=False, check_args=False)
    assert ours == theirs


# --- builder and formatter --------------------------------------------------------

def test_build_round_trip():
    text = ('a  "b c"   \'d\';\n# comment\nm {\n s { x ${y} "" "q\\"" \'t\\\\\' "\\n"; }\n'
            ' e {\n}\n}\nf a}b;\n')
    p1 = parse_string(text, includes=False)
    out = build_stmts(p1.main.stmts)
    p2 = parse_string(out, includes=False)
    assert stmt_shape(p1.main.stmts) == stmt_shape(p2.main.stmts)
    assert build_stmts(p2.main.stmts) == out


def test_format_text_is_canonical():
    assert format_text("mail{server{listen 110;   protocol   pop3;}}") == (
        "mail {\n    server {\n        listen 110;\n        protocol pop3;\n    }\n}\n")


def test_quoting_rules():
    for v in ["", "a b", "x;", "a{b", "#x", "}x", '"x', "'x", "a\\b", "tab\t"]:
        assert needs_quotes(v), v
    for v in ["a", "a}b", "x#y", "$v", "127.0.0.1:110", "a'b", 'a"b']:
        assert not needs_quotes(v), v


def test_build_payload_round_trip(tmp_path):
    main = write(f"{tmp_path}/m.conf", 'mail {\n server_name "x y";\n server { listen 110; }\n}\n')
    pl = to_payload(parse_file(main), positions=True)
    texts = build_payload(pl)
    again = parse_string(texts[main], includes=False)
    assert stmt_shape(again.main.stmts) == stmt_shape(parse_file(main).main.stmts)


def test_parsing_reads_and_writes_nothing_in_the_temp_directory(tmp_path):
    """A cache in a shared temporary directory could be planted by another local user
    and would be loaded (unpickled) by whoever starts the proxy: there is none."""
    import subprocess
    import sys
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    conf = tmp_path / "mail.conf"
    conf.write_text("mail { server { listen 127.0.0.1:9110; protocol pop3; } }\n")
    # a planted file with every name a parser cache could take: it must not be opened
    code = (
        "import builtins, io, sys, tempfile\n"
        "tempfile.tempdir = sys.argv[1]\n"
        "opened = []\n"
        "real = io.open\n"
        "def spy(f, *a, **k):\n"
        "    opened.append(str(f)); return real(f, *a, **k)\n"
        "builtins.open = io.open = spy\n"
        "from angie_mail.conf.parse import parse_file\n"
        "parse_file(sys.argv[2])\n"
        "print([f for f in opened if f.startswith(sys.argv[1])])\n")
    (shared / ".lark_cache_planted.tmp").write_bytes(b"not a pickle")
    r = subprocess.run([sys.executable, "-c", code, str(shared), str(conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    assert sorted(p.name for p in shared.iterdir()) == [".lark_cache_planted.tmp"]
