"""The SMTP pre-authentication machine, line by line from smtp.md §3–§11."""

from __future__ import annotations

import base64

import pytest

from angie_mail.smtp.session import mask
from smtp.helpers import AUTH, CLOSE, CONT, STARTTLS, new, replies, talk

INVALID = b"500 5.5.1 Invalid command\r\n"
ARG = b"501 5.5.4 Invalid argument\r\n"
SEQ = b"503 5.5.1 Bad sequence of commands\r\n"
OK = b"250 2.0.0 OK\r\n"
B64 = base64.b64encode
CERT = ("ssl_certificate a;", "ssl_certificate_key b;")


# --- §3 greeting -----------------------------------------------------------------------------

def test_greeting():
    s, _ = new()
    assert s.greeting() == b"220 N ESMTP ready\r\n"


def test_talking_before_a_delayed_greeting_is_logged_sanitised():
    s, log = new("smtp_greeting_delay 1s;")
    s.feed(b"HELO example.com\r\n")
    assert s.rejected_before_greeting() == \
        b"503 5.5.0 Improper use of SMTP command pipelining\r\n"
    assert log.records == [("info", 'client was rejected before greeting: '
                                    '"HELO example.com__"')]


def test_talking_before_greeting_logs_one_buffer_and_no_secret():
    s, log = new("smtp_greeting_delay 1s;", "smtp_client_buffer 64;")
    s.feed(b"AUTH PLAIN " + B64(b"\0u\0hunter2") + b"\r\n" + b"x" * 200)
    s.rejected_before_greeting()
    (_, message), = log.records
    assert message == 'client was rejected before greeting: "AUTH PLAIN ***__' + \
        "x" * (64 - len("AUTH PLAIN " + B64(b"\0u\0hunter2").decode() + "\r\n")) + '"'


# --- §4 tokenizer ---------------------------------------------------------------------------

@pytest.mark.parametrize("line", [b"DATA", b"BDAT 1", b"", b" NOOP", b"NO\tOP", b"NOO1",
                                  b"NOOPS", b"ETRN", b"XCLIENT ADDR=1", b"STARTTLX",
                                  b"NOOP\rx", b"NOOP\r\r"])
def test_parse_level_invalid_lines(line):
    s, _ = new()
    assert talk(s, line + b"\r\n") == [(CONT, INVALID)]
    assert s.errors == 1


def test_words_are_case_insensitive_and_lf_alone_ends_a_line():
    s, _ = new()
    assert talk(s, b"nOoP\nrset\r\n") == [(CONT, OK), (CONT, OK)]


def test_eleven_arguments_but_not_twelve():
    s, _ = new()
    assert replies(s, b"NOOP a b c d e f g h i j k\r\n") == OK
    assert replies(s, b"NOOP a b c d e f g h i j k l\r\n") == INVALID
    assert s.errors == 1


def test_arguments_keep_tabs_nul_and_8bit_bytes():
    s, _ = new("smtp_auth none;")
    assert replies(s, b"HELO a\tb\x00\xff\r\n") == b"250 N\r\n"
    assert s.helo == b"a\tb\x00\xff"


def test_runs_of_spaces_separate_arguments_and_trailing_spaces_go():
    s, _ = new()
    assert replies(s, b"HELO    x   \r\n") == b"250 N\r\n"
    assert s.helo == b"x"


def test_too_long_line_is_logged_answered_and_closes():
    s, log = new("smtp_client_buffer 128;")
    out = talk(s, b"NOOP " + b"a" * 130)
    assert out == [(CLOSE, INVALID)]
    assert log.records == [("info", 'client sent too long command "NOOP ' + "a" * 123 + '"')]
    assert s.errors == 0
    assert s.reset                          # bytes beyond the buffer were left unread


def test_a_line_of_exactly_the_buffer_size_is_accepted():
    s, _ = new("smtp_client_buffer 128;")
    line = b"NOOP " + b"a" * (128 - 7) + b"\r\n"
    assert len(line) == 128
    assert talk(s, line) == [(CONT, OK)]
    s, _ = new("smtp_client_buffer 128;")
    assert talk(s, b"NOOP " + b"a" * (128 - 6) + b"\r\n") == [(CLOSE, INVALID)]


def test_a_line_split_across_reads():
    s, _ = new()
    assert talk(s, b"NO") == []
    assert talk(s, b"OP\r") == []
    assert talk(s, b"\n") == [(CONT, OK)]


# --- §5 EHLO / HELO -------------------------------------------------------------------------

def test_ehlo_defaults():
    s, _ = new()
    assert replies(s, b"EHLO x\r\n") == b"250-N\r\n250 AUTH PLAIN LOGIN\r\n"


def test_ehlo_capabilities_verbatim_and_in_order():
    s, _ = new('smtp_capabilities "SIZE 10485760" 8BITMIME;')
    assert replies(s, b"EHLO x\r\n") == \
        b"250-N\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n"


def test_ehlo_mechanisms_in_the_fixed_order():
    s, _ = new("smtp_auth oauthbearer xoauth2 external cram-md5 login plain none;")
    assert replies(s, b"EHLO x\r\n") == \
        b"250-N\r\n250 AUTH PLAIN LOGIN CRAM-MD5 EXTERNAL XOAUTH2 OAUTHBEARER\r\n"


def test_ehlo_starttls_on_only_and_after_tls(tmp_path):
    lines = ("smtp_capabilities SIZE;", "starttls on;", *CERT)
    s, _ = new(*lines)
    assert replies(s, b"EHLO x\r\n") == \
        b"250-N\r\n250-SIZE\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
    s, _ = new("smtp_capabilities SIZE;", "starttls only;", *CERT)
    assert replies(s, b"EHLO x\r\n") == b"250-N\r\n250-SIZE\r\n250 STARTTLS\r\n"
    s, _ = new(*lines, tls=True)
    assert replies(s, b"EHLO x\r\n") == b"250-N\r\n250-SIZE\r\n250 AUTH PLAIN LOGIN\r\n"


def test_ehlo_with_smtp_auth_none_alone_is_one_line_and_helo_always_is():
    s, _ = new("smtp_auth none;")
    assert replies(s, b"EHLO x\r\n") == b"250 N\r\n"
    s, _ = new()
    assert replies(s, b"HELO x\r\n") == b"250 N\r\n"


# --- §6 commands ------------------------------------------------------------------------------

@pytest.mark.parametrize("line", [b"HELO", b"EHLO", b"HELO a b", b"EHLO a b"])
def test_helo_and_ehlo_take_exactly_one_argument(line):
    s, _ = new()
    assert replies(s, line + b"\r\n") == ARG
    assert s.errors == 0


def test_esmtp_flag_is_sticky():
    s, _ = new("smtp_auth none;")
    replies(s, b"EHLO a\r\nHELO b\r\nRSET\r\n")
    assert s.esmtp and s.helo == b"b"


def test_mail_without_none_is_rejected_and_logged_sanitised():
    s, log = new()
    out = replies(s, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nNOOP\r\n")
    assert out == b"530 5.7.1 Authentication required\r\n" + SEQ + OK
    # the whole buffer, CR and LF as _, in a copy: the pipelined commands still run
    assert log.records[0] == ("info", 'client was rejected: '
                                      '"MAIL FROM:<a@b>__RCPT TO:<c@d>__NOOP__"')


def test_none_flow_mail_and_rcpt():
    s, _ = new("smtp_auth none;")
    assert replies(s, b"MAIL\r\n") == ARG
    assert replies(s, b"RCPT TO:<b@c>\r\n") == SEQ
    assert replies(s, b"mail  FROM:<a@example.com> SIZE=10  \r\n") == OK
    assert replies(s, b"MAIL FROM:<x@y>\r\n") == SEQ
    assert replies(s, b"RCPT\r\n") == ARG
    assert talk(s, b"rcpt  TO:<b@example.com>\r\n") == [(AUTH, b"")]
    assert s.method == "none" and s.login == b"" and s.passwd == b""
    assert s.mail_from == b"mail  FROM:<a@example.com> SIZE=10"
    assert s.rcpt_to == b"rcpt  TO:<b@example.com>"
    assert s.attempt == 1


def test_rset_clears_the_stored_lines_and_keeps_helo():
    s, _ = new("smtp_auth none;")
    assert replies(s, b"HELO h\r\nMAIL FROM:<a@b>\r\nRSET x y\r\n") == b"250 N\r\n" + OK + OK
    assert s.mail_from == b"" and s.helo == b"h"
    assert replies(s, b"MAIL FROM:<a@b>\r\nHELO i\r\nRCPT TO:<c@d>\r\n") == OK + b"250 N\r\n" + SEQ


def test_noop_quit():
    s, _ = new()
    assert talk(s, b"NOOP a b\r\nQUIT now\r\nNOOP\r\n") == [(CONT, OK),
                                                          (CLOSE, b"221 2.0.0 Bye\r\n")]


def test_starttls_accepted_drops_what_follows_and_clears_helo_and_lines():
    s, _ = new("starttls on;", *CERT, "smtp_auth none;")
    replies(s, b"EHLO h\r\nMAIL FROM:<a@b>\r\n")
    assert talk(s, b"STARTTLS\r\nNOOP\r\n") == [(STARTTLS, b"220 2.0.0 Start TLS\r\n")]
    assert s.pending() == 0
    assert s.helo == b"" and s.mail_from == b"" and s.esmtp
    s.tls_started()
    assert replies(s, b"STARTTLS\r\n") == INVALID


def test_starttls_refused_when_off():
    s, _ = new()
    assert replies(s, b"STARTTLS\r\n") == INVALID
    assert s.errors == 0


@pytest.mark.parametrize("word", [b"VRFY", b"EXPN", b"HELP"])
def test_vrfy_expn_help_are_handler_level(word):
    s, _ = new("max_errors 1;")
    assert talk(s, word + b" x\r\n") == [(CONT, INVALID)]
    assert s.errors == 0


def test_starttls_only_refuses_auth_alone():
    s, _ = new("starttls only;", *CERT, "smtp_auth none;")
    assert replies(s, b"AUTH\r\n") == INVALID
    assert replies(s, b"AUTH PLAIN " + B64(b"\0u\0p") + b"\r\n") == INVALID
    assert replies(s, b"EHLO h\r\nNOOP\r\nRSET\r\nMAIL FROM:<a@b>\r\n") == \
        b"250-N\r\n250 STARTTLS\r\n" + OK + OK + OK
    assert talk(s, b"RCPT TO:<c@d>\r\n") == [(AUTH, b"")]


# --- §7 AUTH --------------------------------------------------------------------------------------

def test_auth_without_argument():
    s, _ = new()
    assert replies(s, b"AUTH\r\n") == ARG


def test_auth_plain_forms():
    s, _ = new()
    assert talk(s, b"auth plain " + B64(b"authz\0test@example.com\0secret") + b"\r\n") \
        == [(AUTH, b"")]
    assert (s.method, s.login, s.passwd) == ("plain", b"test@example.com", b"secret")
    s, _ = new()
    assert talk(s, b"AUTH PLAIN\r\n") == [(CONT, b"334 \r\n")]
    assert talk(s, B64(b"\0u\0p") + b" ignored tokens\r\n") == [(AUTH, b"")]
    assert (s.login, s.passwd) == (b"u", b"p")


def test_auth_login_forms():
    s, _ = new()
    assert talk(s, b"AUTH LOGIN\r\n") == [(CONT, b"334 VXNlcm5hbWU6\r\n")]
    assert talk(s, B64(b"user") + b"\r\n") == [(CONT, b"334 UGFzc3dvcmQ6\r\n")]
    assert talk(s, B64(b"pass") + b"\r\n") == [(AUTH, b"")]
    assert (s.method, s.login, s.passwd) == ("plain", b"user", b"pass")
    s, _ = new()
    assert talk(s, b"AUTH LOGIN " + B64(b"user") + b"\r\n") == [(CONT, b"334 UGFzc3dvcmQ6\r\n")]


def test_plain_and_login_work_when_not_listed():
    s, _ = new("smtp_auth none;")
    assert talk(s, b"AUTH PLAIN " + B64(b"\0u\0p") + b"\r\n") == [(AUTH, b"")]
    s, _ = new("smtp_auth none;")
    assert talk(s, b"AUTH LOGIN\r\n") == [(CONT, b"334 VXNlcm5hbWU6\r\n")]


@pytest.mark.parametrize("line", [b"AUTH LOGIN a b", b"AUTH PLAIN a b", b"AUTH FOO",
                                  b"AUTH CRAM-MD5", b"AUTH EXTERNAL", b"AUTH XOAUTH2",
                                  b"AUTH OAUTHBEARER", b"AUTH EXTERNAL dXNlcg=="])
def test_more_arguments_unknown_or_disabled_mechanisms(line):
    s, _ = new()
    assert talk(s, line + b"\r\n") == [(CONT, INVALID)]
    assert s.errors == 0


def test_cram_md5_salt_made_at_the_first_attempt_and_reused():
    s, _ = new("smtp_auth cram-md5;")
    assert s.salt == b""
    (code, out), = talk(s, b"AUTH CRAM-MD5\r\n")
    salt = base64.b64decode(out[4:-2])
    assert out.startswith(b"334 ") and salt.startswith(b"<") and salt.endswith(b"@N>")
    assert talk(s, B64(b"user " + b"0" * 32) + b"\r\n") == [(AUTH, b"")]
    assert (s.method, s.login, s.passwd, s.salt) == ("cram-md5", b"user", b"0" * 32, salt)
    assert s.auth_failed(b"no", True) == (CONT, b"535 5.7.0 no\r\n")
    assert talk(s, b"AUTH CRAM-MD5\r\n") == [(CONT, b"334 " + B64(salt) + b"\r\n")]
    assert replies(s, b"AUTH CRAM-MD5 x\r\n") == INVALID


def test_external_enabled():
    s, _ = new("smtp_auth external;")
    assert talk(s, b"AUTH EXTERNAL\r\n") == [(CONT, b"334 VXNlcm5hbWU6\r\n")]
    assert talk(s, B64(b"user") + b"\r\n") == [(AUTH, b"")]
    assert (s.method, s.login, s.passwd) == ("external", b"user", b"")
    s, _ = new("smtp_auth external;")
    assert talk(s, b"AUTH EXTERNAL " + B64(b"user") + b"\r\n") == [(AUTH, b"")]


def test_oauth_mechanisms():
    s, _ = new("smtp_auth xoauth2 oauthbearer;")
    token = B64(b"user=u\x01auth=Bearer t\x01\x01")
    assert talk(s, b"AUTH XOAUTH2 " + token + b"\r\n") == [(AUTH, b"")]
    assert (s.method, s.login, s.passwd) == ("xoauth2", b"u", b"t")
    s, _ = new("smtp_auth xoauth2 oauthbearer;")
    assert talk(s, b"AUTH OAUTHBEARER\r\n") == [(CONT, b"334 \r\n")]


@pytest.mark.parametrize("line", [b"*", b"=", b"QUIT"])
def test_cancel_and_commands_inside_an_exchange_are_bad_data(line):
    s, _ = new()
    talk(s, b"AUTH PLAIN\r\n")
    assert talk(s, line + b"\r\n") == [(CONT, INVALID)]
    assert not s.sasl.open and s.errors == 0


def test_auth_error_sasl_challenge_then_the_clients_answer():
    s, _ = new("smtp_auth oauthbearer;")
    talk(s, b"AUTH OAUTHBEARER " + B64(b"n,a=u,\x01auth=Bearer t\x01\x01") + b"\r\n")
    assert s.auth_failed(b"auth-failed", True, b"eyJzdGF0dXMiOiI0MDAifQ==") == \
        (CONT, b"334 eyJzdGF0dXMiOiI0MDAifQ==\r\n")
    assert talk(s, b"AQ==\r\n") == [(CONT, b"535 5.7.0 auth-failed\r\n")]
    # any other line: 500, and the attempt is over
    talk(s, b"AUTH OAUTHBEARER " + B64(b"n,a=u,\x01auth=Bearer t\x01\x01") + b"\r\n")
    s.auth_failed(b"auth-failed", True, b"e30=")
    assert talk(s, b"foo\r\n") == [(CONT, INVALID)]
    assert replies(s, b"NOOP\r\n") == OK


def test_auth_error_sasl_without_auth_wait_closes_after_the_answer():
    s, _ = new("smtp_auth xoauth2;")
    talk(s, b"AUTH XOAUTH2 " + B64(b"user=u\x01auth=Bearer t\x01\x01") + b"\r\n")
    assert s.auth_failed(b"auth-failed", False, b"e30=") == (CONT, b"334 e30=\r\n")
    assert talk(s, b"\r\n") == [(CLOSE, b"535 5.7.0 auth-failed\r\n")]


# --- §8 limits ------------------------------------------------------------------------------------

def test_max_errors_counts_parse_level_lines_only():
    s, log = new("max_errors 2;")
    out = talk(s, b"VRFY\r\nVRFY\r\nVRFY\r\nAUTH FOO\r\nFOO\r\nNOOP\r\nBAR\r\nNOOP\r\n")
    assert out == [(CONT, INVALID)] * 5 + [(CONT, OK), (CLOSE, INVALID)]
    assert log.messages()[-1] == "client sent too many invalid commands"


def test_max_commands_counts_commands_and_continuation_lines():
    s, log = new("max_commands 3;")
    out = talk(s, b"NOOP\r\nFOO\r\nAUTH LOGIN\r\n" + B64(b"test") + b"\r\nx\r\n")
    assert out == [(CONT, OK), (CONT, INVALID), (CONT, b"334 VXNlcm5hbWU6\r\n"),
                   (CONT, b"334 UGFzc3dvcmQ6\r\n"), (CLOSE, INVALID)]
    assert log.messages()[-1] == "client sent too many commands"
    s, _ = new("max_commands 1;")
    assert talk(s, b"RSET\r\nRSET\r\n") == [(CONT, OK), (CLOSE, INVALID)]


# --- §9 pipelining and the buffer ---------------------------------------------------------------

def test_the_limit_applies_per_line_thanks_to_compaction():
    s, _ = new("smtp_client_buffer 128;", "smtp_auth none;")
    mail = b"MAIL FROM:<" + b"a" * 109 + b"@b>\r\n"
    assert len(mail) == 125
    assert talk(s, mail + b"RCPT TO:<c@d>\r\nRSET\r\n") == [(CONT, OK), (AUTH, b"")]
    assert s.leftover() == b"RSET\r\n"


def test_after_a_failed_auth_the_next_line_has_the_rest_of_the_buffer():
    auth = b"AUTH PLAIN " + B64(b"\0test@example.com\0" + b"x" * 33) + b"\r\n"
    assert len(auth) == 81
    for n, fits in ((47, True), (49, False)):
        s, log = new("smtp_client_buffer 128;")
        assert talk(s, auth) == [(AUTH, b"")]
        assert s.auth_failed(b"no", True) == (CONT, b"535 5.7.0 no\r\n")
        nxt = b"NOOP " + b"n" * (n - 7) + b"\r\n"
        if fits:
            assert talk(s, nxt) == [(CONT, OK)]
            # compacted again after that command: a full-size line fits now
            assert talk(s, b"NOOP " + b"m" * 121 + b"\r\n") == [(CONT, OK)]
        else:
            assert talk(s, nxt) == [(CLOSE, INVALID)]
            assert log.messages() == ['client sent too long command "AUTH PLAIN ***\r\n'
                                      + nxt[:47].decode() + '"']


def test_bytes_after_a_failed_auth_run_after_the_failure_reply():
    s, _ = new()
    assert talk(s, b"AUTH PLAIN " + B64(b"\0u\0bad") + b"\r\nNOOP\r\n") == [(AUTH, b"")]
    assert s.auth_failed(b"Invalid login or password", True) == \
        (CONT, b"535 5.7.0 Invalid login or password\r\n")
    assert talk(s) == [(CONT, OK)]


def test_bytes_after_a_successful_auth_go_to_the_backend():
    s, _ = new()
    talk(s, b"AUTH PLAIN " + B64(b"\0u\0p") + b"\r\nMAIL FROM:<a@b>\r\nRC")
    s.feed(b"PT TO:<c@d>\r\n")
    assert s.leftover() == b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"


def test_rcpt_alone_empties_the_buffer():
    s, _ = new("smtp_client_buffer 128;", "smtp_auth none;")
    talk(s, b"MAIL FROM:<a@b>\r\n")
    talk(s, b"RCPT TO:<" + b"c" * 100 + b"@d>\r\n")
    s.auth_failed(b"no", True)
    assert talk(s, b"NOOP " + b"a" * 121 + b"\r\n") == [(CONT, OK)]


# --- §11 authentication outcomes --------------------------------------------------------------

def test_failure_reply_codes():
    s, _ = new()
    talk(s, b"AUTH PLAIN " + B64(b"\0u\0p") + b"\r\n")
    assert s.auth_failed(b"Go away", False, None, b"454 4.7.0  ") == \
        (CLOSE, b"454 4.7.0 Go away\r\n")
    s, _ = new()
    talk(s, b"AUTH PLAIN " + B64(b"\0u\0p") + b"\r\n")
    assert s.auth_failed(b"Go away", True, None, b"") == (CONT, b"535 5.7.0 Go away\r\n")
    assert s.method == "plain" and s.passwd == b"" and s.login == b"u"


def test_a_failed_none_attempt_keeps_the_stored_lines():
    s, _ = new("smtp_auth none;")
    talk(s, b"HELO h\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")
    s.auth_failed(b"no", True)
    assert replies(s, b"MAIL FROM:<x@y>\r\n") == SEQ
    assert talk(s, b"RCPT TO:<e@f>\r\n") == [(AUTH, b"")]
    assert (s.mail_from, s.rcpt_to, s.attempt) == (b"MAIL FROM:<a@b>", b"RCPT TO:<e@f>", 2)


def test_no_credentials_of_a_failed_auth_reach_a_none_attempt():
    """smtp.md §17.4, decided: a RCPT-triggered attempt starts with empty credentials."""
    s, _ = new("smtp_auth none;")
    talk(s, b"MAIL FROM:<a@b>\r\n")
    talk(s, b"AUTH PLAIN " + B64(b"\0user\0pw") + b"\r\n")
    s.auth_failed(b"no", True)
    assert talk(s, b"RCPT TO:<c@d>\r\n") == [(AUTH, b"")]
    assert (s.method, s.login, s.passwd) == ("none", b"", b"")


# --- secrets in the log -----------------------------------------------------------------------------

def test_mask():
    assert mask(b"AUTH PLAIN c2VjcmV0\r\nNOOP\r\n") == b"AUTH PLAIN ***\r\nNOOP\r\n"
    assert mask(b"AUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\nNOOP") == \
        b"AUTH LOGIN\r\n***\r\n***\r\nNOOP"
    assert mask(b"auth login dXNlcg==\r\ncGFzcw==\r\nNOOP") == \
        b"auth login ***\r\n***\r\nNOOP"
    assert mask(b"cGFzcw==\r\nNOOP", 1) == b"***\r\nNOOP"


def test_a_too_long_continuation_line_is_masked():
    s, log = new("smtp_client_buffer 64;")
    talk(s, b"AUTH PLAIN\r\n")
    talk(s, b"c2VjcmV0" * 20)
    assert log.messages() == ['client sent too long command "***"']
