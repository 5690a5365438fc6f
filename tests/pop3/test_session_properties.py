"""Hypothesis properties of the POP3 pre-auth machine (pop3.md §3, §5, §7, §8, §12)."""

from __future__ import annotations

import base64

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from angie_mail.pop3.session import AUTH, CLOSE, CONT, NEED, STLS, Pop3Session
from pop3.helpers import Log, server

CODES = (NEED, CONT, CLOSE, STLS, AUTH)
INVALID = b"-ERR invalid command\r\n"
CERTS = ("ssl_certificate /x;", "ssl_certificate_key /y;")
ALL_AUTH = "pop3_auth plain apop cram-md5 external xoauth2 oauthbearer;"

CONFIGS = [
    (),
    (ALL_AUTH,),
    (ALL_AUTH, "starttls on;") + CERTS,
    (ALL_AUTH, "starttls only;") + CERTS,
    ("pop3_auth apop;", "max_errors 0;"),
    ("max_errors 1;", "max_commands 3;"),
    (ALL_AUTH, "max_commands 0;"),
    ("pop3_auth cram-md5 xoauth2;", "max_errors 20;", "max_commands 20;"),
]

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def b64(x):
    return base64.b64encode(x)


# --- line strategies ----------------------------------------------------------------

_commands = st.sampled_from([
    b"USER bob", b"USER a b ", b"PASS secret", b"PASS", b"APOP bob 0123456789abcdef0123",
    b"APOP bob", b"CAPA", b"capa x y", b"NOOP", b"QUIT", b"STLS", b"AUTH", b"AUTH FOO",
    b"AUTH LOGIN", b"AUTH LOGIN " + b64(b"bob"), b"AUTH PLAIN", b"AUTH PLAIN " +
    b64(b"\0bob\0pw"), b"AUTH CRAM-MD5", b"AUTH EXTERNAL", b"AUTH EXTERNAL " + b64(b"bob"),
    b"AUTH XOAUTH2", b"AUTH XOAUTH2 " + b64(b"user=bob\x01auth=Bearer t\x01\x01"),
    b"AUTH OAUTHBEARER", b"AUTH OAUTHBEARER " + b64(b"n,a=bob,\x01auth=Bearer t\x01\x01"),
    b"STAT", b"RETR 1", b"", b"NOOP a b c d",
])
_sasl = st.one_of(
    st.binary(max_size=60).map(b64),
    st.binary(max_size=60).map(lambda b: b64(b).rstrip(b"=")),
    st.sampled_from([b"", b"*", b"AQ==", b"=", b" x", b"a b c d", b"QUIT", b"Y",
                     b64(b"bob " + b"0" * 32), b64(b"\0a\0b")]),
)
_garbage = st.binary(max_size=200)
_huge = st.binary(min_size=120, max_size=400).map(lambda b: b.replace(b"\n", b"x"))
_ending = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""])
_crlf = st.sampled_from([b"\r\n", b"\r\n", b"\n"])
_command_line = st.tuples(_commands, _crlf).map(b"".join)
_sasl_line = st.tuples(_sasl, _crlf).map(b"".join)
# weighted towards well-formed lines so that AUTH/STLS/SASL exchanges are reached often
_line = st.one_of(
    _command_line, _command_line, _command_line, _sasl_line, _sasl_line,
    st.tuples(st.one_of(_commands, _sasl, _garbage, _huge), _ending).map(b"".join),
    _garbage,
)
_stream = st.lists(_line, max_size=25).map(b"".join)


def _chunks(data, cuts):
    cuts = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for c in cuts + [len(data)]:
        out.append(data[prev:c])
        prev = c
    return out


def _check_reply(code, out):
    assert code in CODES
    assert isinstance(out, bytes)
    if code in (NEED,):
        assert out == b""
    elif code == AUTH:
        assert out == b""
    else:
        # every line the machine sends (pop3.md §12) is a complete CRLF-terminated line
        assert out.endswith(b"\r\n")
        assert out.startswith((b"+OK", b"-ERR ", b"+ "))


# --- properties -------------------------------------------------------------------------

@SETTINGS
@given(cfg=st.sampled_from(CONFIGS), tls=st.booleans(), data=_stream,
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
       draw=st.data())
def test_step_never_raises_and_returns_a_known_code(cfg, tls, data, cuts, draw):
    s = Pop3Session(server(*cfg), tls=tls, log=Log())
    assert s.greeting().endswith(b"\r\n")
    errors = commands = 0
    for chunk in _chunks(data, cuts):
        s.feed(chunk)
        while True:
            code, out = s.step()
            _check_reply(code, out)
            assert s.state in range(10)
            assert s.errors >= errors and s.commands >= commands
            errors, commands = s.errors, s.commands
            if code == NEED:
                # asking again without new input changes nothing
                assert s.step() == (NEED, b"")
                break
            if code == CLOSE:
                return                       # after CLOSE the session is over
            if code == STLS:
                assert out == b"+OK\r\n"
                s.tls_started()
                assert s.state == 0
                continue
            if code == AUTH:
                assert s.method in ("plain", "apop", "cram-md5", "external", "xoauth2",
                                    "oauthbearer")
                assert isinstance(s.login, bytes) and isinstance(s.passwd, bytes)
                if draw.draw(st.booleans(), label="auth succeeds"):
                    assert isinstance(s.leftover(), bytes)
                    return
                wait = draw.draw(st.booleans(), label="Auth-Wait")
                challenge = draw.draw(st.one_of(st.none(), st.just(b"e30=")),
                                      label="Auth-Error-SASL")
                code, out = s.auth_failed(b"Invalid login", wait, sasl_challenge=challenge)
                _check_reply(code, out)
                assert code in (CONT, CLOSE)
                if code == CLOSE:
                    assert not wait
                    return


def _run(s, chunks):
    """Replies (without NEEDs) until the first CLOSE/STLS/AUTH."""
    out = []
    for chunk in chunks:
        s.feed(chunk)
        while True:
            code, b = s.step()
            if code == NEED:
                break
            out.append((code, b))
            if code != CONT:
                return out
    return out


@SETTINGS
@given(cfg=st.sampled_from(CONFIGS), data=_stream,
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=10))
def test_replies_do_not_depend_on_how_bytes_are_split(cfg, data, cuts):
    """pop3.md §8: lines are executed one after another whatever the TCP segmentation."""
    whole = Pop3Session(server(*cfg), salt=b"<1.2@h>")
    split = Pop3Session(server(*cfg), salt=b"<1.2@h>")
    assert _run(whole, [data]) == _run(split, _chunks(data, cuts))
    assert (whole.errors, whole.commands) == (split.errors, split.commands)


_garbage_line = st.tuples(
    st.sampled_from(list(b"0123456789-_!.* \t\rXZ\x00\xff")).map(lambda c: bytes([c])),
    st.binary(max_size=100).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"\r\n", b"\n"]),
).map(b"".join)


@SETTINGS
@given(max_errors=st.sampled_from([0, 1, 2, 3, 5, 10]),
       lines=st.lists(_garbage_line, min_size=12, max_size=20),
       cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=6))
def test_garbage_ends_with_invalid_command_and_close_at_max_errors(max_errors, lines, cuts):
    """pop3.md §7: every parse-level invalid line counts; at errors >= max_errors the
    reply is `-ERR invalid command` and the connection closes."""
    log = Log()
    s = Pop3Session(server("max_errors %d;" % max_errors), log=log)
    out = _run(s, _chunks(b"".join(lines), cuts))
    n = max(max_errors, 1)
    assert out == [(CONT, INVALID)] * (n - 1) + [(CLOSE, INVALID)]
    assert s.errors == n
    assert s.commands == 0
    assert log.records == [("info", "client sent too many invalid commands")]


@SETTINGS
@given(login=st.binary(min_size=1, max_size=121).filter(
    lambda b: b"\n" not in b and b"\r" not in b and b.strip(b" ")))
def test_user_argument_is_everything_after_leading_spaces(login):
    """pop3.md §3.4/§3.5: USER keeps inner and trailing spaces and any other byte."""
    s = Pop3Session(server())
    assert _run(s, [b"USER " + login + b"\r\n"]) == [(CONT, b"+OK\r\n")]
    assert s.login == login.lstrip(b" ")


@SETTINGS
@given(passwd=st.binary(min_size=1, max_size=121).filter(
    lambda b: b"\n" not in b and b"\r" not in b and b.strip(b" ")))
def test_pass_argument_is_everything_after_leading_spaces(passwd):
    s = Pop3Session(server())
    assert _run(s, [b"USER u\r\nPASS " + passwd + b"\r\n"]) == [(CONT, b"+OK\r\n"),
                                                                (AUTH, b"")]
    assert s.passwd == passwd.lstrip(b" ")


@SETTINGS
@given(user=st.binary(max_size=90), pw=st.binary(max_size=90), pad=st.booleans())
def test_auth_login_roundtrip(user, pw, pad):
    """pop3.md §6.1 + base64 rules: any value survives base64, padded or not."""
    enc = (lambda x: b64(x)) if pad else (lambda x: b64(x).rstrip(b"="))
    s = Pop3Session(server())
    out = _run(s, [b"AUTH LOGIN\r\n" + enc(user) + b"\r\n" + enc(pw) + b"\r\n"])
    if b"\r" in user + pw or b"\n" in user + pw:
        # they would reach the backend's USER/PASS lines: refused (docs/pop3.md)
        assert out == [(CONT, b"+ VXNlcm5hbWU6\r\n"), (CONT, b"+ UGFzc3dvcmQ6\r\n"),
                       (CONT, INVALID)]
        return
    assert out == [(CONT, b"+ VXNlcm5hbWU6\r\n"), (CONT, b"+ UGFzc3dvcmQ6\r\n"), (AUTH, b"")]
    assert (s.login, s.passwd) == (user, pw)


@SETTINGS
@given(payload=st.binary(max_size=80))
def test_auth_plain_matches_spec_model(payload):
    """pop3.md §6.2, modelled directly from the text."""
    s = Pop3Session(server())
    out = _run(s, [b"AUTH PLAIN\r\n" + b64(payload) + b"\r\n"])
    first = payload.find(b"\0")
    if first < 0 or first == len(payload) - 1:
        expected = None
    else:
        rest = payload[first + 1:]
        if b"\0" not in rest:
            expected = None
        else:
            login, _, pw = rest.partition(b"\0")
            expected = (login, pw)
            if b"\r" in login + pw or b"\n" in login + pw:
                expected = None         # refused: no line break reaches USER/PASS
    if expected is None:
        assert out == [(CONT, b"+ \r\n"), (CONT, INVALID)]
        assert s.state == 0
    else:
        assert out == [(CONT, b"+ \r\n"), (AUTH, b"")]
        assert (s.login, s.passwd) == expected


@SETTINGS
@given(n=st.integers(min_value=6, max_value=400), lf_only=st.booleans())
def test_line_length_limit_is_128_bytes_including_crlf(n, lf_only):
    """pop3.md §3.8: a line of n bytes (line end included) is accepted iff n <= 128."""
    end = b"\n" if lf_only else b"\r\n"
    data = b"NOOP" + b" " * (n - 4 - len(end)) + end
    assert len(data) == n
    s = Pop3Session(server("max_errors 100;"), log=Log())
    out = _run(s, [data])
    if n > 128:
        assert out == [(CLOSE, INVALID)]
        assert s.errors == 0
        assert s.log.records[0][1].startswith('client sent too long command "NOOP ')
    else:
        assert out == [(CONT, b"+OK\r\n")]
