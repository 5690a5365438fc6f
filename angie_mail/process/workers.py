"""The master process and its workers, as nginx runs them.

The master reads the configuration, opens the listening sockets, detaches (``daemon
on``), writes the pid file and forks ``worker_processes`` workers that share the
sockets (the kernel spreads accepts over them).  It then only handles signals:

* HUP: re-read and check the configuration.  If it fails, log the ``[emerg]`` and keep
  running the old one untouched.  If it passes, open the sockets it adds (keeping the
  ones it still uses), start new workers and retire the old ones gracefully.
* QUIT: graceful stop; TERM/INT: fast stop; USR1: reopen log files (and tell the
  workers); CHLD: a worker that died unexpectedly is logged and replaced.

A worker drops privileges (``user``) when started as root, applies
``worker_rlimit_nofile``, and serves with angie_mail.process.master.run_loop.
"""

from __future__ import annotations

import gc
import os
import resource
import signal
import time

from ..errors import errno_suffix
from ..log import ErrorLog
from ..proxy.listeners import BindError, open_socket, plan
from . import pidfile, title
from .master import (_logs_to_stderr, log_version, main_log, open_sockets, prepare,
                     preload, run_loop)

HANDLED = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
           signal.SIGCHLD, signal.SIGWINCH)


def _sock_key(ls):
    a = ls.listen.addr
    return (a.family, a.host, a.port)


def share_with_workers() -> None:
    """What the master has built (modules, the configuration) stays shared with its
    workers after fork: their garbage collector never walks it.  A walk writes to every
    object's header, and each page it touches becomes the worker's own copy (several
    MB per worker once a full collection runs): CPython's advice for forking servers is
    gc.freeze() before fork.  A full collection first, so that nothing the master no
    longer needs is kept; on a reload the previous generation is unfrozen for it."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Master:
    def __init__(self, o, config, conf_path, startup):
        self.o = o
        self.conf_path = conf_path
        self.startup = startup
        self.config = config
        self.sockets = []
        self.workers: dict = {}          # pid -> generation
        self.generation = 0
        self.log = None
        self.exiting = False

    # --- start ----------------------------------------------------------------------------

    def start(self) -> int:
        cfg = self.config
        sockets = open_sockets(cfg, self.o)
        if sockets is None or not prepare(cfg, self.o, self.startup):
            return 1
        self.preload(cfg)
        if any(s.metrics_listen for s in cfg.servers):
            from ..proxy import metrics
            metrics.make_dir(cfg.main.user)     # one directory for every worker's counts
        self.sockets = sockets
        for ls in sockets:
            os.set_inheritable(ls.sock.fileno(), True)
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        if cfg.main.daemon:
            from .daemon import daemonize
            daemonize(keep_stderr=_logs_to_stderr(cfg, self.o))
        err = pidfile.write(cfg.main.pid)
        if err:
            from ..log import StartupLog
            StartupLog.after_config(cfg, self.o).log("emerg", err)
            return 1
        self.log = main_log(cfg, self.o)
        log_version(self.log)
        self.spawn_all()
        try:
            return self.loop()
        finally:
            pidfile.remove(cfg.main.pid, os.getpid())
            from ..proxy import metrics
            metrics.remove_dir()

    @staticmethod
    def preload(cfg) -> None:
        """Workers of this configuration will run as another user and may not be able
        to import from the installation: import for them now."""
        if cfg.main.user is not None and os.geteuid() == 0:
            preload(cfg)

    def worker_count(self, cfg) -> int:
        return max(cfg.main.worker_processes, 1)

    def spawn_all(self):
        self.generation += 1
        title.set_master_title(self.generation)
        share_with_workers()
        for _ in range(self.worker_count(self.config)):
            self.spawn()

    def spawn(self, generation=None):
        gen = self.generation if generation is None else generation
        cfg = self.config
        sockets = self.sockets
        pid = os.fork()
        if pid == 0:
            code = 2
            try:
                code = worker_main(cfg, sockets, self.o, gen)
            except BaseException as e:      # logged once; the master decides what next
                # failing before serving is fatal (it would fail again at once, as
                # nginx's worker init failures exit 2); later, a new worker is started
                code = 1 if _serving else 2
                try:
                    from .master import log_loop_error
                    log_loop_error(self.log, {"exception": e})
                except BaseException:
                    pass
            finally:
                os._exit(code)
        self.workers[pid] = gen
        self.log.log("notice", f"start worker process {pid}")
        return pid

    # --- signal loop ------------------------------------------------------------------------

    def loop(self) -> int:
        while True:
            info = signal.sigwaitinfo(HANDLED)
            sig = info.si_signo
            if sig == signal.SIGCHLD:
                self.reap()
                if self.exiting and not self.workers:
                    self.log.log("notice", "exit")
                    return 0
            elif sig in (signal.SIGTERM, signal.SIGINT):
                self.log.log("notice", "signal %d (%s) received, exiting"
                             % (sig, signal.Signals(sig).name))
                self.exiting = True
                self.signal_workers(signal.SIGTERM)
                self.wait_workers(5.0)
                return 0
            elif sig == signal.SIGQUIT:
                self.log.log("notice", "signal %d (SIGQUIT) received, shutting down" % sig)
                self.exiting = True
                self.signal_workers(signal.SIGQUIT)
                for ls in self.sockets:
                    ls.sock.close()
                if not self.workers:
                    return 0
            elif sig == signal.SIGHUP:
                self.log.log("notice", "signal %d (SIGHUP) received, reconfiguring" % sig)
                self.reload()
            elif sig == signal.SIGUSR1:
                self.log.log("notice", "signal %d (SIGUSR1) received, reopening logs" % sig)
                ErrorLog.reopen_all(owner=self.config.main.user)
                self.signal_workers(signal.SIGUSR1)

    def signal_workers(self, sig, generation=None):
        for pid, gen in list(self.workers.items()):
            if generation is None or gen == generation:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

    def wait_workers(self, timeout: float):
        deadline = time.monotonic() + timeout
        while self.workers and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.02)
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.reap()

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            gen = self.workers.pop(pid, None)
            if gen is None:
                continue
            from ..proxy import metrics
            metrics.exited(pid)
            code = os.waitstatus_to_exitcode(status)
            # nginx's words and levels (ngx_process_get_status)
            if code < 0:
                core = " (core dumped)" if os.WCOREDUMP(status) else ""
                self.log.log("alert", f"worker process {pid} exited on signal {-code}{core}")
            else:
                self.log.log("notice", f"worker process {pid} exited with code {code}")
            if self.exiting or gen != self.generation:
                continue
            if code == 2:
                # fatal: the same failure would come back at once, forever
                self.log.log("alert", f"worker process {pid} exited with fatal code 2 "
                                      f"and cannot be respawned")
                continue
            self.spawn()

    # --- reload -------------------------------------------------------------------------------

    def reload(self):
        from .run import load_for_run
        from ..log import StartupLog

        class _ToLog(StartupLog):
            def __init__(self, log):
                self.rank = 99
                self.file = None
                self._log = log

            def log(self, level, message):
                self._log.log(level, message)

        config, _ = load_for_run(self.o, _ToLog(self.log))
        if config is None or not prepare(config, self.o, _ToLog(self.log)):
            return                                    # keep the old configuration
        self.preload(config)            # what the new workers may need that the old did not
        new_sockets = plan(config.servers)
        old = {_sock_key(ls): ls for ls in self.sockets}
        opened = []
        try:
            for ls in new_sockets:
                prev = old.get(_sock_key(ls))
                if prev is not None and prev.sock is not None:
                    ls.sock = prev.sock
                else:
                    open_socket(ls)
                    os.set_inheritable(ls.sock.fileno(), True)
                    opened.append(ls)
        except BindError as e:
            self.log.log("emerg", str(e))
            for ls in opened:
                ls.sock.close()
            return
        keep = {id(ls.sock) for ls in new_sockets}
        retired = [ls for ls in self.sockets if id(ls.sock) not in keep]
        old_gen = self.generation
        self.config = config
        self.sockets = new_sockets
        if config.main.error_log:
            self.log = main_log(config, self.o)
        for ls in retired:              # before forking: new workers must not hold them
            ls.sock.close()
        self.spawn_all()
        self.signal_workers(signal.SIGQUIT, generation=old_gen)


ENVIRON = dict(os.environ)          # the environment angie-mail was started with


def worker_environ(env: tuple, inherited: dict) -> dict:
    """A worker's environment, as nginx makes it: TZ, the variables named by ``env``
    (inherited values) and those it sets (``env NAME=value``); nothing else."""
    out = {}
    for name in ("TZ",) + tuple(env):
        if "=" in name:
            k, v = name.split("=", 1)
            out[k] = v
        elif name in inherited:
            out[name] = inherited[name]
    return out


def worker_main(config, sockets, o, generation: int = 1) -> int:
    """The body of a worker process (after fork)."""
    # the master's signals stay blocked until run_loop has its handlers: a USR1 or
    # QUIT that comes while the worker starts waits instead of killing it
    for sig in HANDLED:
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)       # a worker does not reload
    signal.signal(signal.SIGWINCH, signal.SIG_IGN)
    m = config.main
    if m.worker_rlimit_nofile:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (m.worker_rlimit_nofile, m.worker_rlimit_nofile))
        except (ValueError, OSError):
            try:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE,
                                   (min(m.worker_rlimit_nofile, hard), hard))
            except (ValueError, OSError):
                pass
    if m.worker_rlimit_core >= 0:
        try:
            resource.setrlimit(resource.RLIMIT_CORE,
                               (m.worker_rlimit_core, m.worker_rlimit_core))
        except (ValueError, OSError):
            pass
    if m.worker_priority:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, m.worker_priority)
        except OSError:
            pass
    os.environ.clear()
    os.environ.update(worker_environ(m.env, ENVIRON))
    log = main_log(config, o)          # opened by the master, inherited
    if m.user is not None and os.geteuid() == 0 and not drop_privileges(m.user, log):
        return 2
    if m.working_directory:
        # after the switch, as nginx: the directory is the workers' user's to enter
        try:
            os.chdir(m.working_directory)
        except OSError as e:
            log.log("alert", f'chdir("{m.working_directory}") failed' + errno_suffix(e))
            return 2
    # nginx names the process once ngx_worker_process_init has applied the settings
    title.set_worker_title(generation)
    return run_loop(config, sockets, log, on_ready=_ready,
                    on_quit=lambda: title.set_worker_title(generation, shutting_down=True))


def drop_privileges(user: tuple, log) -> bool:
    """Become ``user`` = (name, group) as nginx's workers do: setgid, initgroups (the
    user's supplementary groups), setuid.  False, after nginx's ``[emerg]`` line, when
    the worker cannot go on (it exits with the fatal code 2)."""
    import grp
    import pwd
    name, group = user
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        log.log("emerg", f'getpwnam("{name}") failed')
        return False
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        log.log("emerg", f'getgrnam("{group}") failed')
        return False
    try:
        os.setgid(gid)
    except OSError as e:
        log.log("emerg", f"setgid({gid}) failed" + errno_suffix(e))
        return False
    try:
        os.initgroups(name, gid)
    except OSError as e:                # as nginx: logged, and the worker goes on
        log.log("emerg", f"initgroups({name}, {gid}) failed" + errno_suffix(e))
    try:
        os.setuid(uid)
    except OSError as e:
        log.log("emerg", f"setuid({uid}) failed" + errno_suffix(e))
        return False
    return True


_serving = False        # in a worker: its listeners are being served


def _ready(rt) -> None:
    global _serving
    _serving = True


def run_master(o, config, conf_path, startup) -> int:
    return Master(o, config, conf_path, startup).start()
