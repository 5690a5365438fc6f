"""The IMAP pre-auth machine, rule by rule of imap.md §2–§11, exact bytes."""

from __future__ import annotations

import base64

import pytest

from imap.helpers import AUTH, CLOSE, CONT, STARTTLS, new, talk

B = base64.b64encode
BAD = b"BAD invalid command\r\n"


def one(data, *lines, tls=False):
    s, log = new(*lines, tls=tls)
    return talk(s, data), s, log


# --- §2 greeting ------------------------------------------------------------------------

def test_greeting_is_fixed():
    s, _ = new("server_name other.example;")
    assert s.greeting() == b"* OK IMAP4 ready\r\n"


# --- §3.2 tags -----------------------------------------------------------------------------

@pytest.mark.parametrize("line,reply", [
    (b"a01 NOOP\r\n", b"a01 OK completed\r\n"),
    (b"A-z.0_9 NOOP\r\n", b"A-z.0_9 OK completed\r\n"),
    (b" NOOP\r\n", b" OK completed\r\n"),                      # empty tag
    (b"a01    NOOP\r\n", b"a01 OK completed\r\n"),              # spaces before command
    (b"a01 noop\r\n", b"a01 OK completed\r\n"),
    (b"a01 NOOP\n", b"a01 OK completed\r\n"),                   # bare LF
    (b"a01 NOOP  \r\n", b"a01 OK completed\r\n"),               # trailing spaces
    (b"x" * 32 + b" NOOP\r\n", b"x" * 32 + b" OK completed\r\n"),
])
def test_accepted_lines(line, reply):
    out, _, _ = one(line)
    assert out == [(CONT, reply)]


@pytest.mark.parametrize("line,reply", [
    (b"x" * 33 + b" NOOP\r\n", b"* " + BAD),                  # tag too long
    (b"* NOOP\r\n", b"* " + BAD),
    (b"+ NOOP\r\n", b"* " + BAD),
    (b"a\tb NOOP\r\n", b"* " + BAD),
    (b"a\xe9 NOOP\r\n", b"* " + BAD),
    (b"a01\r\n", b"* " + BAD),                                 # no space: no tag
    (b"a01 \r\n", b"a01 " + BAD),                              # no command
    (b"a01 FOO\r\n", b"a01 " + BAD),
    (b"a01 SELECT INBOX\r\n", b"a01 " + BAD),
    (b"a01 ID NIL\r\n", b"a01 " + BAD),
    (b"a01 NO1P\r\n", b"a01 " + BAD),
    (b"a01 NOOP\ta\r\n", b"a01 " + BAD),                       # TAB ends no word
    (b"a01 NOOP\rX\n", b"a01 " + BAD),                         # CR not before LF
    (b"a01 NOOP a b c d\r\n", b"a01 " + BAD),                  # a 4th argument
])
def test_invalid_lines(line, reply):
    out, s, _ = one(line)
    assert out == [(CONT, reply)]
    assert s.errors == 1


def test_three_arguments_are_fine():
    out, _, _ = one(b"a NOOP a b c\r\n")
    assert out == [(CONT, b"a OK completed\r\n")]


# --- §3.2 arguments: atoms, quoted strings, literals ------------------------------------------

def login_args(data):
    out, s, _ = one(data)
    assert out[-1] == (AUTH, b""), out
    return s.login, s.passwd


@pytest.mark.parametrize("data,creds", [
    (b"a LOGIN user pass\r\n", (b"user", b"pass")),
    (b'a LOGIN "us er" "pa ss"\r\n', (b"us er", b"pa ss")),
    (b'a LOGIN "te\\\\\\"st@example.com" "se\\\\\\"cret"\r\n',
     (b'te\\"st@example.com', b'se\\"cret')),
    (b'a LOGIN "\\a" ""\r\n', (b"a", b"")),                   # \a -> a; empty password
    (b'a LOGIN "u""p"\r\n', (b"u", b"p")),                    # no space needed after "
    (b'a LOGIN "u"p\r\n', (b"u", b"p")),
    (b'a LOGIN u"x y{z}\\\r\n', (b'u"x', b"y{z}\\")),          # atoms keep every byte
    (b"a LOGIN u \x00\xff\r\n", (b"u", b"\x00\xff")),
    (b"a LOGIN {4+}\r\nuser {4+}\r\npass\r\n", (b"user", b"pass")),
])
def test_login_argument_forms(data, creds):
    assert login_args(data) == creds


def test_synchronizing_literal_continuation_even_when_pipelined():
    s, _ = new()
    assert talk(s, b"a LOGIN {4}\r\n") == [(CONT, b"+ OK\r\n")]
    assert talk(s, b"user {6}\r\nsecret\r\n") == [(CONT, b"+ OK\r\n"), (AUTH, b"")]
    assert (s.login, s.passwd) == (b"user", b"secret")
    s, _ = new()
    out = talk(s, b"a LOGIN {4}\r\nuser {6}\r\nsecret\r\n")
    assert out == [(CONT, b"+ OK\r\n"), (CONT, b"+ OK\r\n"), (AUTH, b"")]


def test_literal_data_is_verbatim():
    s, _ = new()
    talk(s, b"a LOGIN {6+}\r\n\"a\r\nb\" {3+}\r\n\\\x00\"\r\n")
    assert (s.login, s.passwd) == (b'"a\r\nb"', b'\\\x00"')


@pytest.mark.parametrize("header", [b"{0}", b"{0+}", b"{}", b"{+}"])
def test_zero_length_literal_takes_one_byte(header):
    s, _ = new()
    out = talk(s, b"g LOGIN u2 " + header + b"\r\n\r\n")
    assert out[-1] == (AUTH, b"")
    assert s.passwd == b"\r"


def test_leading_zeros_in_literal_length():
    assert login_args(b"a LOGIN {004+}\r\nuser x\r\n") == (b"user", b"x")


@pytest.mark.parametrize("data", [
    b"a LOGIN {3}x\r\n",                       # junk after }
    b"a LOGIN {3 }\r\n",
    b"a LOGIN {a}\r\n",
    b"a LOGIN {3+x}\r\n",
    b"a LOGIN {3+}\r\nabcX\r\n",               # junk after the data (Angie)
    b"a LOGIN {99999999999999999999}\r\n",     # above SIZE_MAX/10
])
def test_invalid_literals(data):
    out, s, _ = one(data)
    assert out[-1] == (CONT, b"a " + BAD)
    assert s.errors == 1


def test_literal_then_another_literal_needs_a_space():
    # (and the skipped line ends in "+}": the connection closes, §3.3)
    out, _, _ = one(b"a LOGIN {1+}\r\nu{1+}\r\np\r\n")
    assert out == [(CLOSE, b"a " + BAD)]


# --- §3.3 invalid lines and the +} guard ------------------------------------------------------

def test_invalid_line_is_skipped_to_lf_across_reads():
    s, _ = new()
    assert talk(s, b"a FOO bar") == []
    assert talk(s, b" baz\r\nb NOOP\r\n") == [(CONT, b"a " + BAD), (CONT, b"b OK completed\r\n")]


@pytest.mark.parametrize("line,reply,closes", [
    (b"a03 FOOBAR {10+}\r\n", b"a03 " + BAD, True),
    (b"ab+}\r\n", b"* " + BAD, True),
    (b"a+}\r\n", b"* " + BAD, False),
])
def test_non_synchronizing_literal_guard(line, reply, closes):
    out, _, _ = one(line)
    assert out == [(CLOSE if closes else CONT, reply)]


def test_synchronizing_literal_on_invalid_line_gets_no_continuation():
    out, _, _ = one(b"a FOO {3}\r\n")
    assert out == [(CONT, b"a " + BAD)]


# --- §3.5 too long ------------------------------------------------------------------------------

def test_line_of_exactly_the_buffer_is_accepted():
    s, _ = new("imap_client_buffer 128;")
    line = b"a NOOP " + b"x" * (128 - 9) + b"\r\n"
    assert len(line) == 128
    assert talk(s, line) == [(CONT, b"a OK completed\r\n")]


def test_too_long_line_is_logged_masked_and_closes():
    s, log = new("imap_client_buffer 128;")
    out = talk(s, b"a01 LOGIN user " + b"p" * 200 + b"\r\n")
    assert out == [(CLOSE, b"a01 " + BAD)]
    assert log.messages() == ['client sent too long command "a01 LOGIN ***"']
    assert s.reset                               # input was left unread
    s, log = new("imap_client_buffer 128;")
    assert talk(s, b"x" * 200) == [(CLOSE, b"* " + BAD)]


def test_too_long_is_not_an_error_count():
    s, _ = new("imap_client_buffer 128;", "max_errors 1;")
    assert talk(s, b"a NOOP " + b"x" * 130) == [(CLOSE, b"a " + BAD)]
    assert s.errors == 0


# --- §3.6 SASL continuation lines, §3.7 sticky quoted mode -----------------------------------

def test_continuation_tokens():
    s, _ = new()
    assert talk(s, b"1 AUTHENTICATE PLAIN\r\n") == [(CONT, b"+ \r\n")]
    ir = B(b"\0u\0p")
    assert talk(s, ir + b" extra tokens\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method) == (b"u", b"p", "plain")


def test_continuation_fourth_token_is_parse_invalid():
    s, _ = new()
    talk(s, b"1 AUTHENTICATE PLAIN\r\n")
    assert talk(s, b"a b c d\r\n") == [(CONT, b"1 " + BAD)]
    assert s.errors == 1
    assert talk(s, b"2 NOOP\r\n") == [(CONT, b"2 OK completed\r\n")]


def test_commands_are_not_recognised_inside_an_exchange():
    s, log = new()
    talk(s, b"1 AUTHENTICATE PLAIN\r\n")
    assert talk(s, b"3 NOOP\r\n") == [(CONT, b"1 " + BAD)]       # "3" is bad base64
    assert "client sent invalid base64 encoding in AUTH PLAIN command" in log.messages()


def test_sticky_quoted_mode():
    s, _ = new()
    assert talk(s, b'a LOGIN "x\r\n') == [(CONT, b"a " + BAD)]       # one argument
    assert talk(s, b"b LOGIN user pass\r\n") == [(CONT, b"b " + BAD)]
    assert talk(s, b"c NOOP\r\n") == [(CONT, b"c OK completed\r\n")]
    assert talk(s, b'd LOGIN use\\r" secretx\r\n') == [(AUTH, b"")]
    assert (s.login, s.passwd) == (b"user", b"secretx")


def test_backslash_before_line_end_is_invalid():
    out, _, _ = one(b'a LOGIN "u\\\r\n')
    assert out == [(CONT, b"a " + BAD)]


# --- §4 / §5 replies and CAPABILITY --------------------------------------------------------------

@pytest.mark.parametrize("lines,tls,cap", [
    ((), False, b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\n"),
    (("starttls on;", "ssl_certificate a;", "ssl_certificate_key b;"), False,
     b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN STARTTLS\r\n"),
    (("starttls on;", "ssl_certificate a;", "ssl_certificate_key b;"), True,
     b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\n"),
    (("starttls only;", "ssl_certificate a;", "ssl_certificate_key b;"), False,
     b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS STARTTLS LOGINDISABLED\r\n"),
    (("imap_capabilities SEE-THIS;",), False, b"* CAPABILITY SEE-THIS AUTH=PLAIN\r\n"),
    (("imap_auth oauthbearer xoauth2 external cram-md5 login plain;",), False,
     b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN AUTH=LOGIN AUTH=CRAM-MD5 "
     b"AUTH=EXTERNAL AUTH=XOAUTH2 AUTH=OAUTHBEARER\r\n"),
    (('imap_capabilities "IMAP4rev1" "" LITERAL+;', "starttls only;", "ssl_certificate a;",
      "ssl_certificate_key b;"), False,
     b"* CAPABILITY IMAP4rev1  LITERAL+ STARTTLS LOGINDISABLED\r\n"),
])
def test_capability_variants(lines, tls, cap):
    out, _, _ = one(b"t CAPABILITY\r\n", *lines, tls=tls)
    assert out == [(CONT, cap + b"t OK completed\r\n")]


def test_logout():
    out, _, _ = one(b"z LOGOUT\r\nlater NOOP\r\n")
    assert out == [(CLOSE, b"* BYE\r\nz OK completed\r\n")]


# --- §6 commands ---------------------------------------------------------------------------------

TLS_ON = ("starttls on;", "ssl_certificate a;", "ssl_certificate_key b;")
TLS_ONLY = ("starttls only;", "ssl_certificate a;", "ssl_certificate_key b;")


def test_starttls_drops_pipelined_bytes():
    s, _ = new(*TLS_ON)
    assert talk(s, b"a STARTTLS\r\nc NOOP\r\n") == [(STARTTLS, b"a OK completed\r\n")]
    s.tls_started()
    assert talk(s) == []
    assert talk(s, b"d NOOP\r\n") == [(CONT, b"d OK completed\r\n")]


@pytest.mark.parametrize("lines,tls", [((), False), (TLS_ON, True)])
def test_starttls_refused(lines, tls):
    out, s, _ = one(b"a STARTTLS\r\n", *lines, tls=tls)
    assert out == [(CONT, b"a " + BAD)]
    assert s.errors == 0                          # handler level


@pytest.mark.parametrize("data", [b"a LOGIN u p\r\n", b"a AUTHENTICATE PLAIN\r\n",
                                  b"a AUTHENTICATE\r\n"])
def test_starttls_only_refuses_login_on_plain_text(data):
    out, _, _ = one(data, *TLS_ONLY)
    assert out == [(CONT, b"a " + BAD)]
    out, _, _ = one(b"a NOOP\r\n", *TLS_ONLY)
    assert out == [(CONT, b"a OK completed\r\n")]


def test_starttls_only_allows_login_after_tls():
    out, _, _ = one(b"a LOGIN u p\r\n", *TLS_ONLY, tls=True)
    assert out == [(AUTH, b"")]


@pytest.mark.parametrize("data", [b"a LOGIN\r\n", b"a LOGIN u\r\n", b"a LOGIN u p x\r\n",
                                  b'a LOGIN "" p\r\n'])
def test_login_argument_count_and_empty_user(data):
    out, s, _ = one(data)
    assert out == [(CONT, b"a " + BAD)]
    assert s.errors == 0


def test_login_accepted_whatever_imap_auth_says():
    out, s, _ = one(b"a LOGIN u p\r\n", "imap_auth cram-md5;")
    assert out == [(AUTH, b"")]
    assert (s.method, s.attempt) == ("plain", 1)


# --- §7 AUTHENTICATE ---------------------------------------------------------------------------

def test_authenticate_login_both_forms():
    s, _ = new()
    assert talk(s, b"1 AUTHENTICATE LOGIN\r\n") == [(CONT, b"+ VXNlcm5hbWU6\r\n")]
    assert talk(s, B(b"test@example.com") + b"\r\n") == [(CONT, b"+ UGFzc3dvcmQ6\r\n")]
    assert talk(s, B(b"secret") + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method) == (b"test@example.com", b"secret", "plain")
    s, _ = new()
    assert talk(s, b"1 AUTHENTICATE login " + B(b"u") + b"\r\n") == \
        [(CONT, b"+ UGFzc3dvcmQ6\r\n")]


def test_bad_base64_username_line_is_answered_untagged():
    s, _ = new()
    talk(s, b"1 AUTHENTICATE LOGIN\r\n")
    assert talk(s, b"%%%\r\n") == [(CONT, b"BAD invalid command\r\n")]
    # in the initial response it is tagged
    s, _ = new()
    assert talk(s, b"1 AUTHENTICATE LOGIN %%%\r\n") == [(CONT, b"1 " + BAD)]


def test_plain_inline_and_continued():
    s, _ = new()
    assert talk(s, b"1 AUTHENTICATE PLAIN " + B(b"authz\0u\0p") + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (b"u", b"p")


@pytest.mark.parametrize("data", [
    b"1 AUTHENTICATE\r\n",
    b"1 AUTHENTICATE FOO\r\n",
    b"1 AUTHENTICATE CRAM-MD5\r\n",              # not enabled
    b"1 AUTHENTICATE EXTERNAL " + B(b"u") + b"\r\n",   # not enabled (A!)
    b"1 AUTHENTICATE XOAUTH2\r\n",
    b"1 AUTHENTICATE OAUTHBEARER\r\n",
    b"1 AUTHENTICATE PLAIN a b\r\n",
    b"1 AUTHENTICATE LOGIN a b\r\n",
])
def test_refused_mechanisms_are_handler_level(data):
    out, s, _ = one(data)
    assert out == [(CONT, b"1 " + BAD)]
    assert s.errors == 0


def test_cram_md5_salt_is_made_once_and_reused():
    lines = ("imap_auth cram-md5;", "server_name mail.example.com;")
    s, _ = new(*lines)
    out = talk(s, b"1 AUTHENTICATE CRAM-MD5\r\n")
    salt = base64.b64decode(out[0][1][2:-2])
    assert salt.startswith(b"<") and salt.endswith(b"@mail.example.com>")
    assert talk(s, B(b"user " + b"0" * 32) + b"\r\n") == [(AUTH, b"")]
    assert (s.method, s.salt, s.passwd) == ("cram-md5", salt, b"0" * 32)
    s.auth_failed(b"no", True)
    out = talk(s, b"2 AUTHENTICATE CRAM-MD5\r\n")
    assert base64.b64decode(out[0][1][2:-2]) == salt
    out, _, _ = one(b"1 AUTHENTICATE CRAM-MD5 x\r\n", *lines)
    assert out == [(CONT, b"1 " + BAD)]


def test_external_clears_the_password():
    s, _ = new("imap_auth plain external;")
    talk(s, b"1 LOGIN u secret\r\n")
    assert s.auth_failed(b"Invalid", True) == (CONT, b"1 NO Invalid\r\n")
    assert talk(s, b"2 AUTHENTICATE EXTERNAL " + B(b"u") + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method, s.attempt) == (b"u", b"", "external", 2)
    s, _ = new("imap_auth external;")
    assert talk(s, b"2 AUTHENTICATE EXTERNAL\r\n") == [(CONT, b"+ VXNlcm5hbWU6\r\n")]


def test_oauth_mechanisms():
    s, _ = new("imap_auth xoauth2 oauthbearer;")
    tok = B(b"user=u\x01auth=Bearer t\x01\x01")
    assert talk(s, b"1 AUTHENTICATE XOAUTH2 " + tok + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method) == (b"u", b"t", "xoauth2")


# --- §7.3 Auth-Error-SASL ------------------------------------------------------------------------

OB = b"bixhPXRlc3RAZXhhbXBsZS5jb20sAWhvc3Q9eAFhdXRoPUJlYXJlciBzYXNsZmFpbAEB"


@pytest.mark.parametrize("line,reply", [
    (b"AQ==\r\n", b"2 NO Invalid login or password\r\n"),
    (b"AQ==xyz\r\n", b"2 NO Invalid login or password\r\n"),
    (b"AQ== b\r\n", b"2 " + BAD),
    (b"foo\r\n", b"2 " + BAD),
])
def test_oauthbearer_error_challenge(line, reply):
    s, _ = new("imap_auth oauthbearer;")
    assert talk(s, b"2 AUTHENTICATE OAUTHBEARER " + OB + b"\r\n") == [(AUTH, b"")]
    assert s.auth_failed(b"Invalid login or password", True, b"eyJzdGF0dXMiOiI0MDAifQ==") == \
        (CONT, b"+ eyJzdGF0dXMiOiI0MDAifQ==\r\n")
    assert talk(s, line) == [(CONT, reply)]
    assert talk(s, b"3 NOOP\r\n") == [(CONT, b"3 OK completed\r\n")]


@pytest.mark.parametrize("line,reply", [(b"\r\n", b"1 NO no\r\n"), (b"   \r\n", b"1 NO no\r\n"),
                                        (b"x\r\n", b"1 " + BAD)])
def test_xoauth2_error_challenge_without_wait_closes(line, reply):
    s, _ = new("imap_auth xoauth2;")
    talk(s, b"1 AUTHENTICATE XOAUTH2 " + B(b"user=u\x01auth=Bearer t\x01\x01") + b"\r\n")
    assert s.auth_failed(b"no", False, b"e30=") == (CONT, b"+ e30=\r\n")
    assert talk(s, line) == [(CLOSE, reply)]


def test_stale_sasl_error_state_is_cleared():
    """Decision: a parse-level invalid line in place of the answer ends the attempt."""
    s, _ = new("imap_auth xoauth2;")
    talk(s, b"1 AUTHENTICATE XOAUTH2 " + B(b"user=u\x01auth=Bearer t\x01\x01") + b"\r\n")
    s.auth_failed(b"no", True, b"e30=")
    assert talk(s, b"a b c d\r\n") == [(CONT, b"1 " + BAD)]
    assert talk(s, b"2 AUTHENTICATE XOAUTH2\r\n") == [(CONT, b"+ \r\n")]


# --- §8 limits ---------------------------------------------------------------------------------

def test_max_errors():
    s, log = new("max_errors 2;")
    assert talk(s, b"a01 FOO\r\n") == [(CONT, b"a01 " + BAD)]
    assert talk(s, b"x LOGIN\r\n") == [(CONT, b"x " + BAD)]       # handler level: free
    assert talk(s, b"a02 BAR\r\n") == [(CLOSE, b"a02 " + BAD)]
    assert "client sent too many invalid commands" in log.messages()


def test_max_commands():
    s, log = new("max_commands 1;")
    assert talk(s, b"a01 NOOP\r\n") == [(CONT, b"a01 OK completed\r\n")]
    assert talk(s, b"a02 NOOP\r\n") == [(CLOSE, b"a02 " + BAD)]
    assert "client sent too many commands" in log.messages()


def test_max_commands_counts_continuation_lines_not_literal_steps():
    s, _ = new("max_commands 2;")
    assert talk(s, b"a NOOP {3}\r\n") == [(CONT, b"+ OK\r\n")]
    assert talk(s, b"xyz\r\n") == [(CONT, b"a OK completed\r\n")]
    assert talk(s, b"b AUTHENTICATE LOGIN\r\n") == [(CONT, b"+ VXNlcm5hbWU6\r\n")]
    assert talk(s, B(b"u") + b"\r\n") == [(CLOSE, b"b " + BAD)]


# --- §9 pipelining and the buffer --------------------------------------------------------------

def test_pipelined_commands_answered_in_order():
    out, _, _ = one(b"a01 INVALID COMMAND WITH ARGUMENTS\r\na02 NOOP\r\n")
    assert out == [(CONT, b"a01 " + BAD), (CONT, b"a02 OK completed\r\n")]


def test_buffer_is_compacted_per_command():
    s, _ = new("imap_client_buffer 64;")
    data = b"".join(b"a%02d NOOP %s\r\n" % (i, b"x" * 30) for i in range(10))
    out = talk(s, data)
    assert out == [(CONT, b"a%02d OK completed\r\n" % i) for i in range(10)]


def test_authenticate_lines_share_the_buffer():
    s, _ = new("imap_client_buffer 64;", "imap_auth plain;")
    assert talk(s, b"1 AUTHENTICATE PLAIN\r\n") == [(CONT, b"+ \r\n")]
    out = talk(s, b"A" * 60)
    assert out == [(CLOSE, b"1 " + BAD)]


def test_after_failed_login_pipelined_bytes_run_after_the_no():
    s, _ = new()
    assert talk(s, b"a01 LOGIN u p\r\na02 NOOP\r\n") == [(AUTH, b"")]
    assert s.auth_failed(b"Invalid login", True) == (CONT, b"a01 NO Invalid login\r\n")
    assert talk(s) == [(CONT, b"a02 OK completed\r\n")]


def test_after_success_pipelined_bytes_go_to_the_backend():
    s, _ = new()
    assert talk(s, b"a01 LOGIN u p\r\na02 LOGOUT\r\n") == [(AUTH, b"")]
    assert s.leftover() == b"a02 LOGOUT\r\n"


def test_failed_authenticate_lines_reduce_the_next_line():
    """Quirk: the AUTHENTICATE exchange stays in the buffer until the next command
    completes, so the line after a failure has less room, and the too-long log starts
    with the old (masked) lines."""
    s, log = new("imap_client_buffer 64;")
    talk(s, b"1 AUTHENTICATE PLAIN\r\n")                 # 22 bytes
    assert talk(s, B(b"\0u\0p") + b"\r\n") == [(AUTH, b"")]  # 10 bytes
    assert s.auth_failed(b"no", True) == (CONT, b"1 NO no\r\n")
    assert talk(s, b"2 NOOP " + b"x" * 30) == [(CLOSE, b"2 " + BAD)]
    assert log.messages()[-1].startswith('client sent too long command "1 AUTHENTICATE PLAIN')
    assert "AHUAcA" not in log.messages()[-1]


def test_failure_without_wait_closes_and_forgets_the_tag():
    s, _ = new()
    talk(s, b"1 LOGIN nowait@example.com bad\r\n")
    assert s.auth_failed(b"Invalid login or password", False) == \
        (CLOSE, b"1 NO Invalid login or password\r\n")


def test_tag_is_forgotten_after_a_failure():
    s, _ = new()
    talk(s, b"abc LOGIN u p\r\n")
    s.auth_failed(b"no", True)
    assert talk(s, b"*bad\r\n") == [(CONT, b"* " + BAD)]


# --- secrets -----------------------------------------------------------------------------------------

def test_no_secret_in_any_log_message():
    s, log = new("imap_client_buffer 128;", "imap_auth plain login;")
    talk(s, b"1 AUTHENTICATE PLAIN %%%%\r\n")
    talk(s, b"2 AUTHENTICATE LOGIN\r\n")
    talk(s, b"%%%%\r\n")
    talk(s, b"3 LOGIN {6}\r\n")
    talk(s, b"hunter" + b"2" * 200)
    text = "\n".join(log.messages())
    assert "hunter" not in text and "%%%%" not in text
