"""What the POP3 machine tests share: a resolved server from directive lines, and a log
callback that records what the machine logs."""

from __future__ import annotations

from session_helpers import resolved_server


def server(*lines):
    """The resolved ``server {}`` with these directive lines (hostname mail.example.com)."""
    return resolved_server("pop3", 110, *lines)


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
