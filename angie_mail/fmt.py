"""``angie-mail fmt``: the canonical layout of a configuration, comments kept.

    angie-mail fmt [--check] [--diff] FILE ... | -

Layout: one statement per line, four spaces per block level, words separated by one
space, ``name args {`` ... ``}`` (``name {}`` when the block is empty), at most one
blank line between statements and none at the start or end of a block, comments kept
where they are (a comment after a statement stays on its line, two spaces after it),
no trailing whitespace, LF line ends, a final newline.  Words are kept exactly as
written (quotes, escapes, bytes), so the statements nginx reads are the same: fmt
checks it by parsing its output before writing anything.

Exit status: 0 done (or nothing to change); 1 with ``--check`` or ``--diff`` when a file
would change; 2 a file that cannot be read or parsed (left untouched), bad usage.
"""

from __future__ import annotations

import argparse
import difflib
import sys

from .conf.lexer import _BARE, _DQ_BODY, _SQ_BODY

INDENT = "    "
_SPACE = " \t\r\n"


class FormatError(Exception):
    """The text is not a configuration nginx could read (the ConfError's message)."""


def _tokens(text: str):
    """(kind, raw, line, newlines_before) for a latin-1 decoded text that parses: kind is
    "word", ";", "{", "}" or "#"; newlines_before counts the line ends since the
    previous token."""
    pos, n, line = 0, len(text), 1
    while True:
        start = pos
        while pos < n and text[pos] in _SPACE:
            pos += 1
        nl = text.count("\n", start, pos)
        line += nl
        if pos >= n:
            return
        ch = text[pos]
        if ch == "#":
            end = text.find("\n", pos)
            end = n if end < 0 else end
            yield "#", text[pos:end].rstrip(" \t\r"), line, nl
            pos = end
        elif ch in ";{}":
            yield ch, ch, line, nl
            pos += 1
        elif ch in "\"'":
            end = (_DQ_BODY if ch == '"' else _SQ_BODY).match(text, pos + 1).end() + 1
            yield "word", text[pos:end], line, nl
            line += text.count("\n", pos, end)
            pos = end
        else:
            end = _BARE.match(text, pos).end()
            yield "word", text[pos:end], line, nl
            pos = end


def format_text(text: str) -> str:
    """The canonical layout of ``text`` (latin-1 decoded bytes)."""
    out: list = []
    depth = 0
    words: list = []            # the statement being read
    cont = False                # the statement goes on after a comment inside it
    opened = False              # the last line written is "name {", nothing after it
    last_line = 0               # source line of the last token written

    def blank(nl):
        if nl >= 2 and out and not opened:
            out.append("")

    for kind, raw, line, nl in _tokens(text):
        if kind == "#":
            if words:                           # inside a statement: it goes on below
                out.append(INDENT * (depth + cont) + " ".join(words) + "  " + raw)
                words, cont = [], True
            elif out and line == last_line:     # after a statement, on its line
                out[-1] += "  " + raw
            else:
                blank(nl)
                out.append(INDENT * depth + raw)
            opened = False
            last_line = line
            continue
        if kind == "word":
            if not words and not cont:
                blank(nl)
            words.append(raw)
            last_line = line
            continue
        pad = INDENT * (depth + cont)
        head = " ".join(words)
        if kind == ";":
            out.append(pad + head + ";")
            opened = False
        elif kind == "{":
            out.append(pad + head + " {" if head else pad + "{")
            depth += 1
            opened = True
        else:                                   # "}"
            depth -= 1
            if opened:
                out[-1] += "}"
            else:
                out.append(INDENT * depth + "}")
            opened = False
        words, cont = [], False
        last_line = line
    return "".join(l + "\n" for l in out)


def format_bytes(data: bytes, name: str = "<stdin>") -> bytes:
    """Format configuration bytes; FormatError if nginx could not read them, or if the
    result would read differently (which would be a bug here)."""
    from .conf.parse import parse_string
    before = parse_string(data, name=name, includes=False)
    err = next((f.error for f in before.files if f.error is not None), None)
    if err is not None:
        raise FormatError(err.text())
    out = format_text(data.decode("latin-1")).encode("latin-1")
    after = parse_string(out, name=name, includes=False)
    if after.files[0].error is not None or _shape(after.main.stmts) != _shape(
            before.main.stmts):
        raise FormatError(f"{name}: the formatted text would read differently; left as is")
    return out


def _shape(stmts):
    return [(tuple((w.value, w.quote) for w in st.words),
             None if st.block is None else _shape(st.block)) for st in stmts]


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="angie-mail fmt",
                                description="Rewrite configuration files in the canonical "
                                            "layout, comments kept.")
    p.add_argument("files", nargs="+", help="configuration files, or - for stdin")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit status 1 if a file would change")
    p.add_argument("--diff", action="store_true",
                   help="write nothing; print a unified diff, exit status 1 if not empty")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    changed = failed = False
    for path in args.files:
        try:
            if path == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(path, "rb") as f:
                    data = f.read()
            out = format_bytes(data, "<stdin>" if path == "-" else path)
        except (OSError, FormatError) as e:
            text = str(e) if isinstance(e, FormatError) else \
                f"{path}: {e.strerror or e}"
            sys.stderr.write(f"angie-mail fmt: {text}\n")
            failed = True
            continue
        if out == data:
            if path == "-" and not (args.check or args.diff):
                sys.stdout.buffer.write(out)
            continue
        changed = True
        if args.diff:
            name = path
            diff = difflib.unified_diff(
                data.decode("latin-1").splitlines(True), out.decode("latin-1").splitlines(True),
                name, name)
            sys.stdout.buffer.write("".join(diff).encode("latin-1"))
        elif args.check:
            sys.stdout.write(f"would reformat {path}\n")
        elif path == "-":
            sys.stdout.buffer.write(out)
        else:
            with open(path, "wb") as f:
                f.write(out)
            sys.stderr.write(f"reformatted {path}\n")
    sys.stdout.flush()
    if failed:
        return 2
    return 1 if changed and (args.check or args.diff) else 0
