"""The pid file: written once the sockets listen, removed on exit."""

from __future__ import annotations

import os

from ..errors import errno_suffix


def write(path: str) -> str | None:
    """Write our pid; nginx's error text on failure."""
    if not path:
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
    except OSError as e:
        return f'open() "{path}" failed' + errno_suffix(e)
    return None


def read(path: str):
    """(pid, None) or (None, nginx's error text)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        return None, f'open() "{path}" failed' + errno_suffix(e)
    try:
        pid = int(text.strip())
        if pid <= 0:
            raise ValueError
    except ValueError:
        return None, f'invalid PID number "{text.strip()}" in "{path}"'
    return pid, None


def remove(path: str, pid: int | None = None) -> None:
    if not path:
        return
    try:
        if pid is not None:
            cur, _ = read(path)
            if cur != pid:
                return
        os.unlink(path)
    except OSError:
        pass
