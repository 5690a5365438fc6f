"""``angie-mail`` without -t: load the configuration, open the sockets, serve.

Start-up errors are printed as nginx prints them (``angie-mail: [emerg] ...``) and the
exit status is 1.  The process model (master and workers, daemon, reload) is in
angie_mail.process.master; this module is the entry point and the single-process path.
"""

from __future__ import annotations


from ..log import StartupLog


def load_for_run(o, startup: StartupLog):
    """The resolved Config, or None after printing the error."""
    from ..conf.load import load_config
    res, conf = load_config(o)
    for f in res.warnings:
        startup.log(f.level, f.text())
    if not res.ok:
        err = res.first_error
        startup.log(err.level, err.text())
        return None, conf
    return res.config, conf


def run(o) -> int:
    startup = StartupLog(o.error_log, o.log_level or "notice")
    config, conf = load_for_run(o, startup)
    if config is None:
        return 1
    from .master import serve
    return serve(o, config, conf, startup)
