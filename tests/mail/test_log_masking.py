"""Secrets stay out of the log on every protocol even when the client separates the
command from its tag or its arguments with something a parser rejects (a TAB, a NUL, a
stray byte): the rejected line is still a password typed by a client, and the "too
long command" and "client was rejected" lines quote what the buffer holds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imap.helpers import new as new_imap
from pop3.helpers import Log, server as pop3_server
from session_helpers import talk
from smtp.helpers import new as new_smtp

from angie_mail.pop3.session import Pop3Session

SECRET = b"Zq7SECRETpw"
# bytes a client may put where a space belongs (LF ends the line: what follows it is a
# new command, not the secret's)
SEPS = st.sampled_from([b" ", b"\t", b"\0", b"  ", b"\r", b"\x0b", b"\x0c", b"\x7f",
                        b"\xff", b"\xc3\xa9", b'"', b"{", b"(", b" \t"])
CASE = st.sampled_from([bytes.upper, bytes.lower, bytes.title])


def _messages(log):
    return " | ".join(log.messages())


def _imap(data: bytes):
    s, log = new_imap("imap_client_buffer 64;")
    talk(s, data)
    return _messages(log)


def _pop3(data: bytes):
    s = Pop3Session(pop3_server("pop3_auth plain apop cram-md5;"), log=Log())
    talk(s, data)
    return _messages(s.log)


def _smtp(data: bytes):
    s, log = new_smtp("smtp_client_buffer 64;")
    talk(s, data)
    out = _messages(log)
    s, log = new_smtp("smtp_greeting_delay 1s;", "smtp_client_buffer 64;")
    s.feed(data)
    s.rejected_before_greeting()
    return out + " | " + _messages(log)


@settings(max_examples=300, deadline=None)
@given(proto=st.sampled_from(["imap-login", "imap-auth", "pop3-pass", "pop3-apop",
                              "pop3-auth", "smtp-auth"]),
       lead=st.sampled_from([b"", b" ", b"\0", b"\t", b"\xff"]),
       s1=SEPS, s2=SEPS, s3=SEPS, case=CASE)
def test_no_separator_lets_a_password_into_the_log(proto, lead, s1, s2, s3, case):
    tail = SECRET * 20                       # longer than any of the buffers
    if proto == "imap-login":
        out = _imap(lead + b"a1" + s1 + case(b"login") + s2 + b"user" + s3 + tail)
    elif proto == "imap-auth":
        out = _imap(lead + b"a1" + s1 + case(b"authenticate") + s2 + b"PLAIN" + s3 + tail)
    elif proto == "pop3-pass":
        out = _pop3(lead + case(b"pass") + s1 + tail)
    elif proto == "pop3-apop":
        out = _pop3(lead + case(b"apop") + s1 + b"user" + s2 + tail)
    elif proto == "pop3-auth":
        out = _pop3(lead + case(b"auth") + s1 + b"PLAIN" + s2 + tail)
    else:
        out = _smtp(lead + case(b"auth") + s1 + b"PLAIN" + s2 + tail + b"\r\n" + tail)
    assert out                               # something was logged ...
    assert b"SECRET".decode() not in out     # ... and no piece of the password


@pytest.mark.parametrize("data,logged", [
    (b"a\tLOGIN user " + SECRET * 9, 'a\tLOGIN ***'),
    (b"a LOGIN\tuser " + SECRET * 9, 'a LOGIN ***'),
    (b"a LOGIN user\t" + SECRET * 9, 'a LOGIN ***'),
    (b"a\0LOGIN user\0" + SECRET * 9, 'a\0LOGIN ***'),
    (b"a AUTHENTICATE PLAIN\t" + SECRET * 9, 'a AUTHENTICATE PLAIN ***'),
    (b"a AUTHENTICATE\tPLAIN " + SECRET * 9, 'a AUTHENTICATE ***'),
    (b"LOGIN user " + SECRET * 9, 'LOGIN ***'),              # the tag forgotten
    (b"a LOGINS user " + SECRET * 9, None),                    # not a LOGIN
    (b"a NOOP " + b"x" * 80, None),
])
def test_imap_mask_keeps_the_command_word_and_no_more(data, logged):
    if logged is None:                       # the buffer's 64 bytes, as they are
        logged = data[:64].decode()
    assert _imap(data) == 'client sent too long command "%s"' % logged


@pytest.mark.parametrize("data,logged", [
    (b"AUTH\tPLAIN " + SECRET * 9, 'AUTH ***'),
    (b"\0AUTH PLAIN " + SECRET * 9, '\0AUTH PLAIN ***'),
    (b"AUTH PLAIN\t" + SECRET * 9, 'AUTH PLAIN ***'),
])
def test_smtp_mask_keeps_the_command_word_and_no_more(data, logged):
    s, log = new_smtp("smtp_client_buffer 64;")
    talk(s, data)
    assert log.messages() == ['client sent too long command "%s"' % logged]


@pytest.mark.parametrize("data", [b"\tPASS " + SECRET * 20, b"PASS\t" + SECRET * 20,
                                  b"\0pass\0" + SECRET * 20])
def test_pop3_mask_keeps_the_command_word_and_no_more(data):
    assert _pop3(data) == 'client sent too long command "%s ***"' % data.strip(b"\t\0")[:4]\
        .decode()
