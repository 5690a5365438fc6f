"""``error_log`` (main and mail levels): ngx_log_set_log and ngx_syslog_process_conf."""

from __future__ import annotations

from ..model import LogTarget, Pos
from ..registry import Fail
from ..url import parse_url
from ..values import cstr, parse_size

LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug")
DEBUG_LEVELS = ("debug_core", "debug_alloc", "debug_mutex", "debug_event", "debug_http",
                "debug_mail", "debug_stream")
MEMORY_MIN = 2125       # nginx: NGX_MAX_ERROR_STR plus its ring-buffer header
FACILITIES = ("kern", "user", "mail", "daemon", "auth", "intern", "lpr", "news", "uucp",
              "clock", "authpriv", "ftp", "ntp", "audit", "alert", "cron", "local0",
              "local1", "local2", "local3", "local4", "local5", "local6", "local7")
SEVERITIES = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug")


def check_syslog(spec: str) -> None:
    """ngx_syslog_process_conf's checks on ``syslog:param,param...``."""
    server = False
    for p in spec[7:].split(","):
        p = cstr(p)
        if p.startswith("server="):
            u = parse_url(p[7:], default_port=514)
            if u.err:
                raise Fail(f'{u.err} in syslog server "{p[7:]}"')
            server = True
        elif p.startswith("facility="):
            if p[9:] not in FACILITIES:
                raise Fail(f'unknown syslog facility "{p[9:]}"')
        elif p.startswith("severity="):
            if p[9:] not in SEVERITIES:
                raise Fail(f'unknown syslog severity "{p[9:]}"')
        elif p.startswith("tag="):
            tag = p[4:]
            if len(tag) > 32:
                raise Fail("syslog tag length exceeds 32")
            if any(not (c.isascii() and (c.isalnum() or c == "_")) for c in tag):
                raise Fail('syslog "tag" only allows alphanumeric characters and underscore')
        elif p == "nohostname":
            pass
        else:
            raise Fail(f'unknown syslog parameter "{p}"')
    if not server:
        raise Fail("no syslog server specified")


def check_filter(value: str) -> None:
    """ngx_log_add_filter / ngx_log_filter_set_rule checks on ``PART:PATTERN``."""
    import re
    part, colon, pattern = value.partition(":")
    if not colon:
        raise Fail(f'missing filter type in "{value}"')
    if part == "sourcefile":
        # a handler's returned string: nginx prints '"<directive>" directive <string>'
        raise Fail('"error_log" directive source file filtering requires debug build')
    if pattern[:1] in ("=", "~"):
        pattern = pattern[1:]
    if not pattern:
        raise Fail(f'empty filter pattern "{value}"')
    if value.partition(":")[2][:1] == "~":
        try:
            re.compile(pattern)
        except re.error as e:
            raise Fail(f'pcre2_compile() failed: {e.msg} in "{pattern}" at "{pattern[e.pos or 0:]}"')


def error_log_handler(an, st, lv, d):
    target = st.words[1].value
    t = cstr(target)
    if t == "stderr":
        dest = "stderr"
    elif t.startswith("memory:"):
        size = parse_size(t[7:])
        if size is None or size < MEMORY_MIN:
            raise Fail(f'invalid buffer size "{target[7:]}"')
        dest = t
    elif t.startswith("syslog:"):
        check_syslog(t)
        dest = t
    else:
        dest = an.full_name(target)
    level = None
    params = []
    fmt = None
    for w in st.words[2:]:
        v = cstr(w.value)
        if an.dialect != "nginx" and v.startswith("format="):
            # Angie's ngx_log_set_format
            if fmt is not None:
                raise Fail(f'duplicate format= parameter ("{v[7:]}")')
            fmt = v[7:]
            if fmt not in ("json", "default"):
                raise Fail(f'unknown log format "{fmt}"')
            if fmt == "json":
                params.append(v)
            continue
        if an.dialect != "nginx" and v.startswith("filter="):
            check_filter(v[7:])        # Angie's ngx_log_add_filter
            params.append(v)
            continue
        if v in LEVELS:
            if level is not None:
                raise Fail(f'duplicate log level "{w.value}"')
            level = v
        elif v in DEBUG_LEVELS:
            if level is not None and level != "debug_*":
                raise Fail(f'invalid log level "{w.value}"')
            level = "debug_*"
        else:
            raise Fail(f'invalid log level "{w.value}"')
    lv.values.setdefault(d.field, []).append(
        LogTarget(dest, "debug" if level == "debug_*" else (level or "error"),
                  tuple(params), Pos(st.file, st.end_line)))
