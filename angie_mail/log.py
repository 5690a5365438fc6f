"""The error log, in nginx's line format.

    2026/11/26 15:04:05 [info] 1234#1234: *7 client logged in, client: "127.0.0.1:51000", server: "127.0.0.1:110", login: "alice", upstream: "127.0.0.1:8110"

Targets come from ``error_log`` (files, ``stderr``, ``syslog:server=...``); a line goes
to every target whose level admits it.  ``reopen()`` reopens files (SIGUSR1).  Nothing
that calls this module passes a password: the POP3 machine masks secrets before logging.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from typing import NamedTuple

LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug")
RANK = {name: i for i, name in enumerate(LEVELS)}
SYSLOG_SEVERITY = {"emerg": 0, "alert": 1, "crit": 2, "error": 3, "warn": 4, "notice": 5,
                   "info": 6, "debug": 7}
SYSLOG_FACILITY = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "intern": 5,
                   "lpr": 6, "news": 7, "uucp": 8, "clock": 9, "authpriv": 10, "ftp": 11,
                   "ntp": 12, "audit": 13, "alert": 14, "cron": 15, "local0": 16,
                   "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21,
                   "local6": 22, "local7": 23}


class LogContext(NamedTuple):
    """What a session appends to its log lines: the action, then its properties
    (``, client: "..."``...), or as members of the ``context`` object in JSON."""
    action: str
    props: tuple                       # ((name, value), ...)

    def text(self) -> str:
        out = f" while {self.action}" if self.action else ""
        return out + "".join(f', {name}: "{value}"' for name, value in self.props)


def _filter_rule(param: str):
    """An Angie ``filter=PART:PATTERN`` as (part, field, kind, pattern) (the
    configuration checks have run: the part and a non-empty pattern are there)."""
    spec = param[7:]
    part, _, pattern = spec.partition(":")
    field = ""
    if part not in ("logline", "message", "tag"):
        field, part = part, "field"
    if pattern[:1] == "=":
        return part, field, "exact", pattern[1:]
    if pattern[:1] == "~":
        return part, field, "regex", re.compile(pattern[1:])
    return part, field, "substring", pattern


def _match(kind, pattern, value: str) -> bool:
    if kind == "exact":
        return value == pattern
    if kind == "regex":
        return pattern.search(value) is not None
    return pattern in value


MAX_LINE = 2047                  # nginx's NGX_MAX_ERROR_STR, less the line feed


class _Target:
    __slots__ = ("spec", "rank", "fd", "sock", "addr", "facility", "tag", "severity",
                 "hostname", "json", "filters")

    def __init__(self, spec: str, level: str, params: tuple = ()):
        self.spec = spec
        self.rank = RANK.get(level, RANK["error"])
        self.fd = None
        self.sock = None
        self.json = "format=json" in params
        self.filters = tuple(_filter_rule(p) for p in params if p.startswith("filter="))
        if spec == "stderr":
            self.fd = 2
        elif spec.startswith("syslog:"):
            self._syslog(spec)
        elif spec.startswith("memory:"):
            pass                        # Angie's debug ring buffer: nothing to write
        else:
            self.open()

    def _syslog(self, spec):
        self.facility = SYSLOG_FACILITY["local7"]
        self.tag = "angie_mail"
        self.severity = None
        self.hostname = True
        host, port = "127.0.0.1", 514
        for p in spec[7:].split(","):
            if p.startswith("server="):
                v = p[7:]
                if v.startswith("unix:"):
                    self.addr = v[5:]
                    self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self.sock.setblocking(False)
                    continue
                if v.startswith("["):
                    h, _, rest = v[1:].partition("]")
                    host, port = h, int(rest[1:]) if rest.startswith(":") else 514
                elif ":" in v:
                    host, _, port = v.rpartition(":")
                    port = int(port)
                else:
                    host = v
            elif p.startswith("facility="):
                self.facility = SYSLOG_FACILITY.get(p[9:], self.facility)
            elif p.startswith("severity="):
                self.severity = p[9:]
            elif p.startswith("tag="):
                self.tag = p[4:]
            elif p == "nohostname":
                self.hostname = False
        if self.sock is None:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.addr = (host, port)
            self.sock = socket.socket(fam, socket.SOCK_DGRAM)
            self.sock.setblocking(False)

    def open(self):
        old = self.fd
        self.fd = os.open(self.spec, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if old is not None and old > 2:
            os.close(old)

    def admits(self, line: str, message: str, context, tags) -> bool:
        """Angie's filter= rules: every one must match."""
        for part, field, kind, pattern in self.filters:
            if part == "logline":
                ok = _match(kind, pattern, line)
            elif part == "message":
                ok = _match(kind, pattern, message)
            elif part == "tag":
                ok = any(_match(kind, pattern, t) for t in tags)
            else:
                if field == "message":
                    values = [message]
                elif field == "action":
                    values = [context.action] if isinstance(context, LogContext) else []
                else:
                    values = [v for n, v in getattr(context, "props", ()) if n == field]
                ok = any(_match(kind, pattern, v) for v in values)
            if not ok:
                return False
        return True

    def write(self, level: str, stamp: str, body: str):
        """A line-format record: ``stamp [level] body``, in a file or as the MSG of a
        syslog message (nginx sends the whole line, its time and level included).  As
        nginx's (NGX_MAX_ERROR_STR), a line is cut at 2047 bytes before its LF."""
        if self.sock is not None:
            self._syslog_send(level, f"{stamp} [{level}] {body}")
        elif self.fd is not None:
            line = f"{stamp} [{level}] {body}".encode("utf-8", "backslashreplace")
            if len(line) > MAX_LINE:
                line = line[:MAX_LINE]
            try:
                os.write(self.fd, line + b"\n")
            except OSError:
                pass

    def write_raw(self, level: str, record: str):
        """A whole record (JSON): to the file, or as a syslog message."""
        if self.sock is not None:
            self._syslog_send(level, record)
        elif self.fd is not None:
            self._append(record + "\n")

    def _syslog_send(self, level: str, text: str) -> None:
        pri = self.facility * 8 + SYSLOG_SEVERITY.get(self.severity or level, 3)
        host = socket.gethostname() + " " if self.hostname else ""
        msg = f"<{pri}>{time.strftime('%b %e %H:%M:%S')} {host}{self.tag}: {text}"
        try:
            self.sock.sendto(msg.encode("utf-8", "backslashreplace"), self.addr)
        except OSError:
            pass

    def _append(self, line: str) -> None:
        try:
            os.write(self.fd, line.encode("utf-8", "backslashreplace"))
        except OSError:
            pass

    def close(self):
        if self.fd is not None and self.fd > 2:
            os.close(self.fd)
            self.fd = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# control characters other than TAB: written escaped (\r, \n, \xNN)
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def _escaped(m) -> str:
    c = m.group()
    return "\\r" if c == "\r" else "\\n" if c == "\n" else "\\x%02x" % ord(c)


def errno_text(err: int) -> str:
    from .errors import errno_suffix
    return errno_suffix(err)


def _json_record(now: float, level, pid, tid, conn, message, err, context, tags) -> str:
    """Angie's error_log format=json record: time (ISO 8601, UTC, ms), level, pid,
    tid, connection, message, error {code, message}, context {action, properties},
    tags."""
    ms = int(now * 1000) % 1000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + \
        (f".{ms:03d}" if ms else "") + "Z"
    rec = {"time": stamp, "level": level, "pid": pid, "tid": tid}
    if conn:
        rec["connection"] = conn
    rec["message"] = message
    if err:
        from .errors import errno_suffix
        rec["error"] = {"code": err, "message": errno_suffix(err)[len(f" ({err}: "):-1]}
    if isinstance(context, LogContext):
        ctx = {"action": context.action} if context.action else {}
        for name, value in context.props:
            ctx[name] = value
        rec["context"] = ctx
    elif context:
        rec["context"] = context
    if tags:
        rec["tags"] = list(dict.fromkeys(tags))
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))


class ErrorLog:
    """A set of targets, each with its own level."""

    _cache: dict = {}

    def __init__(self, targets):
        self.targets = [_Target(t.target, t.level, getattr(t, "params", ()))
                        for t in targets] or [_Target("stderr", "error")]
        self.rank = max(t.rank for t in self.targets)
        self.special = any(t.json or t.filters for t in self.targets)

    @classmethod
    def for_targets(cls, targets, default=None) -> "ErrorLog":
        key = tuple((t.target, t.level, t.params) for t in targets) if targets else None
        if key is None:
            return default or cls([])
        log = cls._cache.get(key)
        if log is None:
            log = cls._cache[key] = cls(targets)
        return log

    @classmethod
    def reopen_all(cls, owner=None) -> None:
        """Reopen every log file (SIGUSR1); the master gives new files to the workers'
        user so that they can reopen them too."""
        for log in list(cls._cache.values()):
            log.reopen(owner)

    @classmethod
    def close_all(cls) -> None:
        for log in list(cls._cache.values()):
            for t in log.targets:
                t.close()
        cls._cache.clear()

    def enabled(self, level: str) -> bool:
        return RANK[level] <= self.rank

    def log(self, level: str, message: str, conn: int = 0, context="", err: int = 0,
            tags: tuple = ()) -> None:
        """One record.  ``context`` is a LogContext (or its text), ``err`` an errno
        shown as `` (110: Connection timed out)``, ``tags`` the session's
        error_log_user_tag values (shown in JSON logs, matched by filter=tag:)."""
        r = RANK[level]
        if r > self.rank:
            return
        pid = os.getpid()
        tid = threading.get_native_id()
        ctext = context.text() if isinstance(context, LogContext) else context
        line = message + (errno_text(err) if err else "") + ctext
        if _CONTROL.search(line) is not None:
            # client text (a login, a command) must not start a line of its own (a
            # forged line would fool the tools that read this log), nor put a NUL or a
            # terminal escape in it
            line = _CONTROL.sub(_escaped, line)
        head = f"{pid}#{tid}: *{conn} " if conn else f"{pid}#{tid}: "
        now = time.time()
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(now))
        for t in self.targets:
            if r > t.rank:
                continue
            if self.special:
                if t.filters and not t.admits(line, message, context, tags):
                    continue
                if t.json:
                    t.write_raw(level, _json_record(now, level, pid, tid, conn, message,
                                                    err, context, tags))
                    continue
            t.write(level, stamp, head + line)

    def reopen(self, owner=None) -> None:
        for t in self.targets:
            if t.fd is not None and t.fd > 2:
                try:
                    t.open()
                    if owner is not None and os.geteuid() == 0:
                        import pwd
                        os.chown(t.spec, pwd.getpwnam(owner[0]).pw_uid, -1)
                except (OSError, KeyError) as e:
                    self.log("alert", f'reopen() "{t.spec}" failed '
                                      f'({getattr(e, "errno", 0)}: {getattr(e, "strerror", e)})')


class StartupLog:
    """Messages before the configuration is in force, as nginx writes them.

    ``path`` is the log nginx would write to: None for none yet (angie-mail's default:
    the console only), ``"stderr"``, or a file.  A record goes in full
    (``2026/12/03 10:00:00 [emerg] 1234#1234: ...``) to that log; the short
    ``angie-mail: [emerg] ...`` form goes to stderr for warn and above unless the full
    line already went there, as nginx's ngx_log_error_core() does while its
    ngx_use_stderr is on (reading the configuration, -t, start-up)."""

    def __init__(self, path: str | None = None, level: str = "notice", targets=None):
        self.rank = RANK.get(level, RANK["notice"])
        self.file = None
        self.stderr_rank = -1            # the level up to which stderr gets full lines
        if targets is None and path:
            targets = (_Spec(path, level),)
        if not targets:
            return
        try:
            self.file = ErrorLog.for_targets(tuple(targets))
        except OSError as e:
            self.file = None
            sys.stderr.write(f'angie-mail: [alert] could not open error log file: '
                             f'open() "{e.filename or path}" failed '
                             f'({e.errno}: {e.strerror})\n')
            return
        ranks = [t.rank for t in self.file.targets if t.spec == "stderr"]
        self.stderr_rank = max(ranks) if ranks else -1
        self.rank = max(self.rank, self.file.rank)

    @classmethod
    def after_config(cls, config, o) -> "StartupLog":
        """The log of what nginx does once the configuration is read (binding the
        listening sockets): the configuration's main error_log, else -e."""
        if config.main.error_log:
            return cls(targets=config.main.error_log)
        return cls(o.error_log, o.log_level or "error")

    def log(self, level: str, message: str) -> None:
        r = RANK[level]
        if r > self.rank:
            return
        if self.file is not None:
            self.file.log(level, message)
        if self.file is None or RANK["warn"] >= r > self.stderr_rank:
            sys.stderr.write(f"angie-mail: [{level}] {message}\n")
            sys.stderr.flush()


class _Spec(NamedTuple):
    target: str
    level: str
    params: tuple = ()
