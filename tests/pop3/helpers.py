"""What the POP3 machine tests share: a resolved server from directive lines, and a log
callback that records what the machine logs."""

from __future__ import annotations

import functools

from angie_mail.conf.analyze import analyze
from angie_mail.conf.parse import parse_string


@functools.lru_cache(maxsize=None)
def server(*lines):
    """The resolved ``server {}`` with these directive lines (hostname mail.example.com)."""
    text = ("events {}\nmail {\n auth_http 127.0.0.1:9/a;\n server {\n"
            " listen 127.0.0.1:110;\n" + "".join(l + "\n" for l in lines) + " }\n}\n")
    r = analyze(parse_string(text), hostname="mail.example.com", check_files=False)
    assert r.ok, r.first_error
    return r.config.servers[0]


class Log:
    """Collects (level, message) pairs (not a list subclass: an empty list is falsy and
    the session would replace it by its no-op logger)."""

    def __init__(self):
        self.records = []

    def __call__(self, level, message):
        assert isinstance(level, str) and isinstance(message, str)
        self.records.append((level, message))

    def messages(self):
        return [m for _, m in self.records]
