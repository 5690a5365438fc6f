"""Stage 1 output: a positioned, lossless tree of small frozen records.

Nothing here knows what a directive means.  A configuration is a list of parsed files
(:class:`ConfFile`); each holds its top-level statements (:class:`Stmt`).  An ``include``
statement points at the files it pulled in (indices into the same list), as in
crossplane's payload.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from ..errors import ConfError

# quote styles of a word
BARE, DQUOTE, SQUOTE = "", '"', "'"


class Word(NamedTuple):
    """One word of a statement: its decoded value, how it was quoted, where it starts."""
    value: str
    quote: str          # "" (bare), '"' or "'"
    line: int
    col: int            # 1-based byte column of the word's first character (the quote)

    @property
    def quoted(self) -> bool:
        return self.quote != ""


class Stmt(NamedTuple):
    """A directive: its words (the first is the name), position and optional block."""
    words: tuple            # tuple[Word, ...], never empty
    file: str
    line: int               # line of the name (crossplane's "line")
    col: int
    end_line: int           # line of the terminating ";" or "{" (where nginx reports errors)
    block: Optional[tuple]  # tuple[Stmt, ...] for "{...}" statements, else None
    close_line: int         # line of the closing "}", 0 when the block is cut by an error
    includes: tuple         # for include: indices of the files it pulled in

    @property
    def name(self) -> str:
        return self.words[0].value

    @property
    def args(self) -> tuple:
        return self.words[1:]

    @property
    def values(self) -> list:
        return [w.value for w in self.words[1:]]

    @property
    def closed(self) -> bool:
        """False for a block statement whose "}" was never reached (syntax error)."""
        return self.block is None or self.close_line != 0


class ConfFile(NamedTuple):
    """One parsed file (or string): its statements and the syntax error that ended it."""
    path: str                  # name used in messages
    stmts: tuple               # tuple[Stmt, ...]
    error: Optional[ConfError] # the first syntax error, where parsing of this file stopped
    raw: bytes                 # the bytes read (for -T)


class Parsed(NamedTuple):
    """A whole configuration: files[0] is the main one; ``context`` is where it starts."""
    files: tuple               # tuple[ConfFile, ...]
    context: str               # "main", "mail", "server" (mail server), "events"

    @property
    def main(self) -> ConfFile:
        return self.files[0]

    def errors(self) -> list:
        """Every syntax/include error recorded while parsing, in the order nginx's
        reading would meet them (an included file's error at its include)."""
        out: list = []
        seen: set = set()

        def visit_file(idx):
            if idx in seen:
                return
            seen.add(idx)
            f = self.files[idx]
            visit(f.stmts)
            if f.error is not None:
                out.append(f.error)

        def visit(stmts):
            for st in stmts:
                for idx in st.includes:
                    visit_file(idx)
                if st.block:
                    visit(st.block)

        visit_file(0)
        return out


def walk(parsed: Parsed, stmts=None, _depth=0):
    """Yield (stmt, depth) for every statement, descending into blocks and includes."""
    if stmts is None:
        stmts = parsed.files[0].stmts
    for st in stmts:
        yield st, _depth
        if st.includes:
            for idx in st.includes:
                yield from walk(parsed, parsed.files[idx].stmts, _depth)
        if st.block is not None:
            yield from walk(parsed, st.block, _depth + 1)
