"""Differential tests for SMTP: the same scripted client sessions run through real nginx
1.22 and through angie-mail (the machinery is in proxy/differential.py), behind Angie's
fake SMTP backend (harness.SmtpBackend) and its misbehaving variants.

Every session states what the client receives (``expect``), as smtp.md describes it,
and some also the lines the backend receives (``BACKEND``) or the auth_http requests
(``AUTH``).  ``test_same_as_nginx`` checks those against nginx, so the scripts and the
expectations are proven on the oracle, and then requires angie-mail to produce exactly
nginx's results: client bytes, auth_http requests, the bytes every backend received and
the message part of the session's error-log lines (the prefix and the context differ,
smtp.md §16.9).

The sessions where Angie, and so angie-mail, differs from nginx 1.22 (smtp.md §16, the
deviations decided in §14 and §17, and the mail layer SMTP shares with IMAP, imap.md §16)
are in ``EXPECTED_NGINX_DIFFERENCES`` with both sides' exact results.  Where angie-mail
differs from nginx although the spec says they agree, the case stays in ``CASES``
asserting nginx's result and is listed in ``KNOWN_BUGS``: its other results must still
be identical, the differing one is an expected failure until fixed.

Log texts are compared as angie-mail writes them: a CR or LF inside a message as ``\\r``
/ ``\\n`` (docs/operations.md, Logs), the auth server's address as ``<auth_http>``.
"""

from __future__ import annotations

import re
import time

import pytest

import oracle
from proxy.differential import (GOOD_DIGEST, NOPASS_DIGEST, Case, Lines, Reply, Tls, b64,
                                describe, line_of, make_auth_handler, run_both,
                                running_side, server_bytes, tls_mail_block)
from proxy.harness import SmtpBackend, auth_request, fail_response, ok_response

# one nginx and one angie-mail for the whole module: keep its tests on one worker
pytestmark = pytest.mark.xdist_group("nginx-smtp")


@pytest.fixture(autouse=True)
def _nginx_installed():
    oracle.require()


# --- configuration ------------------------------------------------------------------------------

# server name -> server-level directives
SERVERS = {
    "std": [],
    "caps": ['smtp_capabilities "SIZE 10485760" 8BITMIME "" "X-TWO  SPACES";',
             "smtp_auth plain login cram-md5 external;"],
    "cram": ["smtp_auth cram-md5;"],
    "mx": ["smtp_auth none;"],
    "mxauth": ["smtp_auth cram-md5 none login;"],
    "mxnoxc": ["smtp_auth none;", "xclient off;"],
    "mxpsa": ["smtp_auth none;", "proxy_smtp_auth on;"],
    "mxpem": ["smtp_auth none;", "proxy_pass_error_message on;"],
    "mxonly": ["smtp_auth none;", "starttls only;"],
    "mxbuf": ["smtp_auth none;", "smtp_client_buffer 128;"],
    "tls": ["starttls on;", "smtp_capabilities SIZE;"],
    "only": ["starttls only;", "smtp_capabilities SIZE;"],
    "ssl": [],
    "lim": ["max_errors 2;"],
    "buf": ["smtp_client_buffer 128;"],
    "noxc": ["xclient off;"],
    "psa": ["proxy_smtp_auth on;", "smtp_auth plain login cram-md5 external;"],
    "psanoxc": ["proxy_smtp_auth on;", "xclient off;"],
    "psapem": ["proxy_smtp_auth on;", "proxy_pass_error_message on;"],
    "pem": ["proxy_pass_error_message on;"],
    "pbuf": ["proxy_buffer 1k;"],
    "delay": ["smtp_greeting_delay 300ms;"],
    "tmo": ["timeout 1s;"],
    "dead": ["auth_http 127.0.0.1:{dead}/x;"],
}
IMPLICIT_TLS = ("ssl",)


# the ordinary backend and, by name, backends that misbehave at one step (SmtpBackend's
# arguments); a user (or, in the ``none`` flow, a MAIL FROM local part) named after one
# is sent there
BACKENDS = {
    "backend": dict(),
    "greet554": dict(greeting=b"554 go away\r\n"),
    "greetclose": dict(greeting=None),
    "greetmulti": dict(greeting=b"220-fake esmtp\r\n220-second line\r\n"
                                b"220 ready\r\n"),
    "greetmixed": dict(greeting=b"220-fake esmtp\r\n554 the last line\r\n"),
    "greetnospace": dict(greeting=b"220ready\r\n"),
    "greetshort": dict(greeting=b"22\r\n"),
    "greetlong": dict(greeting=b"220 " + b"x" * 5000 + b"\r\n"),
    "ehlo550": dict(replies={b"EHLO": b"550 ehlo denied\r\n",
                             b"HELO": b"550 helo denied\r\n"}),
    "ehloclose": dict(replies={b"EHLO": None, b"HELO": None}),
    "ehlomulti": dict(replies={b"EHLO": b"250-hello\r\n250-SIZE 100\r\n"
                                        b"250 8BITMIME\r\n"}),
    "ehlostall": dict(replies={b"EHLO": b"250-hello, and nothing more\r\n"}),
    "helo550": dict(replies={b"HELO": b"550 helo denied\r\n"}),
    "xclient550": dict(replies={b"XCLIENT": b"550 xclient denied\r\n"}),
    "xclient250": dict(replies={b"XCLIENT": b"250 xclient ok\r\n"}),
    "xclientmulti": dict(replies={b"XCLIENT": b"220-xclient\r\n220 ok\r\n"}),
    "auth535": dict(replies={b"AUTH": b"535 5.7.8 auth denied\r\n"}),
    "mail550": dict(replies={b"MAIL": b"550 5.7.1 mail from rejected\r\n"}),
    "rcpt550": dict(replies={b"RCPT": b"550 5.1.1 no such user\r\n"}),
    "rcptmulti": dict(replies={b"RCPT": b"250-rcpt\r\n250 ok\r\n"}),
    "greet4": dict(greeting=b"220\r\n"),
    "greettwo": dict(greeting=b"220 ready\r\n220 again\r\n"),
    "greetcrlf": dict(greeting=b"\r\n\r\n220 x\r\n"),
    "ehloshortlast": dict(replies={b"EHLO": b"250-a\r\n250\r\n"}),
    "ehlotwo": dict(replies={b"EHLO": b"250 hello\r\n250 extra\r\n"}),
    # a greeting of exactly proxy_buffer bytes, and the next reply in the same write
    "greetfull": dict(greeting=b"220 " + b"x" * 4090 + b"\r\n220 extra\r\n"),
    "greetnul": dict(greeting=b"554 go\0away\r\n"),
    "greet1k": dict(greeting=b"220 " + b"x" * 1018 + b"\r\n"),          # proxy_buffer 1k
    "greet1kmore": dict(greeting=b"220 " + b"x" * 1100 + b"\r\n"),
    "greet1knul": dict(greeting=b"220 a\0b" + b"x" * 1100 + b"\r\n"),
}


def make_backends() -> dict:
    return {name: SmtpBackend(**kwargs) for name, kwargs in BACKENDS.items()}


ERROR_CODE = b"Auth-Error-Code: 454 4.7.0  \r\n"       # trailing spaces are removed


def smtp_auth_handler(ports: dict):
    """differential.make_auth_handler, plus Auth-Error-Code, an Auth-User needing xtext
    and the ``none`` flow: routed by the MAIL FROM address's local part (a backend's
    name, ``deny``, ``wait1``, ``errcode``), else to the ordinary backend."""
    base = make_auth_handler(ports)
    routed = {name.encode(): port for name, port in ports.items()}

    def handler(req):
        user = req.get("Auth-User", b"")
        if user == b"errcode":
            return fail_response(b"Go away", extra=ERROR_CODE)
        if user == b"errcodewait":
            return fail_response(b"Go away", wait=1, extra=ERROR_CODE)
        if user == b"emptycode":
            return fail_response(extra=b"Auth-Error-Code: \r\n")
        if user == b"statusnul":
            return b"HTTP/1.0 200 OK\r\nAuth-Status: bad\0text\xff\r\n\r\n"
        if user == b"stale":
            return fail_response(wait=1)
        if user == b"emptypass":
            return ok_response(ports["backend"], extra=b"Auth-Pass: \r\n")
        if user == b"xtext":
            return ok_response(ports["backend"], extra=b"Auth-User: other user+x=y\r\n")
        if req.get("Auth-Method") == b"none":
            m = re.search(rb"<([^@>]*)@", req.get("Auth-SMTP-From", b""))
            local = m.group(1) if m else b""
            if local == b"deny":
                return fail_response()
            if local == b"wait1":
                return fail_response(wait=1)
            if local == b"errcode":
                return fail_response(b"Go away", extra=ERROR_CODE)
            return ok_response(routed.get(local, ports["backend"]))
        return base(req)

    return handler


def mail_block_for(pki):
    return tls_mail_block("smtp", SERVERS, IMPLICIT_TLS, pki)


@pytest.fixture(scope="module")
def sides(tmp_path_factory, pki):
    base = tmp_path_factory.mktemp("smtp-differential")
    with running_side("nginx", base / "nginx", make_backends, SERVERS, mail_block_for(pki),
                      IMPLICIT_TLS, smtp_auth_handler, settle=True) as nginx, \
            running_side("angie", base / "angie", make_backends, SERVERS,
                         mail_block_for(pki), IMPLICIT_TLS, smtp_auth_handler,
                         settle=True) as angie:
        yield nginx, angie


# --- the error log: the message part of the session's lines --------------------------------

_RECORD = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: (?:\*(\d+) )?",
                     re.M)
_LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info")
_CONNECTED = {
    # how each one says "client connected" (smtp.md §16.9): the line that tells the
    # connection number of a client port
    "nginx": r"client 127\.0\.0\.1:{port} connected to ",
    "angie": r"client connected while initializing session, client: \"127\.0\.0\.1:{port}\"",
}


def _records(text: str):
    """(level, connection number or None, message with its context) of every record;
    a record may span lines (a logged buffer can hold a LF)."""
    starts = list(_RECORD.finditer(text))
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        yield m.group(1), m.group(2), text[m.end():end].rstrip("\n")


def _message(text: str) -> str:
    """The message without the context (``, client: …`` and what follows)."""
    i = text.rfind(", client: ")
    return text if i < 0 else text[:i]


def _log_text(side) -> str:
    """The side's error log; nginx's raw CR and LF inside a record written as angie-mail
    writes them, ``\\r`` and ``\\n``, and its other raw control characters but TAB as
    ``\\xNN`` (docs/operations.md, Logs)."""
    with open(side.proxy.log_path, "rb") as f:
        text = f.read().decode("utf-8", "backslashreplace")
    if side.kind == "nginx":
        text = re.sub(r"\r|\n(?!\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[|\Z)",
                      lambda m: "\\r" if m.group(0) == "\r" else "\\n", text)
        text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", lambda m: "\\x%02x" % ord(m.group()), text)
    return text


def _session_records(side, port: int):
    """The connection number and the records of the session of this client port.  A
    relayed session is complete once it logged "proxied session done" (written when
    the client or the backend closed, so after a client that gave up waiting it may
    come later: wait for it)."""
    connected = re.compile(_CONNECTED[side.kind].format(port=port))
    deadline = time.time() + 5
    while True:
        records = list(_records(_log_text(side)))
        conn = None
        for level, n, text in records:
            if n is not None and connected.match(text):
                conn = n
        assert conn is not None, f"no connected line for port {port} in {side.kind}'s log"
        texts = [text for level, n, text in records if n == conn]
        relayed = any(t.startswith("client logged in") for t in texts)
        if not relayed or any(t.startswith("proxied session done") for t in texts):
            return connected, conn, records
        assert time.time() < deadline, f"{side.kind}: no end of the relayed session {conn}"
        time.sleep(0.02)


def session_log(side, case, info) -> dict:
    """The message parts of the session's info and higher lines, the connected line
    left out (its wording differs, smtp.md §16.9)."""
    connected, conn, records = _session_records(side, info["port"])
    auth = "127.0.0.1:%d" % side.auth.port          # each side has its own auth server
    return {"log": [_capped(f"[{level}] {_message(text)}".replace(auth, "127.0.0.1:<auth_http>"))
                    for level, n, text in records
                    if n == conn and level in _LEVELS and not connected.match(text)]}


def _capped(message: str) -> str:
    """Both write at most 2047 bytes per line (NGX_MAX_ERROR_STR): where a line was cut
    depends on the length of its prefix (pid, connection number), so a cut message is
    compared up to a length both keep."""
    return message[:1800] + " [cut]" if len(message) > 1800 else message


# --- sessions -------------------------------------------------------------------------------------

L1 = Lines(1)
R = Reply(1)
N = b"mail.example.com"
G = b"220 " + N + b" ESMTP ready\r\n"
HELO = b"250 " + N + b"\r\n"
EHLO = b"250-" + N + b"\r\n250 AUTH PLAIN LOGIN\r\n"
OK = b"250 2.0.0 OK\r\n"
BYE = b"221 2.0.0 Bye\r\n"
START_TLS = b"220 2.0.0 Start TLS\r\n"
INVALID = b"500 5.5.1 Invalid command\r\n"
ARGUMENT = b"501 5.5.4 Invalid argument\r\n"
SEQUENCE = b"503 5.5.1 Bad sequence of commands\r\n"
REQUIRED = b"530 5.7.1 Authentication required\r\n"
INTERNAL = b"451 4.3.2 Internal server error\r\n"
AUTH_OK = b"235 2.0.0 OK\r\n"
FAILED = b"535 5.7.0 Invalid login or password\r\n"
USERNAME = b"334 VXNlcm5hbWU6\r\n"
PASSWORD = b"334 UGFzc3dvcmQ6\r\n"
EMPTY_CHALLENGE = b"334 \r\n"
SALT_CHALLENGE = b"334 base64(<R.T@mail.example.com>)\r\n"     # normalised CRAM-MD5 challenge
QUIT = b"QUIT\r\n"
RELAYED_QUIT = b"221 quit ok\r\n"                                # the backend's, after login
RCPT_OK = b"250 rcpt to ok\r\n"
USER = b"test@example.com"
PLAIN_IR = b64(b"\0" + USER + b"\0secret")
AUTH_PLAIN = b"AUTH PLAIN " + PLAIN_IR + b"\r\n"
MAIL = b"MAIL FROM:<a@example.com>\r\n"
RCPT = b"RCPT TO:<b@example.com>\r\n"


def plain(user: bytes, pw: bytes = b"secret") -> bytes:
    return b"AUTH PLAIN " + b64(b"\0" + user + b"\0" + pw) + b"\r\n"


def mail_from(local: bytes) -> bytes:
    return b"MAIL FROM:<" + local + b"@example.com>\r\n"


AUTH_WAIT1 = plain(USER, b"wait1")              # 45 bytes: a failure with Auth-Wait: 1
ROOM = 128 - len(AUTH_WAIT1)                    # what is left of smtp_client_buffer 128


# what the backend receives before the client's own commands
EHLO_N = b"EHLO " + N + b"\r\n"
HELO_N = b"HELO " + N + b"\r\n"
XCLIENT_USER = b"XCLIENT ADDR=127.0.0.1 LOGIN=test@example.com NAME=[UNAVAILABLE]\r\n"
XCLIENT_ANON = b"XCLIENT ADDR=127.0.0.1 NAME=[UNAVAILABLE]\r\n"
BACKEND_AUTH_PLAIN = b"AUTH PLAIN " + b64(b"\0test@example.com\0secret") + b"\r\n"


def smtp_request(method: bytes, user: bytes = b"", pw: bytes = b"", attempt: int = 1,
                 salt: bytes = b"", none=None, ssl: bytes = b"") -> bytes:
    """The auth_http request of an SMTP attempt from 127.0.0.1 without resolver
    (smtp.md §11); ``none``: (helo, MAIL line, RCPT line) of the ``none`` flow."""
    extra = b"Client-Host: [UNAVAILABLE]\r\n" + ssl
    if none is not None:
        helo, frm, to = none
        extra += (b"Auth-SMTP-Helo: " + helo + b"\r\nAuth-SMTP-From: " + frm
                  + b"\r\nAuth-SMTP-To: " + to + b"\r\n")
    return auth_request(method, user, pw, attempt=attempt, salt=salt, protocol=b"smtp",
                        extra=extra)


CASES = [
    # greeting, QUIT, NOOP, RSET --------------------------------------------------------------
    Case("greeting_quit", "std", [QUIT], expect=G + BYE),
    Case("quit_with_arguments", "std", [b"QUIT now please\r\n"], expect=G + BYE),
    Case("quit_later_bytes_ignored", "std", [b"QUIT\r\nNOOP\r\n"], expect=G + BYE),
    Case("noop_rset_and_arguments", "std", [
        b"NOOP\r\n", L1, b"NOOP a b c\r\n", L1, b"RSET\r\n", L1, b"RSET x y\r\n", L1, QUIT],
        expect=G + OK * 4 + BYE),
    Case("command_case", "std", [
        b"noop\r\n", L1, b"NoOp\r\n", L1, b"helo x\r\n", L1, b"eHlO x\r\n", R, b"quit\r\n"],
        expect=G + OK + OK + HELO + EHLO + BYE),
    Case("greeting_delay_then_greeting", "delay", [QUIT], expect=G + BYE),
    Case("greeting_delay_early_talker", "delay", [b"HELO example.com\r\n"], greeting=False,
         expect=b"503 5.5.0 Improper use of SMTP command pipelining\r\n"),
    Case("greeting_delay_early_talker_nul_and_8bit", "delay", [b"HELO a\0b\xff\r\n"],
         greeting=False, expect=b"503 5.5.0 Improper use of SMTP command pipelining\r\n"),
    # HELO / EHLO -----------------------------------------------------------------------------
    Case("helo", "std", [b"HELO client.example\r\n", L1, QUIT], expect=G + HELO + BYE),
    Case("ehlo_default", "std", [b"EHLO client.example\r\n", R, QUIT], expect=G + EHLO + BYE),
    Case("helo_ehlo_argument_count", "std", [
        b"HELO\r\n", L1, b"HELO a b\r\n", L1, b"EHLO\r\n", L1, b"EHLO a b\r\n", L1,
        b"EHLO   a   \r\n", R, b"HELO  a \r\n", L1, QUIT],
        expect=G + ARGUMENT * 4 + EHLO + HELO + BYE),
    Case("ehlo_capabilities_and_all_mechanisms", "caps", [b"EHLO x\r\n", R, QUIT],
         expect=G + b"250-" + N + b"\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n250-\r\n"
         b"250-X-TWO  SPACES\r\n250 AUTH PLAIN LOGIN CRAM-MD5 EXTERNAL\r\n" + BYE),
    Case("ehlo_cram_md5_only", "cram", [b"EHLO x\r\n", R, QUIT],
         expect=G + b"250-" + N + b"\r\n250 AUTH CRAM-MD5\r\n" + BYE),
    Case("ehlo_fixed_mechanism_order_without_none", "mxauth", [b"EHLO x\r\n", R, QUIT],
         expect=G + b"250-" + N + b"\r\n250 AUTH LOGIN CRAM-MD5\r\n" + BYE),
    Case("ehlo_none_alone_is_one_line", "mx", [b"EHLO x\r\n", R, b"HELO x\r\n", L1, QUIT],
         expect=G + HELO + HELO + BYE),
    Case("ehlo_starttls_on", "tls", [b"EHLO x\r\n", R, b"HELO x\r\n", L1, QUIT],
         expect=G + b"250-" + N + b"\r\n250-SIZE\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
         + HELO + BYE),
    Case("ehlo_starttls_only", "only", [b"EHLO x\r\n", R, QUIT],
         expect=G + b"250-" + N + b"\r\n250-SIZE\r\n250 STARTTLS\r\n" + BYE),
    Case("ehlo_starttls_only_none", "mxonly", [b"EHLO x\r\n", R, QUIT],
         expect=G + b"250-" + N + b"\r\n250 STARTTLS\r\n" + BYE),
    Case("ehlo_implicit_tls", "ssl", [b"EHLO x\r\n", R, QUIT], expect=G + EHLO + BYE),
    # STARTTLS --------------------------------------------------------------------------------
    Case("starttls_then_ehlo_and_auth", "tls", [
        b"EHLO a\r\n", R, b"STARTTLS\r\n", L1, Tls(), b"EHLO b\r\n", R, AUTH_PLAIN, L1, QUIT],
        expect=G + b"250-" + N + b"\r\n250-SIZE\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
        + START_TLS + b"250-" + N + b"\r\n250-SIZE\r\n250 AUTH PLAIN LOGIN\r\n" + AUTH_OK
        + RELAYED_QUIT),
    Case("starttls_clears_helo", "tls", [
        b"EHLO a\r\n", R, b"STARTTLS\r\n", L1, Tls(), AUTH_PLAIN, L1, QUIT],
        expect=G + b"250-" + N + b"\r\n250-SIZE\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
        + START_TLS + AUTH_OK + RELAYED_QUIT),
    Case("starttls_discards_pipelined_bytes", "tls", [
        b"STARTTLS\r\nNOOP\r\n", L1, Tls(), b"NOOP\r\n", L1, QUIT],
        expect=G + START_TLS + OK + BYE),
    Case("starttls_arguments_and_twice", "tls", [
        b"STARTTLS now\r\n", L1, Tls(), b"STARTTLS\r\n", L1, QUIT],
        expect=G + START_TLS + INVALID + BYE),
    Case("starttls_only_refuses_only_auth", "only", [
        AUTH_PLAIN, L1, b"AUTH\r\n", L1, b"AUTH LOGIN\r\n", L1, MAIL, L1, b"HELO x\r\n", L1,
        b"STARTTLS\r\n", L1, Tls(), b"EHLO x\r\n", R, AUTH_PLAIN, L1, QUIT],
        expect=G + INVALID * 3 + REQUIRED + HELO + START_TLS + b"250-" + N
        + b"\r\n250-SIZE\r\n250 AUTH PLAIN LOGIN\r\n" + AUTH_OK + RELAYED_QUIT),
    Case("starttls_after_pipelined_ehlo", "tls", [
        b"EHLO a\r\nSTARTTLS\r\n", Reply(2), Tls(), b"EHLO b\r\n", R, QUIT],
        expect=G + b"250-" + N + b"\r\n250-SIZE\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
        + START_TLS + b"250-" + N + b"\r\n250-SIZE\r\n250 AUTH PLAIN LOGIN\r\n" + BYE),
    Case("starttls_not_configured", "std", [b"STARTTLS\r\n", L1, QUIT],
         expect=G + INVALID + BYE),
    Case("starttls_on_implicit_tls", "ssl", [b"STARTTLS\r\n", L1, QUIT],
         expect=G + INVALID + BYE),
    Case("implicit_tls_auth", "ssl", [b"EHLO x\r\n", R, AUTH_PLAIN, L1, QUIT],
         expect=G + EHLO + AUTH_OK + RELAYED_QUIT),
    Case("starttls_only_mail_in_clear_with_none", "mxonly", [
        b"EHLO x\r\n", R, MAIL, L1, RCPT, L1, QUIT],
        expect=G + b"250-" + N + b"\r\n250 STARTTLS\r\n" + OK + RCPT_OK + RELAYED_QUIT),
    Case("starttls_then_none_flow_has_empty_helo", "mxonly", [
        b"EHLO x\r\n", R, b"STARTTLS\r\n", L1, Tls(), MAIL, L1, RCPT, L1, QUIT],
        expect=G + b"250-" + N + b"\r\n250 STARTTLS\r\n" + START_TLS + OK + RCPT_OK
        + RELAYED_QUIT),
    # the tokenizer ---------------------------------------------------------------------------
    Case("data_bdat_unknown", "std", [
        b"DATA\r\n", L1, b"BDAT 10 LAST\r\n", L1, b"XCLIENT ADDR=1.2.3.4\r\n", L1,
        b"ETRN x\r\n", L1, QUIT],
        expect=G + INVALID * 4 + BYE),
    Case("empty_line_and_leading_space", "std", [
        b"\r\n", L1, b" NOOP\r\n", L1, b"\n", L1, QUIT], expect=G + INVALID * 3 + BYE),
    Case("tab_in_word_and_in_argument", "std", [
        b"NOOP\tx\r\n", L1, b"NO\tOP\r\n", L1, b"NOOP x\ty\r\n", L1, b"HELO a\tb\r\n", L1,
        QUIT],
        expect=G + INVALID * 2 + OK + HELO + BYE),
    Case("word_length_and_letters", "std", [
        b"NOOPS\r\n", L1, b"NOO\r\n", L1, b"N0OP\r\n", L1, b"NO-P\r\n", L1, QUIT],
        expect=G + INVALID * 4 + BYE),
    Case("starttls_word_variants", "tls", [
        b"STARTTLSX\r\n", L1, b"STARTTL\r\n", L1, b"starttls\r\n", L1, Tls(), QUIT],
        expect=G + INVALID * 2 + START_TLS + BYE),
    Case("eleven_and_twelve_arguments", "std", [
        b"NOOP a b c d e f g h i j k\r\n", L1, b"NOOP a b c d e f g h i j k l\r\n", L1,
        b"NOOP  a  b c d e f g h i j   k  \r\n", L1, QUIT],
        expect=G + OK + INVALID + OK + BYE),
    Case("helo_eleven_and_twelve_arguments", "std", [
        b"HELO a b c d e f g h i j k\r\n", L1, b"HELO a b c d e f g h i j k l\r\n", L1, QUIT],
        expect=G + ARGUMENT + INVALID + BYE),
    Case("bare_cr", "std", [
        b"NOOP\rx\r\n", L1, b"NOOP x\ry\r\n", L1, b"NOOP\r\r\n", L1, b"NOOP x\r\r\n", L1,
        QUIT],
        expect=G + INVALID * 4 + BYE),
    Case("lf_only_line_ends", "std", [b"NOOP\n", L1, b"HELO x\n", L1, b"QUIT\n"],
         expect=G + OK + HELO + BYE),
    Case("spaces_only_and_tab_after_word", "std", [
        b"   \r\n", L1, b"HELO   \r\n", L1, b"AUTH\tPLAIN\r\n", L1, QUIT],
        expect=G + INVALID + ARGUMENT + INVALID + BYE),
    Case("handler_level_results_not_counted", "lim", [
        b"HELO\r\n", L1, b"RCPT x\r\n", L1, b"MAIL x\r\n", L1, b"STARTTLS\r\n", L1,
        b"AUTH\r\n", L1, b"FOO\r\n", L1, b"NOOP\r\n", L1, b"BAR\r\n", L1],
        expect=G + ARGUMENT + SEQUENCE + REQUIRED + INVALID + ARGUMENT + INVALID + OK
        + INVALID),
    Case("vrfy_expn_help_not_counted", "lim", [
        b"VRFY x\r\n", L1, b"EXPN list\r\n", L1, b"HELP\r\n", L1, b"vrfy\r\n", L1,
        b"HELP me please\r\n", L1, b"NOOP\r\n", L1, QUIT],
        expect=G + INVALID * 5 + OK + BYE),
    Case("nul_and_8bit_in_arguments", "std", [
        b"NOOP \0\xff\x80\r\n", L1, b"HELO a\0\xffb\r\n", L1, b"NO\0P\r\n", L1,
        b"NO\xffP\r\n", L1, QUIT],
        expect=G + OK + HELO + INVALID * 2 + BYE),
    Case("nul_and_8bit_helo_reach_backend", "std", [
        b"EHLO a\0\xffb\r\n", R, AUTH_PLAIN, L1, QUIT],
        expect=G + EHLO + AUTH_OK + RELAYED_QUIT),
    Case("pipelined_pre_auth_commands", "std", [
        b"NOOP\r\nHELO x\r\nFOO\r\nRSET\r\nEHLO y\r\nVRFY z\r\nQUIT\r\n"],
        expect=G + OK + HELO + INVALID + OK + EHLO + INVALID + BYE),
    Case("command_split_across_segments", "std", [b"NO", b"OP\r", b"\n", L1, b"QU", b"IT\n"],
         expect=G + OK + BYE),
    # smtp_client_buffer (lines sent one at a time: the buffer is drained each time) ----------
    Case("line_of_buffer_size", "buf", [line_of(128), L1, line_of(128, b"HELO "), L1, QUIT],
         expect=G + OK + HELO + BYE),
    Case("line_over_buffer_size", "buf", [line_of(129)[:128], L1], expect=G + INVALID),
    Case("line_over_buffer_size_nul_and_8bit", "buf", [b"NOOP a\0b\xff" + b"x" * 119, L1],
         expect=G + INVALID),
    Case("line_over_buffer_size_no_word", "buf", [b"x" * 128, L1], expect=G + INVALID),
    Case("line_over_buffer_size_invalid_word", "buf", [b"N0" + b"x" * 126, L1],
         expect=G + INVALID),
    Case("line_of_buffer_size_lf_only", "buf", [line_of(129)[:127] + b"\n", L1, QUIT],
         expect=G + OK + BYE),
    Case("auth_line_kept_pipelined_next_line_fits", "buf", [
        AUTH_WAIT1 + line_of(ROOM), Lines(2), QUIT], expect=G + FAILED + OK + BYE),
    Case("pipelined_within_buffer", "buf", [b"NOOP\r\n" * 20 + QUIT], expect=G + OK * 20 + BYE),
    Case("line_over_default_buffer_size", "std", [line_of(4097)[:4096], L1], expect=G + INVALID),
    Case("line_of_default_buffer_size", "std", [line_of(4096), L1, QUIT], expect=G + OK + BYE),
    # AUTH PLAIN / LOGIN ----------------------------------------------------------------------
    Case("auth_plain_initial_response", "std", [
        b"EHLO client.example\r\n", R, AUTH_PLAIN, L1, QUIT],
        expect=G + EHLO + AUTH_OK + RELAYED_QUIT),
    Case("auth_plain_continuation", "std", [b"AUTH PLAIN\r\n", L1, PLAIN_IR + b"\r\n", L1, QUIT],
         expect=G + EMPTY_CHALLENGE + AUTH_OK + RELAYED_QUIT),
    Case("auth_lowercase_and_authzid", "std", [
        b"auth plain " + b64(b"authz\0test@example.com\0secret") + b"\r\n", L1, QUIT],
        expect=G + AUTH_OK + RELAYED_QUIT),
    Case("auth_login_stepwise", "std", [
        b"AUTH LOGIN\r\n", L1, b64(USER) + b"\r\n", L1, b64(b"secret") + b"\r\n", L1, QUIT],
        expect=G + USERNAME + PASSWORD + AUTH_OK + RELAYED_QUIT),
    Case("auth_login_initial_response", "std", [
        b"AUTH LOGIN " + b64(USER) + b"\r\n", L1, b64(b"secret") + b"\r\n", L1, QUIT],
        expect=G + PASSWORD + AUTH_OK + RELAYED_QUIT),
    Case("auth_login_pipelined", "std", [
        b"AUTH LOGIN\r\n" + b64(USER) + b"\r\n" + b64(b"secret") + b"\r\nQUIT\r\n"],
        expect=G + USERNAME + PASSWORD + AUTH_OK + RELAYED_QUIT),
    Case("auth_continuation_eleven_tokens", "std", [
        b"AUTH LOGIN\r\n", L1, b64(USER) + b" a b c d e f g h i j\r\n", L1,
        b64(b"secret") + b" a  b c d e f g h i j  \r\n", L1, QUIT],
        expect=G + USERNAME + PASSWORD + AUTH_OK + RELAYED_QUIT),
    Case("auth_continuation_extra_tokens", "std", [
        b"AUTH LOGIN\r\n", L1, b64(USER) + b" x y\r\n", L1, b64(b"secret") + b"\r\n", L1, QUIT],
        expect=G + USERNAME + PASSWORD + AUTH_OK + RELAYED_QUIT),
    Case("auth_extra_spaces", "std", [
        b"AUTH  PLAIN   " + PLAIN_IR + b"   \r\n", L1, QUIT], expect=G + AUTH_OK + RELAYED_QUIT),
    Case("auth_continuation_lf_only", "std", [b"AUTH PLAIN\n", L1, PLAIN_IR + b"\n", L1, QUIT],
         expect=G + EMPTY_CHALLENGE + AUTH_OK + RELAYED_QUIT),
    Case("auth_continuation_bare_cr", "std", [
        b"AUTH LOGIN\r\n", L1, b64(USER) + b"\rx\r\n", L1, b"AUTH PLAIN\r\n", L1,
        PLAIN_IR + b"\r\r\n", L1, b"NOOP\r\n", L1, QUIT],
        expect=G + USERNAME + INVALID + EMPTY_CHALLENGE + INVALID + OK + BYE),
    Case("auth_login_equals_sign_is_empty", "std", [b"AUTH LOGIN =\r\n", L1, b"=\r\n", L1],
         expect=G + PASSWORD + FAILED),
    Case("auth_plain_empty_login", "std", [plain(b""), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("auth_quit_inside_exchange_is_base64", "std", [
        b"AUTH LOGIN\r\n", L1, QUIT, L1, QUIT, L1], expect=G + USERNAME + PASSWORD + FAILED),
    Case("auth_8bit_mechanism_and_nul_response", "std", [
        b"AUTH PL\xc3\x80IN\r\n", L1, b"AUTH plain\r\n", L1, b"\0\r\n", L1, QUIT],
        expect=G + INVALID + EMPTY_CHALLENGE + INVALID + BYE),
    Case("auth_continuation_is_not_a_command", "std", [
        b"AUTH PLAIN\r\n", L1, QUIT, L1, b"NOOP\r\n", L1, QUIT],
        expect=G + EMPTY_CHALLENGE + INVALID + OK + BYE),
    Case("auth_cancel_is_not_special", "std", [
        b"AUTH LOGIN\r\n", L1, b"*\r\n", L1, b"AUTH PLAIN\r\n", L1, b"=\r\n", L1, QUIT],
        expect=G + USERNAME + INVALID + EMPTY_CHALLENGE + INVALID + BYE),
    Case("auth_plain_malformed_not_counted", "lim", [
        b"AUTH PLAIN !!!!\r\n", L1, b"AUTH PLAIN " + b64(b"no-nul-at-all") + b"\r\n", L1,
        b"AUTH PLAIN " + b64(b"\0only-login") + b"\r\n", L1, b"AUTH PLAIN a b\r\n", L1,
        b"AUTH LOGIN\r\n", L1, b"!!!\r\n", L1, b"NOOP\r\n", L1, QUIT],
        expect=G + INVALID * 4 + USERNAME + INVALID + OK + BYE),
    Case("auth_arguments_and_mechanisms_not_counted", "lim", [
        b"AUTH\r\n", L1, b"AUTH FOO\r\n", L1, b"AUTH LOGIN a b\r\n", L1,
        b"AUTH CRAM-MD5\r\n", L1, b"AUTH EXTERNAL\r\n", L1, b"AUTH XOAUTH2\r\n", L1,
        b"AUTH OAUTHBEARER\r\n", L1, b"NOOP\r\n", L1, QUIT],
        expect=G + ARGUMENT + INVALID * 6 + OK + BYE),
    Case("auth_plain_and_login_work_unlisted", "mx", [
        AUTH_PLAIN, L1, QUIT], expect=G + AUTH_OK + RELAYED_QUIT),
    Case("auth_login_unlisted_with_cram_md5", "cram", [
        b"AUTH LOGIN " + b64(USER) + b"\r\n", L1, b64(b"secret") + b"\r\n", L1, QUIT],
        expect=G + PASSWORD + AUTH_OK + RELAYED_QUIT),
    Case("auth_login_empty_tokens", "std", [
        b"AUTH LOGIN\r\n", L1, b"\r\n", L1, b" " + b64(b"secret") + b"\r\n", L1],
        expect=G + USERNAME + PASSWORD + FAILED),
    # CRAM-MD5, EXTERNAL ----------------------------------------------------------------------
    Case("auth_cram_md5", "caps", [
        b"AUTH CRAM-MD5\r\n", L1, b64(USER + b" " + GOOD_DIGEST) + b"\r\n", L1, QUIT],
        expect=G + SALT_CHALLENGE + AUTH_OK + RELAYED_QUIT),
    Case("auth_cram_md5_no_auth_pass_with_xclient", "caps", [
        b"AUTH CRAM-MD5\r\n", L1, b64(USER + b" " + NOPASS_DIGEST) + b"\r\n", L1, QUIT],
        expect=G + SALT_CHALLENGE + AUTH_OK + RELAYED_QUIT),
    Case("auth_cram_md5_initial_response", "caps", [
        b"AUTH CRAM-MD5 " + b64(b"x") + b"\r\n", L1, QUIT], expect=G + INVALID + BYE),
    Case("auth_cram_md5_salt_kept", "caps", [
        b"AUTH CRAM-MD5\r\n", L1, b64(USER + b" " + b"2" * 32) + b"\r\n", L1,
        b"AUTH CRAM-MD5\r\n", L1, b64(USER + b" " + GOOD_DIGEST) + b"\r\n", L1, QUIT],
        expect=G + SALT_CHALLENGE + FAILED + SALT_CHALLENGE + AUTH_OK + RELAYED_QUIT),
    Case("auth_cram_md5_empty_response", "caps", [
        b"AUTH CRAM-MD5\r\n", L1, b"\r\n", L1, b"NOOP\r\n", L1, QUIT],
        expect=G + SALT_CHALLENGE + INVALID + OK + BYE),
    Case("auth_cram_md5_malformed", "caps", [
        b"AUTH CRAM-MD5\r\n", L1, b64(USER + b" short") + b"\r\n", L1, b"NOOP\r\n", L1, QUIT],
        expect=G + SALT_CHALLENGE + INVALID + OK + BYE),
    Case("auth_external", "caps", [
        b"AUTH EXTERNAL\r\n", L1, b64(USER) + b"\r\n", L1, QUIT],
        expect=G + USERNAME + AUTH_OK + RELAYED_QUIT),
    Case("auth_external_initial_response", "caps", [
        b"AUTH EXTERNAL " + b64(USER) + b"\r\n", L1, QUIT], expect=G + AUTH_OK + RELAYED_QUIT),
    Case("auth_external_no_auth_pass_with_xclient", "caps", [
        b"AUTH EXTERNAL " + b64(b"someone") + b"\r\n", L1, QUIT],
        expect=G + AUTH_OK + RELAYED_QUIT),
    # authentication outcomes -----------------------------------------------------------------
    Case("auth_failure_closes", "std", [plain(USER, b"wrong"), L1], expect=G + FAILED),
    Case("auth_failure_wait_then_success", "std", [
        plain(USER, b"wait1"), L1, b"NOOP\r\n", L1, AUTH_PLAIN, L1, QUIT],
        expect=G + FAILED + OK + AUTH_OK + RELAYED_QUIT),
    Case("auth_wait_pipelined_commands_after_failure", "std", [
        plain(USER, b"wait1") + b"NOOP\r\nRSET\r\nQUIT\r\n"],
        expect=G + FAILED + OK + OK + BYE),
    Case("data_sent_during_auth_wait", "std", [plain(USER, b"wait1"), b"NOOP\r\n", Lines(2),
                                               QUIT],
         expect=G + FAILED + OK + BYE),
    Case("auth_error_code", "std", [plain(b"errcode"), L1], expect=G + b"454 4.7.0 Go away\r\n"),
    Case("auth_error_code_with_wait", "std", [plain(b"errcodewait"), L1, b"NOOP\r\n", L1, QUIT],
         expect=G + b"454 4.7.0 Go away\r\n" + OK + BYE),
    Case("auth_error_code_empty", "std", [plain(b"emptycode"), L1], expect=G + FAILED),
    Case("auth_escaping_to_auth_server", "std", [plain(b"t\xe9 st%", b"p\xe9 %\t"), L1],
         expect=G + FAILED),
    Case("auth_status_wait_then_ok", "std", [plain(b"wait", b"waitok"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("auth_user_to_xclient", "std", [plain(b"alias"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("auth_status_text_verbatim", "std", [plain(b"spaced"), L1],
         expect=G + b"535 5.7.0 spaced  text\r\n"),
    Case("auth_status_nul_and_8bit", "std", [plain(b"statusnul"), L1],
         expect=G + b"535 5.7.0 bad\0text\xff\r\n"),
    Case("auth_status_lowercase_ok", "std", [plain(b"lowerok"), L1],
         expect=G + b"535 5.7.0 ok\r\n"),
    Case("auth_status_later_failure_wins", "std", [plain(b"twofail"), L1],
         expect=G + b"535 5.7.0 second\r\n"),
    Case("auth_wait_zero_closes", "std", [plain(b"wait0"), L1], expect=G + FAILED),
    Case("auth_server_garbage", "std", [plain(b"garbage"), L1], expect=G + INTERNAL),
    Case("auth_server_closes", "std", [plain(b"close"), L1], expect=G + INTERNAL),
    Case("auth_server_no_backend", "std", [plain(b"noserver"), L1], expect=G + INTERNAL),
    Case("auth_server_hostname_not_ip", "std", [plain(b"hostname"), L1], expect=G + INTERNAL),
    Case("auth_response_bad_port", "std", [plain(b"badport"), L1], expect=G + INTERNAL),
    Case("pipelined_after_auth_reach_backend", "std", [
        AUTH_PLAIN + b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nQUIT\r\n"],
        expect=G + AUTH_OK + b"250 mail from ok\r\n" + RCPT_OK + RELAYED_QUIT),
    Case("relay_a_message", "std", [
        AUTH_PLAIN, L1, MAIL, L1, RCPT, L1, b"DATA\r\n", L1,
        b"Subject: x\r\n\r\n..dot\r\n\0\xff\r\n.\r\n", L1, b"NOOP\r\n", L1, QUIT],
        expect=G + AUTH_OK + b"250 mail from ok\r\n" + RCPT_OK + b"354 go ahead\r\n"
        + b"250 data ok\r\n500 unknown command\r\n" + RELAYED_QUIT),
    # max_errors ------------------------------------------------------------------------------
    Case("max_errors_default_5", "std", [b"FOO\r\n" * 5], expect=G + INVALID * 5),
    Case("max_errors_2", "lim", [
        b"VRFY\r\n", L1, b"VRFY\r\n", L1, b"VRFY\r\n", L1, b"AUTH FOO\r\n", L1, b"FOO\r\n", L1,
        b"NOOP\r\n", L1, b"BAR\r\n", L1],
        expect=G + INVALID * 5 + OK + INVALID),
    Case("max_errors_2_pipelined", "lim", [b"FOO\r\nNOOP\r\nBAR\r\nNOOP\r\n"],
         expect=G + INVALID + OK + INVALID),
    Case("max_errors_counts_continuation_lines", "lim", [
        b"AUTH LOGIN\r\n", L1, b"a b c d e f g h i j k l\r\n", L1, b"AUTH PLAIN\r\n", L1,
        b"x\ry\r\n", L1],
        expect=G + USERNAME + INVALID + EMPTY_CHALLENGE + INVALID),
    Case("max_errors_counts_bare_cr_and_empty", "lim", [b"\r\n", L1, b"NOOP\rx\r\n", L1],
         expect=G + INVALID + INVALID),
    # timeout ---------------------------------------------------------------------------------
    Case("preauth_timeout_is_a_deadline", "tmo", [b"NOOP\r\n", L1, b"NOOP\r\n", L1],
         expect=G + OK + OK),
    # smtp_auth none --------------------------------------------------------------------------
    Case("none_mail_rcpt", "mx", [
        b"HELO client.example\r\n", L1, b"MAIL FROM:<a@example.com> SIZE=10\r\n", L1,
        b"rcpt  TO:<b@example.com>\r\n", L1, QUIT],
        expect=G + HELO + OK + RCPT_OK + RELAYED_QUIT),
    Case("none_without_helo", "mx", [MAIL, L1, RCPT, L1, QUIT],
         expect=G + OK + RCPT_OK + RELAYED_QUIT),
    Case("none_sequence_errors", "mx", [
        RCPT, L1, b"MAIL\r\n", L1, b"MAIL \r\n", L1, MAIL, L1, MAIL, L1, b"RCPT\r\n", L1,
        b"RSET\r\n", L1, RCPT, L1, QUIT],
        expect=G + SEQUENCE + ARGUMENT * 2 + OK + SEQUENCE + ARGUMENT + OK + SEQUENCE + BYE),
    Case("none_helo_clears_mail", "mx", [
        MAIL, L1, b"HELO x\r\n", L1, RCPT, L1, MAIL, L1, b"EHLO y\r\n", R, MAIL, L1, QUIT],
        expect=G + OK + HELO + SEQUENCE + OK + HELO + OK + BYE),
    Case("none_rset_keeps_helo", "mx", [
        b"HELO x\r\n", L1, MAIL, L1, b"RSET\r\n", L1, MAIL, L1, RCPT, L1, QUIT],
        expect=G + HELO + OK + OK + OK + RCPT_OK + RELAYED_QUIT),
    Case("none_starttls_clears_mail", "mxonly", [
        b"HELO x\r\n", L1, MAIL, L1, b"STARTTLS\r\n", L1, Tls(), RCPT, L1, MAIL, L1, RCPT, L1,
        QUIT],
        expect=G + HELO + OK + START_TLS + SEQUENCE + OK + RCPT_OK + RELAYED_QUIT),
    Case("none_server_auth_then_pipelined_mail", "mxauth", [
        b"AUTH LOGIN " + b64(USER) + b"\r\n", L1, b64(b"secret") + b"\r\n" + MAIL + RCPT,
        Lines(3), QUIT],
        expect=G + PASSWORD + AUTH_OK + b"250 mail from ok\r\n" + RCPT_OK + RELAYED_QUIT),
    Case("mail_without_none_nul_and_8bit", "std", [b"MAIL FROM:<a\0b\xff>\r\n", L1, QUIT],
         expect=G + REQUIRED + BYE),
    Case("mail_without_none_twice", "std", [MAIL, L1, MAIL, L1, QUIT],
         expect=G + REQUIRED + REQUIRED + BYE),
    Case("mail_without_none", "std", [MAIL, L1, RCPT, L1, b"MAIL\r\n", L1, QUIT],
         expect=G + REQUIRED + SEQUENCE + REQUIRED + BYE),
    Case("none_ehlo_then_helo_xclient", "mx", [
        b"EHLO a\r\n", R, b"HELO b\r\n", L1, MAIL, L1, RCPT, L1, QUIT],
        expect=G + HELO + HELO + OK + RCPT_OK + RELAYED_QUIT),
    Case("none_sticky_esmtp_without_xclient", "mxnoxc", [
        b"EHLO a\r\n", R, b"RSET\r\n", L1, b"HELO b\r\n", L1, MAIL, L1, RCPT, L1, QUIT],
        expect=G + HELO + OK + HELO + OK + RCPT_OK + RELAYED_QUIT),
    Case("none_helo_without_xclient", "mxnoxc", [b"HELO b\r\n", L1, MAIL, L1, RCPT, L1, QUIT],
         expect=G + HELO + OK + RCPT_OK + RELAYED_QUIT),
    Case("none_ignores_proxy_smtp_auth", "mxpsa", [b"EHLO b\r\n", R, MAIL, L1, RCPT, L1, QUIT],
         expect=G + HELO + OK + RCPT_OK + RELAYED_QUIT),
    Case("none_failure_keeps_mail", "mx", [
        mail_from(b"wait1"), L1, RCPT, L1, MAIL, L1, b"RCPT TO:<c@example.com>\r\n", L1,
        b"RSET\r\n", L1, MAIL, L1, RCPT, L1, QUIT],
        expect=G + OK + FAILED + SEQUENCE + FAILED + OK + OK + RCPT_OK + RELAYED_QUIT),
    Case("none_failure_closes", "mx", [mail_from(b"deny"), L1, RCPT, L1],
         expect=G + OK + FAILED),
    Case("none_error_code", "mx", [mail_from(b"errcode"), L1, RCPT, L1],
         expect=G + OK + b"454 4.7.0 Go away\r\n"),
    Case("none_rcpt_reply_relayed", "mx", [
        MAIL, L1, b"RCPT TO:<nobody>\r\n", L1, b"NOOP\r\n", L1, QUIT],
        expect=G + OK + b"500 rcpt to error\r\n500 unknown command\r\n" + RELAYED_QUIT),
    Case("none_rcpt_multiline_reply_relayed", "mx", [
        mail_from(b"rcptmulti"), L1, RCPT, Reply(1), QUIT],
        expect=G + OK + b"250-rcpt\r\n250 ok\r\n" + RELAYED_QUIT),
    Case("none_rcpt_refusal_relayed", "mx", [mail_from(b"rcpt550"), L1, RCPT, L1, QUIT],
         expect=G + OK + b"550 5.1.1 no such user\r\n" + RELAYED_QUIT),
    Case("none_raw_bytes_in_helo_mail_rcpt", "mx", [
        b"HELO a\xe9\tb\r\n", L1, b"MAIL FROM:<x\xe9\t@example.com> X=\0\r\n", L1,
        b"RCPT  TO:<y\xff@example.com>  A=%20  \r\n", L1, QUIT],
        expect=G + HELO + OK + RCPT_OK + RELAYED_QUIT),
    Case("none_rcpt_alone_empties_buffer", "mxbuf", [
        mail_from(b"wait1"), L1, RCPT, L1, line_of(128), L1, QUIT],
        expect=G + OK + FAILED + OK + BYE),
    Case("none_rcpt_line_kept_before_pipelined_bytes", "mxbuf", [
        mail_from(b"wait1"), L1, RCPT + line_of(128 - len(RCPT)), Lines(2), line_of(128), L1,
        QUIT],
        expect=G + OK + FAILED + OK + OK + BYE),
    Case("none_rcpt_line_kept_next_line_too_long", "mxbuf", [
        mail_from(b"wait1"), L1, RCPT + line_of(128 - len(RCPT) + 1), Lines(2)],
        expect=G + OK + FAILED),
    Case("none_pipelined", "mx", [MAIL + RCPT + b"RSET\r\nQUIT\r\n"],
         expect=G + OK + RCPT_OK + b"250 rset ok\r\n" + RELAYED_QUIT),
    Case("none_with_auth_listed_too", "mxauth", [
        b"EHLO x\r\n", R, MAIL, L1, RCPT, L1, QUIT],
        expect=G + b"250-" + N + b"\r\n250 AUTH LOGIN CRAM-MD5\r\n" + OK + RCPT_OK
        + RELAYED_QUIT),
    Case("none_server_auth_login", "mxauth", [
        b"AUTH LOGIN " + b64(USER) + b"\r\n", L1, b64(b"secret") + b"\r\n", L1, QUIT],
        expect=G + PASSWORD + AUTH_OK + RELAYED_QUIT),
    # backend sequences -----------------------------------------------------------------------
    Case("xclient_without_client_helo", "std", [AUTH_PLAIN, L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("xclient_client_helo", "std", [b"HELO x\r\n", L1, AUTH_PLAIN, L1, QUIT],
         expect=G + HELO + AUTH_OK + RELAYED_QUIT),
    Case("xclient_ehlo_then_helo", "std", [
        b"EHLO a\r\n", R, b"HELO b\r\n", L1, AUTH_PLAIN, L1, QUIT],
        expect=G + EHLO + HELO + AUTH_OK + RELAYED_QUIT),
    Case("xclient_off_helo", "noxc", [b"HELO x\r\n", L1, AUTH_PLAIN, L1, QUIT],
         expect=G + HELO + AUTH_OK + RELAYED_QUIT),
    Case("xclient_off_after_ehlo", "noxc", [
        b"EHLO x\r\n", R, b"HELO y\r\n", L1, AUTH_PLAIN, L1, QUIT],
        expect=G + EHLO + HELO + AUTH_OK + RELAYED_QUIT),
    Case("proxy_smtp_auth_xclient_ehlo", "psa", [
        b"EHLO x\r\n", R, AUTH_PLAIN, L1, QUIT],
        expect=G + b"250-" + N + b"\r\n250 AUTH PLAIN LOGIN CRAM-MD5 EXTERNAL\r\n" + AUTH_OK
        + RELAYED_QUIT),
    Case("proxy_smtp_auth_without_xclient", "psanoxc", [AUTH_PLAIN, L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("proxy_smtp_auth_user_and_pass", "psa", [plain(b"authpass"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("proxy_smtp_auth_cram_md5_auth_pass", "psa", [
        b"AUTH CRAM-MD5\r\n", L1, b64(USER + b" " + GOOD_DIGEST) + b"\r\n", L1, QUIT],
        expect=G + SALT_CHALLENGE + AUTH_OK + RELAYED_QUIT),
    Case("proxy_smtp_auth_cram_md5_no_password", "psa", [
        b"AUTH CRAM-MD5\r\n", L1, b64(USER + b" " + NOPASS_DIGEST) + b"\r\n", L1],
        expect=G + SALT_CHALLENGE + INTERNAL),
    Case("proxy_smtp_auth_external_no_password", "psa", [
        b"AUTH EXTERNAL " + b64(b"someone") + b"\r\n", L1], expect=G + INTERNAL),
    Case("proxy_smtp_auth_empty_auth_pass", "psa", [
        b"AUTH EXTERNAL " + b64(b"emptypass") + b"\r\n", L1, QUIT],
        expect=G + AUTH_OK + RELAYED_QUIT),
    Case("proxy_smtp_auth_external_auth_pass", "psa", [
        b"AUTH EXTERNAL " + b64(USER) + b"\r\n", L1, QUIT], expect=G + AUTH_OK + RELAYED_QUIT),
    # backend replies, proxy_pass_error_message ----------------------------------------------
    Case("backend_greeting_refused", "std", [plain(b"greet554"), L1], expect=G + INTERNAL),
    Case("backend_greeting_refused_pass", "pem", [plain(b"greet554"), L1],
         expect=G + b"554 go away\r\n"),
    Case("backend_closes_at_greeting_pass", "pem", [plain(b"greetclose"), L1],
         expect=G + INTERNAL),
    Case("backend_greeting_multiline", "std", [plain(b"greetmulti"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("backend_greeting_only_first_code_checked", "std", [plain(b"greetmixed"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("backend_greeting_code_only", "std", [plain(b"greet4"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("backend_greeting_of_proxy_buffer_size", "pem", [plain(b"greetfull"), L1],
         expect=G + b"220 extra\r\n"),
    Case("backend_greeting_two_replies_at_once", "std", [plain(b"greettwo"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("backend_greeting_empty_lines_pass", "pem", [plain(b"greetcrlf"), L1],
         expect=G + b"\r\n\r\n220 x\r\n"),
    Case("backend_greeting_without_space", "std", [plain(b"greetnospace"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("backend_greeting_too_short", "pem", [plain(b"greetshort"), L1],
         expect=G + b"22\r\n"),
    Case("backend_greeting_too_long", "pem", [plain(b"greetlong"), L1], expect=G + INTERNAL),
    Case("backend_greeting_of_1k_proxy_buffer", "pbuf", [plain(b"greet1k"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("backend_greeting_over_1k_proxy_buffer", "pbuf", [plain(b"greet1kmore"), L1],
         expect=G + INTERNAL),
    Case("backend_greeting_over_1k_proxy_buffer_nul", "pbuf", [plain(b"greet1knul"), L1],
         expect=G + INTERNAL),
    Case("backend_greeting_refused_nul", "std", [plain(b"greetnul"), L1], expect=G + INTERNAL),
    Case("backend_greeting_refused_nul_pass", "pem", [plain(b"greetnul"), L1],
         expect=G + b"554 go\0away\r\n"),
    Case("backend_ehlo_refused", "std", [plain(b"ehlo550"), L1], expect=G + INTERNAL),
    Case("backend_ehlo_refused_pass", "pem", [plain(b"ehlo550"), L1],
         expect=G + b"550 ehlo denied\r\n"),
    Case("backend_closes_after_ehlo_pass", "pem", [plain(b"ehloclose"), L1],
         expect=G + INTERNAL),
    Case("backend_ehlo_multiline", "std", [plain(b"ehlomulti"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("backend_ehlo_short_last_line", "std", [plain(b"ehloshortlast"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("backend_ehlo_two_replies_at_once", "std", [plain(b"ehlotwo"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("backend_ehlo_never_ends", "tmo", [plain(b"ehlostall"), L1], expect=G + INTERNAL),
    Case("backend_xclient_refused", "std", [plain(b"xclient550"), L1], expect=G + INTERNAL),
    Case("backend_xclient_refused_pass", "pem", [plain(b"xclient550"), L1],
         expect=G + b"550 xclient denied\r\n"),
    Case("backend_xclient_250", "std", [plain(b"xclient250"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("backend_xclient_multiline", "std", [plain(b"xclientmulti"), L1, QUIT],
         expect=G + AUTH_OK + RELAYED_QUIT),
    Case("backend_client_helo_refused", "std", [b"HELO x\r\n", L1, plain(b"helo550"), L1],
         expect=G + HELO + INTERNAL),
    Case("backend_helo_refused_without_xclient", "noxc", [plain(b"ehlo550"), L1],
         expect=G + INTERNAL),
    Case("backend_client_helo_refused_pass", "pem", [b"HELO x\r\n", L1, plain(b"helo550"), L1],
         expect=G + HELO + b"550 helo denied\r\n"),
    Case("backend_auth_refused", "psa", [plain(b"auth535"), L1], expect=G + INTERNAL),
    Case("backend_auth_refused_pass", "psapem", [plain(b"auth535"), L1],
         expect=G + b"535 5.7.8 auth denied\r\n"),
    Case("backend_mail_refused", "mx", [mail_from(b"mail550"), L1, RCPT, L1],
         expect=G + OK + INTERNAL),
    Case("backend_mail_refused_pass", "mxpem", [mail_from(b"mail550"), L1, RCPT, L1],
         expect=G + OK + b"550 5.7.1 mail from rejected\r\n"),
    Case("backend_xclient_refused_none_pass", "mxpem", [
        mail_from(b"xclient550"), L1, RCPT, L1],
        expect=G + OK + b"550 xclient denied\r\n"),
    Case("backend_greeting_refused_none_pass", "mxpem", [mail_from(b"greet554"), L1, RCPT, L1],
         expect=G + OK + b"554 go away\r\n"),
]

# how the session ends when not with the proxy's FIN: closing with unread input resets
# the connection (smtp.md §4.6), and this client then reads no 500 before the reset
ENDINGS = {
    "none_rcpt_line_kept_next_line_too_long": ["RESET"],
}

# the lines the backend(s) receive, by case (smtp.md §12)
BACKEND = {
    "auth_plain_initial_response": [EHLO_N, XCLIENT_USER, b"EHLO client.example\r\n", QUIT],
    "nul_and_8bit_helo_reach_backend": [EHLO_N, XCLIENT_USER, b"EHLO a\0\xffb\r\n", QUIT],
    "starttls_then_ehlo_and_auth": [EHLO_N, XCLIENT_USER, b"EHLO b\r\n", QUIT],
    "starttls_clears_helo": [EHLO_N, XCLIENT_USER, QUIT],
    "auth_user_to_xclient": [EHLO_N, XCLIENT_USER, QUIT],
    "auth_external_no_auth_pass_with_xclient": [
        EHLO_N, b"XCLIENT ADDR=127.0.0.1 LOGIN=someone NAME=[UNAVAILABLE]\r\n", QUIT],
    "pipelined_after_auth_reach_backend": [
        EHLO_N, XCLIENT_USER, b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n", QUIT],
    "none_mail_rcpt": [EHLO_N, XCLIENT_ANON, b"HELO client.example\r\n",
                       b"MAIL FROM:<a@example.com> SIZE=10\r\n", b"rcpt  TO:<b@example.com>\r\n",
                       QUIT],
    "none_without_helo": [EHLO_N, XCLIENT_ANON, MAIL, RCPT, QUIT],
    "none_ehlo_then_helo_xclient": [EHLO_N, XCLIENT_ANON, b"EHLO b\r\n", MAIL, RCPT, QUIT],
    "none_sticky_esmtp_without_xclient": [EHLO_N, MAIL, RCPT, QUIT],
    "none_helo_without_xclient": [HELO_N, MAIL, RCPT, QUIT],
    "none_ignores_proxy_smtp_auth": [EHLO_N, XCLIENT_ANON, b"EHLO b\r\n", MAIL, RCPT, QUIT],
    "none_pipelined": [EHLO_N, XCLIENT_ANON, MAIL, RCPT, b"RSET\r\n", QUIT],
    "none_raw_bytes_in_helo_mail_rcpt": [
        EHLO_N, XCLIENT_ANON, b"HELO a\xe9\tb\r\n", b"MAIL FROM:<x\xe9\t@example.com> X=\0\r\n",
        b"RCPT  TO:<y\xff@example.com>  A=%20\r\n", QUIT],
    "starttls_then_none_flow_has_empty_helo": [EHLO_N, XCLIENT_ANON, MAIL, RCPT, QUIT],
    "xclient_without_client_helo": [EHLO_N, XCLIENT_USER, QUIT],
    "xclient_client_helo": [EHLO_N, XCLIENT_USER, b"HELO x\r\n", QUIT],
    "xclient_ehlo_then_helo": [EHLO_N, XCLIENT_USER, b"EHLO b\r\n", QUIT],
    "xclient_off_helo": [HELO_N, QUIT],
    "xclient_off_after_ehlo": [EHLO_N, QUIT],
    "proxy_smtp_auth_xclient_ehlo": [EHLO_N, XCLIENT_ANON, b"EHLO x\r\n", BACKEND_AUTH_PLAIN,
                                     QUIT],
    "proxy_smtp_auth_without_xclient": [HELO_N, BACKEND_AUTH_PLAIN, QUIT],
    "proxy_smtp_auth_user_and_pass": [
        EHLO_N, XCLIENT_ANON, b"AUTH PLAIN " + b64(b"\0other@example.com\0backend-pass")
        + b"\r\n", QUIT],
    "proxy_smtp_auth_cram_md5_auth_pass": [EHLO_N, XCLIENT_ANON, BACKEND_AUTH_PLAIN, QUIT],
    "proxy_smtp_auth_cram_md5_no_password": [EHLO_N, XCLIENT_ANON],
    "proxy_smtp_auth_empty_auth_pass": [EHLO_N, XCLIENT_ANON,
                                        b"AUTH PLAIN " + b64(b"\0emptypass\0") + b"\r\n", QUIT],
}

# the auth_http requests, by case (smtp.md §11)
AUTH = {
    "auth_plain_initial_response": [smtp_request(b"plain", USER, b"secret")],
    "auth_external": [smtp_request(b"external", USER)],
    "auth_login_empty_tokens": [smtp_request(b"plain")],
    "auth_cram_md5": [smtp_request(b"cram-md5", USER, GOOD_DIGEST,
                                   salt=b"<R.T@mail.example.com>")],
    "none_mail_rcpt": [smtp_request(b"none", none=(
        b"client.example", b"MAIL FROM:<a@example.com> SIZE=10", b"rcpt  TO:<b@example.com>"))],
    "none_raw_bytes_in_helo_mail_rcpt": [smtp_request(b"none", none=(
        b"a\xe9\tb", b"MAIL FROM:<x\xe9\t@example.com> X=\0",
        b"RCPT  TO:<y\xff@example.com>  A=%20"))],
    "none_without_helo": [smtp_request(b"none", none=(
        b"", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>"))],
    "none_failure_keeps_mail": [
        smtp_request(b"none", attempt=1, none=(
            b"", b"MAIL FROM:<wait1@example.com>", b"RCPT TO:<b@example.com>")),
        smtp_request(b"none", attempt=2, none=(
            b"", b"MAIL FROM:<wait1@example.com>", b"RCPT TO:<c@example.com>")),
        smtp_request(b"none", attempt=3, none=(
            b"", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>"))],
}


# --- where nginx 1.22 and Angie differ (smtp.md §16, §17) ---------------------------------------

LONG_NOOP = line_of(125)                          # with the next line beyond 128 bytes

DIFFERENCE_CASES = [
    Case("auth_server_down", "dead", [AUTH_PLAIN, L1], expect=G + INTERNAL),
    Case("pipeline_longer_than_buffer", "buf", [LONG_NOOP + b"RSET\r\n" + QUIT], timeout=2),
    Case("auth_line_kept_after_failure", "buf", [AUTH_WAIT1, L1, line_of(128), L1],
         timeout=2),
    Case("auth_line_kept_next_line_fits", "buf", [
        AUTH_WAIT1, L1, line_of(128 - len(AUTH_WAIT1)), L1, line_of(128), L1, QUIT],
        timeout=2),
    Case("auth_line_kept_pipelined_too_long", "buf", [AUTH_WAIT1 + line_of(ROOM + 1), L1],
         timeout=2),
    Case("sasl_continuation_too_long", "buf", [b"AUTH LOGIN\r\n", L1, b"x" * 128, L1]),
    Case("rejected_mail_pipelined", "std", [MAIL + b"RCPT TO:<c@d>\r\nNOOP\r\n", L1, QUIT],
         timeout=1),
    Case("failed_auth_then_none_attempt", "mxauth", [
        b"AUTH LOGIN " + b64(USER) + b"\r\n", L1, b64(b"wait1") + b"\r\n", L1, MAIL, L1,
        RCPT, L1, QUIT]),
    Case("mail_then_failed_auth_then_rcpt", "mxauth", [
        MAIL, L1, b"AUTH LOGIN " + b64(USER) + b"\r\n", L1, b64(b"wait1") + b"\r\n", L1,
        RCPT, L1, QUIT]),
    Case("external_after_failed_plain", "caps", [
        AUTH_WAIT1, L1, b"AUTH EXTERNAL " + b64(USER) + b"\r\n", L1, QUIT]),
    Case("external_after_failed_plain_proxy_smtp_auth", "psa", [
        plain(b"someone", b"wait1"), L1, b"AUTH EXTERNAL " + b64(b"someone") + b"\r\n", L1],
        timeout=2),
    Case("cram_md5_without_space_after_failed_plain", "caps", [
        plain(b"stale", GOOD_DIGEST), L1, b"AUTH CRAM-MD5\r\n", L1, b64(USER) + b"\r\n", L1,
        QUIT]),
    Case("auth_salt_after_cram_md5_challenge", "caps", [
        b"AUTH CRAM-MD5\r\n", L1, b"!!\r\n", L1, b"AUTH EXTERNAL " + b64(USER) + b"\r\n", L1,
        QUIT]),
    Case("xclient_login_xtext_auth_user", "std", [plain(b"xtext"), L1, QUIT]),
    Case("xclient_login_xtext_client_login", "std", [plain(b"a+b=c d\x7f\xe9\x01"), L1, QUIT]),
]


def client(data: bytes, events=("EOF",)):
    """The expected client result: what it received, and how the session ended."""
    return data, list(events)


def outcome(transcript):
    return server_bytes(transcript), [e[0] for e in transcript if e[0] not in ("S", "C", "TLS")]


def _none_request(attempt, user=b"", pw=b""):
    return smtp_request(b"none", user, pw, attempt=attempt, none=(
        b"", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>"))


# case id -> (spec reference, {result key: {"nginx": value, "angie": value}}); the client
# key is compared through outcome(); keys not listed must be identical on both sides.
EXPECTED_NGINX_DIFFERENCES: dict = {
    # a refused auth_http connection on loopback: nginx 1.22's non-blocking connect()
    # returns at once and the refusal comes with the read; the spec names connect()
    "auth_server_down": ("auth_http.md §6", {
        "log": {"nginx": ["[error] recv() failed (111: Connection refused) while in http "
                          "auth state"],
                "angie": ["[error] connect() failed (111: Connection refused) while in "
                          "http auth state"]}}),
    "pipeline_longer_than_buffer": ("smtp.md §16.7, §9", {
        "client": {"nginx": client(G + OK, ["RESET"]),
                   "angie": client(G + OK + OK + BYE)},
        "log": {"nginx": ['[info] client sent too long command "'
                          + LONG_NOOP.decode().replace("\r\n", "\\r\\n")
                          + 'RSE" while in auth state'],
                "angie": []}}),
    "auth_line_kept_after_failure": ("smtp.md §16.8, §9", {
        "client": {"nginx": client(G + FAILED + OK, ["TIMEOUT"]),
                   "angie": client(G + FAILED + INVALID, ["RESET"])},
        "log": {"nginx": ['[info] client login failed: "Invalid login or password" '
                          'while in http auth state'],
                "angie": ['[info] client login failed: "Invalid login or password" '
                          'while in http auth state',
                          '[info] client sent too long command "AUTH PLAIN ***\\r\\n'
                          + line_of(128)[:128 - len(AUTH_WAIT1)].decode() + '" '
                          'while in auth state']}}),
    "auth_line_kept_next_line_fits": ("smtp.md §16.8, §9", {
        "client": {"nginx": client(G + FAILED + OK + OK + BYE),
                   "angie": client(G + FAILED + OK + OK + BYE)}}),
    "auth_line_kept_pipelined_too_long": ("smtp.md §14 (secrets masked), §9", {"log": {
        "nginx": ['[info] client login failed: "Invalid login or password" '
                  'while in http auth state',
                  '[info] client sent too long command "' + AUTH_WAIT1.decode()
                  .replace("\r\n", "\\r\\n") + line_of(ROOM + 1)[:ROOM].decode()
                  .replace("\r", "\\r") + '" while in auth state'],
        "angie": ['[info] client login failed: "Invalid login or password" '
                  'while in http auth state',
                  '[info] client sent too long command "AUTH PLAIN ***\\r\\n'
                  + line_of(ROOM + 1)[:ROOM].decode().replace("\r", "\\r")
                  + '" while in auth state']}}),
    "sasl_continuation_too_long": ("smtp.md §14 (secrets masked), §4.6", {"log": {
        "nginx": ['[info] client sent too long command "' + "x" * 128 + '" while in auth state'],
        "angie": ['[info] client sent too long command "***" while in auth state']}}),
    "rejected_mail_pipelined": ("smtp.md §17.2 (decided: not replicated), §6", {
        "client": {"nginx": client(G + REQUIRED + SEQUENCE, ["TIMEOUT"]),
                   "angie": client(G + REQUIRED + SEQUENCE + OK + BYE)},
        "log": {"nginx": ['[info] client was rejected: "MAIL FROM:<a@example.com>__'
                          'RCPT TO:<c@d>__NOOP__" while in auth state'],
                "angie": ['[info] client was rejected: "MAIL FROM:<a@example.com>__'
                          'RCPT TO:<c@d>__NOOP__" while in auth state']}}),
    "failed_auth_then_none_attempt": ("smtp.md §16.6, §6", {
        "auth": {"nginx": [smtp_request(b"plain", USER, b"wait1"),
                           _none_request(2, USER, b"wait1")],
                 "angie": [smtp_request(b"plain", USER, b"wait1"), _none_request(2)]},
        "backend": {"nginx": [EHLO_N, XCLIENT_USER, MAIL, RCPT, QUIT],
                    "angie": [EHLO_N, XCLIENT_ANON, MAIL, RCPT, QUIT]}}),
    "mail_then_failed_auth_then_rcpt": ("smtp.md §17.4 (decided: credentials cleared)", {
        "auth": {"nginx": [smtp_request(b"plain", USER, b"wait1"),
                           _none_request(2, USER, b"wait1")],
                 "angie": [smtp_request(b"plain", USER, b"wait1"), _none_request(2)]},
        "backend": {"nginx": [EHLO_N, XCLIENT_USER, MAIL, RCPT, QUIT],
                    "angie": [EHLO_N, XCLIENT_ANON, MAIL, RCPT, QUIT]}}),
    # the mail layer shared with IMAP: smtp.md §16 does not list these, imap.md §16 does
    "external_after_failed_plain": ("imap.md §16.4, smtp.md §17.5 (decided: cleared)", {
        "auth": {"nginx": [smtp_request(b"plain", USER, b"wait1"),
                           smtp_request(b"external", USER, b"wait1", attempt=2)],
                 "angie": [smtp_request(b"plain", USER, b"wait1"),
                           smtp_request(b"external", USER, attempt=2)]}}),
    "external_after_failed_plain_proxy_smtp_auth": (
        "imap.md §16.4, smtp.md §17.5 (decided: cleared), §12 step 4", {
            "client": {"nginx": client(G + FAILED + AUTH_OK, ["TIMEOUT"]),
                       "angie": client(G + FAILED + INTERNAL)},
            "auth": {"nginx": [smtp_request(b"plain", b"someone", b"wait1"),
                               smtp_request(b"external", b"someone", b"wait1", attempt=2)],
                     "angie": [smtp_request(b"plain", b"someone", b"wait1"),
                               smtp_request(b"external", b"someone", attempt=2)]},
            "backend": {"nginx": [EHLO_N, XCLIENT_ANON,
                                  b"AUTH PLAIN " + b64(b"\0someone\0wait1") + b"\r\n"],
                        "angie": [EHLO_N, XCLIENT_ANON]},
            "log": {"nginx": ['[info] client login failed: "Invalid login or password" '
                              'while in http auth state', "[info] client logged in",
                              "[info] proxied session done"],
                    "angie": ['[info] client login failed: "Invalid login or password" '
                              'while in http auth state',
                              "[error] no password available while sending AUTH to upstream"]}}),
    "cram_md5_without_space_after_failed_plain": (
        "smtp.md §17.5, pop3.md §15.11 (decided: a new AUTH starts with empty credentials)", {
            "client": {"nginx": client(G + FAILED + SALT_CHALLENGE + AUTH_OK + RELAYED_QUIT),
                       "angie": client(G + FAILED + SALT_CHALLENGE + INVALID + BYE)},
            "auth": {"nginx": [smtp_request(b"plain", b"stale", GOOD_DIGEST),
                               smtp_request(b"cram-md5", USER, GOOD_DIGEST, attempt=2,
                                            salt=b"<R.T@mail.example.com>")],
                     "angie": [smtp_request(b"plain", b"stale", GOOD_DIGEST)]},
            "backend": {"nginx": [EHLO_N, XCLIENT_USER, QUIT], "angie": []},
            "backend connections": {"nginx": (1,) + (0,) * (len(BACKENDS) - 1),
                                    "angie": (0,) * len(BACKENDS)},
            "log": {"nginx": ['[info] client login failed: "Invalid login or password" '
                              'while in http auth state', "[info] client logged in",
                              "[info] proxied session done"],
                    "angie": ['[info] client login failed: "Invalid login or password" '
                              'while in http auth state',
                              "[info] client sent invalid CRAM-MD5 hash in AUTH CRAM-MD5 "
                              "command while in auth state"]}}),
    "auth_salt_after_cram_md5_challenge": ("imap.md §16.9, auth_http.md §3 row 6", {"auth": {
        "nginx": [smtp_request(b"external", USER, salt=b"<R.T@mail.example.com>")],
        "angie": [smtp_request(b"external", USER)]}}),
    "xclient_login_xtext_auth_user": ("smtp.md §16.5, §12 step 3", {"backend": {
        "nginx": [EHLO_N, b"XCLIENT ADDR=127.0.0.1 LOGIN=other user+x=y NAME=[UNAVAILABLE]\r\n",
                  QUIT],
        "angie": [EHLO_N, b"XCLIENT ADDR=127.0.0.1 LOGIN=other+20user+2Bx+3Dy "
                          b"NAME=[UNAVAILABLE]\r\n", QUIT]}}),
    "xclient_login_xtext_client_login": ("smtp.md §16.5, §12 step 3", {"backend": {
        "nginx": [EHLO_N, b"XCLIENT ADDR=127.0.0.1 LOGIN=a+b=c d\x7f\xe9\x01 "
                          b"NAME=[UNAVAILABLE]\r\n", QUIT],
        "angie": [EHLO_N, b"XCLIENT ADDR=127.0.0.1 LOGIN=a+2Bb+3Dc+20d+7F+E9+01 "
                          b"NAME=[UNAVAILABLE]\r\n", QUIT]}}),
}


# case id -> (result keys, finding): angie-mail differs from nginx where the spec says
# they agree.  Every other key of the case is still required to be identical; the keys
# themselves are an expected failure until the finding is fixed (then the case fails, to
# be taken off this list).
KNOWN_BUGS: dict = {
}


def _check_nginx(result: dict, case: Case):
    got = outcome(result["client"])
    if case.id in EXPECTED_NGINX_DIFFERENCES:
        ref, expected = EXPECTED_NGINX_DIFFERENCES[case.id]
        for key, sides in expected.items():
            value = got if key == "client" else result[key]
            assert value == sides["nginx"], f"{key} ({ref}):\n{value!r}"
        return
    assert got == client(case.expect, ENDINGS.get(case.id, ["EOF"])), result["client"]
    if case.id in BACKEND:
        assert result["backend"] == BACKEND[case.id], result["backend"]
    if case.id in AUTH:
        assert result["auth"] == AUTH[case.id], result["auth"]


def test_case_lists():
    ids = [c.id for c in CASES + DIFFERENCE_CASES]
    assert len(ids) == len(set(ids))
    assert sorted(c.id for c in DIFFERENCE_CASES) == sorted(EXPECTED_NGINX_DIFFERENCES)
    assert all(c.expect is not None for c in CASES)
    assert set(BACKEND) | set(AUTH) | set(KNOWN_BUGS) | set(ENDINGS) <= {c.id for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_same_as_nginx(sides, case):
    """nginx does what the spec says (the script is proven on the oracle), and
    angie-mail does exactly what nginx does."""
    nginx, angie = run_both(sides, case, session_log)
    _check_nginx(nginx, case)
    if case.id not in KNOWN_BUGS:
        assert nginx == angie, describe(nginx, angie)
        return
    keys, finding = KNOWN_BUGS[case.id]
    rest = [k for k in nginx if k not in keys]
    assert [nginx[k] for k in rest] == [angie[k] for k in rest], describe(nginx, angie)
    assert any(nginx[k] != angie[k] for k in keys), f"{case.id} agrees now: take it off KNOWN_BUGS"
    pytest.xfail(finding)


@pytest.mark.parametrize("case", DIFFERENCE_CASES, ids=lambda c: c.id)
def test_expected_nginx_difference(sides, case):
    """nginx 1.22 differs from Angie here (smtp.md §16, §17); angie-mail must do what
    the spec says, and nginx must still do what it did (else the case belongs to CASES)."""
    ref, expected = EXPECTED_NGINX_DIFFERENCES[case.id]
    nginx, angie = run_both(sides, case, session_log)
    _check_nginx(nginx, case)
    for key in nginx:
        if key in expected:
            value = outcome(angie[key]) if key == "client" else angie[key]
            assert value == expected[key]["angie"], f"{key} ({ref}):\n{describe(nginx, angie)}"
        else:
            assert nginx[key] == angie[key], describe(nginx, angie)
