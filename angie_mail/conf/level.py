"""A configuration level being filled by the analyzer (main, events, mail, a server)."""

from __future__ import annotations


class Level:
    """Values set at one level; a field absent from ``values`` is UNSET.

    ``pos`` is the (file, line) nginx records for the level: the line of the block's
    ``{``, used by merge-time messages (``... for server in FILE:LINE``)."""
    __slots__ = ("ctx", "values", "file", "line", "stmt", "extra")

    def __init__(self, ctx, file: str = "", line: int = 0, stmt=None):
        self.ctx = ctx
        self.values: dict = {}
        self.file = file
        self.line = line
        self.stmt = stmt
        self.extra: dict = {}

    def __repr__(self) -> str:
        return f"Level({self.ctx}, {self.file}:{self.line}, {self.values!r})"
