"""Differential tests for IMAP: the same scripted client sessions run through real nginx
1.22 and through angie-mail (the machinery is in proxy/differential.py), behind the
scripted IMAP backend of the harness.

Every session also states what the client receives (``expect``), as imap.md describes
it; ``test_nginx_transcript`` checks that against nginx alone, so the scripts and the
expectations are proven on the oracle, and ``test_same_as_nginx`` then requires
angie-mail to produce exactly nginx's results: client bytes, auth_http requests and the
bytes every backend received.

The sessions of imap.md §16 (where Angie, and so angie-mail, differs from nginx 1.22)
are in ``EXPECTED_NGINX_DIFFERENCES`` with both sides' exact results.  Directives
nginx 1.22 does not know (``max_commands``, ``imap_auth xoauth2``) are given to the
angie-mail side only.
"""

from __future__ import annotations

import re

import pytest

import oracle
from proxy.differential import (GOOD_DIGEST, NOPASS_DIGEST, SASL_ERROR, Case, Lines, Tls,
                                b64, describe, line_of, run_both, run_side, running_side,
                                server_bytes, tls_mail_block)
from proxy.harness import ImapBackend, auth_request


@pytest.fixture(autouse=True)
def _nginx_installed():
    oracle.require()


# --- configuration ------------------------------------------------------------------------------

# server name -> server-level directives; ("angie", line) is given to angie-mail only
SERVERS = {
    "std": [],
    "lim": ["max_errors 2;", "proxy_pass_error_message on;"],
    "all": ["imap_auth plain login cram-md5 external;",
            'imap_capabilities IMAP4rev1 "" LITERAL+;'],
    "cap": ["imap_capabilities SEE-THIS;"],
    "tls": ["starttls on;"],
    "only": ["starttls only;"],
    "ssl": [],
    "tmo": ["timeout 2s;", "proxy_timeout 2s;"],
    "dead": ["auth_http 127.0.0.1:{dead}/x;"],
    "oauth": [("angie", "imap_auth plain xoauth2 oauthbearer;")],
    "mc": [("angie", "max_commands 3;")],
}
IMPLICIT_TLS = ("ssl",)


def make_backends() -> dict:
    return {"backend": ImapBackend(),
            "byegreet": ImapBackend(greeting=b"* BYE go away\r\n"),
            "closegreet": ImapBackend(greeting=None),
            "longgreet": ImapBackend(greeting=b"* OK " + b"x" * 5000),
            "bareplus": ImapBackend(continuation=b"+\r\n")}


def mail_block_for(pki):
    return tls_mail_block("imap", SERVERS, IMPLICIT_TLS, pki)


@pytest.fixture(scope="module")
def nginx_side(tmp_path_factory, pki):
    with running_side("nginx", tmp_path_factory.mktemp("imap-nginx"), make_backends,
                      SERVERS, mail_block_for(pki), IMPLICIT_TLS) as side:
        yield side


@pytest.fixture(scope="module")
def angie_side(tmp_path_factory, pki):
    with running_side("angie", tmp_path_factory.mktemp("imap-angie"), make_backends,
                      SERVERS, mail_block_for(pki), IMPLICIT_TLS) as side:
        yield side


# --- sessions -------------------------------------------------------------------------------------

L1 = Lines(1)
L2 = Lines(2)
G = b"* OK IMAP4 ready\r\n"
LOGOUT = b"z LOGOUT\r\n"
BYE = b"* BYE\r\nz OK completed\r\n"                  # the proxy's LOGOUT reply
RELAYED_LOGOUT = b"z OK logout ok\r\n"                 # the backend's, after login
LOGIN_OK = b"a OK login ok\r\n"
LOGIN = b"a LOGIN test@example.com secret\r\n"
BAD = b"a BAD invalid command\r\n"
NO = b"a NO Invalid login or password\r\n"
INTERNAL = b"* BAD internal server error\r\n"
CAPA = b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS"
USERNAME = b"+ VXNlcm5hbWU6\r\n"
PASSWORD = b"+ UGFzc3dvcmQ6\r\n"
SALT_CHALLENGE = b"+ base64(<R.T@mail.example.com>)\r\n"     # normalised CRAM-MD5 challenge
PLAIN_IR = b64(b"\0test@example.com\0secret")

# the backend side of a successful login of test@example.com/secret with tag "a"
BACKEND_LOGIN = [b"a LOGIN {16}\r\n", b"test@example.com {6}\r\n", b"secret\r\n"]


def bads(tags: bytes) -> bytes:
    """``<tag> BAD invalid command`` for every one-letter tag in tags."""
    return b"".join(bytes([t]) + b" BAD invalid command\r\n" for t in tags)


CASES = [
    # greeting, LOGOUT, NOOP, CAPABILITY ------------------------------------------------------
    Case("greeting_logout", "std", [LOGOUT], expect=G + BYE),
    Case("logout_later_bytes_ignored", "std", [b"z LOGOUT\r\na NOOP\r\n"], expect=G + BYE),
    Case("logout_with_arguments", "std", [b"z LOGOUT now please\r\n"], expect=G + BYE),
    Case("noop_and_arguments", "std", [
        b"a NOOP\r\n", L1, b"b NOOP x y z\r\n", L1, b"c NOOP x y z w\r\n", L1, LOGOUT],
        expect=G + b"a OK completed\r\nb OK completed\r\nc BAD invalid command\r\n" + BYE),
    Case("capability_default", "std", [b"a CAPABILITY\r\n", L2, LOGOUT],
         expect=G + CAPA + b" AUTH=PLAIN\r\na OK completed\r\n" + BYE),
    Case("capability_with_arguments", "std", [b"a CAPABILITY x \"y\" {0+}\r\nz\r\n", L2,
                                              LOGOUT],
         expect=G + CAPA + b" AUTH=PLAIN\r\na OK completed\r\n" + BYE),
    Case("capability_all_mechanisms_empty_item", "all", [b"a CAPABILITY\r\n", L2, LOGOUT],
         expect=G + b"* CAPABILITY IMAP4rev1  LITERAL+ AUTH=PLAIN AUTH=LOGIN AUTH=CRAM-MD5 "
                    b"AUTH=EXTERNAL\r\na OK completed\r\n" + BYE),
    Case("capability_custom", "cap", [b"a CAPABILITY\r\n", L2, LOGOUT],
         expect=G + b"* CAPABILITY SEE-THIS AUTH=PLAIN\r\na OK completed\r\n" + BYE),
    Case("capability_starttls_on", "tls", [b"a CAPABILITY\r\n", L2, LOGOUT],
         expect=G + CAPA + b" AUTH=PLAIN STARTTLS\r\na OK completed\r\n" + BYE),
    Case("capability_starttls_only", "only", [b"a CAPABILITY\r\n", L2, LOGOUT],
         expect=G + CAPA + b" STARTTLS LOGINDISABLED\r\na OK completed\r\n" + BYE),
    Case("capability_implicit_tls", "ssl", [b"a CAPABILITY\r\n", L2, LOGOUT],
         expect=G + CAPA + b" AUTH=PLAIN\r\na OK completed\r\n" + BYE),
    Case("lowercase_and_mixed_case_commands", "std", [
        b"a noop\r\n", L1, b"b CaPaBiLiTy\r\n", L2, b"z logout\r\n"],
        expect=G + b"a OK completed\r\n" + CAPA + b" AUTH=PLAIN\r\nb OK completed\r\n" + BYE),
    # STARTTLS --------------------------------------------------------------------------------
    Case("starttls_then_login", "tls", [
        b"s STARTTLS\r\n", L1, Tls(), b"b CAPABILITY\r\n", L2, LOGIN, L1, LOGOUT],
        expect=G + b"s OK completed\r\n" + CAPA + b" AUTH=PLAIN\r\nb OK completed\r\n"
        + LOGIN_OK + RELAYED_LOGOUT),
    Case("starttls_discards_pipelined_bytes", "tls", [
        b"s STARTTLS\r\nb NOOP\r\n", L1, Tls(), b"c NOOP\r\n", L1, LOGOUT],
        expect=G + b"s OK completed\r\nc OK completed\r\n" + BYE),
    Case("starttls_only_refuses_authentication", "only", [
        LOGIN, L1, b"b AUTHENTICATE PLAIN " + PLAIN_IR + b"\r\n", L1,
        b"c AUTHENTICATE\r\n", L1, b"d NOOP\r\n", L1, b"s STARTTLS\r\n", L1, Tls(),
        b"e CAPABILITY\r\n", L2, LOGIN, L1, LOGOUT],
        expect=G + BAD + b"b BAD invalid command\r\nc BAD invalid command\r\n"
        b"d OK completed\r\ns OK completed\r\n" + CAPA + b" AUTH=PLAIN\r\ne OK completed\r\n"
        + LOGIN_OK + RELAYED_LOGOUT),
    Case("starttls_not_configured", "std", [b"s STARTTLS\r\n", L1, LOGOUT],
         expect=G + b"s BAD invalid command\r\n" + BYE),
    Case("starttls_on_implicit_tls", "ssl", [b"s STARTTLS\r\n", L1, LOGOUT],
         expect=G + b"s BAD invalid command\r\n" + BYE),
    Case("implicit_tls_login", "ssl", [LOGIN, L1, LOGOUT],
         expect=G + LOGIN_OK + RELAYED_LOGOUT),
    # tags, command words, arguments ----------------------------------------------------------
    Case("empty_tag", "std", [b" NOOP\r\n", L1, LOGOUT], expect=G + b" OK completed\r\n" + BYE),
    Case("tag_characters", "std", [
        b"A.b-C_9 NOOP\r\n", L1, b"a*b NOOP\r\n", L1, b"+ NOOP\r\n", L1, b"a\tb NOOP\r\n", L1,
        LOGOUT],
        expect=G + b"A.b-C_9 OK completed\r\n" + b"* BAD invalid command\r\n" * 3 + BYE),
    Case("tag_length_32_and_33", "std", [
        b"t" * 32 + b" NOOP\r\n", L1, b"t" * 33 + b" NOOP\r\n", L1, LOGOUT],
        expect=G + b"t" * 32 + b" OK completed\r\n* BAD invalid command\r\n" + BYE),
    Case("several_spaces_and_line_ends", "std", [
        b"a   NOOP  \r\n", L1, b"b NOOP\n", L1, b"c NOOP x\n", L1, LOGOUT],
        expect=G + b"a OK completed\r\nb OK completed\r\nc OK completed\r\n" + BYE),
    Case("tag_without_command", "std", [b"a\r\n", L1, b"b \r\n", L1, b"\r\n", L1, LOGOUT],
         expect=G + b"* BAD invalid command\r\nb BAD invalid command\r\n"
         b"* BAD invalid command\r\n" + BYE),
    Case("invalid_command_words", "std", [
        b"a ID (\"name\" \"x\")\r\n", L1, b"b SELECT INBOX\r\n", L1, b"c NOOP1\r\n", L1,
        b"d NO\tOP\r\n", L1, LOGOUT],
        expect=G + b"a BAD invalid command\r\nb BAD invalid command\r\n"
        b"c BAD invalid command\r\nd BAD invalid command\r\n" + BYE),
    Case("bare_cr", "std", [b"a NOOP\rx\r\n", L1, b"b NOOP x\ry\r\n", L1, LOGOUT],
         expect=G + b"a BAD invalid command\r\nb BAD invalid command\r\n" + BYE),
    Case("pipelined_pre_auth_commands", "std", [
        b"a NOOP\r\nb CAPABILITY\r\nc FOO\r\nd LOGIN\r\nz LOGOUT\r\n"],
        expect=G + b"a OK completed\r\n" + CAPA + b" AUTH=PLAIN\r\nb OK completed\r\n"
        b"c BAD invalid command\r\nd BAD invalid command\r\n" + BYE),
    # LOGIN arguments: quoted strings, literals -----------------------------------------------
    Case("login_argument_count", "std", [
        b"a LOGIN\r\n", L1, b"b LOGIN onlyuser\r\n", L1, b"c LOGIN u p x\r\n", L1,
        b"d LOGIN \"\" secret\r\n", L1, LOGOUT],
        expect=G + b"a BAD invalid command\r\nb BAD invalid command\r\n"
        b"c BAD invalid command\r\nd BAD invalid command\r\n" + BYE),
    Case("login_quoted_escapes", "std", [
        b'a LOGIN "te\\\\\\"st@example.com" "se\\\\\\"cret"\r\n', L1], expect=G + NO),
    Case("login_quoted_adjacent", "std", [
        b'a LOGIN "test@example.com""secret"\r\n', L1, LOGOUT],
        expect=G + LOGIN_OK + RELAYED_LOGOUT),
    Case("login_quoted_then_atom", "std", [
        b'a LOGIN "test@example.com"secret\r\n', L1, LOGOUT],
        expect=G + LOGIN_OK + RELAYED_LOGOUT),
    Case("login_empty_password", "std", [b'a LOGIN test@example.com ""\r\n', L1],
         expect=G + NO),
    Case("login_escaping_to_auth_server", "std", [b'a LOGIN "te st%" "p\xe9 %\t"\r\n', L1],
         expect=G + NO),
    Case("login_nul_and_8bit", "std", [b"a LOGIN {3}\r\n", L1, b"u\0\xff p\x80\x01\r\n", L1],
         expect=G + b"+ OK\r\n" + NO),
    Case("sticky_quoted_mode", "std", [
        b'a LOGIN "x\r\n', L1, b"b LOGIN user pass\r\n", L1, b"c NOOP\r\n", L1,
        b'd LOGIN use\\r" secretx\r\n', L1],
        expect=G + BAD + b"b BAD invalid command\r\nc OK completed\r\n"
        b"d NO Invalid login or password\r\n"),
    Case("quoted_backslash_before_line_end", "std", [b'a LOGIN "x\\\r\n', L1, LOGOUT],
         expect=G + BAD + BYE),
    Case("literal_synchronizing", "std", [
        b"a LOGIN {16}\r\n", L1, b"test@example.com {6}\r\n", L1, b"secret\r\n", L1, LOGOUT],
        expect=G + b"+ OK\r\n+ OK\r\n" + LOGIN_OK + RELAYED_LOGOUT),
    Case("literal_synchronizing_pipelined", "std", [
        b"a LOGIN {16}\r\ntest@example.com {6}\r\nsecret\r\n", Lines(3), LOGOUT],
        expect=G + b"+ OK\r\n+ OK\r\n" + LOGIN_OK + RELAYED_LOGOUT),
    Case("literal_non_synchronizing", "std", [
        b"a LOGIN {16+}\r\ntest@example.com {6+}\r\nsecret\r\n", L1, LOGOUT],
        expect=G + LOGIN_OK + RELAYED_LOGOUT),
    Case("literal_with_crlf_and_quotes_inside", "std", [
        b"a LOGIN {5+}\r\n\"a\r\nb {4+}\r\n p\"\r\n", L1], expect=G + NO),
    Case("literal_leading_zeros", "std", [
        b"a LOGIN {016+}\r\ntest@example.com {0006+}\r\nsecret\r\n", L1, LOGOUT],
        expect=G + LOGIN_OK + RELAYED_LOGOUT),
    Case("literal_zero_takes_one_byte", "std", [b"g LOGIN u2 {0+}\r\n\r\n", L1],
         expect=G + b"g NO Invalid login or password\r\n"),
    Case("literal_zero_synchronizing", "std", [b"g LOGIN u3 {0}\r\n", L1, b"x\r\n", L1],
         expect=G + b"+ OK\r\ng NO Invalid login or password\r\n"),
    Case("literal_empty_braces", "std", [b"g LOGIN u4 {}\r\n", L1, b"y\r\n", L1],
         expect=G + b"+ OK\r\ng NO Invalid login or password\r\n"),
    Case("literal_bad_headers", "std", [
        b"a LOGIN {1x}\r\n", L1, b"b LOGIN {3} \r\n", L1, b"c LOGIN {3}x\r\n", L1, LOGOUT],
        expect=G + BAD + b"b BAD invalid command\r\nc BAD invalid command\r\n" + BYE),
    Case("literal_cr_before_lf", "std", [b"a NOOP {3}\r\r\r\n", L1, b"abc\r\n", L1, LOGOUT],
         expect=G + b"+ OK\r\na OK completed\r\n" + BYE),
    Case("literal_in_noop", "std", [b"a NOOP {3}\r\n", L1, b"abc\r\n", L1, LOGOUT],
         expect=G + b"+ OK\r\na OK completed\r\n" + BYE),
    Case("synchronizing_literal_on_invalid_line", "std", [b"a FOO {3}\r\n", L1,
                                                          b"b NOOP\r\n", L1, LOGOUT],
         expect=G + BAD + b"b OK completed\r\n" + BYE),
    Case("non_synchronizing_guard_closes", "std", [b"a03 FOOBAR {10+}\r\n", L1],
         expect=G + b"a03 BAD invalid command\r\n"),
    Case("non_synchronizing_guard_untagged", "std", [b"ab+}\r\n", L1],
         expect=G + b"* BAD invalid command\r\n"),
    Case("non_synchronizing_guard_offset_4", "std", [b"a+}\r\n", L1, b"b NOOP\r\n", L1,
                                                     LOGOUT],
         expect=G + b"* BAD invalid command\r\nb OK completed\r\n" + BYE),
    # line length -----------------------------------------------------------------------------
    Case("line_of_buffer_size", "std", [line_of(4096, b"a NOOP "), L1, LOGOUT],
         expect=G + b"a OK completed\r\n" + BYE),
    Case("line_over_buffer_size", "std", [line_of(4098, b"a NOOP ")[:4096], L1],
         expect=G + BAD),
    Case("line_over_buffer_size_no_tag", "std", [b"a" * 10 + b"+" * 4086, L1],
         expect=G + b"* BAD invalid command\r\n"),
    # errors ----------------------------------------------------------------------------------
    Case("max_errors_default_5", "std", [b"a FOO\r\n" * 5],
         expect=G + BAD * 5),
    Case("max_errors_2", "lim", [b"a FOO\r\n", L1, b"b BAR\r\n"],
         expect=G + BAD + b"b BAD invalid command\r\n"),
    Case("max_errors_2_pipelined", "lim", [b"a FOO\r\nb NOOP\r\nc BAR\r\nd NOOP\r\n"],
         expect=G + BAD + b"b OK completed\r\nc BAD invalid command\r\n"),
    Case("handler_errors_do_not_count", "lim", [
        b"a LOGIN\r\n", L1, b"b AUTHENTICATE\r\n", L1, b"c AUTHENTICATE FOO\r\n", L1,
        b"d STARTTLS\r\n", L1, b"e AUTHENTICATE CRAM-MD5\r\n", L1, b"f FOO\r\n", L1,
        b"g NOOP\r\n", L1, LOGOUT],
        expect=G + BAD + bads(b"bcdef")
        + b"g OK completed\r\n" + BYE),
    # AUTHENTICATE ----------------------------------------------------------------------------
    Case("authenticate_plain_initial_response", "std", [
        b"a AUTHENTICATE PLAIN " + PLAIN_IR + b"\r\n", L1, LOGOUT],
        expect=G + LOGIN_OK + RELAYED_LOGOUT),
    Case("authenticate_plain_continuation", "std", [
        b"a AUTHENTICATE PLAIN\r\n", L1, PLAIN_IR + b"\r\n", L1, LOGOUT],
        expect=G + b"+ \r\n" + LOGIN_OK + RELAYED_LOGOUT),
    Case("authenticate_lowercase_and_authzid", "std", [
        b"a authenticate plain " + b64(b"admin\0test@example.com\0secret") + b"\r\n", L1,
        LOGOUT],
        expect=G + LOGIN_OK + RELAYED_LOGOUT),
    Case("authenticate_login_stepwise", "std", [
        b"a AUTHENTICATE LOGIN\r\n", L1, b64(b"test@example.com") + b"\r\n", L1,
        b64(b"secret") + b"\r\n", L1, LOGOUT],
        expect=G + USERNAME + PASSWORD + LOGIN_OK + RELAYED_LOGOUT),
    Case("authenticate_login_initial_response", "std", [
        b"a AUTHENTICATE LOGIN " + b64(b"test@example.com") + b"\r\n", L1,
        b64(b"secret") + b"\r\n", L1, LOGOUT],
        expect=G + PASSWORD + LOGIN_OK + RELAYED_LOGOUT),
    Case("authenticate_login_pipelined", "std", [
        b"a AUTHENTICATE LOGIN\r\n" + b64(b"test@example.com") + b"\r\n" + b64(b"secret")
        + b"\r\nz LOGOUT\r\n"],
        expect=G + USERNAME + PASSWORD + LOGIN_OK + RELAYED_LOGOUT),
    Case("authenticate_login_bad_username_is_untagged", "std", [
        b"a AUTHENTICATE LOGIN\r\n", L1, b"!!!\r\n", L1, b"b NOOP\r\n", L1, LOGOUT],
        expect=G + USERNAME + b"BAD invalid command\r\nb OK completed\r\n" + BYE),
    Case("authenticate_login_bad_password_is_tagged", "std", [
        b"a AUTHENTICATE LOGIN\r\n", L1, b64(b"u") + b"\r\n", L1, b"!!!\r\n", L1, LOGOUT],
        expect=G + USERNAME + PASSWORD + BAD + BYE),
    Case("authenticate_continuation_is_not_a_command", "std", [
        b"a AUTHENTICATE PLAIN\r\n", L1, b"b NOOP\r\n", L1, LOGOUT],
        expect=G + b"+ \r\n" + BAD + BYE),
    Case("authenticate_continuation_extra_tokens", "std", [
        b"a AUTHENTICATE LOGIN\r\n", L1, b64(b"test@example.com") + b" x y\r\n", L1,
        b64(b"secret") + b"\r\n", L1, LOGOUT],
        expect=G + USERNAME + PASSWORD + LOGIN_OK + RELAYED_LOGOUT),
    Case("authenticate_plain_malformed", "std", [
        b"a AUTHENTICATE PLAIN !!!!\r\n", L1,
        b"b AUTHENTICATE PLAIN " + b64(b"no-nul-at-all") + b"\r\n", L1,
        b"c AUTHENTICATE PLAIN " + b64(b"\0only-login") + b"\r\n", L1,
        b"d AUTHENTICATE PLAIN a b\r\n", L1, b"e NOOP\r\n", L1, LOGOUT],
        expect=G + BAD + b"b BAD invalid command\r\nc BAD invalid command\r\n"
        b"d BAD invalid command\r\ne OK completed\r\n" + BYE),
    Case("authenticate_unknown_or_disabled", "std", [
        b"a AUTHENTICATE\r\n", L1, b"b AUTHENTICATE FOO\r\n", L1,
        b"c AUTHENTICATE CRAM-MD5\r\n", L1, b"d AUTHENTICATE EXTERNAL\r\n", L1,
        b"e AUTHENTICATE XOAUTH2\r\n", L1, LOGOUT],
        expect=G + BAD + bads(b"bcde") + BYE),
    Case("authenticate_cram_md5", "all", [
        b"a AUTHENTICATE CRAM-MD5\r\n", L1, b64(b"test@example.com " + GOOD_DIGEST) + b"\r\n",
        L1, LOGOUT],
        expect=G + SALT_CHALLENGE + LOGIN_OK + RELAYED_LOGOUT),
    Case("authenticate_cram_md5_no_auth_pass", "all", [
        b"a AUTHENTICATE CRAM-MD5\r\n", L1,
        b64(b"test@example.com " + NOPASS_DIGEST) + b"\r\n", L1],
        expect=G + SALT_CHALLENGE + INTERNAL),
    Case("authenticate_cram_md5_salt_kept", "all", [
        b"a AUTHENTICATE CRAM-MD5\r\n", L1, b64(b"test@example.com " + b"2" * 32) + b"\r\n",
        L1, b"b AUTHENTICATE CRAM-MD5\r\n", L1,
        b64(b"test@example.com " + GOOD_DIGEST) + b"\r\n", L1, LOGOUT],
        expect=G + SALT_CHALLENGE + NO + SALT_CHALLENGE + b"b OK login ok\r\n"
        + RELAYED_LOGOUT),
    Case("authenticate_cram_md5_malformed", "all", [
        b"a AUTHENTICATE CRAM-MD5 " + b64(b"x") + b"\r\n", L1,
        b"b AUTHENTICATE CRAM-MD5\r\n", L1, b64(b"test@example.com short") + b"\r\n", L1,
        b"c NOOP\r\n", L1, LOGOUT],
        expect=G + BAD + SALT_CHALLENGE + b"b BAD invalid command\r\nc OK completed\r\n"
        + BYE),
    Case("authenticate_external", "all", [
        b"a AUTHENTICATE EXTERNAL\r\n", L1, b64(b"test@example.com") + b"\r\n", L1, LOGOUT],
        expect=G + USERNAME + LOGIN_OK + RELAYED_LOGOUT),
    Case("authenticate_external_initial_response", "all", [
        b"a AUTHENTICATE EXTERNAL " + b64(b"test@example.com") + b"\r\n", L1, LOGOUT],
        expect=G + LOGIN_OK + RELAYED_LOGOUT),
    Case("authenticate_external_no_auth_pass", "all", [
        b"a AUTHENTICATE EXTERNAL " + b64(b"someone") + b"\r\n", L1],
        expect=G + INTERNAL),
    Case("authenticate_login_on_all", "all", [
        b"a AUTHENTICATE LOGIN\r\n", L1, b64(b"test@example.com") + b"\r\n", L1,
        b64(b"secret") + b"\r\n", L1, LOGOUT],
        expect=G + USERNAME + PASSWORD + LOGIN_OK + RELAYED_LOGOUT),
    # authentication outcomes -----------------------------------------------------------------
    Case("login_success_relay", "std", [LOGIN, L1, b"b NOOP\r\n", L1, LOGOUT],
         expect=G + LOGIN_OK + b"b ERR unknown command\r\n" + RELAYED_LOGOUT),
    Case("login_failure_closes", "std", [b"a LOGIN test@example.com wrong\r\n", L1],
         expect=G + NO),
    Case("login_failure_wait_then_success", "std", [
        b"a LOGIN test@example.com wait1\r\n", L1, b"b NOOP\r\n", L1,
        b"c LOGIN test@example.com secret\r\n", L1, LOGOUT],
        expect=G + NO + b"b OK completed\r\nc OK login ok\r\n" + RELAYED_LOGOUT),
    Case("auth_wait_pipelined_commands_after_failure", "std", [
        b"a LOGIN test@example.com wait1\r\nb NOOP\r\nc CAPABILITY\r\n", Lines(4), LOGOUT],
        expect=G + NO + b"b OK completed\r\n" + CAPA + b" AUTH=PLAIN\r\nc OK completed\r\n"
        + BYE),
    Case("data_sent_during_auth_wait", "std", [
        b"a LOGIN test@example.com wait1\r\n", b"b NOOP\r\n", L2, LOGOUT],
        expect=G + NO + b"b OK completed\r\n" + BYE),
    Case("pipelined_after_login_reach_backend", "std", [
        b"a LOGIN test@example.com secret\r\nb NOOP\r\nz LOGOUT\r\n"],
        expect=G + LOGIN_OK + b"b ERR unknown command\r\n" + RELAYED_LOGOUT),
    Case("pipelined_after_authenticate_reach_backend", "std", [
        b"a AUTHENTICATE PLAIN\r\n", L1, PLAIN_IR + b"\r\nb NOOP\r\nz LOGOUT\r\n"],
        expect=G + b"+ \r\n" + LOGIN_OK + b"b ERR unknown command\r\n" + RELAYED_LOGOUT),
    Case("auth_status_wait_then_ok", "std", [b"a LOGIN wait waitok\r\n", L1, LOGOUT],
         expect=G + LOGIN_OK + RELAYED_LOGOUT),
    Case("auth_user_and_pass_to_backend", "std", [b"a LOGIN authpass secret\r\n", L1, LOGOUT],
         expect=G + LOGIN_OK + RELAYED_LOGOUT),
    Case("auth_status_text_verbatim", "std", [b"a LOGIN spaced secret\r\n", L1],
         expect=G + b"a NO spaced  text\r\n"),
    Case("auth_status_lowercase_ok", "std", [b"a LOGIN lowerok secret\r\n", L1],
         expect=G + b"a NO ok\r\n"),
    Case("auth_status_later_failure_wins", "std", [b"a LOGIN twofail secret\r\n", L1],
         expect=G + b"a NO second\r\n"),
    Case("auth_wait_zero_closes", "std", [b"a LOGIN wait0 secret\r\n", L1], expect=G + NO),
    Case("auth_status_code_ignored", "std", [b"a LOGIN status500 secret\r\n", L1, LOGOUT],
         expect=G + LOGIN_OK + RELAYED_LOGOUT),
    Case("auth_server_garbage", "std", [b"a LOGIN garbage secret\r\n", L1],
         expect=G + INTERNAL),
    Case("auth_server_closes", "std", [b"a LOGIN close secret\r\n", L1], expect=G + INTERNAL),
    Case("auth_server_no_backend", "std", [b"a LOGIN noserver secret\r\n", L1],
         expect=G + INTERNAL),
    Case("auth_server_hostname_not_ip", "std", [b"a LOGIN hostname secret\r\n", L1],
         expect=G + INTERNAL),
    Case("auth_response_bad_port", "std", [b"a LOGIN badport secret\r\n", L1],
         expect=G + INTERNAL),
    Case("auth_server_down", "dead", [LOGIN, L1], expect=G + INTERNAL),
    # backend login ---------------------------------------------------------------------------
    Case("backend_refuses_error_message_off", "std", [b"a LOGIN backendno secret\r\n", L1],
         expect=G + INTERNAL),
    Case("backend_refuses_error_message_on", "lim", [b"a LOGIN backendno secret\r\n", L1],
         expect=G + b"a NO [AUTHENTICATIONFAILED] backend says no\r\n"),
    Case("backend_greeting_bye_error_message_off", "std", [b"a LOGIN byegreet secret\r\n",
                                                           L1],
         expect=G + INTERNAL),
    Case("backend_greeting_bye_error_message_on", "lim", [b"a LOGIN byegreet secret\r\n",
                                                          L1],
         expect=G + b"* BYE go away\r\n"),
    Case("backend_closes_at_greeting", "lim", [b"a LOGIN closegreet secret\r\n", L1],
         expect=G + INTERNAL),
    Case("backend_greeting_too_long", "lim", [b"a LOGIN longgreet secret\r\n", L1],
         expect=G + INTERNAL),
    Case("backend_bare_plus_stalls_until_timeout", "tmo", [b"a LOGIN bareplus secret\r\n",
                                                           L1],
         expect=G + INTERNAL),
    Case("backend_two_untagged_lines_error_message_off", "std", [
        b"a LOGIN twountagged secret\r\n", L1], expect=G + INTERNAL),
    Case("backend_lowercase_ok", "lim", [b"a LOGIN lowercaseok secret\r\n", L1],
         expect=G + b"a ok login ok\r\n"),
    Case("backend_wrong_tag", "lim", [b"a LOGIN wrongtag secret\r\n", L1],
         expect=G + b"xa OK login ok\r\n"),
    Case("backend_closes_after_login_command", "lim", [b"a LOGIN backendclose secret\r\n",
                                                       L1],
         expect=G + INTERNAL),
    # timeouts --------------------------------------------------------------------------------
    Case("preauth_timeout_is_a_deadline", "tmo", [b"a NOOP\r\n", L1],
         expect=G + b"a OK completed\r\n"),
    Case("proxy_timeout_ends_idle_session", "tmo", [LOGIN, L1], expect=G + LOGIN_OK),
]


# --- where nginx 1.22 and Angie differ (imap.md §16) ---------------------------------------------

TOKEN = b"ya29.token"
XOAUTH2_IR = b64(b"user=test@example.com\x01auth=Bearer " + TOKEN + b"\x01\x01")
OAUTHBEARER_BAD = b64(b"n,a=test@example.com,\x01host=x\x01auth=Bearer saslfail\x01\x01")
# 455 short commands and the first byte of the next one: exactly imap_client_buffer bytes
PIPELINE = b"pp NOOP\r\n" * 455 + b"p"
SALT = b"<R.T@mail.example.com>"

DIFFERENCE_CASES = [
    Case("capability_xoauth2_oauthbearer", "oauth", [b"a CAPABILITY\r\n", L2, LOGOUT]),
    Case("authenticate_xoauth2", "oauth", [
        b"a AUTHENTICATE XOAUTH2 " + XOAUTH2_IR + b"\r\n", L1, LOGOUT]),
    Case("authenticate_oauthbearer_sasl_error", "oauth", [
        b"a AUTHENTICATE OAUTHBEARER " + OAUTHBEARER_BAD + b"\r\n", L1, b"AQ==\r\n", L1,
        b"b NOOP\r\n", L1, LOGOUT]),
    Case("max_commands", "mc", [b"a NOOP\r\n", L1, b"b NOOP\r\n", L1, b"c NOOP\r\n", L1,
                                b"d NOOP\r\n", L1], timeout=2),
    Case("authenticate_external_ir_not_enabled", "std", [
        b"a AUTHENTICATE EXTERNAL " + b64(b"test@example.com") + b"\r\n", L1, LOGOUT]),
    Case("external_after_failed_plain_keeps_password", "all", [
        b"a AUTHENTICATE PLAIN " + b64(b"\0test@example.com\0wait1") + b"\r\n", L1,
        b"b AUTHENTICATE EXTERNAL " + b64(b"test@example.com") + b"\r\n", L1, LOGOUT]),
    Case("external_after_failed_plain_no_auth_pass", "all", [
        b"a AUTHENTICATE PLAIN " + b64(b"\0someone\0wait1") + b"\r\n", L1,
        b"b AUTHENTICATE EXTERNAL " + b64(b"someone") + b"\r\n", L1], timeout=2),
    Case("pipeline_longer_than_buffer", "std", [PIPELINE, Lines(456), b"p NOOP\r\n" + LOGOUT,
                                                 Lines(3)], timeout=2),
    Case("untagged_line_before_login_reply", "std", [b"a LOGIN capability@x secret\r\n", L2],
         timeout=2),
    Case("untagged_line_before_login_reply_pass_error", "lim", [
        b"a LOGIN capability@x secret\r\n", L2], timeout=2),
    Case("literal_followed_by_junk", "std", [b"a LOGIN u {3}\r\n", L1, b"abcX\r\n", L1],
         timeout=2),
    Case("literal_length_overflow", "std", [b"a LOGIN {99999999999999999999}\r\n", L1,
                                            b"b NOOP\r\n", L1], timeout=2),
    Case("no_tag_after_failed_authentication", "std", [
        b"a1 LOGIN test@example.com wait1\r\n", L1, b"*\r\n", L1, b"b NOOP\r\n", L1, LOGOUT]),
    Case("auth_salt_after_cram_md5_challenge", "all", [
        b"a AUTHENTICATE CRAM-MD5\r\n", L1, b"!!\r\n", L1,
        b"b AUTHENTICATE EXTERNAL " + b64(b"test@example.com") + b"\r\n", L1, LOGOUT]),
]


def client(data: bytes, events=("EOF",)):
    """The expected client result: what it received, and how the session ended."""
    return data, list(events)


def outcome(transcript):
    return server_bytes(transcript), [e[0] for e in transcript if e[0] not in ("S", "C", "TLS")]


# case id -> (spec reference, {result key: {"nginx": value, "angie": value}}); the client
# key is compared through outcome(); keys not listed must be identical on both sides.
EXPECTED_NGINX_DIFFERENCES: dict = {
    "capability_xoauth2_oauthbearer": ("imap.md §16.1, §5", {"client": {
        "nginx": client(G + CAPA + b" AUTH=PLAIN\r\na OK completed\r\n" + BYE),
        "angie": client(G + CAPA + b" AUTH=PLAIN AUTH=XOAUTH2 AUTH=OAUTHBEARER\r\n"
                        b"a OK completed\r\n" + BYE)}}),
    "authenticate_xoauth2": ("imap.md §16.1, §7, §11", {
        "client": {"nginx": client(G + BAD + BYE),
                   "angie": client(G + LOGIN_OK + RELAYED_LOGOUT)},
        "auth": {"nginx": [],
                 "angie": [auth_request(b"xoauth2", b"test@example.com", TOKEN)]},
        "backend": {"nginx": [],
                    "angie": [b"a LOGIN {16}\r\n", b"test@example.com {%d}\r\n" % len(TOKEN),
                              TOKEN + b"\r\n", LOGOUT]},
        "backend connections": {"nginx": (0, 0, 0, 0, 0), "angie": (1, 0, 0, 0, 0)}}),
    "authenticate_oauthbearer_sasl_error": ("imap.md §16.1, §7.3, §15", {
        "client": {"nginx": client(G + BAD + b"* BAD invalid command\r\nb OK completed\r\n"
                                   + BYE),
                   "angie": client(G + b"+ " + SASL_ERROR + b"\r\n" + NO
                                   + b"b OK completed\r\n" + BYE)},
        "auth": {"nginx": [],
                 "angie": [auth_request(b"oauthbearer", b"test@example.com", b"saslfail")]}}),
    "max_commands": ("imap.md §16.2, §8", {"client": {
        "nginx": client(G + b"a OK completed\r\nb OK completed\r\nc OK completed\r\n"
                        b"d OK completed\r\n", ["TIMEOUT"]),
        "angie": client(G + b"a OK completed\r\nb OK completed\r\nc OK completed\r\n"
                        b"d BAD invalid command\r\n")}}),
    "authenticate_external_ir_not_enabled": ("imap.md §16.3, §7.0", {
        "client": {"nginx": client(G + LOGIN_OK + RELAYED_LOGOUT),
                   "angie": client(G + BAD + BYE)},
        "auth": {"nginx": [auth_request(b"external", b"test@example.com", b"")],
                 "angie": []},
        "backend": {"nginx": BACKEND_LOGIN + [LOGOUT], "angie": []},
        "backend connections": {"nginx": (1, 0, 0, 0, 0), "angie": (0, 0, 0, 0, 0)}}),
    "external_after_failed_plain_keeps_password": ("imap.md §16.4, §7.2, §15", {"auth": {
        "nginx": [auth_request(b"plain", b"test@example.com", b"wait1"),
                  auth_request(b"external", b"test@example.com", b"wait1", attempt=2)],
        "angie": [auth_request(b"plain", b"test@example.com", b"wait1"),
                  auth_request(b"external", b"test@example.com", b"", attempt=2)]}}),
    "external_after_failed_plain_no_auth_pass": ("imap.md §16.4, §7.2, §11", {
        "client": {"nginx": client(G + NO + b"b OK login ok\r\n", ["TIMEOUT"]),
                   "angie": client(G + NO + INTERNAL)},
        "auth": {"nginx": [auth_request(b"plain", b"someone", b"wait1"),
                           auth_request(b"external", b"someone", b"wait1", attempt=2)],
                 "angie": [auth_request(b"plain", b"someone", b"wait1"),
                           auth_request(b"external", b"someone", b"", attempt=2)]},
        "backend": {"nginx": [b"b LOGIN {7}\r\n", b"someone {5}\r\n", b"wait1\r\n"],
                    "angie": []},
        "backend connections": {"nginx": (1, 0, 0, 0, 0), "angie": (0, 0, 0, 0, 0)}}),
    "pipeline_longer_than_buffer": ("imap.md §16.5, §9", {"client": {
        "nginx": client(G + b"pp OK completed\r\n" * 455 + b"* BAD invalid command\r\n"),
        "angie": client(G + b"pp OK completed\r\n" * 456 + BYE, ["TIMEOUT", "EOF"])}}),
    "untagged_line_before_login_reply": ("imap.md §16.6, §12 step 8", {"client": {
        "nginx": client(G + INTERNAL),
        "angie": client(G + b"* CAPABILITY IMAP4rev1\r\n" + LOGIN_OK, ["TIMEOUT"])}}),
    "untagged_line_before_login_reply_pass_error": ("imap.md §16.6, §12 steps 8-10", {"client": {
        "nginx": client(G + b"* CAPABILITY IMAP4rev1\r\n" + LOGIN_OK),
        "angie": client(G + b"* CAPABILITY IMAP4rev1\r\n" + LOGIN_OK, ["TIMEOUT"])}}),
    "literal_followed_by_junk": ("imap.md §16.7, §3.2", {
        "client": {"nginx": client(G + b"+ OK\r\n" + NO),
                   "angie": client(G + b"+ OK\r\n" + BAD, ["TIMEOUT"])},
        "auth": {"nginx": [auth_request(b"plain", b"u", b"abc")], "angie": []}}),
    "literal_length_overflow": ("imap.md §16.7, §3.2", {"client": {
        "nginx": client(G + b"+ OK\r\n", ["TIMEOUT", "TIMEOUT"]),
        "angie": client(G + BAD + b"b OK completed\r\n", ["TIMEOUT"])}}),
    "no_tag_after_failed_authentication": ("imap.md §16.8, §11", {"client": {
        "nginx": client(G + b"a1 NO Invalid login or password\r\n*\r\nBAD invalid command\r\n"
                        b"b OK completed\r\n" + BYE),
        "angie": client(G + b"a1 NO Invalid login or password\r\n* BAD invalid command\r\n"
                        b"b OK completed\r\n" + BYE)}}),
    "auth_salt_after_cram_md5_challenge": ("imap.md §16.9, auth_http.md §3 row 6", {"auth": {
        "nginx": [auth_request(b"external", b"test@example.com", b"", salt=SALT)],
        "angie": [auth_request(b"external", b"test@example.com", b"")]}}),
}


def _check_nginx(result: dict, case: Case):
    got = outcome(result["client"])
    if case.id in EXPECTED_NGINX_DIFFERENCES:
        ref, expected = EXPECTED_NGINX_DIFFERENCES[case.id]
        for key, sides in expected.items():
            value = got if key == "client" else result[key]
            assert value == sides["nginx"], f"{key} ({ref}):\n{value!r}"
    else:
        assert got == client(case.expect), result["client"]


@pytest.mark.parametrize("case", CASES + DIFFERENCE_CASES, ids=lambda c: c.id)
def test_nginx_transcript(nginx_side, case):
    """The script and its expectation, proven on nginx 1.22 alone."""
    _check_nginx(run_side(nginx_side, case), case)


def test_case_lists():
    ids = [c.id for c in CASES + DIFFERENCE_CASES]
    assert len(ids) == len(set(ids))
    assert sorted(c.id for c in DIFFERENCE_CASES) == sorted(EXPECTED_NGINX_DIFFERENCES)
    assert all(c.expect is not None for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_same_as_nginx(nginx_side, angie_side, case):
    nginx, angie = run_both((nginx_side, angie_side), case)
    assert nginx == angie, describe(nginx, angie)
    _check_nginx(nginx, case)


@pytest.mark.parametrize("case", DIFFERENCE_CASES, ids=lambda c: c.id)
def test_expected_nginx_difference(nginx_side, angie_side, case):
    """nginx 1.22 differs from Angie here (imap.md §16); angie-mail must do what Angie
    does, and nginx must still do what it did (else the case belongs to CASES)."""
    ref, expected = EXPECTED_NGINX_DIFFERENCES[case.id]
    nginx, angie = run_both((nginx_side, angie_side), case)
    _check_nginx(nginx, case)
    for key in nginx:
        if key in expected:
            value = outcome(angie[key]) if key == "client" else angie[key]
            assert value == expected[key]["angie"], f"{key} ({ref}):\n{describe(nginx, angie)}"
        else:
            assert nginx[key] == angie[key], describe(nginx, angie)


LOG_WORDING = {
    "nginx": [r"\[info\] \d+#\d+: \*{id} client 127\.0\.0\.1:\d+ connected to {server}\n",
              r"\[info\] \d+#\d+: \*(\d+) client login failed: \"Invalid login or password\" "
              r"while in http auth state, client: 127\.0\.0\.1, server: {server}, "
              r"login: \"logged@example\.com\"\n"],
    "angie": [r"\[info\] \d+#\d+: \*{id} client connected while initializing session, "
              r"client: \"127\.0\.0\.1:\d+\", server: \"{server}\"\n",
              r"\[info\] \d+#\d+: \*(\d+) client login failed: \"Invalid login or password\" "
              r"while in http auth state, client: \"127\.0\.0\.1:\d+\", server: \"{server}\", "
              r"login: \"logged@example\.com\"\n"],
}


@pytest.mark.parametrize("kind", ["nginx", "angie"])
def test_log_wording(request, kind):
    """imap.md §16.10: the same session logged in each one's own words."""
    side = request.getfixturevalue(f"{kind}_side")
    case = Case("log", "std", [b"a LOGIN logged@example.com wrong\r\n", L1],
                expect=G + NO)
    _check_nginx(run_side(side, case), case)
    log = side.proxy.wait_log('login: "logged@example.com"')
    server = re.escape("127.0.0.1:%d" % side.ports["std"])
    connected, failed = LOG_WORDING[kind]
    m = re.search(failed.format(server=server), log)
    assert m, log
    assert re.search(connected.format(server=server, id=m.group(1)), log), log
