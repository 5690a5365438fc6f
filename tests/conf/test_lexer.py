"""nginx's token rules (ngx_conf_read_token), one test per rule and per error message.

Every expectation here was checked against Debian's nginx 1.22 (see
tests/conf/test_oracle_syntax.py, which re-checks the syntax-error cases in CI)."""

import pytest

from angie_mail.conf.parse import parse_string


def words(text, context="main"):
    p = parse_string(text, name="t.conf", context=context, includes=False)
    f = p.files[0]
    assert f.error is None, f.error.text()
    return [[w.value for w in st.words] for st in f.stmts]


def error(text):
    p = parse_string(text, name="t.conf", includes=False)
    err = p.files[0].error
    assert err is not None, "expected a syntax error"
    return err.text()


# --- words -------------------------------------------------------------------

def test_words_end_only_at_whitespace_semicolon_or_brace():
    assert words("a b\tc\r\nd;") == [["a", "b", "c", "d"]]
    assert words("foo};") == [["foo}"]]
    assert words("a}b c;") == [["a}b", "c"]]


def test_lone_closing_brace_closes_a_block():
    p = parse_string("a { b; }", includes=False)
    st = p.files[0].stmts[0]
    assert st.name == "a" and [s.name for s in st.block] == ["b"] and st.close_line == 1


def test_hash_starts_a_comment_only_at_token_start():
    assert words("mail#1 x#y; # comment ;\nb;") == [["mail#1", "x#y"], ["b"]]
    assert words("a # c1\n # c2 \n b;") == [["a", "b"]]


def test_comment_to_end_of_file():
    assert words("a;\n# trailing") == [["a"]]


def test_double_and_single_quotes():
    st = parse_string("a \"b c\" 'd e' \"\" '';", includes=False).files[0].stmts[0]
    assert [w.value for w in st.words] == ["a", "b c", "d e", "", ""]
    assert [w.quote for w in st.words] == ["", '"', "'", '"', "'"]


def test_escapes_decoded_in_quotes():
    assert words(r'a "\"\'\\\t\r\n";') == [["a", "\"'\\\t\r\n"]]
    assert words(r"a '\"\'\\\t\r\n';") == [["a", "\"'\\\t\r\n"]]


def test_unknown_escape_keeps_backslash():
    assert words(r'a "\x\y";') == [["a", r"\x\y"]]


def test_backslash_in_bare_word_escapes_next_character():
    # the escaped space does not end the word; nginx keeps "\ " (not a known escape)
    assert words(r"a a\ b;") == [["a", r"a\ b"]]
    assert words(r"a x\;y;") == [["a", r"x\;y"]]
    assert words(r"a b\{c;") == [["a", r"b\{c"]]
    # known escapes are decoded in bare words too
    assert words(r"a x\ty\\z;") == [["a", "x\ty\\z"]]


def test_backslash_escapes_newline_inside_word():
    assert words("a b\\\nc;") == [["a", "b\\\nc"]]


def test_dollar_brace_does_not_open_a_block():
    assert words("a ${b} x${y}z;") == [["a", "${b}", "x${y}z"]]
    assert words("a ${{{b;") == [["a", "${{{b"]]


def test_brace_without_dollar_opens_a_block():
    p = parse_string("a b{c;}", includes=False)
    st = p.files[0].stmts[0]
    assert [w.value for w in st.words] == ["a", "b"] and st.block[0].name == "c"


def test_quoted_directive_name():
    assert words('"mail" x;') == [["mail", "x"]]
    p = parse_string("'mail' { }", includes=False)
    assert p.files[0].stmts[0].name == "mail" and p.files[0].stmts[0].block == ()


def test_closing_quote_followed_by_paren_starts_a_word():
    assert words('a "b")c;') == [["a", "b", ")c"]]


def test_crlf_line_ends():
    p = parse_string(b"a\r\nb c\r\n;\r\nd;\r\n", includes=False)
    sts = p.files[0].stmts
    assert [[w.value for w in s.words] for s in sts] == [["a", "b", "c"], ["d"]]
    assert (sts[0].line, sts[0].end_line, sts[1].line) == (1, 3, 4)


@pytest.mark.parametrize("raw", [b"\xef\xbb\xbf", b"\xc2\xa0", b"\x0c", b"\x0b", b"\x85"])
def test_bom_nbsp_formfeed_are_ordinary_bytes(raw):
    text = b"a x" + raw + b"y " + raw + b";"
    got = words(text)
    dec = raw.decode("utf-8", "surrogateescape")
    assert got == [["a", "x" + dec + "y", dec]]


def test_bom_at_file_start_is_part_of_the_first_name():
    assert words(b"\xef\xbb\xbfevents { }") == [["\ufeffevents"]]


def test_non_utf8_bytes_survive():
    got = words(b"a \xff\xfe;")
    assert got[0][1].encode("utf-8", "surrogateescape") == b"\xff\xfe"


def test_positions():
    p = parse_string("a {\n  b  c\n   d;\n}\n", name="f.conf", includes=False)
    a = p.files[0].stmts[0]
    b = a.block[0]
    assert (a.file, a.line, a.col, a.end_line, a.close_line) == ("f.conf", 1, 1, 1, 4)
    assert (b.line, b.col, b.end_line) == (2, 3, 3)
    assert [(w.line, w.col) for w in b.words] == [(2, 3), (2, 6), (3, 4)]


def test_token_of_4095_bytes_is_fine_4096_is_not():
    ok = "a " + "x" * 4094 + ";\n" + "b;\n" * 2000
    assert words(ok)[0][1] == "x" * 4094
    bad = "a " + "x" * 5000 + ";\n" + "b;\n"
    assert error(bad) == 'too long parameter "xxxxxxxxxx..." started in t.conf:1'


@pytest.mark.parametrize("text,ok", [
    # nginx's 4096-byte read buffer: the limit depends on where the token's start
    # pointer stays until the buffer is refilled (checked against nginx at each boundary)
    ("env " + "x" * 4095 + " ;\nb;\n", False),   # the space after the word still counts
    ("env " + "x" * 4095 + ";\nb;\n", True),
    ("env " + "x" * 4094 + " ;\nb;\n", True),
    ('env "' + "x" * 4094 + '" ;\nb;\n', False),  # so does the space after a quote
    ('env "' + "x" * 4093 + '" ;\nb;\n', True),
    ('env "' + "x" * 4094 + '";\nb;\n', True),
    ('env "' + "x" * 4095 + '";\nb;\n', False),
    ("#" + "x" * 4094 + "\nb;\n", True),
    ("#" + "x" * 4095 + "\nb;\n", False),
])
def test_read_buffer_boundaries(text, ok):
    err = parse_string(text, includes=False).files[0].error
    assert (err is None) == ok, err


def test_long_token_is_fine_when_the_file_ends_within_the_buffer():
    # the limit is only checked when more of the file remains to be read
    assert words("a " + "x" * 4000 + ";") == [["a", "x" * 4000]]


def test_empty_and_whitespace_only():
    assert words("") == []
    assert words(" \n\t\r\n# only a comment\n") == []


# --- errors, in nginx's words and at nginx's line -----------------------------

@pytest.mark.parametrize("text,message", [
    ("a;\n}\n", 'unexpected "}" in t.conf:2'),
    ("a {\nb }\n", 'unexpected "}" in t.conf:2'),
    ("a;\n;", 'unexpected ";" in t.conf:2'),
    ("a;\n\n{", 'unexpected "{" in t.conf:3'),
    ("a {\n b;\n", 'unexpected end of file, expecting "}" in t.conf:3'),
    ("a b", 'unexpected end of file, expecting ";" or "}" in t.conf:1'),
    ("a b\n\n", 'unexpected end of file, expecting ";" or "}" in t.conf:3'),
    ('a "b', 'unexpected end of file, expecting ";" or "}" in t.conf:1'),
    ('a "b"', 'unexpected end of file, expecting ";" or "}" in t.conf:1'),
    ("a b\\", 'unexpected end of file, expecting ";" or "}" in t.conf:1'),
    ('a "b"c;', 'unexpected "c" in t.conf:1'),
    ("a 'b'\"c\";", 'unexpected """ in t.conf:1'),
    ('a "b"#;', 'unexpected "#" in t.conf:1'),
    ('a "b"};', 'unexpected "}" in t.conf:1'),
    ('a\n"b\n\nc"d;', 'unexpected "d" in t.conf:4'),
    ('a "' + "x" * 5000 + '\n;\n', 'too long parameter, probably missing terminating """ character in t.conf:1'),
    ("a\n'" + "x" * 5000 + "\n;\n", "too long parameter, probably missing terminating \"'\" character in t.conf:2"),
    ("#" + "y" * 5000 + "\na;", 'too long parameter "#yyyyyyyyy..." started in t.conf:1'),
])
def test_syntax_errors(text, message):
    assert error(text) == message


def test_error_keeps_statements_before_it():
    p = parse_string("a;\nb {\n c;\n d \"e\"f;\n}\n", includes=False)
    f = p.files[0]
    assert f.error.text() == 'unexpected "f" in <string>:4'
    a, b = f.stmts
    assert a.name == "a" and b.name == "b" and not b.closed
    assert [s.name for s in b.block] == ["c"]


def test_block_cut_by_end_of_file_is_not_closed():
    f = parse_string("a {\n b {\n c;\n", includes=False).files[0]
    assert not f.stmts[0].closed and not f.stmts[0].block[0].closed


def test_param_text():
    from angie_mail.conf.parse import parse_param
    f = parse_param("daemon off; worker_processes 2;").files[0]
    assert [s.name for s in f.stmts] == ["daemon", "worker_processes"]
    assert parse_param("daemon off").files[0].error.text() == \
        'unexpected end of parameter, expecting ";" in command line'
    assert parse_param("events { }").files[0].error.text() == \
        "block directives are not supported in -g option in command line"
    assert parse_param("}").files[0].error.text() == 'unexpected "}" in command line'
