"""``angie-mail throttle list|clear``: the operator's view of the brute-force defence's
zones (auth_throttle, limit_conn) of the running master (docs/abuse.md).

The zones are memfds of the master, with no path on disk; this command finds them
through the master's pid file, in /proc/<pid>/fd, which only the master's user (or
root) may open, and works on them under the same lock as the workers."""

from __future__ import annotations

import os
import sys
import time

from .log import StartupLog
from .process import pidfile

USAGE = """\
Usage: angie-mail throttle list  [-c file] [-p prefix] [--zone name]
       angie-mail throttle clear [-c file] [-p prefix] [--zone name]
                                 (--all | --addr ADDRESS | --login LOGIN |
                                  --pair 'ADDRESS LOGIN')
"""


def master_zones(pid: int) -> dict:
    """name -> fd path of every zone the process holds."""
    from .proxy.guard import MEMFD_PREFIX
    out = {}
    d = f"/proc/{pid}/fd"
    for fd in os.listdir(d):
        try:
            target = os.readlink(f"{d}/{fd}")
        except OSError:
            continue
        mark = "/memfd:" + MEMFD_PREFIX
        if target.startswith(mark):
            out[target[len(mark):].removesuffix(" (deleted)")] = f"{d}/{fd}"
    return out


def main(argv: list) -> int:
    from .cli import UsageError, parse_args
    if not argv or argv[0] not in ("list", "clear") or "-h" in argv or "--help" in argv:
        sys.stderr.write(USAGE)
        return 0 if argv and argv[0] in ("-h", "--help") else 1
    action, rest = argv[0], argv[1:]
    nginx_args, zone_name, what = [], None, None
    i = 0
    while i < len(rest):
        a = rest[i]
        if a in ("-c", "-p") and i + 1 < len(rest):
            nginx_args += [a, rest[i + 1]]
            i += 2
        elif a == "--zone" and i + 1 < len(rest):
            zone_name = rest[i + 1]
            i += 2
        elif a in ("--addr", "--login", "--pair") and i + 1 < len(rest) and action == "clear":
            what = (a[2:], rest[i + 1])
            i += 2
        elif a == "--all" and action == "clear":
            what = ("all", "")
            i += 1
        else:
            sys.stderr.write(f"angie-mail throttle: unexpected argument \"{a}\"\n{USAGE}")
            return 1
    if action == "clear" and what is None:
        sys.stderr.write(USAGE)
        return 1
    try:
        o = parse_args(nginx_args)
    except UsageError as e:
        sys.stderr.write(f"angie-mail: {e}\n")
        return 1
    from .conf.load import load_config
    startup = StartupLog(o.error_log, o.log_level or "notice")
    res, _ = load_config(o)
    if not res.ok:
        err = res.first_error
        startup.log(err.level, err.text())
        return 1
    pid, err = pidfile.read(res.config.main.pid)
    if err:
        startup.log("error", err)
        return 1
    try:
        zones = master_zones(pid)
    except OSError as e:
        startup.log("error", f"cannot read the zones of process {pid}: {e.strerror}")
        return 1
    if zone_name is not None:
        if zone_name not in zones:
            startup.log("error", f'no zone "{zone_name}" in process {pid}')
            return 1
        zones = {zone_name: zones[zone_name]}
    from .proxy import guard
    now = int(time.time())
    for name, path in sorted(zones.items()):
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as e:
            startup.log("error", f'cannot open zone "{name}": {e.strerror}')
            return 1
        try:
            z = guard.open_zone_fd(fd, name)
            with z.table:
                if action == "list":
                    _list(name, z.table, now)
                else:
                    kind, key = what
                    kinds = {"all": 0, "addr": guard.KIND_ADDR, "login": guard.KIND_LOGIN,
                             "pair": guard.KIND_PAIR}
                    k = key.encode("utf-8", "surrogateescape")
                    if kind in ("login", "pair"):
                        k = k.lower()
                    n = z.table.clear(kinds[kind], k if kind != "all" else None)
                    # a login's trust by certificate goes with the login's other state
                    print(f"zone {name}: {n} entr{'y' if n == 1 else 'ies'} cleared")
            z.table.buf.close()
        finally:
            os.close(fd)
    return 0


def _list(name: str, table, now: int) -> None:
    from .proxy import guard
    rows = sorted(table.entries(), key=lambda e: (e[0], e[1]))
    print(f"zone {name}: {len(rows)} of {table.buckets * guard.WAYS} entries")
    for kind, key, touched, start, fails, ok, conns in rows:
        parts = [f"  {guard.KIND_NAME.get(kind, '?'):5} "
                 f"{key.decode('utf-8', 'backslashreplace')}"]
        if kind == guard.KIND_CONN:
            parts.append(f"connections {conns}")
        else:
            if fails:
                parts.append(f"failures {fails} (window since {now - start}s)")
            if ok:
                parts.append(f"last success {now - ok}s ago")
        print("  ".join(parts))
