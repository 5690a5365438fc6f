"""``daemon on``: detach from the terminal as nginx does (fork, setsid, stdio to
/dev/null except stderr when it is the error log)."""

from __future__ import annotations

import os
import sys


def daemonize() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    if fd > 2:
        os.close(fd)
    sys.stdout = open(os.devnull, "w")
