"""Serving: sockets, pid file, signals, and the event loop.

This is the single-process path (``master_process off``, and the basis of a worker):
open every planned socket, write the pid file once they listen, serve until a signal:
TERM/INT stop at once, QUIT stops accepting and lets sessions finish, USR1 reopens the
log files.  Multi-process operation (workers, HUP reload) is in angie_mail.process.workers.
"""

from __future__ import annotations

import asyncio
import os
import signal

from ..log import ErrorLog, StartupLog
from ..proxy.listeners import BindError, open_socket, plan
from . import pidfile


def _uvloop():
    """The uvloop module when installed and not turned off (ANGIE_MAIL_EVENT_LOOP=asyncio
    forces asyncio's loop, for comparisons), else None."""
    if os.environ.get("ANGIE_MAIL_EVENT_LOOP") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop


def new_event_loop():
    """uvloop's loop when available (faster I/O), asyncio's otherwise."""
    uvloop = _uvloop()
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def prepare(config, o, startup: StartupLog) -> bool:
    """What must happen before privileges are dropped: open every log file and build
    every TLS context (keys are often readable by root only), as nginx does in its
    master.  False after logging the error."""
    main_log(config, o)
    for srv in config.servers:
        ErrorLog.for_targets(srv.error_log)
    from ..proxy import backend_tls, guard
    from ..proxy.tls import prebuild
    try:
        prebuild(config)
        backend_tls.prebuild(config)
    except Exception as e:                  # a certificate that -t accepted but OpenSSL not
        startup.log("emerg", f"cannot create the TLS context: {e}")
        return False
    try:
        guard.prepare(config)               # shared zones: before the workers fork
    except OSError as e:
        startup.log("emerg", f"cannot create the shared memory zones: {e}")
        return False
    return True


def preload(config) -> None:
    """Import now every module a worker of ``config`` may load later.  Workers run as
    another user (``user``, or nobody): the installation may not be readable by it (a
    virtual environment in root's home), and a module first imported after the switch
    would fail there.  Python code is loaded here, in the master, and inherited by fork;
    the master calls this again for each new configuration before its workers start.
    The certificate library and the DNS library are loaded only for a configuration
    that uses TLS or a resolver: both are large, and pages the master has touched are
    paid for once per process that touches them."""
    import encodings.idna  # noqa: F401  (host names)
    from ..proxy import (auth_http, backend_tls, client, guard, handshake,  # noqa: F401
                         netio, poller, proxy_protocol, relay, server, sockio,
                         ossl, sslcache, tls, tlsio)
    from .. import errors, protocols  # noqa: F401
    from . import title  # noqa: F401
    try:
        import setproctitle  # noqa: F401
    except ImportError:
        pass
    # new_event_loop runs in the worker: an import failing there (nobody cannot read the
    # installation) would silently leave the worker on asyncio's slower loop
    _uvloop()
    servers = config.servers
    if any(s.ssl for s in servers):
        # what the workers use for client certificates (TlsInfo, Auth-SSL-*, PROXY v2
        # out, auth_throttle_trust_certificate)
        from ..conf import tlsfiles  # noqa: F401
        import cryptography.x509  # noqa: F401
        import cryptography.x509.oid  # noqa: F401
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: F401
    if any(s.resolver is not None for s in servers):
        from ..proxy import resolver  # noqa: F401
        from ..mail import dns as codec
        # dnspython loads each record type's module when it first meets the type
        for rdtype in (codec.PTR, codec.A, codec.AAAA, codec.CNAME):
            codec.query("preload.invalid.", rdtype, 1)
        import dns.rdtypes.ANY.CNAME, dns.rdtypes.ANY.PTR, dns.rdtypes.IN.A, dns.rdtypes.IN.AAAA  # noqa


def open_sockets(config, o):
    """Plan and bind every listening socket; None after logging a bind error (to the
    configuration's error_log, else -e: nginx binds once it has switched to them)."""
    sockets = plan(config.servers)
    for ls in sockets:
        try:
            open_socket(ls)
        except BindError as e:
            StartupLog.after_config(config, o).log("emerg", str(e))
            for other in sockets:
                if other.sock is not None:
                    other.sock.close()
            return None
    return sockets


def _logs_to_stderr(config, o) -> bool:
    targets = [t.target for t in config.main.error_log] or [o.error_log or "stderr"]
    return "stderr" in targets


def main_log(config, o) -> ErrorLog:
    if config.main.error_log:
        return ErrorLog.for_targets(config.main.error_log)
    from ..conf.model import LogTarget
    target = o.error_log if o.error_log else "stderr"
    # nginx's default error log, when the configuration sets none, is at level error
    return ErrorLog.for_targets((LogTarget(target, o.log_level or "error"),))


def log_version(log: ErrorLog) -> None:
    """The start-up notice nginx writes (``nginx/1.22.1``): ours names both."""
    from .. import NGINX_COMPAT, __version__
    log.log("notice", f"angie-mail/{__version__} (nginx/{NGINX_COMPAT})")


def serve(o, config, conf_path: str, startup: StartupLog) -> int:
    if config.main.master_process and config.main.worker_processes > 0 and \
            os.environ.get("ANGIE_MAIL_SINGLE") is None:
        from .workers import run_master
        return run_master(o, config, conf_path, startup)
    return serve_single(o, config, startup)


def serve_single(o, config, startup: StartupLog) -> int:
    if config.main.daemon:
        from .daemon import daemonize
        daemonize(keep_stderr=_logs_to_stderr(config, o))
    sockets = open_sockets(config, o)
    if sockets is None or not prepare(config, o, startup):
        return 1
    err = pidfile.write(config.main.pid)
    if err:
        StartupLog.after_config(config, o).log("emerg", err)
        return 1
    log = main_log(config, o)
    log_version(log)
    from .title import set_master_title
    set_master_title(1, single=True)
    try:
        return run_loop(config, sockets, log)
    finally:
        pidfile.remove(config.main.pid, os.getpid())


def log_loop_error(log: ErrorLog, context: dict) -> None:
    """An exception that escaped a callback: one error-log line, no traceback, and
    nothing of the exception's text (it may quote what a client sent)."""
    exc = context.get("exception")
    if exc is None:
        log.log("alert", str(context.get("message", "event loop error")))
        return
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = ""
    if tb is not None:
        where = f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
    log.log("alert", f"unexpected {type(exc).__name__}{where}")


_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGHUP,
            signal.SIGWINCH)


def run_loop(config, sockets, log: ErrorLog, on_ready=None, graceful_signal=None,
             on_quit=None) -> int:
    """Serve ``sockets`` until a stop signal; 0 on a clean stop.

    The loop passes a signal to its handler only while it runs: one that came after
    the handlers were set but before the loop ran was lost (a stop sent right after
    the pid file appeared left the process running).  So the signals stay blocked
    until the loop runs, and one that came meanwhile is delivered then."""
    from ..proxy.server import Runtime
    signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    if log.enabled("debug"):
        kind = "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
        log.log("debug", f'using the "{kind}" event loop')
    rt = Runtime(loop, config, log)
    done = loop.create_future()
    loop.set_exception_handler(lambda lp, context: log_loop_error(log, context))

    def fast_stop():
        rt.stop()
        if not done.done():
            done.set_result(0)

    async def graceful():
        await rt.graceful(config.main.worker_shutdown_timeout_ms)
        if not done.done():
            done.set_result(0)

    def quit_():
        if on_quit is not None:
            on_quit()
        loop.create_task(graceful())

    loop.add_signal_handler(signal.SIGTERM, fast_stop)
    loop.add_signal_handler(signal.SIGINT, fast_stop)
    loop.add_signal_handler(signal.SIGQUIT, quit_)
    def reopen():
        log.log("notice", "reopening logs")          # as nginx: then the files change
        ErrorLog.reopen_all()
    loop.add_signal_handler(signal.SIGUSR1, reopen)
    if graceful_signal is not None:
        loop.add_signal_handler(graceful_signal, quit_)
    addr = next((s.metrics_listen for s in config.servers if s.metrics_listen), None)

    async def serve():
        if addr is not None:
            from ..proxy import metrics
            metrics.start_counting(metrics.make_dir())     # before the first accept
        await rt.start(sockets)
        if addr is not None:
            rt.metrics_server = await metrics.serve(loop, addr)
        if on_ready is not None:
            on_ready(rt)
        # the loop runs: signals (a worker is forked with them blocked too, see
        # workers.worker_main) are handled from here, a pending one at once
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
        return await done

    try:
        return loop.run_until_complete(serve())
    finally:
        rt.stop()
        for ls in sockets:
            if ls.sock is not None:
                try:
                    ls.sock.close()
                except OSError:
                    pass
        try:
            loop.run_until_complete(asyncio.sleep(0))
        except Exception:
            pass
        loop.close()
        from ..proxy import metrics
        metrics.remove_dir()           # (only in the process that made it)
