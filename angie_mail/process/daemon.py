"""``daemon on``: detach from the terminal as nginx does (fork, setsid, stdio to
/dev/null except stderr when it is the error log)."""

from __future__ import annotations

import os
import sys


def daemonize(keep_stderr: bool = False) -> None:
    """Fork and start a session, as nginx's ngx_daemon; stdin/stdout go to /dev/null,
    stderr too unless the error log is stderr."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    if not keep_stderr:
        os.dup2(fd, 2)
    if fd > 2:
        os.close(fd)
    sys.stdout = open(os.devnull, "w")
