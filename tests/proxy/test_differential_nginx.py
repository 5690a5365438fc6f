"""Differential tests: the same scripted POP3 client sessions run through real nginx 1.22
and through angie-mail (the machinery is in proxy/differential.py).

All sessions share one configuration with several ``server`` blocks (one per variant), so
each proxy is started exactly once for the module.

Where nginx 1.22 differs from what the spec says Angie does, the case is listed in
``EXPECTED_NGINX_DIFFERENCES`` and the test asserts that angie-mail follows the spec.
Cases where angie-mail differs from nginx without such a spec reason would be kept
asserting nginx's behaviour and listed in ``KNOWN_BUGS`` (marked xfail); there are none.
"""

from __future__ import annotations

import re

import pytest

import oracle
from proxy.differential import (GOOD_DIGEST, NOPASS_DIGEST, Case, Lines, Until, b64,
                                describe, line_of, run_both, running_side)
from proxy.harness import Backend


@pytest.fixture(autouse=True)
def _nginx_installed():
    oracle.require()


# --- configuration ------------------------------------------------------------------------------

# server name -> server-level directives; every server gets its own port on each side
SERVERS = {
    "std": [],
    "lim": ["max_errors 2;", "proxy_pass_error_message on;"],
    "all": ["pop3_auth plain apop cram-md5 external;",
            'pop3_capabilities TOP "X-EXTRA one two" UIDL "SASL DUP";'],
    "apop": ["pop3_auth apop;"],
    "cram": ["pop3_auth cram-md5;", "pop3_capabilities LAST USER;"],
}


def mail_block(kind: str, auth_url: str, ports: dict) -> str:
    # auth_http_timeout: nginx 1.22 may stall on an over-long auth response until it expires
    out = [f"mail {{\n    auth_http {auth_url};\n    auth_http_timeout 2s;\n"
           f"    server_name mail.example.com;\n"]
    for name, lines in SERVERS.items():
        body = "".join(f"        {l}\n" for l in lines)
        out.append(f"    server {{\n        listen 127.0.0.1:{ports[name]};\n"
                   f"        protocol pop3;\n{body}    }}\n")
    out.append("}\n")
    return "".join(out)


def make_backends() -> dict:
    return {"backend": Backend(),
            "errgreet": Backend(greeting=b"-ERR go away\r\n"),
            "twogreet": Backend(greeting=b"+OK first line\r\n+OK second line\r\n")}


@pytest.fixture(scope="module")
def sides(tmp_path_factory):
    base = tmp_path_factory.mktemp("differential")
    with running_side("nginx", base / "nginx", make_backends, SERVERS, mail_block) as nginx, \
            running_side("angie", base / "angie", make_backends, SERVERS, mail_block) as angie:
        yield nginx, angie


# --- sessions -------------------------------------------------------------------------------------

L1 = Lines(1)
CAPA_END = Until(b"\r\n.\r\n")
USER_OK = b"USER test@example.com\r\n"
QUIT = b"QUIT\r\n"

CASES = [
    # greeting / QUIT / NOOP / CAPA -----------------------------------------------------------
    Case("greeting_quit", "std", [QUIT]),
    Case("greeting_apop_salt", "apop", [QUIT]),
    Case("greeting_cram_salt", "cram", [QUIT]),
    Case("quit_with_args", "std", [b"QUIT now please\r\n"]),
    Case("noop_and_args", "std", [b"NOOP\r\n", L1, b"NOOP a b c\r\n", L1,
                                  b"NOOP a b c d\r\n", L1, QUIT]),
    Case("capa_default", "std", [b"CAPA\r\n", CAPA_END, QUIT]),
    Case("capa_with_args", "std", [b"CAPA one two\r\n", CAPA_END, QUIT]),
    Case("capa_custom_all_mechs", "all", [b"CAPA\r\n", CAPA_END, QUIT]),
    Case("capa_apop_only", "apop", [b"CAPA\r\n", CAPA_END, QUIT]),
    Case("capa_cram_only", "cram", [b"CAPA\r\n", CAPA_END, QUIT]),
    Case("capa_in_user_state", "std", [USER_OK, L1, b"CAPA\r\n", CAPA_END,
                                       b"PASS secret\r\n", L1, QUIT]),
    Case("noop_in_user_state", "std", [USER_OK, L1, b"NOOP\r\n", L1, b"PASS secret\r\n", L1,
                                       QUIT]),
    # bare AUTH -------------------------------------------------------------------------------
    Case("auth_list_default", "std", [b"AUTH\r\n", CAPA_END, QUIT]),
    Case("auth_list_all", "all", [b"AUTH\r\n", CAPA_END, QUIT]),
    Case("auth_list_apop_only", "apop", [b"AUTH\r\n", Lines(2), QUIT]),
    Case("auth_list_cram_only", "cram", [b"AUTH\r\n", CAPA_END, QUIT]),
    Case("quit_in_user_state", "std", [USER_OK, L1, QUIT]),
    Case("stls_apop_auth_in_user_state", "all", [
        USER_OK, L1, b"STLS\r\n", L1, USER_OK, L1, b"APOP a " + GOOD_DIGEST + b"\r\n", L1,
        USER_OK, L1, b"AUTH PLAIN\r\n", L1, b"PASS secret\r\n", L1, QUIT]),
    Case("auth_in_user_state", "std", [USER_OK, L1, b"AUTH\r\n", L1, b"PASS secret\r\n", L1,
                                       QUIT]),
    # USER / PASS -----------------------------------------------------------------------------
    Case("user_pass_success_relay", "std", [USER_OK, L1, b"PASS secret\r\n", L1, b"STAT\r\n",
                                            L1, b"RETR 1\r\n", CAPA_END, QUIT]),
    Case("user_pass_failure_closes", "std", [USER_OK, L1, b"PASS wrong\r\n", L1]),
    Case("user_pass_failure_wait_then_success", "std", [
        USER_OK, L1, b"PASS wait1\r\n", L1, b"NOOP\r\n", L1,
        USER_OK, L1, b"PASS secret\r\n", L1, QUIT]),
    Case("auth_wait_pipelined_commands_after_failure", "std", [
        USER_OK + b"PASS wait1\r\nNOOP\r\nCAPA\r\n", Lines(3), CAPA_END, QUIT]),
    Case("data_sent_during_auth_wait", "std", [
        USER_OK, L1, b"PASS wait1\r\n", b"NOOP\r\n", Lines(2), QUIT]),
    Case("auth_plain_failure_wait_then_auth_login", "std", [
        b"AUTH PLAIN " + b64(b"\0test@example.com\0wait1") + b"\r\n", L1,
        b"AUTH LOGIN\r\n", L1, b64(b"test@example.com") + b"\r\n", L1,
        b64(b"secret") + b"\r\n", L1, QUIT]),
    Case("pass_in_start", "std", [b"PASS secret\r\n", L1, b"NOOP\r\n", L1, QUIT]),
    Case("user_twice", "std", [USER_OK, L1, b"USER other\r\n", L1, b"PASS secret\r\n", L1,
                               QUIT]),
    Case("user_and_pass_without_argument", "std", [
        b"USER\r\n", L1, b"USER \r\n", L1, USER_OK, L1, b"PASS\r\n", L1, b"PASS \r\n", L1,
        QUIT]),
    Case("user_with_spaces_reaches_backend", "std", [b"USER  a b \r\n", L1,
                                                     b"PASS secret\r\n", L1]),
    Case("pass_with_spaces_and_escaping", "std", [b"USER te st%\r\n", L1,
                                                  b"PASS  p\xe9 %\t \r\n", L1]),
    Case("lowercase_commands", "std", [b"noop\r\n", L1, b"capa\r\n", CAPA_END,
                                       b"user test@example.com\r\n", L1, b"pass secret\r\n", L1,
                                       b"quit\r\n"]),
    Case("mixed_case_commands", "std", [b"NoOp\r\n", L1, b"uSeR test@example.com\r\n", L1,
                                        b"PaSs secret\r\n", L1, QUIT]),
    Case("auth_user_override", "std", [b"USER alias\r\n", L1, b"PASS secret\r\n", L1, QUIT]),
    Case("user_pass_on_salted_server", "all", [USER_OK, L1, b"PASS secret\r\n", L1, QUIT]),
    Case("lf_only_line_ends", "std", [b"USER test@example.com\nPASS secret\nSTAT\n", Lines(3),
                                      QUIT]),
    Case("nul_and_8bit_in_arguments", "std", [b"USER a\0b\xff\r\n", L1, b"PASS \0\x80\r\n", L1]),
    Case("8bit_in_command_word", "std", [b"NO\xffP\r\n", L1, b"N\0OP\r\n", L1, QUIT]),
    # AUTH PLAIN / LOGIN ----------------------------------------------------------------------
    Case("auth_plain_initial_response", "std", [
        b"AUTH PLAIN " + b64(b"\0test@example.com\0secret") + b"\r\n", L1, QUIT]),
    Case("auth_plain_continuation", "std", [
        b"AUTH PLAIN\r\n", L1, b64(b"\0test@example.com\0secret") + b"\r\n", L1, QUIT]),
    Case("auth_plain_lowercase_authzid", "std", [
        b"auth plain " + b64(b"admin\0test@example.com\0secret") + b"\r\n", L1, QUIT]),
    Case("auth_plain_pipelined", "std", [
        b"AUTH PLAIN\r\n" + b64(b"\0test@example.com\0secret") + b"\r\nSTAT\r\n",
        Lines(3), QUIT]),
    Case("auth_plain_malformed", "std", [
        b"AUTH PLAIN !!!!\r\n", L1,
        b"AUTH PLAIN " + b64(b"no-nul-at-all") + b"\r\n", L1,
        b"AUTH PLAIN " + b64(b"\0only-login") + b"\r\n", L1,
        b"AUTH PLAIN " + b64(b"authzid-only\0") + b"\r\n", L1,
        b"AUTH PLAIN a b\r\n", L1,
        b"AUTH PLAIN\r\n", L1, b"*\r\n", L1,
        b"NOOP\r\n", L1, QUIT]),
    Case("auth_plain_unpadded_and_padding_junk", "std", [
        b"AUTH PLAIN " + b64(b"\0test@example.com\0secret").rstrip(b"=") + b"=!!\r\n", L1,
        QUIT]),
    Case("auth_plain_failure", "std", [
        b"AUTH PLAIN " + b64(b"\0test@example.com\0bad") + b"\r\n", L1]),
    Case("auth_login_stepwise", "std", [
        b"AUTH LOGIN\r\n", L1, b64(b"test@example.com") + b"\r\n", L1,
        b64(b"secret") + b"\r\n", L1, QUIT]),
    Case("auth_login_initial_response", "std", [
        b"AUTH LOGIN " + b64(b"test@example.com") + b"\r\n", L1, b64(b"secret") + b"\r\n", L1,
        QUIT]),
    Case("auth_login_pipelined", "std", [
        b"AUTH LOGIN\r\n" + b64(b"test@example.com") + b"\r\n" + b64(b"secret") + b"\r\n",
        Lines(3), QUIT]),
    Case("auth_login_continuation_extra_tokens_and_empty", "std", [
        b"AUTH LOGIN\r\n", L1, b"\r\n", L1, b64(b"secret") + b" extra tokens\r\n", L1]),
    Case("auth_login_quit_is_a_response", "std", [
        b"AUTH LOGIN\r\n", L1, QUIT, L1, b64(b"secret") + b"\r\n", L1]),
    Case("auth_plain_on_salted_server", "all", [
        b"AUTH PLAIN " + b64(b"\0test@example.com\0secret") + b"\r\n", L1, QUIT]),
    Case("auth_login_on_salted_server", "all", [
        b"AUTH LOGIN\r\n", L1, b64(b"test@example.com") + b"\r\n", L1,
        b64(b"secret") + b"\r\n", L1, QUIT]),
    Case("auth_login_initial_response_on_salted_server", "cram", [
        b"AUTH LOGIN " + b64(b"test@example.com") + b"\r\n", L1,
        b64(b"secret") + b"\r\n", L1, QUIT]),
    Case("auth_login_bad_base64_and_cancel", "std", [
        b"AUTH LOGIN\r\n", L1, b"*\r\n", L1, b"AUTH LOGIN " + b"a" * 5 + b"\r\n", L1,
        b"AUTH LOGIN a b\r\n", L1, b"NOOP\r\n", L1, QUIT]),
    Case("auth_unknown_or_disabled_mechanism", "std", [
        b"AUTH FOO\r\n", L1, b"AUTH CRAM-MD5\r\n", L1, b"AUTH DIGEST-MD5\r\n", L1,
        b"NOOP\r\n", L1, QUIT]),
    Case("auth_plain_login_accepted_when_not_listed", "cram", [
        b"AUTH PLAIN " + b64(b"\0test@example.com\0secret") + b"\r\n", L1, QUIT]),
    Case("auth_several_spaces_between_arguments", "std", [
        b"AUTH   PLAIN    " + b64(b"\0test@example.com\0secret") + b"  \r\n", L1, QUIT]),
    # EXTERNAL (enabled only: nginx 1.22 and Angie differ when it is disabled) ----------------
    Case("auth_external_enabled", "all", [
        b"AUTH EXTERNAL\r\n", L1, b64(b"test@example.com") + b"\r\n", L1, QUIT]),
    Case("auth_external_enabled_initial_response", "all", [
        b"AUTH EXTERNAL " + b64(b"test@example.com") + b"\r\n", L1, QUIT]),
    Case("auth_external_no_auth_pass", "all", [
        b"AUTH EXTERNAL " + b64(b"someone") + b"\r\n", L1]),
    Case("auth_external_disabled_no_initial_response", "std", [
        b"AUTH EXTERNAL\r\n", L1, b"NOOP\r\n", L1, QUIT]),
    # CRAM-MD5 --------------------------------------------------------------------------------
    Case("auth_cram_md5_success", "all", [
        b"AUTH CRAM-MD5\r\n", L1, b64(b"test@example.com " + GOOD_DIGEST) + b"\r\n", L1,
        QUIT]),
    Case("auth_cram_md5_lowercase_pipelined", "cram", [
        b"auth cram-md5\r\n" + b64(b"test@example.com " + GOOD_DIGEST) + b"\r\nSTAT\r\n",
        Lines(3), QUIT]),
    Case("auth_cram_md5_no_auth_pass", "cram", [
        b"AUTH CRAM-MD5\r\n", L1, b64(b"test@example.com " + NOPASS_DIGEST) + b"\r\n", L1]),
    Case("auth_cram_md5_malformed", "all", [
        b"AUTH CRAM-MD5 " + b64(b"x") + b"\r\n", L1,
        b"AUTH CRAM-MD5\r\n", L1, b64(b"test@example.com short") + b"\r\n", L1,
        b"AUTH CRAM-MD5\r\n", L1, b"!!\r\n", L1,
        b"NOOP\r\n", L1, QUIT]),
    Case("auth_cram_md5_failure_wait", "cram", [
        b"AUTH CRAM-MD5\r\n", L1, b64(b"test@example.com " + b"2" * 32) + b"\r\n", L1,
        b"NOOP\r\n", L1, QUIT]),
    # APOP ------------------------------------------------------------------------------------
    Case("apop_success_auth_pass", "apop", [
        b"APOP test@example.com " + GOOD_DIGEST + b"\r\n", L1, b"STAT\r\n", L1, QUIT]),
    Case("apop_no_auth_pass", "apop", [b"APOP test@example.com " + NOPASS_DIGEST + b"\r\n", L1]),
    Case("apop_wrong_argument_count", "apop", [
        b"APOP test@example.com\r\n", L1, b"APOP a b c\r\n", L1, b"APOP\r\n", L1, QUIT]),
    Case("apop_extra_spaces", "apop", [
        b"APOP   test@example.com    " + GOOD_DIGEST + b"  \r\n", L1, QUIT]),
    Case("apop_not_enabled", "std", [b"APOP test@example.com " + GOOD_DIGEST + b"\r\n", L1,
                                     QUIT]),
    Case("apop_short_digest_lowercase", "all", [b"apop test@example.com abc\r\n", L1,
                                               b"NOOP\r\n", L1, QUIT]),
    # invalid input, limits -------------------------------------------------------------------
    Case("invalid_commands", "std", [
        b"STAT\r\n", L1, b"LIST\r\n", L1, b"RETR 1\r\n", L1, b"FOO\r\n", L1, QUIT]),
    Case("max_errors_default_5", "std", [b"FOO1\r\n" * 5]),
    Case("max_errors_2", "lim", [b"FOO\r\n", L1, b"BAR\r\n"]),
    Case("max_errors_2_pipelined", "lim", [b"FOO\r\nNOOP\r\nBAR\r\nNOOP\r\n"]),
    Case("sasl_errors_do_not_count", "lim", [
        b"AUTH LOGIN\r\n", L1, b"!!\r\n", L1, b"AUTH PLAIN\r\n", L1, b"=\r\n", L1,
        b"AUTH LOGIN\r\n", L1, b"\x01\r\n", L1, b"FOO\r\n", L1, b"NOOP\r\n", L1, QUIT]),
    Case("handler_errors_do_not_count", "lim", [
        b"PASS x\r\n", L1, b"USER\r\n", L1, b"AUTH FOO\r\n", L1, b"STLS\r\n", L1,
        b"APOP a b\r\n", L1, b"FOO\r\n", L1, b"NOOP\r\n", L1, QUIT]),
    Case("too_long_127", "std", [line_of(127), L1, QUIT]),
    Case("too_long_128", "std", [line_of(128), L1, QUIT]),
    Case("too_long_129", "std", [line_of(129)]),
    Case("too_long_pass_129", "std", [USER_OK, L1, line_of(129, b"PASS ")]),
    Case("too_long_two_128_lines_pipelined", "std", [line_of(128) + line_of(128), Lines(2),
                                                     QUIT], timeout=1.0),
    Case("too_long_sasl_continuation", "std", [b"AUTH PLAIN\r\n", L1,
                                               b"A" * 127 + b"\r\n"]),
    Case("empty_lines", "std", [b"\r\n", L1, b"\n", L1, b"NOOP\n", L1, QUIT]),
    Case("tab_characters", "std", [b"NOOP\tx\r\n", L1, b"\tNOOP\r\n", L1, b"USER\ta\r\n", L1,
                                   b"USER a\tb\r\n", L1, b"PASS secret\r\n", L1]),
    Case("bare_cr", "std", [b"NOOP\rX\r\n", L1, b"NOOP x\ry\r\n", L1, b"NOOP\r\r\n", L1,
                            QUIT]),
    Case("leading_space_and_digits", "std", [b" NOOP\r\n", L1, b"NOOP1\r\n", L1,
                                             b"NOO\r\n", L1, b"NOOPS\r\n", L1, QUIT]),
    Case("extra_arguments", "std", [b"AUTH LOGIN a b\r\n", L1, b"AUTH PLAIN a b c\r\n", L1,
                                    b"CAPA a b c d\r\n", L1, QUIT]),
    Case("pipelined_pre_auth_commands", "std", [b"NOOP\r\nCAPA\r\nAUTH\r\nFOO\r\nQUIT\r\n"]),
    Case("stls_without_tls", "std", [b"STLS\r\nCAPA\r\n", L1, CAPA_END, QUIT]),
    # auth server outcomes --------------------------------------------------------------------
    Case("auth_status_wait_then_ok", "std", [b"USER wait\r\n", L1, b"PASS waitok\r\n", L1,
                                             QUIT]),
    Case("auth_server_garbage", "std", [b"USER garbage\r\n", L1, b"PASS secret\r\n", L1]),
    Case("auth_server_closes", "std", [b"USER close\r\n", L1, b"PASS secret\r\n", L1]),
    Case("auth_server_hostname_not_ip", "std", [b"USER hostname\r\n", L1,
                                                b"PASS secret\r\n", L1]),
    Case("auth_server_no_server", "std", [b"USER noserver\r\n", L1, b"PASS secret\r\n", L1]),
    Case("auth_status_text_trimmed", "std", [b"USER spaced\r\n", L1, b"PASS secret\r\n", L1]),
    Case("auth_status_empty", "std", [b"USER emptystatus\r\n", L1, b"PASS secret\r\n", L1]),
    Case("auth_status_later_failure_wins", "std", [b"USER twofail\r\n", L1,
                                                   b"PASS secret\r\n", L1]),
    Case("auth_wait_zero_closes", "std", [b"USER wait0\r\n", L1, b"PASS secret\r\n", L1]),
    Case("auth_status_code_ignored", "std", [b"USER status500\r\n", L1,
                                             b"PASS secret\r\n", L1, QUIT]),
    Case("auth_no_status_line", "std", [b"USER nostatusline\r\n", L1, b"PASS secret\r\n",
                                        L1, QUIT]),
    Case("auth_response_lf_line_ends", "std", [b"USER lfonly\r\n", L1, b"PASS secret\r\n",
                                               L1, QUIT]),
    Case("auth_response_too_big", "std", [b"USER huge\r\n", L1, b"PASS secret\r\n", L1]),
    Case("auth_response_bad_port", "std", [b"USER badport\r\n", L1, b"PASS secret\r\n", L1]),
    Case("auth_response_invalid_header_name", "std", [b"USER underscore\r\n", L1,
                                                      b"PASS secret\r\n", L1]),
    Case("auth_status_lowercase_ok", "std", [b"USER lowerok\r\n", L1, b"PASS secret\r\n", L1]),
    # backend outcomes ------------------------------------------------------------------------
    Case("backend_refuses_error_message_off", "std", [b"USER refused\r\n", L1,
                                                      b"PASS secret\r\n", L1]),
    Case("backend_refuses_error_message_on", "lim", [b"USER refused\r\n", L1,
                                                     b"PASS secret\r\n", L1]),
    Case("backend_greeting_err_message_off", "std", [b"USER errgreet\r\n", L1,
                                                     b"PASS secret\r\n", L1]),
    Case("backend_greeting_err_message_on", "lim", [b"USER errgreet\r\n", L1,
                                                    b"PASS secret\r\n", L1]),
    Case("backend_greeting_two_lines", "std", [b"USER twogreet\r\n", L1,
                                                b"PASS secret\r\n", L1, QUIT]),
    Case("pipelined_after_pass_reach_backend", "std", [
        USER_OK + b"PASS secret\r\nSTAT\r\nNOOP\r\n", Lines(4), QUIT]),
    Case("pipelined_after_pass_over_128_bytes", "std", [
        USER_OK + b"PASS secret\r\n" + b"NOOP\r\n" * 20 + b"STAT\r\n", Lines(23), QUIT]),
    Case("pipelined_after_auth_login_reach_backend", "std", [
        b"AUTH LOGIN " + b64(b"test@example.com") + b"\r\n", L1,
        b64(b"secret") + b"\r\nSTAT\r\nXYZZY arg\r\nQUIT\r\n"]),
    Case("pipelined_after_apop_reach_backend", "apop", [
        b"APOP test@example.com " + GOOD_DIGEST + b"\r\nLIST\r\nQUIT\r\n"]),
]


def _without_salt(requests):
    return [re.sub(rb"Auth-Salt: [^\r]*\r\n", b"", r) for r in requests]


# Where nginx 1.22 does something else than the spec says Angie does.  case id ->
# (spec reference, {result key: expected angie-mail value, or a function of nginx's result}).
# Keys not listed must still be identical; listed keys must differ from nginx.
_TWO_128 = line_of(128) + line_of(128)
EXPECTED_NGINX_DIFFERENCES: dict = {
    # nginx 1.22 reads exactly the 128 free bytes of its buffer; when that read fills the
    # buffer, the rest stays in the socket and (edge-triggered epoll) nothing processes it
    # until the client sends more.  Angie sets s->blocked when c->read->ready
    # (ngx_mail_pop3_auth_state), so every pipelined line is answered in order.
    "too_long_two_128_lines_pipelined": (
        "pop3.md §8 (pipelining: buffered commands run one after another), §3.8", {
            "client": [("S", b"+OK POP3 ready\r\n"), ("C", _TWO_128), ("S", b"+OK\r\n"),
                       ("S", b"+OK\r\n"), ("C", b"QUIT\r\n"), ("S", b"+OK\r\n"),
                       ("EOF",)]}),
    # nginx 1.22 sends Auth-Salt for every method but plain when the server has a salt
    # (`s->auth_method != NGX_MAIL_AUTH_PLAIN && s->salt.len`); Angie only for apop and
    # cram-md5.
    "auth_external_enabled": (
        "auth_http.md §3 row 6 (Auth-Salt only for apop and cram-md5)",
        {"auth": lambda nginx: _without_salt(nginx["auth"])}),
    "auth_external_enabled_initial_response": (
        "auth_http.md §3 row 6 (Auth-Salt only for apop and cram-md5)",
        {"auth": lambda nginx: _without_salt(nginx["auth"])}),
    "auth_external_no_auth_pass": (
        "auth_http.md §3 row 6 (Auth-Salt only for apop and cram-md5)",
        {"auth": lambda nginx: _without_salt(nginx["auth"])}),
}

# Where angie-mail differs from nginx without a spec reason: case id -> reason.
KNOWN_BUGS: dict = {}


def _params():
    out = []
    for case in CASES:
        if case.id in EXPECTED_NGINX_DIFFERENCES:
            continue
        marks = list(case.marks)
        if case.id in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason="BUG: " + KNOWN_BUGS[case.id]))
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def test_case_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 40


@pytest.mark.parametrize("case", _params())
def test_same_as_nginx(sides, case):
    nginx, angie = run_both(sides, case)
    assert nginx == angie, describe(nginx, angie)
    # the script must only wait for replies nginx really sends, and end with the close
    assert ("TIMEOUT",) not in nginx["client"], nginx["client"]


@pytest.mark.parametrize("case_id", sorted(EXPECTED_NGINX_DIFFERENCES))
def test_expected_nginx_difference(sides, case_id):
    """nginx 1.22 differs from the spec here; angie-mail must follow the spec."""
    case = next(c for c in CASES if c.id == case_id)
    ref, expected = EXPECTED_NGINX_DIFFERENCES[case_id]
    nginx, angie = run_both(sides, case)
    for key in nginx:
        if key in expected:
            want = expected[key](nginx) if callable(expected[key]) else expected[key]
            assert angie[key] == want, f"{key} ({ref}):\n{describe(nginx, angie)}"
            assert nginx[key] != want, f"nginx now follows {ref}; move {case_id} back"
        else:
            assert nginx[key] == angie[key], describe(nginx, angie)
