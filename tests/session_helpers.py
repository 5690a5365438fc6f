"""What the tests of the sans-I/O pre-auth machines share: a resolved ``server {}`` and
``talk``, which feeds bytes and steps until the machine waits."""

from __future__ import annotations

import functools

from angie_mail.conf.analyze import analyze
from angie_mail.conf.parse import parse_string
from angie_mail.mail.protocol import AUTH, CLOSE, NEED, STARTTLS


@functools.lru_cache(maxsize=None)
def resolved_server(protocol: str, port: int, *lines):
    """The resolved ``server {}`` of ``protocol`` on 127.0.0.1:``port`` with these
    directive lines (the host is mail.example.com)."""
    text = ("events {}\nmail {\n auth_http 127.0.0.1:9/a;\n server {\n"
            f" listen 127.0.0.1:{port};\n protocol {protocol};\n"
            + "".join(l + "\n" for l in lines) + " }\n}\n")
    r = analyze(parse_string(text), hostname="mail.example.com", check_files=False)
    assert r.ok, r.first_error
    return r.config.servers[0]


def talk(s, data: bytes = b""):
    """Feed ``data``; step until the machine waits: [(code, bytes)] of every step that
    produced something, the last one included (NEED with b"" is left out)."""
    if data:
        s.feed(data)
    out = []
    while True:
        code, reply = s.step()
        if code == NEED:
            return out
        out.append((code, reply))
        if code in (CLOSE, AUTH, STARTTLS):
            return out
