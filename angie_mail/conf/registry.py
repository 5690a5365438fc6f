"""The directive registry: one declarative row per directive.

Rows are declared beside their module (``angie_mail/conf/modules/*.py``) and collected
here.  Every name Angie defines (``data/angie-directive-names.tsv``, from Angie's own
command tables) is known, so that a name defined for another context is reported as
``"X" directive is not allowed here`` and only names defined nowhere are
``unknown directive "X"``.  Names outside mail/core/events (http, stream...) get a
generic row that checks context, block or not and argument count only; the blocks of
http{} and stream{} that hold directives are walked with the context they open
(BLOCK_CONTEXT).  The nginx dialect takes its http and stream names from what nginx 1.22
accepts (``data/nginx-1.22-http-stream.tsv``), some of them only once ``load_module``
has loaded the dynamic module that defines them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from dataclasses import field as _dcfield
from functools import lru_cache
import os
import sys
from typing import Any, Callable, Optional

DIALECTS = ("angie-mail", "angie", "nginx")
ALL = frozenset(DIALECTS)
ANGIE = frozenset(("angie", "angie-mail"))        # Angie-only (A! in the spec)
EXTENSION = frozenset(("angie-mail",))            # this project's own directives


class Ctx(enum.Flag):
    """Where a directive may appear (nginx's NGX_*_CONF bits, for our contexts)."""
    MAIN = enum.auto()       # top level
    EVENTS = enum.auto()     # events {}
    MAIL = enum.auto()       # mail {}
    SERVER = enum.auto()     # mail { server {} }
    HTTP_MAIN = enum.auto()  # http {}
    HTTP_SRV = enum.auto()   # http { server {} }
    HTTP_LOC = enum.auto()   # location {}
    HTTP_UPS = enum.auto()   # http { upstream {} }
    HTTP_SIF = enum.auto()   # if {} in a server
    HTTP_LIF = enum.auto()   # if {} in a location
    HTTP_LMT = enum.auto()   # limit_except {}
    STREAM_MAIN = enum.auto()  # stream {}
    STREAM_SRV = enum.auto()   # stream { server {} }
    STREAM_UPS = enum.auto()   # stream { upstream {} }
    HTTP = HTTP_MAIN | HTTP_SRV | HTTP_LOC | HTTP_UPS | HTTP_SIF | HTTP_LIF | HTTP_LMT
    STREAM = STREAM_MAIN | STREAM_SRV | STREAM_UPS
    ANY = MAIN | EVENTS | MAIL | SERVER | HTTP | STREAM

    @property
    def label(self) -> str:
        return _CTX_LABEL.get(self, str(self))


_CTX_LABEL = {Ctx.MAIN: "main", Ctx.EVENTS: "events", Ctx.MAIL: "mail", Ctx.SERVER: "server",
              Ctx.HTTP_MAIN: "http", Ctx.HTTP_SRV: "http server", Ctx.HTTP_LOC: "location",
              Ctx.HTTP_UPS: "http upstream", Ctx.HTTP_SIF: "if in server",
              Ctx.HTTP_LIF: "if in location", Ctx.HTTP_LMT: "limit_except",
              Ctx.STREAM_MAIN: "stream", Ctx.STREAM_SRV: "stream server",
              Ctx.STREAM_UPS: "stream upstream"}
# every single context, for the analyzer's per-context index
CONTEXTS = tuple(_CTX_LABEL)

# The blocks of http {} and stream {} whose contents are directives of a context of
# their own (ngx_conf_parse with another cmd_type); (name, where) -> context inside.
# Other generic blocks (types, map, geo, split_clients, charset_map, Angie's
# prometheus_template, metric_complex_zone, client...) hand their lines to a handler of
# their own, which reads them without any directive lookup: not checked here.
BLOCK_CONTEXT = {
    ("server", Ctx.HTTP_MAIN): Ctx.HTTP_SRV,
    ("upstream", Ctx.HTTP_MAIN): Ctx.HTTP_UPS,
    ("location", Ctx.HTTP_SRV): Ctx.HTTP_LOC,
    ("location", Ctx.HTTP_LOC): Ctx.HTTP_LOC,
    ("if", Ctx.HTTP_SRV): Ctx.HTTP_SIF,
    ("if", Ctx.HTTP_LOC): Ctx.HTTP_LIF,
    ("limit_except", Ctx.HTTP_LOC): Ctx.HTTP_LMT,
    ("server", Ctx.STREAM_MAIN): Ctx.STREAM_SRV,
    ("upstream", Ctx.STREAM_MAIN): Ctx.STREAM_UPS,
}


CONTEXT_OF_NAME = {"main": Ctx.MAIN, "events": Ctx.EVENTS, "mail": Ctx.MAIL,
                   "server": Ctx.SERVER}


class Args(enum.Flag):
    """Argument-count rule (nginx's NGX_CONF_NOARGS/TAKEn/FLAG/1MORE/2MORE/ANY/BLOCK).

    Counts are arguments after the name."""
    NOARGS = enum.auto()
    TAKE1 = enum.auto()
    TAKE2 = enum.auto()
    TAKE3 = enum.auto()
    TAKE4 = enum.auto()
    TAKE5 = enum.auto()
    TAKE6 = enum.auto()
    TAKE7 = enum.auto()
    FLAG = enum.auto()
    ONEMORE = enum.auto()
    TWOMORE = enum.auto()
    ANYARGS = enum.auto()
    BLOCK = enum.auto()
    TAKE12 = TAKE1 | TAKE2
    TAKE13 = TAKE1 | TAKE3
    TAKE23 = TAKE2 | TAKE3
    TAKE123 = TAKE1 | TAKE2 | TAKE3
    TAKE1234 = TAKE1 | TAKE2 | TAKE3 | TAKE4

    def accepts(self, nargs: int) -> bool:
        """ngx_conf_handler's argument-count check (``nargs`` excludes the name)."""
        if self & Args.ANYARGS:
            return True
        if self & Args.FLAG:
            return nargs == 1
        if self & Args.ONEMORE:
            return nargs >= 1
        if self & Args.TWOMORE:
            return nargs >= 2
        if nargs > 7:                        # NGX_CONF_MAX_ARGS is 8 words
            return False
        return bool(self & _TAKE[nargs])

    def describe(self) -> str:
        if self & Args.ANYARGS:
            return "any"
        if self & Args.FLAG:
            return "on | off"
        if self & Args.ONEMORE:
            return "1 or more"
        if self & Args.TWOMORE:
            return "2 or more"
        counts = [str(i) for i in range(8) if self & _TAKE[i]]
        return " or ".join(counts) if counts else "none"


_TAKE = (Args.NOARGS, Args.TAKE1, Args.TAKE2, Args.TAKE3, Args.TAKE4, Args.TAKE5,
         Args.TAKE6, Args.TAKE7)
_TAKE_BITS = tuple(t.value for t in _TAKE)
_BLOCK, _ANYARGS, _ONEMORE, _TWOMORE, _FLAG = (Args.BLOCK.value, Args.ANYARGS.value,
                                               Args.ONEMORE.value, Args.TWOMORE.value,
                                               Args.FLAG.value)
# "N or more" argument counts (a range answers "in" without a Python call)
_ANY_COUNT = (range(0, sys.maxsize), range(1, sys.maxsize), range(2, sys.maxsize))
_FLAG_COUNT = frozenset((1,))


@lru_cache(maxsize=None)
def _take_counts(bits: int) -> frozenset:
    return frozenset(i for i in range(8) if bits & _TAKE_BITS[i])


class Merge(enum.Enum):
    """How a mail directive is inherited ``server`` <- ``mail`` <- default."""
    SCALAR = "scalar"          # server's value, else mail's, else the default
    LIST = "list-replace"      # the server's whole list if it has one, else mail's
    BITMASK = "bitmask"        # as scalar; several lines in one block are OR-ed
    NONE = "not inherited"     # server-only (listen, protocol)
    MAIN = "main"              # main/events level, not inherited


class Fail(Exception):
    """A directive handler's error; the analyzer appends `` in FILE:LINE`` unless
    ``where`` is "none" (messages that carry their own position)."""

    def __init__(self, message: str, level: str = "emerg", where: str = "file"):
        super().__init__(message)
        self.message = message
        self.level = level
        self.where = where


@dataclass(frozen=True)
class Directive:
    """One directive: where it may appear, what it takes, what it sets."""
    name: str
    module: str                      # e.g. "mail_core", "pop3", "core", "events"
    contexts: Ctx
    args: Args
    handler: Optional[Callable] = None   # handler(analyzer, stmt, level, row)
    field: Optional[str] = None      # the conf field it fills
    default: Any = None              # merged default (None: no default / unset)
    merge: Merge = Merge.SCALAR
    dialects: frozenset = ALL
    syntax: str = ""                 # value syntax for the docs
    doc: str = ""                    # one line for the docs
    default_text: str = ""           # the default as documented ("60s", "plain"...)
    generic: bool = False            # a name known from Angie's tables, not analysed
    is_block: bool = _dcfield(init=False, repr=False, compare=False)
    nargs: object = _dcfield(init=False, repr=False, compare=False)  # accepted counts

    def __post_init__(self):
        # the analyzer's hot path checks these once per statement: no Flag arithmetic
        # (here either: integers, as some 1700 rows are made at each start)
        a = self.args.value
        object.__setattr__(self, "is_block", bool(a & _BLOCK))
        if a & _ANYARGS:
            counts = _ANY_COUNT[0]
        elif a & _ONEMORE:
            counts = _ANY_COUNT[1]
        elif a & _TWOMORE:
            counts = _ANY_COUNT[2]
        elif a & _FLAG:
            counts = _FLAG_COUNT
        else:
            counts = _take_counts(a)
        object.__setattr__(self, "nargs", counts)

    @property
    def extension(self) -> bool:
        return self.dialects == EXTENSION

    @property
    def angie_only(self) -> bool:
        return self.dialects == ANGIE


def row(name, module, contexts, args, handler=None, **kw) -> Directive:
    return Directive(name, module, contexts, args, handler, **kw)


# --- Angie's names ------------------------------------------------------------------

_TSV_CTX = {"main": Ctx.MAIN, "event": Ctx.EVENTS, "mail": Ctx.MAIL, "mail_srv": Ctx.SERVER,
            "any": Ctx.ANY, "http": Ctx.HTTP_MAIN, "http_srv": Ctx.HTTP_SRV,
            "http_loc": Ctx.HTTP_LOC, "http_ups": Ctx.HTTP_UPS, "http_sif": Ctx.HTTP_SIF,
            "http_lif": Ctx.HTTP_LIF, "http_lmt": Ctx.HTTP_LMT, "stream": Ctx.STREAM_MAIN,
            "stream_srv": Ctx.STREAM_SRV, "stream_ups": Ctx.STREAM_UPS}
_TSV_ARGS = {"noargs": Args.NOARGS, "flag": Args.FLAG, "1more": Args.ONEMORE,
             "2more": Args.TWOMORE, "any": Args.ANYARGS, "block": Args.BLOCK}


def _tsv_args(text: str) -> Args:
    out = Args(0)
    for part in text.split(" ")[0].split(","):
        if part in _TSV_ARGS:
            out |= _TSV_ARGS[part]
        elif part.startswith("take"):
            for d in part[4:]:
                out |= _TAKE[int(d)]
    return out


def _tsv_contexts(text: str) -> Ctx:
    ctx = Ctx(0)
    for c in text.split(","):
        ctx |= _TSV_CTX.get(c.strip(), Ctx(0))      # "direct" is a storage flag
    return ctx


def _data(name: str) -> str:
    with open(os.path.join(os.path.dirname(__file__), "data", name), encoding="utf-8") as f:
        return f.read()


@dataclass(frozen=True)
class NameRow:
    name: str
    module: str
    subsystem: str
    contexts: Ctx
    args: Args


@lru_cache(maxsize=1)
def angie_names() -> tuple:
    """Every (name, module) Angie defines, from its command tables."""
    text = _data("angie-directive-names.tsv")
    out = []
    for line in text.splitlines()[1:]:
        if not line.strip():
            continue
        name, module, subsystem, contexts, args = line.split("\t")[:5]
        out.append(NameRow(name, module, subsystem, _tsv_contexts(contexts),
                           _tsv_args(args)))
    return tuple(out)


@lru_cache(maxsize=1)
def nginx_unknown_names() -> frozenset:
    """Names of Angie's tables that nginx 1.22 (Debian, with its mail module) does
    not know in the main context; see data/nginx-1.22-unknown.txt."""
    text = _data("nginx-1.22-unknown.txt")
    return frozenset(l.strip() for l in text.splitlines()
                     if l.strip() and not l.startswith("#"))


@dataclass(frozen=True)
class NginxRow(NameRow):
    file: str = "-"          # the dynamic module that defines it ("-": compiled in)


@lru_cache(maxsize=1)
def nginx_http_stream() -> tuple:
    """What nginx 1.22 (Debian's nginx-light) knows inside http {} and stream {}, and
    which of its dynamic modules defines what; see data/nginx-1.22-http-stream.tsv."""
    out = []
    for line in _data("nginx-1.22-http-stream.tsv").splitlines()[2:]:
        if not line.strip():
            continue
        name, module, subsystem, contexts, args, file = line.split("\t")[:6]
        out.append(NginxRow(name, module, subsystem, _tsv_contexts(contexts),
                            _tsv_args(args), file))
    return tuple(out)


def nginx_module_files() -> frozenset:
    """The dynamic modules whose names the nginx dialect knows once ``load_module``
    loads them (by file name; ngx_mail_module.so is taken as always loaded)."""
    return frozenset(r.file for r in nginx_http_stream() if r.file != "-")


class Registry:
    """The directives of one dialect: lookup by name and context.

    ``modules`` (nginx dialect): the dynamic module files loaded so far, whose names
    become known (``stream`` and its directives with ngx_stream_module.so...)."""

    def __init__(self, dialect: str, rows, modules: frozenset = frozenset()):
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}")
        self.dialect = dialect
        self.modules = modules
        self.rows: dict = {}          # name -> [Directive]
        if dialect == "nginx":
            names = [nr for nr in angie_names()
                     if nr.subsystem not in ("http", "stream")]
            loaded = [nr for nr in nginx_http_stream() if nr.file == "-" or
                      nr.file in modules]
            absent = {nr.name for nr in nginx_http_stream()} - {nr.name for nr in loaded}
            names += loaded
            unknown_here = nginx_unknown_names() - {nr.name for nr in loaded}
        else:
            names, absent, unknown_here = angie_names(), set(), frozenset()
        main = Ctx.MAIN.value
        for r in rows:
            # a top-level block of a module not loaded (stream) is unknown to nginx
            if dialect in r.dialects and not (r.contexts.value & main and r.name in absent):
                self.rows.setdefault(r.name, []).append(r)
        for nr in names:
            if nr.subsystem == "mail" or nr.name in unknown_here:
                continue          # mail names come only from the implemented rows
            if any(r.contexts & nr.contexts for r in self.rows.get(nr.name, ())):
                continue          # analysed by an implemented row
            self.rows.setdefault(nr.name, []).append(Directive(
                nr.name, nr.module, nr.contexts, nr.args, generic=True))
        # a context -> {name: row} index for the analyzer's hot path (the first row
        # that allows the context, as nginx takes the first module that defines it)
        self.by_ctx: dict = {ctx: {} for ctx in CONTEXTS}
        masks = [(ctx.value, self.by_ctx[ctx]) for ctx in CONTEXTS]
        for name, rs in self.rows.items():
            for r in rs:
                v = r.contexts.value
                for bit, index in masks:
                    if v & bit and name not in index:
                        index[name] = r

    def known(self, name: str) -> bool:
        return name in self.rows

    def lookup(self, name: str, ctx: Ctx) -> Optional[Directive]:
        return self.by_ctx[ctx].get(name)

    def implemented(self):
        """Every analysed row of this dialect, in declaration order."""
        seen = []
        for rs in self.rows.values():
            for r in rs:
                if not r.generic:
                    seen.append(r)
        return seen


def all_rows() -> list:
    """Every declared row of every module, in module order."""
    from .modules import ALL_ROWS
    return list(ALL_ROWS)


def registry(dialect: str = "angie-mail", modules: frozenset = frozenset()) -> Registry:
    """The registry of a dialect; for nginx, with the given dynamic modules loaded
    (only the files that define names count: see nginx_module_files)."""
    if dialect == "nginx" and modules:
        modules = frozenset(modules) & nginx_module_files()
    else:
        modules = frozenset()
    return _registry(dialect, modules)


@lru_cache(maxsize=None)
def _registry(dialect: str, modules: frozenset) -> Registry:
    return Registry(dialect, all_rows(), modules)
