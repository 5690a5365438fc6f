"""Properties of the IMAP machine over arbitrary input (Hypothesis)."""

from __future__ import annotations

from hypothesis import assume, given, settings, strategies as st

from imap.helpers import AUTH, CLOSE, CONT, STARTTLS, new, talk

LINES = st.sampled_from([
    b"a NOOP\r\n", b"b CAPABILITY\r\n", b"c LOGIN {4}\r\nuser {4+}\r\npass\r\n",
    b'd LOGIN "u\\"x" "p p"\r\n', b"e AUTHENTICATE PLAIN\r\n", b"AHUAcA==\r\n",
    b"f FOO {3+}\r\n", b"* BAD\r\n", b"g LOGIN {0}\r\n\r\n", b"h NOOP a b c d\r\n",
    b'i LOGIN "open\r\n', b"j AUTHENTICATE LOGIN\r\n", b"%%%\r\n", b"k LOGOUT\r\n",
])
TLS_ON = ("starttls on;", "ssl_certificate a;", "ssl_certificate_key b;")


def run_all(data: bytes, cuts):
    """Every reply for ``data`` fed in pieces; stops at the first CLOSE/AUTH/STARTTLS."""
    s, log = new("imap_client_buffer 256;", "max_errors 50;", "imap_auth plain login;")
    out = []
    pos = 0
    for c in list(cuts) + [len(data)]:
        piece = data[pos:pos + c]
        pos += c
        if not piece:
            continue
        for code, reply in talk(s, piece):
            out.append((code, reply))
            if code in (CLOSE, AUTH, STARTTLS):
                return out, log
        if pos >= len(data):
            break
    return out, log


@settings(max_examples=150)
@given(st.lists(LINES, max_size=8), st.lists(st.integers(min_value=1, max_value=9),
                                             max_size=30))
def test_replies_do_not_depend_on_how_bytes_are_split(lines, cuts):
    data = b"".join(lines)
    whole, _ = run_all(data, [len(data) or 1])
    split, _ = run_all(data, cuts)
    assert whole == split


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_any_bytes_never_raise_and_only_known_replies(data):
    out, _ = run_all(data, [7, 13, 1, 50])
    for code, reply in out:
        assert code in (CONT, CLOSE, AUTH, STARTTLS)
        for line in reply.split(b"\r\n")[:-1]:
            assert line == b"+ OK" or line.endswith((b"BAD invalid command", b"OK completed")) \
                or line.startswith((b"* CAPABILITY", b"* BYE", b"+ ")), line


@given(st.binary(max_size=60), st.binary(max_size=60))
def test_quoted_and_literal_forms_give_the_same_credentials(user, passwd):
    def literal(b):
        return b"{%d+}\r\n" % len(b) + b
    s, _ = new()
    out = talk(s, b"a LOGIN " + literal(user) + b" " + literal(passwd) + b"\r\n")
    if user and passwd:              # ({0} takes one byte: the quirk of §3.2)
        assert out == [(AUTH, b"")]
        assert (s.login, s.passwd) == (user, passwd)
    if user and all(c not in b'\r\n' for c in user + passwd):
        def quoted(b):
            return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        s, _ = new()
        assert talk(s, b"a LOGIN " + quoted(user) + b" " + quoted(passwd) + b"\r\n") == \
            [(AUTH, b"")]
        assert (s.login, s.passwd) == (user, passwd)


@given(st.binary(min_size=6, max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b))
def test_passwords_never_reach_the_log(secret):
    # (a "secret" that is part of the commands' own words would be found anyway)
    assume(secret.decode("utf-8", "backslashreplace") not in
           'client sent too long command "a LOGIN user 1 AUTHENTICATE PLAIN\n***"')
    s, log = new("imap_client_buffer 128;")
    talk(s, b"a LOGIN user " + b"{%d+}\r\n" % len(secret) + secret + b"x" * 200)
    s2, log2 = new("imap_client_buffer 128;")
    talk(s2, b"1 AUTHENTICATE PLAIN\r\n" + secret + b"y" * 200)
    for message in log.messages() + log2.messages():
        assert secret.decode("utf-8", "backslashreplace") not in message
