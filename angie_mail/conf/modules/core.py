"""Main-context and events{} directives (ngx_core_module, ngx_errlog_module,
ngx_events_module, ngx_event_core_module).

The process model reads: daemon, master_process, worker_processes, pid, error_log,
user, worker_rlimit_nofile, worker_shutdown_timeout, working_directory, env and
events { worker_connections }.  The others are checked as nginx checks them and have no
further effect (documented in docs/directives.md)."""

from __future__ import annotations

import grp
import os
import pwd

from ..registry import ALL, Args, Ctx, Fail, Merge, row
from ..slots import (arg, dup, enum_slot, flag_slot, msec_slot, num_slot,
                     runtime_path_slot, str_slot, value_slot)
from ..url import ptocidr, resolve_host
from ..values import atoi, cstr

# event methods compiled into Angie's and Debian nginx's Linux builds
EVENT_METHODS = ("epoll",)
from .logs import error_log_handler

M = Merge.MAIN


def worker_processes(an, st, lv, d):
    if d.field in lv.values:
        raise dup(d)
    v = arg(st)
    if cstr(v) == "auto":
        lv.values[d.field] = "auto"
        return
    n = atoi(v)
    if n is None:
        raise Fail(f'"{d.name}" directive invalid value')
    lv.values[d.field] = n


def default_user():
    """Who the workers run as when the master is root and no ``user`` is set: nginx's
    built-in ``nobody``, with the group ``nobody`` where it exists, else ``nogroup``
    (Debian's name for it)."""
    if os.geteuid() != 0:
        return None
    try:
        grp.getgrnam("nobody")
        return ("nobody", "nobody")
    except KeyError:
        return ("nobody", "nogroup")


def user(an, st, lv, d):
    if d.field in lv.values:
        raise dup(d)
    if os.geteuid() != 0:
        an.warn('the "user" directive makes sense only if the master process runs '
                'with super-user privileges, ignored', st)
        return
    name = cstr(arg(st))
    group = cstr(arg(st, 2)) if len(st.words) > 2 else name
    if an.mode == "lint" and not an.check_files:
        # the accounts are the deploy host's, not those of the machine lint runs on
        # (a CI runner has no "angie" user); --check-files looks them up here
        lv.values[d.field] = (name, group)
        return
    try:
        pwd.getpwnam(name)
    except (KeyError, ValueError):
        raise Fail(f'getpwnam("{name}") failed')
    try:
        grp.getgrnam(group)
    except (KeyError, ValueError):
        raise Fail(f'getgrnam("{group}") failed')
    lv.values[d.field] = (name, group)


def worker_priority(an, st, lv, d):
    if d.field in lv.values:
        raise dup(d)
    v = arg(st)
    minus = v[:1] == "-"
    n = atoi(v[1:] if v[:1] in "-+" and v else v)
    if n is None:
        raise Fail(f'"{d.name}" directive invalid number')
    lv.values[d.field] = -n if minus else n


def offset_slot(an, st, lv, d):
    """ngx_conf_set_off_slot (ngx_parse_offset: k, m, g)."""
    if d.field in lv.values:
        raise dup(d)
    v = arg(st)
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(v[-1:].lower(), 1)
    n = atoi(v[:-1] if scale > 1 else v)
    if n is None or n * scale > (1 << 63) - 1:
        raise Fail(f'"{d.name}" directive invalid value')
    lv.values[d.field] = n * scale


def worker_cpu_affinity(an, st, lv, d):
    if d.field in lv.values:
        raise dup(d)
    vals = [w.value for w in st.words[1:]]
    if vals[0] == "auto":
        if len(vals) > 2:
            raise Fail('invalid number of arguments in "worker_cpu_affinity" directive')
        vals = vals[1:]
    for v in vals:
        if len(v) > 1024:
            raise Fail('"worker_cpu_affinity" supports up to 1024 CPUs only')
        for ch in v:
            if ch == " ":
                continue
            if ch not in "01":
                raise Fail(f'invalid character "{ch}" in "worker_cpu_affinity"')
    lv.values[d.field] = tuple(w.value for w in st.words[1:])


def env(an, st, lv, d):
    lv.values.setdefault(d.field, []).append(arg(st))


def load_module(an, st, lv, d):
    """Accepted and recorded (angie-mail has its mail support built in); in the nginx
    dialect, the names of the module it loads are known from here on."""
    if an.modules_used:
        raise Fail('"load_module" directive is specified too late')
    path = an.full_name(arg(st))
    if an.check_files and not os.path.isfile(path):
        raise Fail(f'dlopen() "{path}" failed ({path}: cannot open shared object file: '
                   f'No such file or directory)')
    name = os.path.basename(path)
    if name in an.loaded_modules:
        # nginx names the module from the file's own table: Debian's files are named
        # after the module they hold
        raise Fail(f'module "{name[:-3] if name.endswith(".so") else name}" '
                   f'is already loaded')
    lv.values.setdefault(d.field, []).append(path)
    an.load_module(path)


def events_block(an, st, lv, d):
    if "events" in an.main.extra:
        raise Fail('"events" directive is duplicate')
    an.modules_used = True
    ev = an.new_level(Ctx.EVENTS, st)
    an.main.extra["events"] = ev
    return Ctx.EVENTS, ev, None


def protocol_block(an, st, lv, d):
    """http {} and stream {}: every directive inside is looked up by name and context
    (unknown, not allowed here, block or not, argument count); values are not checked
    and the blocks are ignored at run time."""
    key = d.name
    if key in an.main.extra:
        raise Fail(f'"{d.name}" directive is duplicate')
    an.modules_used = True
    an.main.extra[key] = st
    ctx = Ctx.HTTP_MAIN if d.name == "http" else Ctx.STREAM_MAIN
    return ctx, an.new_level(ctx, st), None


worker_connections = value_slot(atoi, 'invalid number "{value}"')


def use(an, st, lv, d):
    if d.field in lv.values:
        raise dup(d)
    v = cstr(arg(st))
    if v not in EVENT_METHODS:
        raise Fail(f'invalid event type "{v}"')
    lv.values[d.field] = v


def debug_connection(an, st, lv, d):
    """An address, CIDR, host name or unix: (ngx_event_debug_connection)."""
    v = arg(st)
    if v != "unix:":
        r = ptocidr(v)
        if r is not None:
            if r[1]:
                an.warn(f"low address bits of {v} are meaningless", st)
        elif resolve_host(v, 0) is None:
            raise Fail(f'host not found in debug_connection "{v}"')
    lv.values.setdefault(d.field, []).append(v)


def check_main(an) -> None:
    """ngx_core_module_init_conf's checks (after the whole file is read)."""
    mv = an.main.values
    masks = mv.get("worker_cpu_affinity")
    wp = mv.get("worker_processes", 1)
    if masks and masks[0] != "auto" and wp != "auto" and len(masks) != wp:
        an.findings.append(_warning(
            'the number of "worker_processes" is not equal to the number of '
            '"worker_cpu_affinity" masks, using last mask for remaining worker processes'))


def _warning(message):
    from ...errors import ConfError
    return ConfError(message, where="none", level="warn", kind="warning",
                     rule="nginx-warning")


_MAIN = Ctx.MAIN
_EV = Ctx.EVENTS

ROWS = [
    row("daemon", "core", _MAIN, Args.FLAG, flag_slot, field="daemon", default=True,
        merge=M, default_text="on", doc="run in the background (off: stay in the foreground)"),
    row("master_process", "core", _MAIN, Args.FLAG, flag_slot, field="master_process",
        default=True, merge=M, default_text="on",
        doc="off: a single process serves all connections (no workers)"),
    row("worker_processes", "core", _MAIN, Args.TAKE1, worker_processes,
        field="worker_processes", default=1, merge=M, syntax="number | auto",
        default_text="1", doc="worker processes sharing the listening sockets"),
    row("pid", "core", _MAIN, Args.TAKE1, runtime_path_slot, field="pid", merge=M,
        syntax="file", doc="pid file of the master process"),
    row("lock_file", "core", _MAIN, Args.TAKE1, str_slot, field="lock_file", merge=M,
        syntax="file", doc="accepted; no effect"),
    row("user", "core", _MAIN, Args.TAKE12, user, field="user", merge=M,
        syntax="user [group]", doc="drop privileges of workers when started as root"),
    row("worker_priority", "core", _MAIN, Args.TAKE1, worker_priority,
        field="worker_priority", merge=M, syntax="number", doc="nice value of workers"),
    row("worker_cpu_affinity", "core", _MAIN, Args.ONEMORE, worker_cpu_affinity,
        field="worker_cpu_affinity", merge=M, syntax="auto [mask] | mask ...",
        doc="accepted and checked; no effect"),
    row("worker_rlimit_nofile", "core", _MAIN, Args.TAKE1, num_slot,
        field="worker_rlimit_nofile", merge=M, syntax="number",
        doc="RLIMIT_NOFILE of workers"),
    row("worker_rlimit_core", "core", _MAIN, Args.TAKE1, offset_slot,
        field="worker_rlimit_core", merge=M, syntax="size", doc="RLIMIT_CORE of workers"),
    row("worker_shutdown_timeout", "core", _MAIN, Args.TAKE1, msec_slot,
        field="worker_shutdown_timeout", merge=M, syntax="time",
        doc="bound on a graceful worker shutdown"),
    row("working_directory", "core", _MAIN, Args.TAKE1, str_slot,
        field="working_directory", merge=M, syntax="directory",
        doc="working directory of workers"),
    row("timer_resolution", "core", _MAIN, Args.TAKE1, msec_slot,
        field="timer_resolution", merge=M, syntax="time", doc="accepted; no effect"),
    row("debug_points", "core", _MAIN, Args.TAKE1, enum_slot(["stop", "abort"]),
        field="debug_points", merge=M, syntax="stop | abort", doc="accepted; no effect"),
    row("env", "core", _MAIN, Args.TAKE1, env, field="env", merge=M,
        syntax="variable[=value]", doc="environment kept for workers"),
    row("load_module", "core", _MAIN, Args.TAKE1, load_module, field="load_module",
        merge=M, syntax="file", doc="accepted (mail support is built in); no effect"),
    row("pcre_jit", "core", _MAIN, Args.FLAG, flag_slot, field="pcre_jit", merge=M,
        doc="accepted; no effect"),
    row("error_log", "core", _MAIN, Args.ONEMORE, error_log_handler, field="error_log",
        merge=M, syntax="file | stderr | syslog:... [level]",
        doc="the global error log (default: stderr at level error)"),
    row("events", "core", _MAIN, Args.BLOCK | Args.NOARGS, events_block, merge=M,
        doc="the events block (required, as in Angie)"),
    row("http", "core", _MAIN, Args.BLOCK | Args.NOARGS, protocol_block, merge=M,
        doc="directive names and contexts checked, not their values; ignored at run time"),
    row("stream", "core", _MAIN, Args.BLOCK | Args.NOARGS, protocol_block, merge=M,
        doc="directive names and contexts checked, not their values; ignored at run "
            "time (nginx: known once ngx_stream_module.so is loaded)"),
    # events {}
    row("worker_connections", "events", _EV, Args.TAKE1, worker_connections,
        field="worker_connections", default=512, merge=M, syntax="number",
        default_text="512", doc="connections per worker (client and backend sockets)"),
    row("use", "events", _EV, Args.TAKE1, use, field="use", merge=M,
        syntax="epoll", doc="accepted; the event loop chooses"),
    row("multi_accept", "events", _EV, Args.FLAG, flag_slot, field="multi_accept",
        default=False, merge=M, doc="accepted; no effect"),
    row("accept_mutex", "events", _EV, Args.FLAG, flag_slot, field="accept_mutex",
        default=False, merge=M, doc="accepted; no effect"),
    row("accept_mutex_delay", "events", _EV, Args.TAKE1, msec_slot,
        field="accept_mutex_delay", merge=M, syntax="time", doc="accepted; no effect"),
    row("debug_connection", "events", _EV, Args.TAKE1, debug_connection,
        field="debug_connection", merge=M, syntax="address | CIDR",
        doc="accepted; no effect"),
]

assert all(r.dialects <= ALL for r in ROWS)
