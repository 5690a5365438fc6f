"""Stage 2: walk the tree in nginx's order and check every directive.

The walk visits statements exactly in the order nginx's reader meets them: an included
file at its ``include``, a file's syntax error after its last complete statement, a
block's closing checks at its ``}``.  For each statement the checks run in nginx's order
(ngx_conf_handler): unknown name -> not allowed here -> ``;``/``{`` -> argument count ->
the directive's own value checks.  So the first error found is the one ``angie -t``
reports, at the same line.

In ``test`` mode the walk stops at the first error, like nginx.  In ``lint`` mode it
keeps going where the structure allows and collects every finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import ConfError
from .level import Level
from .parse import PARAM_NAME, NoGC, parse_param
from .registry import BLOCK_CONTEXT, Ctx, Fail, registry
from .tree import Parsed, Stmt
from .values import cstr, parse_size
from .zones import declare_zone


# http and stream directives that declare a shared memory zone
_ZONE_DIRECTIVES = frozenset((
    "ssl_session_cache", "limit_req_zone", "limit_conn_zone", "proxy_cache_path",
    "fastcgi_cache_path", "uwsgi_cache_path", "scgi_cache_path", "zone"))


class _Stop(Exception):
    """The first error in ``test`` mode: nginx stops reading here."""


@dataclass
class Result:
    """What the analysis found; ``config`` is the resolved config when there is no error."""
    findings: list = field(default_factory=list)     # ConfError, in order (warnings too)
    config: object = None
    parsed: Optional[Parsed] = None
    analyzer: object = None

    @property
    def errors(self) -> list:
        return [f for f in self.findings if f.level not in ("warn", "notice", "info")]

    @property
    def warnings(self) -> list:
        return [f for f in self.findings if f.level in ("warn", "notice", "info")]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def first_error(self) -> Optional[ConfError]:
        errs = self.errors
        return errs[0] if errs else None


def _display_name(name: str) -> str:
    """A directive name as nginx prints it with %s (up to a NUL byte)."""
    return cstr(name)


class Analyzer:
    """One analysis run over a parsed configuration."""

    def __init__(self, parsed: Parsed, dialect: str = "angie-mail", prefix: str = "",
                 conf_prefix: Optional[str] = None, mode: str = "test",
                 params: str = "", hostname: Optional[str] = None,
                 check_files: bool = True, open_pid: bool = False):
        self.parsed = parsed
        self.dialect = dialect
        self.reg = registry(dialect)
        self.prefix = prefix
        self.conf_prefix = conf_prefix if conf_prefix is not None else prefix
        self.mode = mode
        self.params = params
        self.hostname = hostname
        self.check_files = check_files
        self.open_pid = open_pid          # -t: open (create) a configured pid file
        self.partial = False              # a mail{} fragment: its inheritance unknown
        self.findings: list = []
        # state shared by handlers
        self.main = Level(Ctx.MAIN, parsed.main.path, 0)
        self.mail: Optional[Level] = None
        self.servers: list = []
        self.listen_addrs: set = set()
        self.shm_zones: dict = {}
        self.modules_used = False
        self.merged = None
        self.server_pairs: list = []      # (Server, Level) once merged
        self.mail_close = None            # (file, line) of the "}" of mail{} (nginx)
        self.mail_open = None             # (file, line) of "mail {" (Angie)
        self.tls_files = None             # tlsfiles.RunFiles, once a TLS file is read
        self.loaded_modules: set = set()  # load_module files (names of dynamic modules)

    # --- helpers for handlers -------------------------------------------------------

    def new_level(self, ctx: Ctx, st: Stmt) -> Level:
        return Level(ctx, st.file, st.end_line, st)

    def full_name(self, name: str, conf_prefix: bool = False) -> str:
        """ngx_conf_full_name: absolute as is, else prefix + name."""
        if name.startswith("/"):
            return name
        return (self.conf_prefix if conf_prefix else self.prefix) + name

    def warn(self, message: str, st: Stmt, rule: str = "nginx-warning") -> None:
        self.findings.append(ConfError(message, st.file, st.end_line, col=st.col,
                                       level="warn", kind="warning", start_line=st.line,
                                       rule=rule))

    def error(self, err: ConfError) -> None:
        self.findings.append(err)
        if self.mode == "test" and err.level not in ("warn", "notice", "info"):
            raise _Stop()

    def fail_at(self, st: Stmt, message: str, kind: str = "error", where: str = "file",
                level: str = "emerg") -> None:
        if where == "file" and st.file == PARAM_NAME:
            where = "cmdline"
        self.error(ConfError(message, st.file, st.end_line, col=st.col, where=where,
                             kind=kind, level=level, start_line=st.line))

    # --- the walk ---------------------------------------------------------------------

    def run(self) -> Result:
        with NoGC():
            try:
                self._run()
            except _Stop:
                pass
        res = Result(self.findings, None, self.parsed)
        if res.ok and self.merged is not None:
            res.config = self.merged
        res.analyzer = self
        return res

    def _run(self) -> None:
        ctx = self.parsed.context
        if self.params:
            p = parse_param(self.params, self.conf_prefix)
            self.walk_file(p, 0, Ctx.MAIN, self.main)
        if ctx == "main":
            self.walk_file(self.parsed, 0, Ctx.MAIN, self.main)
            from .modules.core import check_main
            check_main(self)
            if self.main.extra.get("events") is None:
                self.error(ConfError('no "events" section in configuration', where="none"))
            if self.merged is None:
                self.merge_mail()
        elif ctx == "events":
            lv = Level(Ctx.EVENTS, self.parsed.main.path, 0)
            self.walk_file(self.parsed, 0, Ctx.EVENTS, lv)
        elif ctx == "mail":
            # a fragment of a mail{}: what the including mail{} sets (auth_http, the
            # certificates) is unknown, so their absence is not an error here
            self.partial = True
            self.mail = Level(Ctx.MAIL, self.parsed.main.path, 0)
            self.walk_file(self.parsed, 0, Ctx.MAIL, self.mail)
            self.merge_mail()
        elif ctx == "server":
            # a fragment of a server{}: checked directive by directive; what it may
            # inherit from the enclosing mail{} is unknown, so no merge-time checks
            self.mail = Level(Ctx.MAIL, self.parsed.main.path, 0)
            srv = Level(Ctx.SERVER, self.parsed.main.path, 0)
            self.servers.append(srv)
            self.walk_file(self.parsed, 0, Ctx.SERVER, srv)

    def walk_file(self, parsed: Parsed, idx: int, ctx: Ctx, lv: Level) -> None:
        f = parsed.files[idx]
        self.walk(parsed, f.stmts, ctx, lv)
        if f.error is not None:
            self.error(f.error)

    def walk(self, parsed: Parsed, stmts, ctx: Ctx, lv: Level) -> None:
        reg = self.reg
        reg_ctx = reg.by_ctx[ctx]
        lint = self.mode == "lint"
        for st in stmts:
            if self.reg is not reg:            # load_module made more names known
                reg = self.reg
                reg_ctx = reg.by_ctx[ctx]
            words = st.words
            name = words[0].value
            if name == "include":
                self.include(parsed, st, ctx, lv)
                continue
            d = reg_ctx.get(name)
            if d is None:
                if self.reg.known(name):
                    self.fail_at(st, f'"{_display_name(name)}" directive is not allowed here',
                                 kind="not-allowed")
                else:
                    self.fail_at(st, f'unknown directive "{_display_name(name)}"',
                                 kind="unknown")
                if st.block:
                    self.opaque(parsed, st.block)
                continue
            # check_form's test, inline: it passes for nearly every statement
            if (d.is_block != (st.block is not None) or len(words) - 1 not in d.nargs) \
                    and not self.check_form(st, d):
                continue
            if d.handler is None:           # generic: known to Angie, not analysed
                if name in _ZONE_DIRECTIVES and not ctx & (Ctx.MAIL | Ctx.SERVER):
                    self.foreign_zone(st, name, ctx)
                if st.block is not None:
                    # a block of http{}/stream{}: its directives are looked up in the
                    # context it opens; a block read by its own handler (map, types...)
                    # is not
                    child = BLOCK_CONTEXT.get((name, ctx))
                    if child is not None:
                        self.walk(parsed, st.block, child, Level(child, st.file,
                                                                 st.end_line, st))
                    elif st.block:
                        self.opaque(parsed, st.block)
                continue
            try:
                res = d.handler(self, st, lv, d)
            except Fail as e:
                self.fail_at(st, e.message, where=e.where, level=e.level, kind="value")
                if st.block:
                    self.opaque(parsed, st.block)
                continue
            if d.field is not None:
                lv.extra.setdefault("stmts", {})[d.field] = st
            if lint and d.extension:
                # names of Angie's http and stream modules are "not allowed here" in mail
                said = (f'"{d.name}" directive is not allowed here'
                        if registry("angie").known(d.name) else
                        f'unknown directive "{d.name}"')
                self.warn(f'"{d.name}" is an angie-mail extension: Angie reports {said}',
                          st, rule="not-portable")
            if st.block is not None:
                child_ctx, child_lv, close = res
                if child_ctx is None:
                    self.opaque(parsed, st.block)
                    continue
                self.walk(parsed, st.block, child_ctx, child_lv)
                if d.name == "mail":
                    self.mail_open = (st.file, st.line)
                if close is not None and st.closed:
                    if d.name == "mail":
                        self.mail_close = (st.file, st.close_line)
                    try:
                        close()
                    except Fail as e:
                        self.fail_at(st, e.message, where=e.where, level=e.level,
                                     kind="merge")

    def foreign_zone(self, st: Stmt, name: str, ctx: Ctx) -> None:
        """A shared memory zone declared by an http or stream directive: zones are one
        namespace in nginx, so a mail zone (ssl_session_cache shared:..., and the
        angie-mail zones) of the same name is "already declared for a different use",
        whichever comes first.  Only the declaration is read; the rest of the
        directive's values are the http/stream module's business."""
        kind = "stream" if ctx & Ctx.STREAM else "http"
        for w in st.words[1:]:
            v = w.value
            if name == "ssl_session_cache":
                if not v.startswith("shared:"):
                    continue
                zone, _, size = v[7:].rpartition(":")
            elif name == "zone":                        # upstream { zone NAME SIZE; }
                if len(st.words) != 3 or w is not st.words[1]:
                    continue
                zone, size = v, st.words[2].value
            else:
                key = "keys_zone=" if name.endswith("_cache_path") else "zone="
                if not v.startswith(key):
                    continue
                zone, _, size = v[len(key):].rpartition(":")
            n = parse_size(size)
            if not zone or not n:
                continue
            problem = declare_zone(self, zone, n, f"{kind}:{name}")
            if problem:
                self.fail_at(st, problem, kind="value")
            return

    def check_form(self, st: Stmt, d) -> bool:
        """Terminator and argument count, as ngx_conf_handler checks them."""
        if d.is_block == (st.block is not None) and len(st.words) - 1 in d.nargs:
            return True
        name = _display_name(d.name)
        if not d.is_block and st.block is not None:
            self.fail_at(st, f'directive "{name}" is not terminated by ";"', kind="syntax")
            self.opaque(self.parsed, st.block)
            return False
        if d.is_block and st.block is None:
            self.fail_at(st, f'directive "{name}" has no opening "{{"', kind="syntax")
            return False
        if len(st.words) - 1 not in d.nargs:
            self.fail_at(st, f'invalid number of arguments in "{name}" directive',
                         kind="arguments")
            if st.block:
                self.opaque(self.parsed, st.block)
            return False
        return True

    def include(self, parsed: Parsed, st: Stmt, ctx: Ctx, lv: Level) -> None:
        if st.block is not None:
            self.fail_at(st, 'directive "include" is not terminated by ";"', kind="syntax")
            return
        if len(st.words) != 2:
            self.fail_at(st, 'invalid number of arguments in "include" directive',
                         kind="arguments")
            return
        for idx in st.includes:
            self.walk_file(parsed, idx, ctx, lv)

    def load_module(self, path: str) -> None:
        """A dynamic module loaded: the names it defines are known from here on."""
        import os
        self.loaded_modules.add(os.path.basename(path))
        self.reg = registry(self.dialect, frozenset(self.loaded_modules))

    def opaque(self, parsed: Parsed, stmts) -> None:
        """Contents nginx hands to a block's own handler (map, types...) or never reads:
        only included files and their syntax errors matter here."""
        for st in stmts:
            if st.includes and st.words[0].value == "include":
                for idx in st.includes:
                    f = parsed.files[idx]
                    self.opaque(parsed, f.stmts)
                    if f.error is not None:
                        self.error(f.error)
            if st.block:
                self.opaque(parsed, st.block)

    # --- merge ------------------------------------------------------------------------

    def merge_mail(self) -> None:
        """Merge and check every server (nginx: when mail{} closes; Angie: at the end)."""
        from .merge import merge
        self.merged = merge(self)


def analyze(parsed: Parsed, dialect: str = "angie-mail", prefix: str = "",
            conf_prefix: Optional[str] = None, mode: str = "test", params: str = "",
            hostname: Optional[str] = None, check_files: bool = True,
            open_pid: bool = False) -> Result:
    """Check and resolve a parsed configuration (see :class:`Analyzer`).  ``open_pid``:
    open (create) a configured pid file, as nginx -t does; a start writes it later."""
    return Analyzer(parsed, dialect, prefix, conf_prefix, mode, params, hostname,
                    check_files, open_pid).run()
