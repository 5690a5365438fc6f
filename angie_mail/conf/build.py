"""Turn a tree (or a crossplane payload) back into configuration text.

``build_stmts`` writes statements with canonical layout: 4-space indentation, one
statement per line, ``name args {`` ... ``}`` for blocks.  A word is written bare when
nginx would read it back unchanged, else quoted (keeping the quote style it had where
there is one) with ``\\ "`` (or ``'``) and TAB/CR/LF escaped.  Parsing the output gives
the same statements (names, values, nesting): text -> tree -> text -> tree is a fixpoint.

``format_text`` is the canonical formatter: parse, then build.
"""

from __future__ import annotations

import re

from .tree import BARE, DQUOTE, SQUOTE, Parsed, Stmt

# characters that end a bare word or change its value when read back
_UNSAFE = re.compile(r"[ \t\r\n;{\\]")
_NEEDS_QUOTE_START = ('"', "'", "#", "}")


def needs_quotes(value: str) -> bool:
    return (not value or value[0] in _NEEDS_QUOTE_START
            or _UNSAFE.search(value) is not None)


def quote(value: str, style: str = DQUOTE) -> str:
    """``value`` in quotes so that nginx decodes it back to ``value``."""
    q = style if style in (DQUOTE, SQUOTE) else DQUOTE
    out = (value.replace("\\", "\\\\").replace(q, "\\" + q)
           .replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n"))
    return f"{q}{out}{q}"


def word_text(value: str, style: str = BARE) -> str:
    """How to write one word: bare when that reads back the same, else quoted."""
    if style == BARE and not needs_quotes(value):
        return value
    if style == BARE:
        style = DQUOTE
    return quote(value, style)


def _line(words) -> str:
    return " ".join(word_text(v, q) for v, q in words)


def build_stmts(stmts, indent: int = 0, parsed: Parsed | None = None,
                expand_includes: bool = False, tab: str = "    ") -> str:
    """Configuration text for a sequence of Stmt.  With ``expand_includes`` (and
    ``parsed``), an include statement is replaced by the statements it pulled in."""
    out: list = []
    _build(stmts, indent, parsed, expand_includes, tab, out)
    return "".join(out)


def _build(stmts, depth, parsed, expand, tab, out):
    pad = tab * depth
    for st in stmts:
        if expand and st.includes and parsed is not None:
            for idx in st.includes:
                _build(parsed.files[idx].stmts, depth, parsed, expand, tab, out)
            continue
        head = _line((w.value, w.quote) for w in st.words)
        if st.block is None:
            out.append(f"{pad}{head};\n")
        elif not st.block:
            out.append(f"{pad}{head} {{\n{pad}}}\n")
        else:
            out.append(f"{pad}{head} {{\n")
            _build(st.block, depth + 1, parsed, expand, tab, out)
            out.append(f"{pad}}}\n")


def build_payload_entry(parsed_list: list, indent: int = 0, tab: str = "    ") -> str:
    """Configuration text for the ``parsed`` list of one crossplane payload entry."""
    out: list = []
    _build_json(parsed_list, indent, tab, out)
    return "".join(out)


def _build_json(items, depth, tab, out):
    pad = tab * depth
    for d in items:
        if not isinstance(d, dict) or "directive" not in d:
            raise ValueError(f"not a directive entry: {d!r}")
        name = d["directive"]
        if name == "#":                     # crossplane comment entries
            out.append(f"{pad}#{d.get('comment', '')}\n")
            continue
        args = d.get("args", [])
        quotes = d.get("quotes")
        vals = [name] + [str(a) for a in args]
        styles = quotes if isinstance(quotes, list) and len(quotes) == len(vals) \
            else [BARE] * len(vals)
        head = _line(zip(vals, styles))
        block = d.get("block")
        if block is None:
            out.append(f"{pad}{head};\n")
        elif not block:
            out.append(f"{pad}{head} {{\n{pad}}}\n")
        else:
            out.append(f"{pad}{head} {{\n")
            _build_json(block, depth + 1, tab, out)
            out.append(f"{pad}}}\n")


def build_payload(payload: dict) -> dict:
    """{file: text} for every config entry of a crossplane payload."""
    return {c["file"]: build_payload_entry(c.get("parsed", [])) for c in payload["config"]}


def format_text(text: str | bytes, name: str = "<string>", context: str = "main") -> str:
    """Canonical form of configuration text (syntax errors raise their ConfError)."""
    from .parse import parse_string
    parsed = parse_string(text, name=name, context=context, includes=False)
    err = parsed.files[0].error
    if err is not None:
        raise err
    return build_stmts(parsed.files[0].stmts)


def stmt_shape(stmts) -> list:
    """A comparable form of statements: names, values and nesting (no positions)."""
    return [(tuple(w.value for w in st.words),
             None if st.block is None else stmt_shape(st.block)) for st in stmts]


__all__ = ["build_stmts", "build_payload", "build_payload_entry", "format_text",
           "needs_quotes", "quote", "word_text", "stmt_shape", "Stmt"]
