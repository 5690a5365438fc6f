"""Properties of the SMTP machine over arbitrary input (smtp.md §4, §14)."""

from __future__ import annotations

import base64

from hypothesis import assume, given, settings, strategies as st

from smtp.helpers import AUTH, CLOSE, NEED, STARTTLS, new, talk


def run(s, chunks):
    out = []
    for c in chunks:
        for code, reply in talk(s, c):
            out.append((code, reply))
            if code in (CLOSE, AUTH, STARTTLS):
                return out
    return out


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(1, 50), max_size=20))
def test_any_bytes_in_any_split_give_the_same_replies(data, cuts):
    """Never an exception, and how the bytes arrive does not change the dialogue."""
    whole = run(new("smtp_client_buffer 128;", "smtp_auth none cram-md5;")[0], [data])
    chunks, i = [], 0
    for n in cuts:
        chunks.append(data[i:i + n])
        i += n
    chunks.append(data[i:])
    split = run(new("smtp_client_buffer 128;", "smtp_auth none cram-md5;")[0],
                [c for c in chunks if c])
    strip = lambda out: [(c, r) for c, r in out if not r.startswith(b"334 PD")]  # salts
    assert strip(whole) == strip(split)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=6, max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b
                                                 and b" " not in b))
def test_passwords_never_reach_the_log(secret):
    # (a "secret" that is part of the fixed words or the padding would be found anyway)
    text = secret.decode("utf-8", "backslashreplace")
    assume(all(text not in fixed for fixed in (
        'client sent too long command "AUTH PLAIN LOGIN client was rejected before '
        'greeting: ***"', 'client was rejected: "MAIL FROM:<a@b>___"', "dXNlcg==__***",
        "x" * 200, "y" * 200, "z" * 200)))
    token = base64.b64encode(b"\0user\0" + secret)
    logs = []
    for lines, data in (
            ((), b"AUTH PLAIN " + token + b"\r\n" + b"x" * 200),
            ((), b"AUTH PLAIN\r\n" + token + b"y" * 200),
            ((), b"AUTH LOGIN\r\ndXNlcg==\r\n" + base64.b64encode(secret) + b"z" * 200),
            (("smtp_auth none;",), b"AUTH PLAIN " + token + b"\r\nMAIL FROM:<a@b>\r\n")):
        s, log = new("smtp_client_buffer 128;", *lines)
        talk(s, data)
        if s.method == "plain" and s.attempt:
            s.auth_failed(b"no", True)
            talk(s)
        logs += log.messages()
        s, log = new("smtp_greeting_delay 1s;", "smtp_client_buffer 128;", *lines)
        s.feed(data)
        s.rejected_before_greeting()
        logs += log.messages()
    for message in logs:
        assert secret.decode("utf-8", "backslashreplace") not in message
        assert token.decode() not in message
