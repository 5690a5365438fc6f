"""Playbook: every rule of pop3.md §2–§8, §12, §15 (and the STLS table of
ssl-realip-proxy.md §1) as exact-byte tests of the sans-IO machine
``angie_mail.pop3.session.Pop3Session``.

Test names carry the spec section they check (``test_s3_8_...`` = pop3.md §3 rule 8,
``test_stls_table_...`` = ssl-realip-proxy.md §1, ``test_q15_N_...`` = pop3.md §15 quirk N).
"""

from __future__ import annotations

import base64
import re
import time

import pytest

from angie_mail.pop3.session import AUTH, CLOSE, CONT, NEED, STLS, Pop3Session
from pop3.helpers import Log, server

# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

OK = b"+OK\r\n"
INVALID = b"-ERR invalid command\r\n"
NEXT = b"+ \r\n"
USERNAME = b"+ VXNlcm5hbWU6\r\n"
PASSWORD = b"+ UGFzc3dvcmQ6\r\n"
GREETING = b"+OK POP3 ready\r\n"
CAPA_HEAD = b"+OK Capability list follows\r\n"

SALT = b"<1804289383.1700000000@mail.example.com>"
SALT_B64 = b"PDE4MDQyODkzODMuMTcwMDAwMDAwMEBtYWlsLmV4YW1wbGUuY29tPg=="

CERTS = ("ssl_certificate /x;", "ssl_certificate_key /y;")
STARTTLS_ON = ("starttls on;",) + CERTS
STARTTLS_ONLY = ("starttls only;",) + CERTS
ALL_AUTH = "pop3_auth plain apop cram-md5 external xoauth2 oauthbearer;"
APOP = "pop3_auth plain apop;"
CRAM = "pop3_auth plain cram-md5;"
EXTERNAL = "pop3_auth plain external;"
XOAUTH2 = "pop3_auth plain xoauth2;"
OAUTHBEARER = "pop3_auth plain oauthbearer;"


def session(*lines, tls=False, salt=None):
    return Pop3Session(server(*lines), tls=tls, salt=salt, log=Log())


def talk(s, data=b""):
    """Feed ``data`` then step until NEED/CLOSE/STLS/AUTH; every (code, bytes) returned."""
    s.feed(data)
    out = []
    while True:
        code, b = s.step()
        out.append((code, b))
        if code != CONT:
            return out


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def line(data: bytes) -> bytes:
    return data + b"\r\n"


def xo(login=b"bob@example.com", token=b"tok123"):
    return b"user=" + login + b"\x01auth=Bearer " + token + b"\x01\x01"


def ob(login=b"bob@example.com", token=b"tok123"):
    return b"n,a=" + login + b",\x01host=mail.example.com\x01port=110\x01auth=Bearer " + \
        token + b"\x01\x01"


def start_login_exchange(s):
    assert talk(s, b"AUTH LOGIN\r\n") == [(CONT, USERNAME), (NEED, b"")]


# --------------------------------------------------------------------------------------
# §2 Greeting and salt
# --------------------------------------------------------------------------------------

def test_s2_greeting_without_salt_is_exact():
    s = session()
    assert s.greeting() == b"+OK POP3 ready\r\n"
    assert s.salt == b""


@pytest.mark.parametrize("auth", ["pop3_auth apop;", "pop3_auth cram-md5;",
                                  "pop3_auth plain apop;", ALL_AUTH])
def test_s2_greeting_with_salt_when_apop_or_cram_md5_enabled(auth):
    before = int(time.time())
    s = session(auth)
    g = s.greeting()
    after = int(time.time())
    m = re.fullmatch(rb"\+OK POP3 ready (<(\d+)\.(\d+)@mail\.example\.com>)\r\n", g)
    assert m, g
    assert m.group(1) == s.salt
    assert 0 <= int(m.group(2)) <= 2 ** 31 - 1
    assert before <= int(m.group(3)) <= after


@pytest.mark.parametrize("auth", ["pop3_auth plain;", "pop3_auth plain external;",
                                  "pop3_auth xoauth2 oauthbearer;"])
def test_s2_no_salt_without_apop_or_cram_md5(auth):
    assert session(auth).greeting() == GREETING


def test_s2_salt_random_part_is_in_c_random_range():
    for _ in range(200):
        r = int(re.match(rb"<(\d+)\.", session(APOP).salt).group(1))
        assert 0 <= r < 2 ** 31


def test_s2_salt_uses_merged_server_name():
    s = session(APOP, "server_name foo.test;")
    assert re.fullmatch(rb"<\d+\.\d+@foo\.test>", s.salt)
    assert s.greeting() == b"+OK POP3 ready " + s.salt + b"\r\n"


def test_s2_greeting_exactly_one_space_before_salt():
    s = session(APOP, salt=SALT)
    assert s.greeting() == b"+OK POP3 ready <1804289383.1700000000@mail.example.com>\r\n"


def test_s2_same_salt_is_the_cram_md5_challenge():
    s = session(CRAM)
    assert talk(s, b"AUTH CRAM-MD5\r\n") == [(CONT, b"+ " + b64(s.salt) + b"\r\n"),
                                             (NEED, b"")]


def test_s2_salt_not_regenerated_and_no_greeting_after_stls():
    s = session(APOP, *STARTTLS_ON)
    salt = s.salt
    assert talk(s, b"STLS\r\n") == [(STLS, OK)]
    assert s.tls_started() is None
    assert s.salt == salt
    # nothing is pending to be sent: the next step just wants input
    assert s.step() == (NEED, b"")


# --------------------------------------------------------------------------------------
# §3 Line tokenizer
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [b"NO0P", b"N-OP", b"NOOP\t", b"NO\tOP", b"\x00NOOP",
                                 b"NOO\x00", b"N\xc9OP", b"1234", b"CAPA1", b"QUIT-",
                                 b"NOOP\tx"])
def test_s3_1_command_word_letters_only(bad):
    s = session()
    assert talk(s, line(bad)) == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 1          # parse-level


@pytest.mark.parametrize("bad", [b"NOO", b"NOOPS", b"QUITX", b"US", b"CAPABILITY",
                                 b"AUTHX PLAIN", b"Q"])
def test_s3_1_command_word_exactly_four_letters(bad):
    s = session()
    assert talk(s, line(bad)) == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 1


@pytest.mark.parametrize("cmd", [b"noop", b"NoOp", b"nOOP", b"NOOP"])
def test_s3_1_command_word_case_insensitive(cmd):
    s = session()
    assert talk(s, line(cmd)) == [(CONT, OK), (NEED, b"")]


def test_s3_1_case_insensitive_user_pass_capa_quit():
    s = session()
    assert talk(s, b"user bob\r\n") == [(CONT, OK), (NEED, b"")]
    assert talk(s, b"pAsS pw\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (b"bob", b"pw")
    s = session()
    assert talk(s, b"capa\r\n")[0] == (CONT, server().pop3.capa)
    assert talk(s, b"quit\r\n") == [(CLOSE, OK)]


@pytest.mark.parametrize("cmd", [b"STAT", b"LIST", b"RETR 1", b"DELE 1", b"RSET",
                                 b"TOP 1 1", b"UIDL", b"LAST", b"UTF8", b"XTND",
                                 b"HELO", b"EHLO x"])
def test_s3_1_unknown_commands_are_parse_level_invalid(cmd):
    s = session()
    assert talk(s, line(cmd)) == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 1
    assert s.commands == 0


@pytest.mark.parametrize("empty", [b"\r\n", b"\n"])
def test_s3_1_empty_line_is_invalid(empty):
    s = session()
    assert talk(s, empty) == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 1


def test_s3_1_leading_space_before_command_is_invalid():
    s = session()
    assert talk(s, b" NOOP\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 1


def test_s3_2_lf_alone_ends_a_line():
    s = session()
    assert talk(s, b"NOOP\nNOOP\r\n") == [(CONT, OK), (CONT, OK), (NEED, b"")]


def test_s3_2_crlf_ends_a_line():
    s = session()
    assert talk(s, b"USER bob\r\n") == [(CONT, OK), (NEED, b"")]
    assert s.login == b"bob"            # the CR is not part of the argument


@pytest.mark.parametrize("bad", [b"NOOP\rX\r\n", b"NOOP\r\r\n", b"NO\rOP\r\n",
                                 b"USER a\rb\r\n", b"NOOP a\rb\n", b"\r\r\n",
                                 b"\rNOOP\r\n"])
def test_s3_2_bare_cr_is_invalid(bad):
    s = session()
    assert talk(s, bad) == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 1
    assert s.state == 0          # START


def test_s3_2_bare_cr_line_discarded_up_to_lf_then_next_line_runs():
    s = session()
    assert talk(s, b"NOOP\rNOOP\r\nNOOP\r\n") == [(CONT, INVALID), (CONT, OK), (NEED, b"")]


def test_s3_3_runs_of_spaces_separate_arguments():
    s = session(APOP)
    assert talk(s, b"APOP    bob     digest   \r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (b"bob", b"digest")


def test_s3_3_tab_is_not_a_separator():
    s = session(APOP)
    assert talk(s, b"APOP bob\tx d\tg\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (b"bob\tx", b"d\tg")


def test_s3_3_tab_only_argument_counts_as_one_argument():
    s = session(APOP)
    # "\t" is an argument, so APOP has 2 arguments
    assert talk(s, b"APOP \t x\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (b"\t", b"x")


def test_s3_3_three_arguments_allowed():
    s = session()
    assert talk(s, b"NOOP a b c\r\n") == [(CONT, OK), (NEED, b"")]
    assert talk(s, b"NOOP a b c   \r\n") == [(CONT, OK), (NEED, b"")]
    assert s.errors == 0


@pytest.mark.parametrize("bad", [b"NOOP a b c d", b"CAPA 1 2 3 4", b"AUTH PLAIN a b c",
                                 b"APOP a b c d e", b"QUIT   a b  c  d"])
def test_s3_3_fourth_argument_is_parse_level_invalid(bad):
    s = session(APOP)
    assert talk(s, line(bad)) == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 1
    assert s.commands == 0


def test_s3_4_user_keeps_inner_and_trailing_spaces():
    s = session()
    assert talk(s, b"USER a b \r\n") == [(CONT, OK), (NEED, b"")]
    assert s.login == b"a b "


def test_s3_4_user_leading_spaces_skipped():
    s = session()
    assert talk(s, b"USER    bob smith\r\n") == [(CONT, OK), (NEED, b"")]
    assert s.login == b"bob smith"


def test_s3_4_pass_keeps_inner_and_trailing_spaces():
    s = session()
    talk(s, b"USER bob\r\n")
    assert talk(s, b"PASS  p a s s  \r\n") == [(AUTH, b"")]
    assert s.passwd == b"p a s s  "


def test_s3_4_user_with_many_words_is_not_a_fourth_argument():
    s = session("max_errors 1;")
    assert talk(s, b"USER a b c d e f\r\n") == [(CONT, OK), (NEED, b"")]
    assert s.login == b"a b c d e f"


def test_s3_4_pass_in_start_with_many_words_is_handler_level():
    s = session("max_errors 1;")
    assert talk(s, b"PASS a b c d e\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0


@pytest.mark.parametrize("data", [b"USER\r\n", b"USER \r\n", b"USER     \r\n", b"USER\n"])
def test_s3_4_user_without_argument_is_handler_level_invalid(data):
    s = session("max_errors 1;")
    assert talk(s, data) == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0
    assert s.state == 0


def test_s3_5_argument_bytes_unrestricted():
    s = session()
    assert talk(s, b"USER a\x00\xff\x01\x7f\tz\r\n") == [(CONT, OK), (NEED, b"")]
    assert s.login == b"a\x00\xff\x01\x7f\tz"
    s = session(APOP)
    assert talk(s, b"APOP \x00\x80 \xfe\xff\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (b"\x00\x80", b"\xfe\xff")


def test_s3_6_invalid_line_discarded_up_to_lf():
    s = session()
    assert talk(s, b"FOO bar USER x\r\nNOOP\r\n") == [(CONT, INVALID), (CONT, OK),
                                                      (NEED, b"")]
    assert s.errors == 1
    assert s.login == b""


def test_s3_6_partial_invalid_line_waits_for_lf():
    s = session()
    assert talk(s, b"FOO bar") == [(NEED, b"")]
    assert talk(s, b" baz\r\n") == [(CONT, INVALID), (NEED, b"")]


# --- §3.7 SASL continuation lines ------------------------------------------------------

def test_s3_7_continuation_not_parsed_as_command():
    s = session()
    start_login_exchange(s)
    # "USER" is valid base64 (4 chars) and becomes the decoded username
    assert talk(s, b"USER\r\n") == [(CONT, PASSWORD), (NEED, b"")]
    assert s.login == base64.b64decode(b"USER")


def test_s3_7_continuation_empty_line_is_one_empty_token():
    s = session()
    start_login_exchange(s)
    assert talk(s, b"\r\n") == [(CONT, PASSWORD), (NEED, b"")]
    assert s.login == b""
    assert talk(s, b"\n") == [(AUTH, b"")]
    assert s.passwd == b""
    assert s.errors == 0


def test_s3_7_continuation_leading_space_gives_empty_first_token():
    s = session()
    start_login_exchange(s)
    assert talk(s, b" " + b64(b"bob") + b"\r\n") == [(CONT, PASSWORD), (NEED, b"")]
    assert s.login == b""


def test_s3_7_continuation_extra_tokens_ignored():
    s = session()
    start_login_exchange(s)
    assert talk(s, b64(b"bob") + b"  extra   more\r\n") == [(CONT, PASSWORD), (NEED, b"")]
    assert s.login == b"bob"
    assert talk(s, b64(b"pw") + b" x y\r\n") == [(AUTH, b"")]
    assert s.passwd == b"pw"


def test_s3_7_continuation_trailing_spaces_ignored():
    s = session()
    start_login_exchange(s)
    assert talk(s, b64(b"bob") + b"   \r\n") == [(CONT, PASSWORD), (NEED, b"")]
    assert s.login == b"bob"


@pytest.mark.parametrize("cont", [b"a b c d", b" a b c", b"QQ== QQ== QQ== QQ=="])
def test_s3_7_continuation_more_than_three_tokens_is_parse_level_invalid(cont):
    s = session()
    start_login_exchange(s)
    assert talk(s, line(cont) + b"NOOP\r\n") == [(CONT, INVALID), (CONT, OK), (NEED, b"")]
    assert s.errors == 1
    assert s.state == 0


def test_s3_7_continuation_bare_cr_is_parse_level_invalid():
    s = session()
    start_login_exchange(s)
    assert talk(s, b"Ym9i\rx\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 1
    assert s.state == 0


def test_s3_7_continuation_tab_is_part_of_token():
    s = session()
    start_login_exchange(s)
    # "Ym9i\tYQ==" is one token; TAB is not in the base64 alphabet -> handler-level
    assert talk(s, b"Ym9i\tYQ==\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0


# --- §3.8 too long ------------------------------------------------------------------

def test_s3_8_line_of_128_bytes_with_crlf_accepted():
    s = session()
    data = b"USER " + b"a" * 121 + b"\r\n"
    assert len(data) == 128
    assert talk(s, data) == [(CONT, OK), (NEED, b"")]
    assert s.login == b"a" * 121


def test_s3_8_line_of_128_bytes_with_lf_only_accepted():
    s = session()
    data = b"USER " + b"a" * 122 + b"\n"
    assert len(data) == 128
    assert talk(s, data) == [(CONT, OK), (NEED, b"")]
    assert s.login == b"a" * 122


def test_s3_8_line_of_129_bytes_rejected_and_closed():
    s = session()
    data = b"USER " + b"a" * 122 + b"\r\n"
    assert len(data) == 129
    assert talk(s, data) == [(CLOSE, INVALID)]
    assert s.errors == 0                 # not counted toward max_errors
    assert s.log.records == [("info", 'client sent too long command "%s"'
                      % (b"USER " + b"a" * 122 + b"\r").decode())]


def test_s3_8_lf_at_byte_129_rejected():
    s = session()
    data = b"NOOP " + b"x" * 123 + b"\n"
    assert len(data) == 129
    assert talk(s, data) == [(CLOSE, INVALID)]


def test_s3_8_full_buffer_without_lf_rejected_in_pieces():
    s = session()
    assert talk(s, b"USER " + b"a" * 100) == [(NEED, b"")]
    assert talk(s, b"a" * 22) == [(NEED, b"")]            # 127 bytes buffered
    assert talk(s, b"a") == [(CLOSE, INVALID)]             # 128, no LF


def test_s3_8_cr_at_byte_128_without_lf_rejected():
    s = session()
    data = b"USER " + b"a" * 122 + b"\r"
    assert len(data) == 128
    assert talk(s, data) == [(CLOSE, INVALID)]


def test_s3_8_log_contains_the_128_byte_buffer():
    s = session()
    data = b"USER " + b"b" * 300
    assert talk(s, data) == [(CLOSE, INVALID)]
    assert s.log.records == [("info", 'client sent too long command "%s"'
                      % data[:128].decode())]


def test_s3_8_invalid_long_line_is_too_long_not_an_error():
    s = session("max_errors 1;")
    assert talk(s, b"X" * 200 + b"\r\n") == [(CLOSE, INVALID)]
    assert s.errors == 0
    assert s.log.messages()[0].startswith('client sent too long command "XXXX')


def test_s3_8_too_long_after_pipelined_commands():
    s = session()
    assert talk(s, b"NOOP\r\n" + b"NOOP " + b"z" * 200) == [(CONT, OK), (CLOSE, INVALID)]


def test_s3_8_and_s13_too_long_pass_is_masked_in_log():
    s = session()
    talk(s, b"USER bob\r\n")
    secret = b"S3cr3t" * 30
    assert talk(s, b"PASS " + secret + b"\r\n") == [(CLOSE, INVALID)]
    assert s.log.records == [("info", 'client sent too long command "PASS ***"')]


def test_s3_8_and_s13_too_long_pass_in_start_is_masked_in_log():
    s = session()
    assert talk(s, b"PASS " + b"S3cr3t" * 30) == [(CLOSE, INVALID)]
    assert s.log.records == [("info", 'client sent too long command "PASS ***"')]


@pytest.mark.parametrize("cmd", [b"APOP bob ", b"AUTH PLAIN ", b"AUTH XOAUTH2 "])
def test_s3_8_and_s13_too_long_apop_auth_masked_in_log(cmd):
    s = session(ALL_AUTH)
    secret = b"S3cr3tS3cr3t" * 20
    assert talk(s, cmd + secret + b"\r\n") == [(CLOSE, INVALID)]
    (level, msg), = s.log.records
    assert level == "info"
    # interpretation: "every argument ... masked"; the exact mask text is only shown
    # for PASS in the spec, so only the command word + no secret are asserted here
    assert msg.startswith('client sent too long command "' + cmd[:4].decode() + " ")
    assert msg.endswith('"')
    assert "S3cr3t" not in msg and "bob" not in msg


def test_s3_8_and_s13_too_long_sasl_continuation_masked_in_log():
    s = session()
    start_login_exchange(s)
    secret = b"U2VjcmV0" * 20
    assert talk(s, secret + b"\r\n") == [(CLOSE, INVALID)]
    (level, msg), = s.log.records
    assert msg.startswith('client sent too long command "')
    assert "U2VjcmV0" not in msg


def test_s3_8_too_long_user_line_is_not_masked():
    s = session()
    talk(s, b"USER " + b"u" * 200)
    assert s.log.records == [("info", 'client sent too long command "USER ' + "u" * 123 + '"')]


def _xo_payload_of_len(n):
    base = xo(b"bob", b"")
    return xo(b"bob", b"t" * (n - len(base)))


def test_s3_8_sasl_continuation_of_126_base64_chars_accepted():
    payload = _xo_payload_of_len(94)
    enc = b64(payload).rstrip(b"=")
    assert len(enc) == 126
    s = session(XOAUTH2)
    assert talk(s, b"AUTH XOAUTH2\r\n") == [(CONT, NEXT), (NEED, b"")]
    assert talk(s, enc + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (b"bob", b"t" * (94 - len(xo(b"bob", b""))))


def test_s3_8_sasl_continuation_of_127_chars_too_long():
    enc = b64(_xo_payload_of_len(94)).rstrip(b"=") + b"="
    assert len(enc) == 127
    s = session(XOAUTH2)
    talk(s, b"AUTH XOAUTH2\r\n")
    assert talk(s, enc + b"\r\n") == [(CLOSE, INVALID)]


def test_s3_8_inline_xoauth2_line_of_128_bytes_accepted():
    enc = b64(_xo_payload_of_len(84))
    assert len(enc) == 112
    data = b"AUTH XOAUTH2 " + enc + b"=\r\n"
    assert len(data) == 128
    s = session(XOAUTH2)
    assert talk(s, data) == [(AUTH, b"")]
    assert s.login == b"bob"


def test_s3_8_inline_xoauth2_line_of_129_bytes_too_long():
    enc = b64(_xo_payload_of_len(84))
    data = b"AUTH XOAUTH2 " + enc + b"==\r\n"
    assert len(data) == 129
    s = session(XOAUTH2)
    assert talk(s, data) == [(CLOSE, INVALID)]


# --------------------------------------------------------------------------------------
# §4 CAPA
# --------------------------------------------------------------------------------------

DEFAULT_CAPA = CAPA_HEAD + b"TOP\r\nUSER\r\nUIDL\r\nSASL PLAIN LOGIN\r\n.\r\n"
DEFAULT_CAPA_STLS = CAPA_HEAD + b"TOP\r\nUSER\r\nUIDL\r\nSASL PLAIN LOGIN\r\nSTLS\r\n.\r\n"
DEFAULT_CAPA_ONLY = CAPA_HEAD + b"TOP\r\nUIDL\r\nSTLS\r\n.\r\n"


def test_s4_a_normal_capa_default():
    s = session()
    assert talk(s, b"CAPA\r\n") == [(CONT, DEFAULT_CAPA), (NEED, b"")]


def test_s4_mechanism_list_fixed_order_and_apop_never_listed():
    s = session("pop3_auth oauthbearer xoauth2 external cram-md5 apop plain;")
    assert talk(s, b"CAPA\r\n")[0] == (
        CONT, CAPA_HEAD + b"TOP\r\nUSER\r\nUIDL\r\n"
        b"SASL PLAIN LOGIN CRAM-MD5 EXTERNAL XOAUTH2 OAUTHBEARER\r\n.\r\n")


def test_s4_empty_mechanism_list_gives_bare_sasl_line_and_user_kept():
    s = session("pop3_auth apop;")
    assert talk(s, b"CAPA\r\n")[0] == (CONT, CAPA_HEAD + b"TOP\r\nUSER\r\nUIDL\r\nSASL\r\n.\r\n")


def test_s4_mechanisms_without_plain():
    s = session("pop3_auth cram-md5 external;")
    assert talk(s, b"CAPA\r\n")[0] == (
        CONT, CAPA_HEAD + b"TOP\r\nUSER\r\nUIDL\r\nSASL CRAM-MD5 EXTERNAL\r\n.\r\n")


def test_s4_b_starttls_on_plain_start_adds_stls_line():
    s = session(*STARTTLS_ON)
    assert talk(s, b"CAPA\r\n") == [(CONT, DEFAULT_CAPA_STLS), (NEED, b"")]


def test_s4_c_starttls_only_plain_start():
    s = session(*STARTTLS_ONLY)
    assert talk(s, b"CAPA\r\n") == [(CONT, DEFAULT_CAPA_ONLY), (NEED, b"")]


def test_s4_c_starttls_only_removes_user_case_insensitively_whole_string():
    s = session('pop3_capabilities TOP user "USER X" uidl;', *STARTTLS_ONLY)
    assert talk(s, b"CAPA\r\n")[0] == (CONT, CAPA_HEAD + b"TOP\r\nUSER X\r\nuidl\r\nSTLS\r\n.\r\n")
    s = session('pop3_capabilities TOP user "USER X" uidl;')
    assert talk(s, b"CAPA\r\n")[0] == (
        CONT, CAPA_HEAD + b"TOP\r\nuser\r\nUSER X\r\nuidl\r\nSASL PLAIN LOGIN\r\n.\r\n")


def test_s4_capabilities_verbatim_no_dedup():
    s = session('pop3_capabilities "SASL FOO" STLS TOP TOP;', *STARTTLS_ON)
    assert talk(s, b"CAPA\r\n")[0] == (
        CONT, CAPA_HEAD + b"SASL FOO\r\nSTLS\r\nTOP\r\nTOP\r\nSASL PLAIN LOGIN\r\nSTLS\r\n.\r\n")


def test_s4_capa_arguments_ignored():
    s = session()
    assert talk(s, b"CAPA foo bar baz\r\n") == [(CONT, DEFAULT_CAPA), (NEED, b"")]


@pytest.mark.parametrize("mode", [STARTTLS_ON, STARTTLS_ONLY, ("starttls off;",)])
def test_s4_a_on_tls_connection_normal_variant(mode):
    s = session(*mode, tls=True)
    assert talk(s, b"CAPA\r\n")[0] == (CONT, DEFAULT_CAPA)


@pytest.mark.parametrize("mode", [STARTTLS_ON, STARTTLS_ONLY])
def test_s4_a_after_stls_normal_variant(mode):
    s = session(*mode)
    assert talk(s, b"STLS\r\n") == [(STLS, OK)]
    s.tls_started()
    assert talk(s, b"CAPA\r\n") == [(CONT, DEFAULT_CAPA), (NEED, b"")]


def test_s4_a_and_q15_2_capa_in_user_state_never_shows_stls():
    s = session(*STARTTLS_ON)
    assert talk(s, b"USER bob\r\nCAPA\r\n") == [(CONT, OK), (CONT, DEFAULT_CAPA), (NEED, b"")]
    assert s.state == 1          # still USER
    assert talk(s, b"PASS pw\r\n") == [(AUTH, b"")]


def test_s4_capa_in_user_state_default_and_all_auth():
    s = session(ALL_AUTH)
    talk(s, b"USER bob\r\n")
    assert talk(s, b"CAPA x\r\n")[0] == (CONT, server(ALL_AUTH).pop3.capa)


# --------------------------------------------------------------------------------------
# §5 State machine — START
# --------------------------------------------------------------------------------------

def test_s5_start_user_accepted():
    s = session()
    assert talk(s, b"USER bob@example.com\r\n") == [(CONT, OK), (NEED, b"")]
    assert s.login == b"bob@example.com"
    assert s.state == 1


def test_s5_start_user_refused_under_starttls_only_plaintext():
    s = session("max_errors 1;", *STARTTLS_ONLY)
    assert talk(s, b"USER bob\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0 and s.state == 0 and s.login == b""


def test_s5_start_user_allowed_under_starttls_only_on_tls():
    s = session(*STARTTLS_ONLY, tls=True)
    assert talk(s, b"USER bob\r\nPASS pw\r\n") == [(CONT, OK), (AUTH, b"")]


def test_s5_start_pass_is_handler_level_invalid():
    s = session("max_errors 1;")
    assert talk(s, b"PASS secret\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0 and s.passwd == b"" and s.attempt == 0


def test_s5_start_apop_accepted():
    s = session(APOP)
    assert talk(s, b"APOP bob 0123456789abcdef0123456789abcdef\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method, s.attempt) == (
        b"bob", b"0123456789abcdef0123456789abcdef", "apop", 1)


@pytest.mark.parametrize("digest", [b"x", b"1" * 31, b"z" * 100, b"not-hex!"])
def test_s5_start_apop_digest_not_validated(digest):
    s = session(APOP)
    assert talk(s, b"APOP bob " + digest + b"\r\n") == [(AUTH, b"")]
    assert s.passwd == digest


@pytest.mark.parametrize("data", [b"APOP\r\n", b"APOP bob\r\n", b"APOP bob d x\r\n"])
def test_s5_start_apop_wrong_argument_count_handler_level(data):
    s = session("max_errors 1;", APOP)
    assert talk(s, data) == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0 and s.attempt == 0


def test_s5_start_apop_disabled_is_invalid():
    s = session("max_errors 1;")
    assert talk(s, b"APOP bob 0123456789abcdef0123456789abcdef\r\n") == [(CONT, INVALID),
                                                                          (NEED, b"")]
    assert s.errors == 0


def test_s5_start_apop_refused_under_starttls_only_plaintext():
    s = session(APOP, *STARTTLS_ONLY)
    assert talk(s, b"APOP bob d\r\n") == [(CONT, INVALID), (NEED, b"")]
    s = session(APOP, *STARTTLS_ONLY, tls=True)
    assert talk(s, b"APOP bob d\r\n") == [(AUTH, b"")]


def test_s5_start_bare_auth_lists_methods_and_stays_in_start():
    s = session()
    assert talk(s, b"AUTH\r\n") == [(CONT, b"+OK methods supported:\r\nPLAIN\r\nLOGIN\r\n.\r\n"),
                                    (NEED, b"")]
    assert s.state == 0
    assert talk(s, b"USER bob\r\n") == [(CONT, OK), (NEED, b"")]


def test_s5_start_noop():
    s = session()
    assert talk(s, b"NOOP\r\n") == [(CONT, OK), (NEED, b"")]
    assert talk(s, b"NOOP a b c\r\n") == [(CONT, OK), (NEED, b"")]


def test_s5_start_quit_closes_after_ok():
    s = session()
    assert talk(s, b"QUIT\r\nNOOP\r\n") == [(CLOSE, OK)]
    s = session()
    assert talk(s, b"QUIT now please\r\n") == [(CLOSE, OK)]


@pytest.mark.parametrize("mode", [STARTTLS_ON, STARTTLS_ONLY])
def test_s5_start_stls_accepted(mode):
    s = session(*mode)
    assert talk(s, b"STLS\r\n") == [(STLS, OK)]
    s = session(*mode)
    assert talk(s, b"STLS ignored args\r\n") == [(STLS, OK)]


def test_s5_start_stls_refused_when_starttls_off():
    s = session("max_errors 1;")
    assert talk(s, b"STLS\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0


@pytest.mark.parametrize("mode", [STARTTLS_ON, STARTTLS_ONLY, ("starttls off;",)])
def test_s5_start_stls_refused_on_tls_connection(mode):
    s = session(*mode, tls=True)
    assert talk(s, b"STLS\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0


def test_s5_start_stls_refused_after_stls():
    s = session(*STARTTLS_ON)
    talk(s, b"STLS\r\n")
    s.tls_started()
    assert talk(s, b"STLS\r\n") == [(CONT, INVALID), (NEED, b"")]


# --- USER state ----------------------------------------------------------------------

def test_s5_user_pass_authenticates_plain():
    s = session()
    assert talk(s, b"USER bob\r\nPASS secret\r\n") == [(CONT, OK), (AUTH, b"")]
    assert (s.login, s.passwd, s.method, s.attempt) == (b"bob", b"secret", "plain", 1)


@pytest.mark.parametrize("data", [b"PASS\r\n", b"PASS   \r\n"])
def test_s5_user_pass_without_argument_invalid_back_to_start(data):
    s = session("max_errors 1;")
    talk(s, b"USER bob\r\n")
    assert talk(s, data) == [(CONT, INVALID), (NEED, b"")]
    assert s.state == 0 and s.errors == 0
    # back in START: PASS is now invalid even with an argument
    assert talk(s, b"PASS pw\r\n") == [(CONT, INVALID), (NEED, b"")]


def test_s5_user_noop_stays_in_user():
    s = session()
    assert talk(s, b"USER bob\r\nNOOP\r\nNOOP x\r\nPASS pw\r\n") == [
        (CONT, OK), (CONT, OK), (CONT, OK), (AUTH, b"")]


def test_s5_user_quit_closes():
    s = session()
    assert talk(s, b"USER bob\r\nQUIT\r\n") == [(CONT, OK), (CLOSE, OK)]


@pytest.mark.parametrize("cmd", [b"USER other", b"AUTH", b"AUTH PLAIN", b"APOP bob d",
                                 b"STLS", b"USER"])
def test_s5_user_other_commands_invalid_and_reset_to_start(cmd):
    s = session("max_errors 1;", APOP, *STARTTLS_ON)
    talk(s, b"USER bob\r\n")
    assert talk(s, line(cmd)) == [(CONT, INVALID), (NEED, b"")]
    assert s.state == 0 and s.errors == 0 and s.attempt == 0
    assert talk(s, b"PASS pw\r\n") == [(CONT, INVALID), (NEED, b"")]


def test_s5_user_parse_level_invalid_resets_to_start():
    s = session()
    talk(s, b"USER bob\r\n")
    assert talk(s, b"STAT\r\nPASS pw\r\n") == [(CONT, INVALID), (CONT, INVALID), (NEED, b"")]
    assert s.errors == 1


def test_q15_3_second_user_rejected_and_resets():
    s = session()
    assert talk(s, b"USER a\r\nUSER b\r\nUSER c\r\nPASS p\r\n") == [
        (CONT, OK), (CONT, INVALID), (CONT, OK), (AUTH, b"")]
    assert (s.login, s.passwd) == (b"c", b"p")


# --- any invalid result --------------------------------------------------------------

def test_s5_invalid_abandons_sasl_exchange():
    s = session()
    start_login_exchange(s)
    assert talk(s, b"!!!\r\n") == [(CONT, INVALID), (NEED, b"")]
    # next line is a command again
    assert talk(s, b"NOOP\r\n") == [(CONT, OK), (NEED, b"")]
    assert s.errors == 0


def test_s5_invalid_reply_is_exact_for_every_kind():
    s = session(*STARTTLS_ONLY)
    out = talk(s, b"FOO\r\nUSER x\r\nAUTH\r\nPASS x\r\n\r\n")
    assert out == [(CONT, b"-ERR invalid command\r\n")] * 5 + [(NEED, b"")]
    assert s.errors == 2          # FOO and the empty line are parse-level


# --- starttls only -------------------------------------------------------------------

@pytest.mark.parametrize("cmd", [b"USER bob", b"APOP bob d", b"AUTH", b"AUTH PLAIN",
                                 b"AUTH LOGIN", b"AUTH PLAIN " + b64(b"\0bob\0pw"),
                                 b"AUTH CRAM-MD5", b"AUTH EXTERNAL", b"AUTH XOAUTH2",
                                 b"AUTH OAUTHBEARER"])
def test_s5_starttls_only_refuses_auth_commands_on_plaintext(cmd):
    s = session("max_errors 1;", ALL_AUTH, *STARTTLS_ONLY)
    assert talk(s, line(cmd)) == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0 and s.state == 0 and s.attempt == 0


def test_s5_starttls_only_allows_capa_noop_quit_stls():
    s = session(*STARTTLS_ONLY)
    assert talk(s, b"CAPA\r\nNOOP\r\n") == [(CONT, DEFAULT_CAPA_ONLY), (CONT, OK), (NEED, b"")]
    assert talk(s, b"STLS\r\n") == [(STLS, OK)]
    s = session(*STARTTLS_ONLY)
    assert talk(s, b"QUIT\r\n") == [(CLOSE, OK)]


def test_s5_starttls_only_everything_allowed_after_stls():
    s = session(ALL_AUTH, *STARTTLS_ONLY, salt=SALT)
    talk(s, b"STLS\r\n")
    s.tls_started()
    assert talk(s, b"AUTH\r\n")[0] == (CONT, server(ALL_AUTH, *STARTTLS_ONLY).pop3.auth_list)
    assert talk(s, b"AUTH CRAM-MD5\r\n") == [(CONT, b"+ " + SALT_B64 + b"\r\n"), (NEED, b"")]
    assert talk(s, b"*\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert talk(s, b"USER bob\r\nPASS pw\r\n") == [(CONT, OK), (AUTH, b"")]


# --------------------------------------------------------------------------------------
# ssl-realip-proxy.md §1 — STLS table
# --------------------------------------------------------------------------------------

def test_stls_table_off_capa_normal_stls_refused_user_allowed():
    s = session("max_errors 1;", "starttls off;")
    assert talk(s, b"CAPA\r\n")[0] == (CONT, DEFAULT_CAPA)
    assert talk(s, b"STLS\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0
    assert talk(s, b"USER bob\r\nPASS pw\r\n") == [(CONT, OK), (AUTH, b"")]


def test_stls_table_on_capa_with_stls_stls_ok_user_allowed():
    s = session(APOP, *STARTTLS_ON)
    cap = server(APOP, *STARTTLS_ON).pop3
    assert talk(s, b"CAPA\r\n")[0] == (CONT, cap.capa_starttls)
    assert cap.capa_starttls.endswith(b"SASL PLAIN LOGIN\r\nSTLS\r\n.\r\n")
    assert talk(s, b"USER bob\r\nPASS pw\r\n") == [(CONT, OK), (AUTH, b"")]
    s = session(APOP, *STARTTLS_ON)
    assert talk(s, b"APOP bob d\r\n") == [(AUTH, b"")]
    s = session(APOP, *STARTTLS_ON)
    assert talk(s, b"AUTH PLAIN " + b64(b"\0bob\0pw") + b"\r\n") == [(AUTH, b"")]
    s = session(APOP, *STARTTLS_ON)
    assert talk(s, b"STLS\r\n") == [(STLS, OK)]


def test_stls_table_only_capa_stls_ok_auth_refused():
    s = session(*STARTTLS_ONLY)
    assert talk(s, b"CAPA\r\n")[0] == (CONT, DEFAULT_CAPA_ONLY)
    assert talk(s, b"USER bob\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert talk(s, b"STLS\r\n") == [(STLS, OK)]


def test_stls_table_stls_in_user_state_invalid_and_resets():
    s = session("max_errors 1;", *STARTTLS_ON)
    assert talk(s, b"USER bob\r\nSTLS\r\n") == [(CONT, OK), (CONT, INVALID), (NEED, b"")]
    assert s.state == 0 and s.errors == 0


def test_stls_table_after_handshake_start_same_salt_counters_kept():
    s = session(APOP, *STARTTLS_ON)
    salt = s.salt
    assert talk(s, b"FOO\r\nNOOP\r\nSTLS\r\n") == [(CONT, INVALID), (CONT, OK), (STLS, OK)]
    assert (s.errors, s.commands) == (1, 2)
    s.tls_started()
    assert s.state == 0 and s.salt == salt and s.tls is True
    assert (s.errors, s.commands) == (1, 2)
    assert talk(s, b"BAR\r\nNOOP\r\n") == [(CONT, INVALID), (CONT, OK), (NEED, b"")]
    assert (s.errors, s.commands) == (2, 3)


def test_stls_table_bytes_buffered_after_stls_are_discarded():
    s = session(*STARTTLS_ON)
    assert talk(s, b"STLS\r\nUSER evil\r\nPASS injected\r\n") == [(STLS, OK)]
    s.tls_started()
    assert s.step() == (NEED, b"")
    assert s.leftover() == b""
    assert s.login == b""
    assert talk(s, b"NOOP\r\n") == [(CONT, OK), (NEED, b"")]


# --------------------------------------------------------------------------------------
# §6 AUTH
# --------------------------------------------------------------------------------------

def test_s6_0_bare_auth_listing_example():
    s = session("pop3_auth plain apop cram-md5 external;")
    assert talk(s, b"AUTH\r\n")[0] == (
        CONT, b"+OK methods supported:\r\nPLAIN\r\nLOGIN\r\nCRAM-MD5\r\nEXTERNAL\r\n.\r\n")


def test_s6_0_bare_auth_listing_apop_only_is_empty():
    s = session("pop3_auth apop;")
    assert talk(s, b"AUTH\r\n")[0] == (CONT, b"+OK methods supported:\r\n.\r\n")


def test_s6_0_bare_auth_listing_all_in_fixed_order():
    s = session("pop3_auth oauthbearer xoauth2 external cram-md5 plain;")
    assert talk(s, b"AUTH\r\n")[0] == (
        CONT, b"+OK methods supported:\r\nPLAIN\r\nLOGIN\r\nCRAM-MD5\r\nEXTERNAL\r\n"
              b"XOAUTH2\r\nOAUTHBEARER\r\n.\r\n")


def test_s6_0_bare_auth_unaffected_by_starttls_on():
    s = session(*STARTTLS_ON)
    assert talk(s, b"AUTH\r\n")[0] == (CONT, b"+OK methods supported:\r\nPLAIN\r\nLOGIN\r\n.\r\n")


@pytest.mark.parametrize("mech,reply", [
    (b"login", USERNAME), (b"Login", USERNAME), (b"plain", NEXT), (b"pLaIn", NEXT),
    (b"cram-md5", b"+ " + SALT_B64 + b"\r\n"), (b"Cram-Md5", b"+ " + SALT_B64 + b"\r\n"),
    (b"external", USERNAME), (b"xoauth2", NEXT), (b"XOAuth2", NEXT),
    (b"oauthbearer", NEXT), (b"OAuthBearer", NEXT)])
def test_s6_mechanism_names_case_insensitive(mech, reply):
    s = session(ALL_AUTH, salt=SALT)
    assert talk(s, b"AUTH " + mech + b"\r\n") == [(CONT, reply), (NEED, b"")]


@pytest.mark.parametrize("mech", [b"FOO", b"APOP", b"DIGEST-MD5", b"GSSAPI", b"LOGINX",
                                  b"PLAI", b"CRAM-MD", b"XOAUTH", b"OAUTH", b"*"])
def test_s6_unknown_mechanism_invalid_handler_level(mech):
    s = session("max_errors 1;", ALL_AUTH)
    assert talk(s, b"AUTH " + mech + b"\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0 and s.state == 0


@pytest.mark.parametrize("cmd", [b"AUTH LOGIN a b", b"AUTH PLAIN a b",
                                 b"AUTH CRAM-MD5 " + b64(b"bob " + b"0" * 32),
                                 b"AUTH CRAM-MD5 a b", b"AUTH EXTERNAL a b",
                                 b"AUTH XOAUTH2 a b", b"AUTH OAUTHBEARER a b"])
def test_s6_argument_count_rules(cmd):
    s = session("max_errors 1;", ALL_AUTH)
    assert talk(s, line(cmd)) == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0 and s.state == 0 and s.attempt == 0


@pytest.mark.parametrize("auth", ["pop3_auth apop;", "pop3_auth cram-md5;",
                                  "pop3_auth external;"])
def test_s6_and_q15_6_plain_and_login_always_accepted(auth):
    s = session(auth)
    assert talk(s, b"AUTH PLAIN " + b64(b"\0bob\0pw") + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method) == (b"bob", b"pw", "plain")
    s = session(auth)
    assert talk(s, b"AUTH PLAIN\r\n") == [(CONT, NEXT), (NEED, b"")]
    s = session(auth)
    assert talk(s, b"AUTH LOGIN\r\n" + b64(b"bob") + b"\r\n" + b64(b"pw") + b"\r\n") == [
        (CONT, USERNAME), (CONT, PASSWORD), (AUTH, b"")]
    s = session(auth)
    assert talk(s, b"AUTH LOGIN " + b64(b"bob") + b"\r\n") == [(CONT, PASSWORD), (NEED, b"")]


@pytest.mark.parametrize("cmd", [b"AUTH CRAM-MD5", b"AUTH EXTERNAL",
                                 b"AUTH EXTERNAL " + b64(b"bob"), b"AUTH XOAUTH2",
                                 b"AUTH XOAUTH2 " + b64(xo()), b"AUTH OAUTHBEARER",
                                 b"AUTH OAUTHBEARER " + b64(ob())])
def test_s6_disabled_mechanisms_invalid_incl_initial_response(cmd):
    s = session("max_errors 1;", "pop3_auth plain apop;")
    assert talk(s, line(cmd)) == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0 and s.attempt == 0


def test_s6_auth_arguments_separated_by_space_runs():
    s = session()
    assert talk(s, b"AUTH    PLAIN     " + b64(b"\0bob\0pw") + b"   \r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (b"bob", b"pw")


# --- base64 rules (through the machine) ------------------------------------------------

@pytest.mark.parametrize("enc,login", [
    (b"Ym9i", b"bob"), (b"Ym9iYQ", b"boba"), (b"Ym9iYQ==", b"boba"), (b"Ym9iYQ=", b"boba"),
    (b"Ym9iYQ=garbage!*", b"boba"), (b"Ym9iYQ==Ym9i", b"boba"), (b"", b""), (b"=", b""),
    (b"==", b""), (b"YQ", b"a"), (b"YWI", b"ab"), (b"YR", b"a"), (b"YWJ", b"ab")])
def test_s6_base64_leniency(enc, login):
    s = session()
    start_login_exchange(s)
    assert talk(s, enc + b"\r\n") == [(CONT, PASSWORD), (NEED, b"")]
    assert s.login == login


@pytest.mark.parametrize("enc", [b"Y", b"Ym9iY", b"Ym9iY=", b"Ym9iY==", b"Ym9iYQ!",
                                 b"Ym9i*", b"Ym-i", b"Ym_i", b"Ym9i\x00", b"Ym9\xff",
                                 b"Ym9i.", b"Ym9i\t"])
def test_s6_base64_failures_are_handler_level(enc):
    s = session("max_errors 1;")
    start_login_exchange(s)
    assert talk(s, enc + b"\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0 and s.state == 0
    assert s.log.records == [("info", "client sent invalid base64 encoding in AUTH LOGIN command")]


# --- 6.1 LOGIN -------------------------------------------------------------------------

def test_s6_1_login_full_exchange():
    s = session()
    assert talk(s, b"AUTH LOGIN\r\n") == [(CONT, b"+ VXNlcm5hbWU6\r\n"), (NEED, b"")]
    assert s.state == 2
    assert talk(s, b64(b"bob@example.com") + b"\r\n") == [(CONT, b"+ UGFzc3dvcmQ6\r\n"),
                                                         (NEED, b"")]
    assert s.state == 3
    assert talk(s, b64(b"s3cret pw") + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method, s.attempt) == (b"bob@example.com", b"s3cret pw",
                                                        "plain", 1)


def test_s6_1_login_empty_username_allowed():
    s = session()
    start_login_exchange(s)
    assert talk(s, b"=\r\n") == [(CONT, PASSWORD), (NEED, b"")]
    assert s.login == b""


def test_s6_1_login_bad_username_base64_invalid():
    s = session()
    start_login_exchange(s)
    assert talk(s, b"@@@@\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.state == 0


def test_s6_1_login_bad_password_base64_invalid():
    s = session()
    start_login_exchange(s)
    talk(s, b64(b"bob") + b"\r\n")
    assert talk(s, b"Y\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.state == 0 and s.attempt == 0
    assert s.log.messages() == ["client sent invalid base64 encoding in AUTH LOGIN command"]


def test_s6_1_login_initial_response():
    s = session()
    assert talk(s, b"AUTH LOGIN " + b64(b"bob") + b"\r\n") == [(CONT, PASSWORD), (NEED, b"")]
    assert s.login == b"bob" and s.state == 3
    assert talk(s, b64(b"pw") + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method) == (b"bob", b"pw", "plain")


def test_s6_1_login_initial_response_bad_base64():
    s = session("max_errors 1;")
    assert talk(s, b"AUTH LOGIN Y\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.state == 0 and s.errors == 0


def test_s6_1_login_initial_response_equals_gives_empty_username():
    s = session()
    assert talk(s, b"AUTH LOGIN =\r\n") == [(CONT, PASSWORD), (NEED, b"")]
    assert s.login == b""


# --- 6.2 PLAIN -------------------------------------------------------------------------

def test_s6_2_plain_without_initial_response():
    s = session()
    assert talk(s, b"AUTH PLAIN\r\n") == [(CONT, b"+ \r\n"), (NEED, b"")]
    assert talk(s, b64(b"admin\0bob\0pw") + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method) == (b"bob", b"pw", "plain")


def test_s6_2_plain_with_initial_response():
    s = session()
    assert talk(s, b"AUTH PLAIN " + b64(b"\0bob\0pw") + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method, s.attempt) == (b"bob", b"pw", "plain", 1)


@pytest.mark.parametrize("payload,login,passwd", [
    (b"authz\0bob\0pw", b"bob", b"pw"),
    (b"\0\0", b"", b""),
    (b"\0bob\0", b"bob", b""),
    (b"\0\0pw", b"", b"pw"),
    (b"\0bob\0p\0w\0", b"bob", b"p\0w\0"),
    (b"a\xffz\0b\xfe\0\xff", b"b\xfe", b"\xff"),
])
def test_s6_2_plain_payload_split(payload, login, passwd):
    s = session()
    assert talk(s, b"AUTH PLAIN " + b64(payload) + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (login, passwd)


@pytest.mark.parametrize("payload,msg", [
    (b"", "client sent invalid login in AUTH PLAIN command"),
    (b"bobpw", "client sent invalid login in AUTH PLAIN command"),
    (b"authz\0", "client sent invalid login in AUTH PLAIN command"),
    (b"\0", "client sent invalid login in AUTH PLAIN command"),
    (b"\0bob", "client sent invalid password in AUTH PLAIN command"),
    (b"authz\0bob", "client sent invalid password in AUTH PLAIN command"),
])
def test_s6_2_plain_invalid_payloads(payload, msg):
    for data in (b"AUTH PLAIN " + b64(payload) + b"=\r\n",
                 b"AUTH PLAIN\r\n" + b64(payload) + b"=\r\n"):
        s = session("max_errors 1;")
        out = talk(s, data)
        assert out[-2:] == [(CONT, INVALID), (NEED, b"")]
        assert s.errors == 0 and s.state == 0 and s.attempt == 0
        assert s.log.messages() == [msg]


def test_s6_2_plain_bad_base64():
    s = session()
    assert talk(s, b"AUTH PLAIN !!!!\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.log.messages() == ["client sent invalid base64 encoding in AUTH PLAIN command"]


# --- 6.3 CRAM-MD5 ----------------------------------------------------------------------

def test_s6_3_cram_md5_challenge_exact():
    s = session(CRAM, salt=SALT)
    assert talk(s, b"AUTH CRAM-MD5\r\n") == [
        (CONT, b"+ PDE4MDQyODkzODMuMTcwMDAwMDAwMEBtYWlsLmV4YW1wbGUuY29tPg==\r\n"), (NEED, b"")]
    assert s.state == 5


def test_s6_3_cram_md5_response():
    s = session(CRAM, salt=SALT)
    talk(s, b"AUTH CRAM-MD5\r\n")
    digest = b"b913a602c7eda7a495b4e6e7334d3890"
    assert talk(s, b64(b"bob " + digest) + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method, s.attempt) == (b"bob", digest, "cram-md5", 1)


@pytest.mark.parametrize("resp,login,digest", [
    (b"bob " + b"Z" * 32, b"bob", b"Z" * 32),               # not checked for hex
    (b" " + b"0" * 32, b"", b"0" * 32),                     # empty login
    (b"bob " + b"a b " * 8, b"bob", b"a b " * 8),           # split at the FIRST space
    (b"bob  " + b"0" * 31, b"bob", b" " + b"0" * 31),
])
def test_s6_3_cram_md5_split_at_first_space_digest_32_bytes(resp, login, digest):
    s = session(CRAM)
    talk(s, b"AUTH CRAM-MD5\r\n")
    assert talk(s, b64(resp) + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (login, digest)


@pytest.mark.parametrize("resp", [b"bob " + b"0" * 31, b"bob " + b"0" * 33, b"bob",
                                  b"bob" + b"0" * 32, b"", b"bob "])
def test_s6_3_cram_md5_invalid_digest(resp):
    s = session("max_errors 1;", CRAM)
    talk(s, b"AUTH CRAM-MD5\r\n")
    assert talk(s, b64(resp) + b"\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 0 and s.state == 0 and s.attempt == 0
    assert s.log.messages() == ["client sent invalid CRAM-MD5 hash in AUTH CRAM-MD5 command"]


def test_s6_3_cram_md5_bad_base64():
    s = session(CRAM)
    talk(s, b"AUTH CRAM-MD5\r\n")
    assert talk(s, b"*\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.log.messages() == ["client sent invalid base64 encoding in AUTH CRAM-MD5 command"]


# --- 6.4 EXTERNAL ----------------------------------------------------------------------

def test_s6_4_external_exchange():
    s = session(EXTERNAL)
    assert talk(s, b"AUTH EXTERNAL\r\n") == [(CONT, b"+ VXNlcm5hbWU6\r\n"), (NEED, b"")]
    assert s.state == 6
    assert talk(s, b64(b"bob") + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method) == (b"bob", b"", "external")


def test_s6_4_external_initial_response():
    s = session(EXTERNAL)
    assert talk(s, b"AUTH EXTERNAL " + b64(b"bob@example.com") + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method) == (b"bob@example.com", b"", "external")


def test_s6_4_external_password_absent_even_after_earlier_password():
    s = session(EXTERNAL)
    talk(s, b"USER a\r\nPASS oldpw\r\n")
    s.auth_failed(b"no", wait=True)
    assert talk(s, b"AUTH EXTERNAL " + b64(b"bob") + b"\r\n") == [(AUTH, b"")]
    assert s.passwd == b""


def test_s6_4_external_bad_base64():
    s = session(EXTERNAL)
    assert talk(s, b"AUTH EXTERNAL Y\r\n") == [(CONT, INVALID), (NEED, b"")]
    s = session(EXTERNAL)
    talk(s, b"AUTH EXTERNAL\r\n")
    assert talk(s, b"Y\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.log.messages() == ["client sent invalid base64 encoding in AUTH EXTERNAL command"]


# --- 6.5 XOAUTH2 -----------------------------------------------------------------------

def test_s6_5_xoauth2_exchange():
    s = session(XOAUTH2)
    assert talk(s, b"AUTH XOAUTH2\r\n") == [(CONT, b"+ \r\n"), (NEED, b"")]
    assert s.state == 7
    assert talk(s, b64(xo()) + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method) == (b"bob@example.com", b"tok123", "xoauth2")


def test_s6_5_xoauth2_initial_response():
    s = session(XOAUTH2)
    assert talk(s, b"AUTH XOAUTH2 " + b64(xo()) + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method) == (b"bob@example.com", b"tok123", "xoauth2")


@pytest.mark.parametrize("payload,login,token", [
    (b"USER=bob\x01AUTH=BEARER tok\x01\x01", b"bob", b"tok"),
    (b"User=bob\x01Auth=bearer tok\x01\x01", b"bob", b"tok"),
    (b"user=bob\x01auth=Bearer a.b-c_d\x01\x01", b"bob", b"a.b-c_d"),
])
def test_s6_5_xoauth2_prefixes_case_insensitive(payload, login, token):
    s = session(XOAUTH2)
    assert talk(s, b"AUTH XOAUTH2 " + b64(payload) + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (login, token)


@pytest.mark.parametrize("payload", [
    b"usr=bob\x01auth=Bearer tok\x01\x01",          # no user=
    b"bob\x01auth=Bearer tok\x01\x01",
    b"user=bob auth=Bearer tok",                    # no \x01 at all
    b"user=bob",
    b"user=bob\x01auth=Basic tok\x01\x01",          # not Bearer
    b"user=bob\x01auth=Bearertok\x01\x01",          # no space
    b"user=bob\x01auth=Bearer\ttok\x01\x01",        # TAB instead of space
    b"user=bob\x01Bearer tok\x01\x01",
    b"user=bob\x01auth=Bearer tok\x01",             # single \x01 at the end
    b"user=bob\x01auth=Bearer tok",                 # no end marker
    b"user=bob\x01auth=Bearer tok\x01\x01x",        # not ending with \x01\x01
    b"user=bob\x01\x01auth=Bearer tok\x01\x01",     # second part starts with \x01
    b"",
])
def test_s6_5_xoauth2_payload_violations_invalid(payload):
    s = session("max_errors 1;", XOAUTH2)
    # "=" so that an empty payload is still sent as an initial response
    assert talk(s, b"AUTH XOAUTH2 " + b64(payload) + b"=\r\n") == [(CONT, INVALID),
                                                                   (NEED, b"")]
    assert s.errors == 0 and s.state == 0 and s.attempt == 0
    s = session(XOAUTH2)
    talk(s, b"AUTH XOAUTH2\r\n")
    assert talk(s, b64(payload) + b"\r\n") == [(CONT, INVALID), (NEED, b"")]
    (msg,) = s.log.messages()
    assert msg in ("client sent invalid login in AUTH XOAUTH2 command",
                   "client sent invalid token in AUTH XOAUTH2 command",
                   "client sent invalid base64 encoding in AUTH XOAUTH2 command")


def test_s6_5_xoauth2_log_messages():
    s = session(XOAUTH2)
    talk(s, b"AUTH XOAUTH2 " + b64(b"usr=bob\x01auth=Bearer tok\x01\x01") + b"\r\n")
    talk(s, b"AUTH XOAUTH2 " + b64(b"user=bob\x01auth=Basic tok\x01\x01") + b"\r\n")
    talk(s, b"AUTH XOAUTH2 *\r\n")
    assert s.log.messages() == ["client sent invalid login in AUTH XOAUTH2 command",
                                "client sent invalid token in AUTH XOAUTH2 command",
                                "client sent invalid base64 encoding in AUTH XOAUTH2 command"]


def test_s6_5_xoauth2_token_between_prefix_and_final_01_01():
    s = session(XOAUTH2)
    payload = b"user=bob\x01auth=Bearer a\x01b\x01\x01"
    assert talk(s, b"AUTH XOAUTH2 " + b64(payload) + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (b"bob", b"a\x01b")


# --- 6.6 OAUTHBEARER -------------------------------------------------------------------

def test_s6_6_oauthbearer_exchange():
    s = session(OAUTHBEARER)
    assert talk(s, b"AUTH OAUTHBEARER\r\n") == [(CONT, b"+ \r\n"), (NEED, b"")]
    assert s.state == 8
    assert talk(s, b64(ob()) + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method) == (b"bob@example.com", b"tok123", "oauthbearer")


def test_s6_6_oauthbearer_initial_response():
    s = session(OAUTHBEARER)
    payload = b"n,a=bob,\x01auth=Bearer xyz\x01\x01"
    assert talk(s, b"AUTH OAUTHBEARER " + b64(payload) + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd, s.method) == (b"bob", b"xyz", "oauthbearer")


@pytest.mark.parametrize("payload,login,token", [
    (b"n,a=us=2Cer,\x01auth=Bearer t\x01\x01", b"us,er", b"t"),
    (b"n,a=us=3Der,\x01auth=Bearer t\x01\x01", b"us=er", b"t"),
    (b"n,a=us=2cer=3d,\x01auth=Bearer t\x01\x01", b"us,er=", b"t"),      # hex case-insens.
    (b"n,A=bob,\x01AUTH=BEARER t\x01\x01", b"bob", b"t"),                 # case-insensitive
    (b"y,a=bob,\x01auth=Bearer t\x01\x01", b"bob", b"t"),
    (b"n,x=1,a=bob,\x01auth=Bearer t\x01\x01", b"bob", b"t"),             # later field
    (b"n,a=bob,\x01host=h\x01port=1\x01auth=Bearer tok\x01\x01", b"bob", b"tok"),
    (b"n,a=bob,\x01auth=Bearer t1\x01auth=Bearer t2\x01\x01", b"bob", b"t1"),  # first wins
    (b"n,a=bob,\x01auth=Bearer t\x01", b"bob", b"t"),                     # terminated by \x01
])
def test_s6_6_oauthbearer_payload_rules(payload, login, token):
    s = session(OAUTHBEARER)
    assert talk(s, b"AUTH OAUTHBEARER " + b64(payload) + b"\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (login, token)


@pytest.mark.parametrize("payload,what", [
    (b"n,a=us=41er,\x01auth=Bearer t\x01\x01", "login"),    # other = sequence
    (b"n,a=user=,\x01auth=Bearer t\x01\x01", "login"),
    (b"n,a=user=2,\x01auth=Bearer t\x01\x01", "login"),
    (b"n,a=,\x01auth=Bearer t\x01\x01", "login"),           # empty login
    (b"n,,\x01auth=Bearer t\x01\x01", "login"),             # no a=
    (b"n,a=bob\x01auth=Bearer t\x01\x01", "login"),         # a= not terminated by comma
    (b"a=bob,\x01auth=Bearer t\x01\x01", "login"),          # first field is skipped
    (b"n,\x01a=bob,auth=Bearer t\x01\x01", "login"),        # scanning stops at \x01
    (b"", "login"),
    (b"n,a=bob,\x01auth=Bearer \x01\x01", "token"),         # empty token
    (b"n,a=bob,\x01auth=Bearer t", "token"),                # not terminated by \x01
    (b"n,a=bob,\x01auth=Basic t\x01\x01", "token"),
    (b"n,a=bob,\x01auth=Bearert\x01\x01", "token"),
    (b"n,a=bob,\x01host=h\x01\x01", "token"),
    (b"n,a=bob,", "token"),
])
def test_s6_6_oauthbearer_invalid(payload, what):
    s = session("max_errors 1;", OAUTHBEARER)
    assert talk(s, b"AUTH OAUTHBEARER " + b64(payload) + b"=\r\n") == [(CONT, INVALID),
                                                                       (NEED, b"")]
    assert s.errors == 0 and s.state == 0 and s.attempt == 0
    assert s.log.messages() == ["client sent invalid %s in AUTH OAUTHBEARER command" % what]


def test_s6_6_oauthbearer_bad_base64():
    s = session(OAUTHBEARER)
    talk(s, b"AUTH OAUTHBEARER\r\n")
    assert talk(s, b"#\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.log.messages() == [
        "client sent invalid base64 encoding in AUTH OAUTHBEARER command"]


# --- 6.7 Auth-Error-SASL -----------------------------------------------------------------

def _oauth_failed(mech, wait):
    s = session(ALL_AUTH)
    payload = xo() if mech == b"XOAUTH2" else ob()
    assert talk(s, b"AUTH " + mech + b" " + b64(payload) + b"\r\n") == [(AUTH, b"")]
    assert s.auth_failed(b"Invalid token", wait, sasl_challenge=b"eyJzdGF0dXMiOiI0MDAifQ==") \
        == (CONT, b"+ eyJzdGF0dXMiOiI0MDAifQ==\r\n")
    return s


def test_s6_7_xoauth2_empty_line_gets_auth_status_with_wait():
    s = _oauth_failed(b"XOAUTH2", wait=True)
    assert talk(s, b"\r\n") == [(CONT, b"-ERR Invalid token\r\n"), (NEED, b"")]
    assert s.state == 0
    assert talk(s, b"NOOP\r\n") == [(CONT, OK), (NEED, b"")]


def test_s6_7_xoauth2_empty_line_gets_auth_status_then_close_without_wait():
    s = _oauth_failed(b"XOAUTH2", wait=False)
    assert talk(s, b"\r\n") == [(CLOSE, b"-ERR Invalid token\r\n")]


def test_s6_7_oauthbearer_aq_line_gets_auth_status():
    s = _oauth_failed(b"OAUTHBEARER", wait=True)
    assert talk(s, b"AQ==\r\n") == [(CONT, b"-ERR Invalid token\r\n"), (NEED, b"")]
    assert s.state == 0
    s = _oauth_failed(b"OAUTHBEARER", wait=True)
    assert talk(s, b"AQ==xyz extra\r\n") == [(CONT, b"-ERR Invalid token\r\n"), (NEED, b"")]
    s = _oauth_failed(b"OAUTHBEARER", wait=False)
    assert talk(s, b"AQ==\r\n") == [(CLOSE, b"-ERR Invalid token\r\n")]


@pytest.mark.parametrize("mech,other", [(b"XOAUTH2", b"AQ=="), (b"XOAUTH2", b"x"),
                                        (b"XOAUTH2", b"QUIT"), (b"OAUTHBEARER", b""),
                                        (b"OAUTHBEARER", b"AQ="), (b"OAUTHBEARER", b"aq=="),
                                        (b"OAUTHBEARER", b"NOOP")])
def test_s6_7_any_other_line_invalid_start_with_wait(mech, other):
    s = _oauth_failed(mech, wait=True)
    assert talk(s, other + b"\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.state == 0
    assert talk(s, b"NOOP\r\n") == [(CONT, OK), (NEED, b"")]


@pytest.mark.parametrize("mech,other", [(b"XOAUTH2", b"AQ=="), (b"OAUTHBEARER", b"")])
def test_s6_7_any_other_line_invalid_then_close_without_wait(mech, other):
    s = _oauth_failed(mech, wait=False)
    assert talk(s, other + b"\r\n") == [(CLOSE, INVALID)]


@pytest.mark.parametrize("mech", [b"XOAUTH2", b"OAUTHBEARER"])
@pytest.mark.parametrize("bad", [b"a b c d", b"AQ==\rx"])
def test_s6_7_parse_invalid_line_after_sasl_challenge_closes_without_wait(mech, bad):
    s = _oauth_failed(mech, wait=False)
    assert talk(s, bad + b"\r\n") == [(CLOSE, INVALID)]


def test_s6_7_parse_invalid_line_after_sasl_challenge_with_wait_goes_to_start():
    s = _oauth_failed(b"XOAUTH2", wait=True)
    assert talk(s, b"a b c d\r\nNOOP\r\n") == [(CONT, INVALID), (CONT, OK), (NEED, b"")]
    assert s.errors == 1


def test_s6_7_challenge_ignored_for_non_oauth_methods():
    s = session(ALL_AUTH)
    talk(s, b"USER bob\r\nPASS pw\r\n")
    assert s.auth_failed(b"Bad", wait=True, sasl_challenge=b"e30=") == (CONT, b"-ERR Bad\r\n")
    assert s.state == 0
    s = session(ALL_AUTH)
    talk(s, b"AUTH PLAIN " + b64(b"\0bob\0pw") + b"\r\n")
    assert s.auth_failed(b"Bad", wait=False, sasl_challenge=b"e30=") == (CLOSE, b"-ERR Bad\r\n")


def test_s6_7_buffered_line_after_oauth_command_is_the_answer_to_the_challenge():
    s = session(XOAUTH2)
    assert talk(s, b"AUTH XOAUTH2 " + b64(xo()) + b"\r\n\r\nNOOP\r\n") == [(AUTH, b"")]
    assert s.auth_failed(b"no", True, sasl_challenge=b"e30=") == (CONT, b"+ e30=\r\n")
    assert talk(s) == [(CONT, b"-ERR no\r\n"), (CONT, OK), (NEED, b"")]


# --------------------------------------------------------------------------------------
# §7 max_errors / max_commands
# --------------------------------------------------------------------------------------

def test_s7_max_errors_2_second_invalid_line_closes():
    s = session("max_errors 2;")
    assert talk(s, b"FOO\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert talk(s, b"BAR\r\nNOOP\r\n") == [(CLOSE, INVALID)]
    assert s.errors == 2
    assert s.log.messages() == ["client sent too many invalid commands"]


def test_s7_max_errors_default_5():
    s = session()
    assert talk(s, b"A\r\n" * 6) == [(CONT, INVALID)] * 4 + [(CLOSE, INVALID)]


def test_s7_max_errors_0_first_invalid_line_closes():
    s = session("max_errors 0;")
    assert talk(s, b"NOOP\r\n") == [(CONT, OK), (NEED, b"")]
    assert talk(s, b"FOO\r\n") == [(CLOSE, INVALID)]


def test_s7_max_errors_1():
    s = session("max_errors 1;")
    assert talk(s, b"\r\n") == [(CLOSE, INVALID)]


def test_s7_and_q15_4_handler_level_errors_do_not_count():
    s = session("max_errors 1;", "pop3_auth plain;")
    data = (b"PASS x\r\nAUTH FOO\r\nSTLS\r\nAPOP a b\r\nUSER\r\nAUTH CRAM-MD5\r\n"
            b"AUTH PLAIN *\r\nAUTH LOGIN\r\n*\r\nUSER a\r\nUSER b\r\n"
            b"AUTH PLAIN " + b64(b"nonul") + b"\r\nNOOP\r\n")
    out = talk(s, data)
    assert out == [(CONT, INVALID)] * 7 + [(CONT, USERNAME), (CONT, INVALID), (CONT, OK),
                                           (CONT, INVALID), (CONT, INVALID), (CONT, OK),
                                           (NEED, b"")]
    assert s.errors == 0


def test_s7_parse_level_sasl_continuation_counts_as_error():
    s = session("max_errors 1;")
    start_login_exchange(s)
    assert talk(s, b"a b c d\r\n") == [(CLOSE, INVALID)]


def test_s7_errors_not_reset_by_failed_auth():
    s = session("max_errors 2;")
    assert talk(s, b"FOO\r\nUSER a\r\nPASS b\r\n") == [(CONT, INVALID), (CONT, OK), (AUTH, b"")]
    assert s.auth_failed(b"no", wait=True) == (CONT, b"-ERR no\r\n")
    assert talk(s, b"BAR\r\n") == [(CLOSE, INVALID)]


def test_s7_errors_not_reset_by_stls():
    s = session("max_errors 2;", *STARTTLS_ON)
    assert talk(s, b"FOO\r\nSTLS\r\n") == [(CONT, INVALID), (STLS, OK)]
    s.tls_started()
    assert talk(s, b"BAR\r\n") == [(CLOSE, INVALID)]


def test_s7_max_commands_1():
    s = session("max_commands 1;")
    assert talk(s, b"NOOP\r\n") == [(CONT, OK), (NEED, b"")]
    assert talk(s, b"NOOP\r\n") == [(CLOSE, INVALID)]
    assert s.log.messages() == ["client sent too many commands"]


def test_s7_max_commands_0():
    s = session("max_commands 0;")
    assert talk(s, b"NOOP\r\n") == [(CLOSE, INVALID)]


def test_s7_max_commands_over_limit_line_not_executed():
    s = session("max_commands 1;")
    assert talk(s, b"USER a\r\nPASS b\r\n") == [(CONT, OK), (CLOSE, INVALID)]
    assert s.passwd == b"" and s.attempt == 0
    s = session("max_commands 1;")
    assert talk(s, b"NOOP\r\nQUIT\r\n") == [(CONT, OK), (CLOSE, INVALID)]
    s = session("max_commands 1;", *STARTTLS_ON)
    assert talk(s, b"NOOP\r\nSTLS\r\n") == [(CONT, OK), (CLOSE, INVALID)]
    s = session("max_commands 1;")
    assert talk(s, b"NOOP\r\nUSER x\r\n") == [(CONT, OK), (CLOSE, INVALID)]
    assert s.login == b""


def test_s7_and_q15_4_max_commands_counts_continuation_lines():
    s = session("max_commands 2;")
    assert talk(s, b"AUTH LOGIN\r\n" + b64(b"bob") + b"\r\n" + b64(b"pw") + b"\r\n") == [
        (CONT, USERNAME), (CONT, PASSWORD), (CLOSE, INVALID)]
    assert s.attempt == 0
    s = session("max_commands 3;")
    assert talk(s, b"AUTH LOGIN\r\n" + b64(b"bob") + b"\r\n" + b64(b"pw") + b"\r\n") == [
        (CONT, USERNAME), (CONT, PASSWORD), (AUTH, b"")]
    assert s.commands == 3


def test_s7_max_commands_counts_handler_level_invalid_lines():
    s = session("max_commands 1;")
    assert talk(s, b"PASS x\r\nNOOP\r\n") == [(CONT, INVALID), (CLOSE, INVALID)]


def test_s7_max_commands_does_not_count_parse_invalid_lines():
    s = session("max_commands 1;")
    assert talk(s, b"FOO\r\nBAR\r\nNOOP\r\n") == [(CONT, INVALID), (CONT, INVALID), (CONT, OK),
                                                  (NEED, b"")]
    assert (s.commands, s.errors) == (1, 2)


def test_s7_max_commands_not_reset_by_stls_or_failed_auth():
    s = session("max_commands 4;", *STARTTLS_ON)
    assert talk(s, b"USER a\r\nPASS b\r\n") == [(CONT, OK), (AUTH, b"")]
    s.auth_failed(b"no", wait=True)
    assert talk(s, b"STLS\r\n") == [(STLS, OK)]
    s.tls_started()
    assert talk(s, b"NOOP\r\nNOOP\r\n") == [(CONT, OK), (CLOSE, INVALID)]
    assert s.commands == 5


# --------------------------------------------------------------------------------------
# §8 Pipelining
# --------------------------------------------------------------------------------------

def test_s8_several_commands_in_one_feed_answered_in_order():
    s = session()
    assert talk(s, b"NOOP\r\nCAPA\r\nFOO\r\nAUTH\r\nNOOP\r\n") == [
        (CONT, OK), (CONT, DEFAULT_CAPA), (CONT, INVALID),
        (CONT, b"+OK methods supported:\r\nPLAIN\r\nLOGIN\r\n.\r\n"), (CONT, OK), (NEED, b"")]


def test_s8_user_pass_quit_in_one_write_quit_stays_buffered():
    s = session()
    assert talk(s, b"USER test@example.com\r\nPASS secret\r\nQUIT\r\n") == [(CONT, OK),
                                                                           (AUTH, b"")]
    assert (s.login, s.passwd) == (b"test@example.com", b"secret")
    assert s.leftover() == b"QUIT\r\n"


def test_s8_auth_login_exchange_in_one_write():
    s = session()
    assert talk(s, b"AUTH LOGIN\r\n" + b64(b"bob") + b"\r\n" + b64(b"pw") + b"\r\nXYZ") == [
        (CONT, USERNAME), (CONT, PASSWORD), (AUTH, b"")]
    assert s.leftover() == b"XYZ"


def test_s8_leftover_is_verbatim_incl_partial_and_invalid_bytes():
    s = session(APOP)
    tail = b"RETR 1\r\n\x00\xff junk \r\nLIST"
    assert talk(s, b"APOP bob d\r\n" + tail) == [(AUTH, b"")]
    assert s.leftover() == tail


def test_s8_commands_split_across_feeds():
    s = session()
    assert talk(s, b"NO") == [(NEED, b"")]
    assert talk(s, b"OP\r") == [(NEED, b"")]
    assert talk(s, b"\nUS") == [(CONT, OK), (NEED, b"")]
    assert talk(s, b"ER bob\r\n") == [(CONT, OK), (NEED, b"")]


def test_s8_128_byte_limit_is_per_line():
    s = session()
    l1 = b"USER " + b"a" * 121 + b"\r\n"
    l2 = b"PASS " + b"b" * 121 + b"\r\n"
    assert len(l1) == len(l2) == 128
    assert talk(s, b"NOOP " + b"x" * 121 + b"\r\n" + l1 + l2) == [(CONT, OK), (CONT, OK),
                                                                  (AUTH, b"")]
    assert s.passwd == b"b" * 121


def test_s8_bytes_after_stls_dropped():
    s = session(*STARTTLS_ONLY)
    assert talk(s, b"STLS\r\nNOOP\r\nNOOP\r\n") == [(STLS, OK)]
    s.tls_started()
    assert talk(s) == [(NEED, b"")]
    assert s.commands == 1


def test_s8_failed_auth_with_wait_processes_buffered_commands():
    s = session()
    assert talk(s, b"USER a\r\nPASS b\r\nNOOP\r\nUSER c\r\n") == [(CONT, OK), (AUTH, b"")]
    assert s.auth_failed(b"Invalid login or password", wait=True) == (
        CONT, b"-ERR Invalid login or password\r\n")
    assert talk(s) == [(CONT, OK), (CONT, OK), (NEED, b"")]
    assert s.login == b"c"


def test_s8_failed_auth_without_wait_closes():
    s = session()
    talk(s, b"USER a\r\nPASS b\r\nNOOP\r\n")
    assert s.auth_failed(b"Invalid login or password", wait=False) == (
        CLOSE, b"-ERR Invalid login or password\r\n")


# --------------------------------------------------------------------------------------
# §10 (as far as the machine is concerned): failure keeps START, attempt counter
# --------------------------------------------------------------------------------------

def test_s10_auth_wait_failure_returns_to_start_client_must_restart():
    s = session()
    talk(s, b"USER bob\r\nPASS pw\r\n")
    assert s.auth_failed(b"nope", wait=True) == (CONT, b"-ERR nope\r\n")
    assert s.state == 0
    assert s.login == b"bob"               # kept in memory
    assert talk(s, b"PASS pw\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert talk(s, b"USER bob\r\nPASS pw2\r\n") == [(CONT, OK), (AUTH, b"")]
    assert s.passwd == b"pw2"


def test_s10_auth_failure_after_sasl_exchange_returns_to_start():
    s = session()
    talk(s, b"AUTH LOGIN\r\n" + b64(b"bob") + b"\r\n" + b64(b"pw") + b"\r\n")
    s.auth_failed(b"nope", wait=True)
    # back to START: a base64 line is now a (parse-level invalid) command
    assert talk(s, b64(b"bob") + b"\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.errors == 1


def test_s10_attempt_counter_increments_per_attempt():
    s = session(APOP, salt=SALT)
    assert s.attempt == 0
    talk(s, b"APOP bob 11111111111111111111111111111111\r\n")
    assert s.attempt == 1
    s.auth_failed(b"x", wait=True)
    talk(s, b"APOP bob 00000000000000000000000000000000\r\n")
    assert s.attempt == 2 and s.method == "apop"
    s.auth_failed(b"x", wait=True)
    talk(s, b"USER a\r\nPASS b\r\n")
    assert s.attempt == 3 and s.method == "plain"


def test_s10_invalid_attempts_do_not_increment_attempt():
    s = session()
    talk(s, b"AUTH PLAIN *\r\nAUTH LOGIN\r\n*\r\nPASS x\r\n")
    assert s.attempt == 0


@pytest.mark.parametrize("cmd,method", [
    (b"USER a\r\nPASS b\r\n", "plain"), (b"APOP a b\r\n", "apop"),
    (b"AUTH PLAIN " + b64(b"\0a\0b") + b"\r\n", "plain"),
    (b"AUTH LOGIN " + b64(b"a") + b"\r\n" + b64(b"b") + b"\r\n", "plain"),
    (b"AUTH CRAM-MD5\r\n" + b64(b"a " + b"0" * 32) + b"\r\n", "cram-md5"),
    (b"AUTH EXTERNAL " + b64(b"a") + b"\r\n", "external"),
    (b"AUTH XOAUTH2 " + b64(xo()) + b"\r\n", "xoauth2"),
    (b"AUTH OAUTHBEARER " + b64(ob()) + b"\r\n", "oauthbearer")])
def test_s10_auth_method_per_command(cmd, method):
    s = session(ALL_AUTH)
    assert talk(s, cmd)[-1] == (AUTH, b"")
    assert s.method == method and s.attempt == 1


# --------------------------------------------------------------------------------------
# §12 Every line the proxy itself sends (the machine's share)
# --------------------------------------------------------------------------------------

def test_s12_lines_sent_by_the_machine():
    s = session(ALL_AUTH, *STARTTLS_ON, salt=SALT)
    assert s.greeting() == b"+OK POP3 ready <1804289383.1700000000@mail.example.com>\r\n"
    assert talk(s, b"NOOP\r\n")[0] == (CONT, b"+OK\r\n")
    assert talk(s, b"CAPA\r\n")[0][1].startswith(b"+OK Capability list follows\r\n")
    assert talk(s, b"AUTH\r\n")[0][1].startswith(b"+OK methods supported:\r\n")
    assert talk(s, b"AUTH LOGIN\r\n")[0] == (CONT, b"+ VXNlcm5hbWU6\r\n")
    assert talk(s, b"Ym9i\r\n")[0] == (CONT, b"+ UGFzc3dvcmQ6\r\n")
    assert talk(s, b"*\r\n")[0] == (CONT, b"-ERR invalid command\r\n")
    for mech in (b"PLAIN", b"XOAUTH2", b"OAUTHBEARER"):
        assert talk(s, b"AUTH " + mech + b"\r\n")[0] == (CONT, b"+ \r\n")
        talk(s, b"*\r\n")
    assert talk(s, b"AUTH EXTERNAL\r\n")[0] == (CONT, b"+ VXNlcm5hbWU6\r\n")
    talk(s, b"*\r\n")
    assert talk(s, b"AUTH CRAM-MD5\r\n")[0] == (CONT, b"+ " + SALT_B64 + b"\r\n")
    talk(s, b"*\r\n")
    assert talk(s, b"STLS\r\n") == [(STLS, b"+OK\r\n")]
    s2 = session()
    assert talk(s2, b"USER a\r\n")[0] == (CONT, b"+OK\r\n")
    assert talk(s2, b"QUIT\r\n") == [(CLOSE, b"+OK\r\n")]
    s3 = session()
    talk(s3, b"USER a\r\nPASS b\r\n")
    assert s3.auth_failed(b"Invalid login or password", wait=False) == (
        CLOSE, b"-ERR Invalid login or password\r\n")


def test_s12_greeting_without_salt_line():
    assert session().greeting() == b"+OK POP3 ready\r\n"


# --------------------------------------------------------------------------------------
# §15 Quirks
# --------------------------------------------------------------------------------------

def test_q15_1_fixed_128_byte_buffer_makes_long_oauth_tokens_unusable():
    token = b"x" * 200
    s = session(XOAUTH2)
    assert talk(s, b"AUTH XOAUTH2 " + b64(xo(b"bob", token)) + b"\r\n") == [(CLOSE, INVALID)]
    s = session(XOAUTH2)
    talk(s, b"AUTH XOAUTH2\r\n")
    assert talk(s, b64(xo(b"bob", token)) + b"\r\n") == [(CLOSE, INVALID)]


def test_q15_7_bytes_after_stls_discarded_after_auth_forwarded():
    s = session(*STARTTLS_ON)
    assert talk(s, b"STLS\r\nNOOP\r\n") == [(STLS, OK)]
    s.tls_started()
    assert talk(s, b"USER a\r\nPASS b\r\nNOOP\r\n") == [(CONT, OK), (AUTH, b"")]
    assert s.leftover() == b"NOOP\r\n"
    assert s.leftover() == b""


@pytest.mark.parametrize("mech,setup", [(b"LOGIN", b""), (b"PLAIN", b""),
                                        (b"CRAM-MD5", b""), (b"EXTERNAL", b""),
                                        (b"XOAUTH2", b""), (b"OAUTHBEARER", b""),
                                        (b"LOGIN", b"Ym9i\r\n")])
def test_q15_10_star_cancellation_fails_base64(mech, setup):
    s = session("max_errors 1;", ALL_AUTH)
    talk(s, b"AUTH " + mech + b"\r\n" + setup)
    assert talk(s, b"*\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.state == 0 and s.errors == 0
    assert s.log.messages()[-1].startswith("client sent invalid base64 encoding in AUTH ")


def test_q15_11_cram_md5_without_space_does_not_reuse_old_password():
    s = session(CRAM)
    talk(s, b"USER bob\r\nPASS " + b"p" * 32 + b"\r\n")
    s.auth_failed(b"no", wait=True)
    talk(s, b"AUTH CRAM-MD5\r\n")
    assert talk(s, b64(b"nospace") + b"\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.attempt == 1


def test_q15_11_xoauth2_without_01_does_not_reuse_old_login():
    s = session(XOAUTH2)
    talk(s, b"AUTH XOAUTH2 " + b64(xo(b"bob")) + b"\r\n")
    s.auth_failed(b"no", wait=True)
    assert talk(s, b"AUTH XOAUTH2 " + b64(b"user=bob") + b"\r\n") == [(CONT, INVALID),
                                                                      (NEED, b"")]
    assert talk(s, b"AUTH XOAUTH2 " + b64(b"auth=Bearer t") + b"\r\n") == [(CONT, INVALID),
                                                                           (NEED, b"")]
    assert s.attempt == 1


@pytest.mark.parametrize("word", [b"QUIT", b"NOOP", b"CAPA", b"quit"])
def test_q15_12_commands_inside_sasl_exchange_are_base64(word):
    s = session()
    start_login_exchange(s)
    assert talk(s, line(word)) == [(CONT, PASSWORD), (NEED, b"")]
    assert s.login == base64.b64decode(word)
    assert len(s.login) == 3
    assert talk(s, line(word)) == [(AUTH, b"")]
    assert s.passwd == base64.b64decode(word)


def test_q15_12_quit_decodes_to_three_bytes_as_login():
    s = session()
    start_login_exchange(s)
    talk(s, b"QUIT\r\n")
    assert s.login == b"AB\x13"


def test_q15_12_stls_inside_sasl_exchange_is_not_stls():
    s = session(*STARTTLS_ON)
    talk(s, b"AUTH PLAIN\r\n")
    # "STLS" decodes to 3 bytes with no NUL -> invalid PLAIN payload, not a TLS upgrade
    assert talk(s, b"STLS\r\n") == [(CONT, INVALID), (NEED, b"")]
    assert s.log.messages() == ["client sent invalid login in AUTH PLAIN command"]


# --- beyond Angie: no command injection through SASL-decoded credentials -----------------

@pytest.mark.parametrize("payload", [
    b"AUTH PLAIN " + base64.b64encode(b"\0user\r\nDELE 1\0pw") + b"\r\n",
    b"AUTH PLAIN " + base64.b64encode(b"\0user\0pw\nDELE 1") + b"\r\n",
])
def test_line_breaks_in_decoded_credentials_are_refused(payload):
    s = Pop3Session(server(), log=Log())
    s.feed(payload)
    code, out = s.step()
    assert (code, out) == (CONT, b"-ERR invalid command\r\n")
    assert s.errors == 0 and s.attempt == 0
    assert s.log.messages() == ["client sent a line break in the login or password"]
