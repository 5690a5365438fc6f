"""The command line, with nginx's conventions.

    angie-mail [-?hvVtTq] [-s signal] [-p prefix] [-e filename] [-c filename]
               [-g directives] [--log-level=LEVEL] [--dialect=DIALECT]
    angie-mail lint [options] [FILE ... | -]
    angie-mail dump [--format text|json] [FILE]
    angie-mail fmt [--check] [--diff] FILE ... | -

Without ``-t``/``-T``/``-s``/``-v`` it runs the proxy.  Defaults: the prefix is the
current directory, the configuration file ``conf/mail.conf`` under the prefix, the
error log stderr (see docs/cli.md).
"""

from __future__ import annotations

import os
import sys

from . import NGINX_COMPAT, __version__
from .conf.load import DEFAULT_CONF, load_config, prefix_of, resolve_paths  # noqa: F401

PROG = "angie-mail"
LEVELS = ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg")

USAGE = f"""\
{PROG} version: {PROG}/{__version__}
Usage: {PROG} [-?hvVtTq] [-s signal] [-p prefix]
             [-e filename] [-c filename] [-g directives]
             [--log-level=LEVEL] [--dialect=angie-mail|angie|nginx]
       {PROG} lint [--format=text|json|sarif] [--dialect=...] [--context=...] [FILE ...|-]
       {PROG} dump [--format=text|json] [FILE]
       {PROG} fmt [--check] [--diff] FILE ...|-
       {PROG} throttle list|clear [-c filename] [--zone name] [...]

Options:
  -?,-h         : this help
  -v            : show version and exit
  -V            : show version and what this build supports, then exit
  -t            : test configuration and exit
  -T            : test configuration, dump it and exit
  -q            : suppress non-error messages during configuration testing
  -s signal     : send signal to a master process: stop, quit, reopen, reload
  -p prefix     : set prefix path (default: the current directory)
  -e filename   : set error log file (default: stderr)
  -c filename   : set configuration file (default: {DEFAULT_CONF})
  -g directives : set global directives out of configuration file
  --log-level=L : level of the startup/default error log (default: notice)
  --dialect=D   : what to accept: angie-mail (default: Angie plus this
                  project's extensions), angie, or nginx (nginx 1.22)
"""


class Options:
    def __init__(self):
        self.help = self.version = self.version_full = False
        self.test = self.dump = self.quiet = False
        self.signal = None
        self.prefix = None
        self.error_log = None
        self.conf = None
        self.params = ""
        self.log_level = None       # --log-level; else notice at start-up, then error
        self.dialect = "angie-mail"


class UsageError(Exception):
    pass


def parse_args(argv: list) -> Options:
    """nginx's option parsing: flags may be combined (-tq), values attached or not."""
    o = Options()
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a.startswith("--"):
            name, eq, val = a[2:].partition("=")
            if name in ("log-level", "dialect"):
                if not eq:
                    if i >= len(argv):
                        raise UsageError(f'option "--{name}" requires a value')
                    val = argv[i]
                    i += 1
                if name == "log-level":
                    if val not in LEVELS:
                        raise UsageError(f'invalid log level "{val}"')
                    o.log_level = val
                else:
                    if val not in ("angie-mail", "angie", "nginx"):
                        raise UsageError(f'invalid dialect "{val}"')
                    o.dialect = val
                continue
            if name == "help":
                o.help = True
                continue
            if name == "version":
                o.version = True
                continue
            raise UsageError(f'invalid option: "{a}"')
        if not a.startswith("-") or a == "-":
            raise UsageError(f'invalid option: "{a}"')
        j = 1
        while j < len(a):
            c = a[j]
            j += 1
            if c in "?h":
                o.help = True
            elif c == "v":
                o.version = True
            elif c == "V":
                o.version = o.version_full = True
            elif c == "t":
                o.test = True
            elif c == "T":
                o.test = o.dump = True
            elif c == "q":
                o.quiet = True
            elif c in "specg":
                if j < len(a):
                    val = a[j:]
                elif i < len(argv):
                    val = argv[i]
                    i += 1
                else:
                    raise UsageError(f'option "-{c}" requires '
                                     + {"s": "signal name", "p": "prefix name",
                                        "e": "file name", "c": "file name",
                                        "g": "parameter"}[c])
                j = len(a)
                if c == "s":
                    if val not in ("stop", "quit", "reopen", "reload"):
                        raise UsageError(f'invalid option: "-s {val}"')
                    o.signal = val
                elif c == "p":
                    o.prefix = val
                elif c == "e":
                    o.error_log = val
                elif c == "c":
                    o.conf = val
                else:
                    o.params += val
            else:
                raise UsageError(f'invalid option: "{c}"')
    if o.error_log and o.error_log != "stderr" and not o.error_log.startswith("/"):
        o.error_log = prefix_of(o) + o.error_log      # -e is under the prefix, as nginx's
    return o


def stderr(msg: str) -> None:
    sys.stderr.write(f"{PROG}: {msg}\n")
    sys.stderr.flush()


# what nginx does after "syntax is ok": open the log files (then, with the
# configuration's log: bind the listening sockets)
POST_PARSE_KINDS = ("open",)


def cmd_test(o: Options) -> int:
    """nginx -t: read the configuration, then open what it names and bind its
    listening sockets; messages go to the logs nginx would use at each step (see
    log.StartupLog), the verdict lines always to stderr."""
    from .log import StartupLog
    startup = StartupLog(o.error_log, o.log_level or "notice")
    res, conf = load_config(o)
    post = [f for f in res.findings if f.kind in POST_PARSE_KINDS]
    for f in res.findings:
        if f.kind not in POST_PARSE_KINDS:
            startup.log(f.level, f.text())
    failed = any(f.kind not in POST_PARSE_KINDS for f in res.errors)
    if not failed and not o.quiet:
        stderr(f"the configuration file {conf} syntax is ok")
    if not failed:
        for f in post:
            startup.log(f.level, f.text())
    if not res.ok:
        stderr(f"configuration file {conf} test failed")
        return 1
    from .proxy.listeners import check_sockets
    problem = check_sockets(res.config.servers)
    if problem:
        StartupLog.after_config(res.config, o).log("emerg", problem)
        stderr(f"configuration file {conf} test failed")
        return 1
    if not o.quiet:
        stderr(f"configuration file {conf} test is successful")
    if o.dump:
        from .dump import write_files
        write_files(res.parsed.files)
    return 0


def version_text(full: bool) -> str:
    import ssl
    from .protocols import PROTOCOLS
    # one OpenSSL serves TLS to clients and to backends and checks it at -t: the one
    # Python's ssl module is linked to (proxy/ossl.py)
    openssl = ssl.OPENSSL_VERSION
    lines = [f"{PROG} version: {PROG}/{__version__}"]
    if full:
        lines += [
            f"nginx version: nginx/{NGINX_COMPAT}",
            f"built with Python {sys.version.split()[0]}, {openssl}",
            "TLS SNI support enabled",
            # what nginx's -V says of a build with the mail modules (and no http or
            # stream module: angie-mail reads those blocks but serves only mail)
            "configure arguments: --with-mail --with-mail_ssl_module",
            "dialects: angie-mail (default), angie, nginx (1.22)",
            "mail protocols: " + ", ".join(sorted(PROTOCOLS)),
            "extensions (dialect angie-mail): pop3_client_buffer, auth_http_keepalive, "
            "proxy_protocol v2, login_events, metrics_listen, proxy_ssl, auth_throttle, "
            "limit_conn, smtp_refuse_auth",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    # Lark imports the third-party "regex" module when it is installed (~9 ms at start);
    # our grammar needs only "re", and this process loads nothing else that uses it
    sys.modules.setdefault("regex", None)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "lint":
            from .lint import main as lint_main
            return lint_main(argv[1:])
        if argv and argv[0] == "fmt":
            from .fmt import main as fmt_main
            return fmt_main(argv[1:])
        if argv and argv[0] == "throttle":
            from .throttle import main as throttle_main
            return throttle_main(argv[1:])
        if argv and argv[0] == "dump":
            from .dump import main as dump_main
            return dump_main(argv[1:])
        try:
            o = parse_args(argv)
        except UsageError as e:
            stderr(str(e))
            return 1
        if o.help:
            sys.stderr.write(USAGE)
            return 0
        if o.version:
            sys.stderr.write(version_text(o.version_full))
            if not o.test:
                return 0
        if o.test:
            return cmd_test(o)
        if o.signal:
            from .process.signals import send_signal
            return send_signal(o)
        from .process.run import run
        return run(o)
    except KeyboardInterrupt:
        return 1
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
