"""``angie-mail -s stop|quit|reopen|reload``: signal the running master through the pid
file named by the configuration (nginx's ngx_signal_process)."""

from __future__ import annotations

import os
import signal

from ..log import StartupLog
from . import pidfile

SIGNALS = {"stop": signal.SIGTERM, "quit": signal.SIGQUIT, "reopen": signal.SIGUSR1,
           "reload": signal.SIGHUP}


def send_signal(o) -> int:
    from ..conf.load import load_config
    startup = StartupLog(o.error_log, o.log_level or "notice")
    res, conf = load_config(o)
    if not res.ok:
        err = res.first_error
        startup.log(err.level, err.text())
        return 1
    path = res.config.main.pid
    pid, err = pidfile.read(path)
    if err:
        startup.log("error", err)
        return 1
    try:
        os.kill(pid, SIGNALS[o.signal])
    except ProcessLookupError:
        startup.log("alert", f"kill({pid}, {int(SIGNALS[o.signal])}) failed (3: No such process)")
        return 1
    except PermissionError:
        startup.log("alert", f"kill({pid}, {int(SIGNALS[o.signal])}) failed "
                             f"(1: Operation not permitted)")
        return 1
    return 0
