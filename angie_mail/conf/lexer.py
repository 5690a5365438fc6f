"""nginx's configuration tokenizer (ngx_conf_read_token), statement by statement.

Like nginx, the lexer reads one whole statement per step: the words up to a ``;`` (a
DIRECTIVE), up to a ``{`` (a BLOCK_START), or a lone ``}`` (BLOCK_END).  The Lark grammar
in ``grammar/nginx.lark`` nests them; a block that holds only statements ended by ``;``
(most ``server {}`` blocks) is closed by the lexer itself and reaches the parser as one
statement of the enclosing run.  Every rule below is nginx's:

* words end only at space, TAB, CR, LF, ``;`` or ``{`` (``foo}`` and ``a}b`` are words);
* ``#`` starts a comment only where a word could start (``mail#1`` is a word);
* a word may be "double" or 'single' quoted; right after the closing quote must come
  whitespace, ``;``, ``{`` or ``)``, else ``unexpected "X"``;
* a backslash makes the next character part of the word, in quotes or not;
  in the decoded value ``\\" \\' \\\\`` become the character and ``\\t \\r \\n`` become
  TAB, CR, LF; any other ``\\x`` is kept as it is;
* ``$`` followed by ``{`` does not open a block (``${name}``);
* a token (or comment) that fills nginx's 4096-byte read buffer is an error, reported at
  the line where it started; the buffer arithmetic is reproduced exactly, so the same
  inputs fail as in nginx;
* only space, TAB, CR and LF are whitespace: a UTF-8 BOM, a no-break space or a form feed
  are ordinary bytes of a word.

The text is scanned as latin-1 so that offsets are byte offsets; word values are then
decoded from UTF-8 (undecodable bytes survive as surrogate escapes).
"""

from __future__ import annotations

import re

from ..errors import ConfError
from .tree import Stmt, Word

CONF_BUFFER = 4096   # NGX_CONF_BUFFER
# blocks of plain statements are closed by the lexer itself (most server{} blocks): the
# tree is the same as the parser's, at a fraction of the cost; the tests compare both
FOLD_BLOCKS = True

# whitespace and whole comments before the next statement, in one step; a comment near
# nginx's buffer size is left to the general path (which knows the buffer arithmetic)
_SKIP = re.compile(r"[ \t\r\n]*(?:#[^\n]{0,4000}(?![^\n])[ \t\r\n]*)*")
# the rest of a bare word: ordinary bytes, "\X" pairs, "$" followed by any "{"s
_BARE = re.compile(r"(?:[^ \t\r\n;{\\$]+|\\[\s\S]|\$\{*)*")
_DQ_BODY = re.compile(r'[^"\\]*(?:\\[\s\S][^"\\]*)*')
_SQ_BODY = re.compile(r"[^'\\]*(?:\\[\s\S][^'\\]*)*")
# a whole statement of plain words on one line, up to its ";" or "{" (the common case);
# anything unusual (quotes, escapes, "$", comments, other whitespace) takes the slow path
# (plain words, or "..." and '...' without escapes, on the line); a quoted word must be
# followed by a space, ";" or "{" (nginx's rule; ")" takes the slow path)
_W = r"""(?:[^\s;{}"'\\$#][^\s;{"'\\$]*|"[^"\\\n]*"|'[^'\\\n]*')"""
_FAST_STMT = re.compile(_SKIP.pattern + r"(" + _W + r"(?:[ \t]+" + _W + r")*)[ \t]*([;{])")
_FAST_WORD = re.compile(r""""([^"\n]*)"|'([^'\n]*)'|[^ \t]+""")
_ESCAPE = re.compile(r"\\([\"'\\trn])")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def _unescape(m):
    return _ESCAPES[m.group(1)]


def decode_word(raw: str) -> str:
    """Decode a word's raw latin-1 text as nginx does (escapes), then as UTF-8."""
    if "\\" in raw:
        raw = _ESCAPE.sub(_unescape, raw)
    if raw.isascii():
        return raw
    return raw.encode("latin-1").decode("utf-8", "surrogateescape")


def display(raw: str) -> str:
    """A latin-1 scanned fragment, shown as nginx prints bytes (UTF-8 text)."""
    if raw.isascii():
        return raw
    return raw.encode("latin-1").decode("utf-8", "surrogateescape")


class Tok:
    """A terminal for the Lark LALR parser; ``value`` is a block head, a line or an error."""
    __slots__ = ("type", "value")
    # attributes Lark reads from the last token to place its end-of-input token
    start_pos = line = column = end_line = end_column = end_pos = None

    def __init__(self, type_: str, value):
        self.type = type_
        self.value = value

    def __repr__(self):
        return f"Tok({self.type}, {self.value!r})"


class BlockHead:
    """The words of a statement ended by ``{``, waiting for its block."""
    __slots__ = ("words", "file", "line", "col", "end_line")

    def __init__(self, words, file, line, col, end_line):
        self.words = words
        self.file = file
        self.line = line
        self.col = col
        self.end_line = end_line


class Source:
    """Text to tokenize.

    ``name`` is used in messages; ``param`` marks ``-g`` text (no file: errors say
    ``in command line``, block directives are refused, no buffer limit).  ``on_include``
    is called with every complete ``include`` statement and returns it with its
    ``includes`` filled in.
    """
    __slots__ = ("name", "text", "param", "on_include")

    def __init__(self, name: str, data: bytes, param: bool = False, on_include=None):
        self.name = name
        self.text = data.decode("latin-1")
        self.param = param
        self.on_include = on_include


def lex(src: Source):
    """Yield the terminals for ``src`` as Tok objects, always ending with an END token
    whose value is the syntax error that stopped the file, or None.  Consecutive
    statements ended by ";" come as one DIRECTIVES terminal (a list of Stmt): the
    parser only needs them to nest blocks, and one terminal per run keeps it cheap."""
    text = src.text
    n = len(text)
    fname = src.name
    param = src.param
    on_include = src.on_include

    pos = 0
    line = 1          # line number at offset ``counted``
    counted = 0       # newlines before this offset are counted in ``line``
    line_start = 0    # offset where line ``line`` starts
    depth = 0
    words = []        # words of the statement being read (slow path)
    run = []          # statements ended by ";" (and whole blocks) since the last "{"/"}"
    # the innermost open block while it holds only statements ended by ";": if it closes
    # so, the lexer makes it one statement of the enclosing run (``outer``) and the parser
    # never sees it; a nested "{" hands it to the parser as BLOCK_START
    head = None
    outer = None
    fold = FOLD_BLOCKS
    st_line = st_col = 0
    skip_match = _SKIP.match
    bare_match = _BARE.match
    fast_match = _FAST_STMT.match
    qword_iter = _FAST_WORD.finditer
    new = tuple.__new__         # a NamedTuple without its Python-level __new__
    count = text.count

    def fail(message, at_line):
        err = ConfError(message, fname, at_line, where="cmdline" if param else "file",
                        kind="syntax")
        if head is not None:
            if outer:
                yield Tok("DIRECTIVES", outer)
            yield Tok("BLOCK_START", head)
        if run:
            yield Tok("DIRECTIVES", run)
        for _ in range(depth):
            yield Tok("ABORT", err)
        yield Tok("END", err)

    def too_long(start, end, quote_end, quote_char):
        """nginx's read-buffer check for a token whose start pointer stays at ``start``
        until the check made before reading byte ``end`` (``quote_end``: offset of the
        closing quote, n if none).  The error text, or None."""
        r = start + CONF_BUFFER
        if param or r > end or r >= n:
            return None
        if quote_char and r <= quote_end:
            return f'too long parameter, probably missing terminating "{quote_char}" character'
        return f'too long parameter "{display(text[start:start + 10])}..." started'

    def eof_error():
        if param:
            return fail('unexpected end of parameter, expecting ";"', 0)
        return fail('unexpected end of file, expecting ";" or "}"', line + count("\n", counted, n))

    while True:
        ended = None      # ";" or "{" once a statement is read, with st_words, st_line...
        if not words:
            # fast path: whitespace and comments, then a statement of plain or simply
            # quoted words on one line ("listen 110;", 'server_name "a b";', "mail {")
            m = fast_match(text, pos)
            if m is not None and m.end() - m.start(1) < 4000:
                spos = m.start(1)
                nl = count("\n", counted, spos)
                if nl:
                    line += nl
                    line_start = text.rfind("\n", counted, spos) + 1
                counted = spos
                body = m.group(1)
                col = spos - line_start + 1
                if '"' in body or "'" in body:
                    # (no backslashes here: the regular expression leaves escapes to
                    # the general path)
                    ws = []
                    for wm in qword_iter(body):
                        dq, sq = wm.groups()
                        at = col + wm.start()
                        if dq is not None:
                            ws.append(new(Word, (dq if dq.isascii() else display(dq), '"',
                                                 line, at)))
                        elif sq is not None:
                            ws.append(new(Word, (sq if sq.isascii() else display(sq), "'",
                                                 line, at)))
                        else:
                            v = wm.group()
                            ws.append(new(Word, (v if v.isascii() else display(v), "",
                                                 line, at)))
                    ws = tuple(ws)
                elif " " in body or "\t" in body:
                    # (the regular expression leaves no other whitespace in ``body``);
                    # columns are byte offsets of the latin-1 text, values UTF-8
                    ascii_ = body.isascii()
                    ws = []
                    i = 0
                    for v in body.split():
                        i = body.find(v, i)
                        ws.append(new(Word, (v if ascii_ else display(v), "", line, col + i)))
                        i += len(v)
                    ws = tuple(ws)
                else:
                    ws = (new(Word, (body if body.isascii() else display(body), "", line,
                                     col)),)
                pos = m.end()
                ended = m.group(2)
                st_words, st_line, st_col = ws, line, col

        if ended is None:
            # the general path, one step at a time: blanks, a comment, a brace or a word
            pos = skip_match(text, pos).end()
            if pos >= n:
                if words:
                    yield from eof_error()
                elif depth:
                    yield from fail('unexpected end of file, expecting "}"',
                                    line + count("\n", counted, n))
                else:
                    if run:
                        yield Tok("DIRECTIVES", run)
                    yield Tok("END", None)
                return

            nl = count("\n", counted, pos)
            if nl:
                line += nl
                line_start = text.rfind("\n", counted, pos) + 1
            counted = pos

            ch = text[pos]

            if ch == "#":
                end = text.find("\n", pos)
                if end < 0:
                    end = n
                if end - pos >= CONF_BUFFER:
                    msg = too_long(pos, end, n, "")
                    if msg:
                        yield from fail(msg, line)
                        return
                pos = end
                continue

            if ch == "}":
                if words or depth == 0:
                    yield from fail('unexpected "}"', line)
                    return
                depth -= 1
                if head is not None:
                    outer.append(new(Stmt, (head.words, head.file, head.line, head.col,
                                            head.end_line, tuple(run), line, ())))
                    run = outer
                    head = outer = None
                else:
                    if run:
                        yield Tok("DIRECTIVES", run)
                        run = []
                    yield Tok("BLOCK_END", line)
                pos += 1
                continue

            if ch == ";" or ch == "{":
                if not words:
                    yield from fail(f'unexpected "{ch}"', line)
                    return
                ended = ch
                st_words = tuple(words)
                words = []
                pos += 1
            else:
                # a word starts here
                wcol = pos - line_start + 1
                if not words:
                    st_line, st_col = line, wcol

                if ch == '"' or ch == "'":
                    start = pos + 1
                    q = (_DQ_BODY if ch == '"' else _SQ_BODY).match(text, start).end()
                    if q >= n:                                  # no closing quote
                        msg = too_long(start, n, n, ch)
                        if msg:
                            yield from fail(msg, line)
                        else:
                            yield from eof_error()
                        return
                    after = q + 1
                    nxt = text[after] if after < n else ""
                    end = after + 1 if nxt in (" ", "\t", "\r", "\n") and nxt else after
                    msg = too_long(start, end, q, ch)
                    if msg:
                        yield from fail(msg, line)
                        return
                    words.append(Word(decode_word(text[start:q]), ch, line, wcol))
                    if nxt == "":
                        yield from eof_error()
                        return
                    if nxt in (" ", "\t", "\r", "\n", ";", "{", ")"):
                        pos = after
                        continue
                    yield from fail(f'unexpected "{display(nxt)}"',
                                    line + count("\n", counted, after))
                    return

                # bare word (may start with "\" or "$")
                e = bare_match(text, pos).end()
                if e >= n or text[e] == "\\":                   # end of input inside it
                    msg = too_long(pos, n, n, "")
                    if msg:
                        yield from fail(msg, line)
                    else:
                        yield from eof_error()
                    return
                term = text[e]
                msg = too_long(pos, e + 1 if term in (" ", "\t", "\r", "\n") else e, n, "")
                if msg:
                    yield from fail(msg, line)
                    return
                words.append(Word(decode_word(text[pos:e]), "", line, wcol))
                pos = e
                continue

        # a statement ended by ";" or "{" (from either path)
        if ended == ";":
            stmt = new(Stmt, (st_words, fname, st_line, st_col, line, None, 0, ()))
            if on_include is not None and st_words[0].value == "include":
                stmt = on_include(stmt)
            run.append(stmt)
        elif param:
            yield from fail("block directives are not supported in -g option", 0)
            return
        else:
            depth += 1
            if head is not None:        # the open block is not plain: the parser nests it
                if outer:
                    yield Tok("DIRECTIVES", outer)
                yield Tok("BLOCK_START", head)
                head = None
            block = BlockHead(st_words, fname, st_line, st_col, line)
            if fold:
                outer = run
                head = block
            else:
                if run:
                    yield Tok("DIRECTIVES", run)
                yield Tok("BLOCK_START", block)
            run = []
