"""Stage 1 of the config pipeline: text -> positioned, lossless tree (no meanings).

``parse_file``/``parse_string`` return a :class:`~angie_mail.conf.tree.Parsed`: every file
read (the main one first, then each included file in the order nginx would open it), each
with its statements and the syntax error that stopped it, if any.  Parsing never raises
for bad input: every problem becomes a positioned :class:`ConfError` in nginx's words.

``include`` is resolved here, as nginx does while reading: relative paths against the
directory of the main file (the "conf prefix"), globs (``*?[``) expanded in sorted order
and allowed to match nothing, a missing plain file is nginx's ``open() ... failed`` error.
An include cycle is reported instead of recursing.
"""

from __future__ import annotations

import gc
import glob as _glob
import os
import sys
from functools import lru_cache

from lark import Lark, Transformer
from lark.lexer import Lexer

from ..errors import ConfError, errno_suffix
from .lexer import BlockHead, Source, lex
from .tree import ConfFile, Parsed, Stmt

CONTEXTS = ("main", "events", "mail", "server")
PARAM_NAME = "<command line>"      # the "file" of -g directives
MAX_INCLUDE_DEPTH = 64


class _LexerAdapter(Lexer):
    """Lark custom-lexer interface around :func:`lex` (input is a :class:`Source`)."""
    __future_interface__ = 2

    def __init__(self, lexer_conf):
        pass

    def lex(self, lexer_state, parser_state):
        return lex(lexer_state.text)


class _Build(Transformer):
    """Inline LALR callbacks: statements go straight into frozen records, no parse tree."""

    @staticmethod
    def _items(children, first, last):
        out = []
        for i in range(first, last):
            c = children[i]
            if type(c) is Stmt:
                out.append(c)
            else:
                out += c.value          # a DIRECTIVES run
        return tuple(out)

    def start(self, children):
        return self._items(children, 0, len(children) - 1), children[-1].value

    def block(self, children):
        head: BlockHead = children[0].value
        last = children[-1]
        close_line = last.value if last.type == "BLOCK_END" else 0
        return Stmt(head.words, head.file, head.line, head.col, head.end_line,
                    self._items(children, 1, len(children) - 1), close_line, ())


@lru_cache(maxsize=1)
def _lark() -> Lark:
    # no cache=True: Lark would keep a pickle under a predictable name in the shared
    # temporary directory and load it at the next start, so any local user could make
    # whoever runs angie-mail (root, for the master) execute code.  Building the LALR
    # tables of this small grammar costs about 12 ms.
    with open(os.path.join(os.path.dirname(__file__), "nginx.lark")) as f:
        grammar = f.read()
    return Lark(grammar, parser="lalr", lexer=_LexerAdapter, transformer=_Build(),
                cache=False, propagate_positions=False, maybe_placeholders=False)


def _parse_source(src: Source):
    """(stmts, error) for one Source."""
    return _lark().parse(src)


class _Session:
    """One parse: the files read so far and the include stack."""

    def __init__(self, conf_prefix: str, includes: bool = True):
        self.conf_prefix = conf_prefix
        self.resolve = includes
        self.files: list = []
        self.stack: list = []

    def add(self, name: str, data: bytes, param: bool = False) -> int:
        idx = len(self.files)
        self.files.append(None)
        self.stack.append(name)
        try:
            src = Source(name, data, param=param,
                         on_include=self.include if self.resolve else None)
            stmts, err = _parse_source(src)
        finally:
            self.stack.pop()
        self.files[idx] = ConfFile(name, stmts, err, data)
        return idx

    def add_error(self, name: str, err: ConfError) -> int:
        self.files.append(ConfFile(name, (), err, b""))
        return len(self.files) - 1

    def include(self, stmt: Stmt) -> Stmt:
        if len(stmt.words) != 2:
            return stmt          # the analyzer reports the argument count
        pattern = stmt.words[1].value
        path = pattern if pattern.startswith("/") else self.conf_prefix + pattern
        where = dict(file=stmt.file, line=stmt.end_line, kind="include")
        if "\0" in path:
            idx = self.add_error(path, ConfError(
                f'open() "{path.split(chr(0))[0]}" failed' + errno_suffix(2), **where))
            return stmt._replace(includes=(idx,))
        if not any(c in path for c in "*?["):
            names = [path]
        else:
            try:
                names = sorted(_glob.glob(path))
            except (OSError, ValueError) as e:
                idx = self.add_error(path, ConfError(f'glob() "{path}" failed' + errno_suffix(
                    e if isinstance(e, OSError) else 22), **where))
                return stmt._replace(includes=(idx,))
        out = []
        for name in names:
            if name in self.stack or len(self.stack) >= MAX_INCLUDE_DEPTH:
                chain = " -> ".join(self.stack[self.stack.index(name):] + [name]) \
                    if name in self.stack else f"{MAX_INCLUDE_DEPTH} levels"
                out.append(self.add_error(name, ConfError(
                    f'include cycle: "{name}" is already being included ({chain})', **where)))
                break
            data, err = read_conf_bytes(name, **where)
            if err is not None:
                out.append(self.add_error(name, err))
                break
            out.append(self.add(name, data))
            if self.files[out[-1]].error is not None:
                break        # nginx stops at the first failing file of a glob
        return stmt._replace(includes=tuple(out))


def read_conf_bytes(path: str, file: str | None = None, line: int = 0,
                    kind: str = "include"):
    """Read a configuration file as nginx does; (data, None) or (None, ConfError).

    ``file``/``line`` is where the reading was asked for (an include), or None for the
    main file, whose errors carry no position.
    """
    where = dict(file=file, line=line, kind=kind) if file is not None else \
        dict(where="none", kind=kind)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return None, ConfError(f'open() "{path}" failed' + errno_suffix(e), **where)
    except (ValueError, UnicodeEncodeError):
        return None, ConfError(f'open() "{path}" failed' + errno_suffix(2), **where)
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read()
    except OSError as e:
        # nginx: pread() on a directory fails at critical level
        return None, ConfError(f'pread() "{path}" failed' + errno_suffix(e),
                               where="none", level="crit", kind=kind)
    return data, None


def conf_prefix_of(path: str) -> str:
    """Directory part of a configuration path, with its trailing slash (nginx's conf_prefix)."""
    i = path.rfind("/")
    return path[:i + 1] if i > 0 else ("/" if i == 0 else "")


class NoGC:
    """Pause the cyclic garbage collector while a configuration is built: parsing and
    analysis make many small objects and no cycles, and collections triggered by them
    cost ~20% of the work.  What was built lives on, so at the end it is counted as old
    instead of young (freeze then unfreeze moves every object to the oldest generation
    without walking them): otherwise the first allocation afterwards would start a
    collection that walks all of it only to find nothing to free."""

    def __enter__(self):
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was:
            if not gc.get_freeze_count():       # (nothing frozen by anyone else)
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def parse_file(path: str, context: str = "main", conf_prefix: str | None = None) -> Parsed:
    """Parse a configuration file and everything it includes; relative includes resolve
    against ``conf_prefix`` (default: the file's directory, as for nginx's main file)."""
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}")
    with NoGC():
        session = _Session(conf_prefix_of(path) if conf_prefix is None else conf_prefix)
        data, err = read_conf_bytes(path)
        if err is not None:
            session.add_error(path, err)
        else:
            session.add(path, data)
        return Parsed(tuple(session.files), context)


def parse_string(text: str | bytes, name: str = "<string>", context: str = "main",
                 conf_prefix: str | None = None, includes: bool = True) -> Parsed:
    """Parse configuration text; relative includes resolve against ``conf_prefix``
    (default: the current directory); ``includes=False`` leaves them unresolved."""
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}")
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    if conf_prefix is None:
        conf_prefix = os.getcwd().rstrip("/") + "/"
    with NoGC():
        session = _Session(conf_prefix, includes)
        session.add(name, data)
        return Parsed(tuple(session.files), context)


def parse_stdin(context: str = "main", name: str = "<stdin>") -> Parsed:
    return parse_string(sys.stdin.buffer.read(), name=name, context=context)


def parse_param(text: str, conf_prefix: str = "") -> Parsed:
    """Parse ``-g`` directives: errors say ``in command line``, blocks are refused."""
    session = _Session(conf_prefix)
    session.add(PARAM_NAME, text.encode("utf-8", "surrogateescape"), param=True)
    return Parsed(tuple(session.files), "main")
