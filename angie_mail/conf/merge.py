"""Stage 3: merge every server with the mail level and the defaults, check, freeze.

Inheritance is one rule for all mail directives: a value set in the server wins, else
the value set at mail level, else the default (directives.md).  Levels keep only what
was set, so the merge of a server is one dict union ``defaults | mail | server``: a
list set in the server replaces the mail level's (lists never concatenate), a bitmask
or a pair of values set together (auth_http) travels as one value.

The checks run as Angie runs them: module by module (core, ssl, pop3, imap, smtp,
auth_http, proxy, realip), for each module every server in definition order; the first
failure is the error ``-t`` reports.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache

from ..errors import ConfError
from ..imap.capa import imap_replies
from ..pop3.capa import pop3_replies
from .level import Level
from .modules.core import default_user
from .model import Config, Events, LogTarget, Main, Pos, Server, SessionCache
from .modules import backend_tls, guard
from .registry import Ctx, Merge

DEFAULT_PID = "logs/angie-mail.pid"        # under the prefix, as nginx's logs/nginx.pid
PROTOCOLS_NGINX = frozenset(("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"))
PROTOCOLS_ANGIE = frozenset(("TLSv1.2", "TLSv1.3"))


@lru_cache(maxsize=None)
def _defaults(dialect: str) -> dict:
    from .registry import registry
    out = {}
    for r in registry(dialect).implemented():
        if r.field and r.contexts & Ctx.SERVER and r.merge is not Merge.NONE:
            out[r.field] = r.default
    out["ssl_protocols"] = PROTOCOLS_NGINX if dialect == "nginx" else PROTOCOLS_ANGIE
    return out


def hostname() -> str:
    return socket.gethostname().lower()


def _err(an, message: str, file: str | None = None, line: int = 0) -> None:
    """A merge-time error: the message embeds its own position (file/line are kept
    for machine-readable output only)."""
    an.error(ConfError(message, file, line, where="none", kind="merge"))


def merge(an) -> Config:
    """Merge, check and freeze; errors go through ``an.error`` (which stops in test mode)."""
    mail = an.mail or Level(Ctx.MAIL)
    defaults = _defaults(an.dialect)
    mail_vals = mail.values
    inherited = {**defaults, **mail_vals}
    merged = [(srv, {**inherited, **srv.values}) for srv in an.servers]

    # core
    for srv, v in merged:
        if "protocol" not in v:
            _err(an, f"unknown mail protocol for server in {srv.file}:{srv.line}",
                 srv.file, srv.line)
    # ssl
    for srv, v in merged:
        _check_ssl(an, srv, v)
        _check_proxy_ssl(an, srv, v)
    # auth_http
    for srv, v in merged:
        if v.get("auth_http") is None and not an.partial:
            _err(an, f'no "auth_http" is defined for server in {srv.file}:{srv.line}',
                 srv.file, srv.line)

    # angie-mail's brute-force defence
    for srv, v in merged:
        _check_guard(an, srv, v)

    main = _main(an)
    an.server_pairs = [(_server(an, srv, v, main), srv) for srv, v in merged
                       if "protocol" in v and v.get("auth_http") is not None]
    servers = tuple(s for s, _ in an.server_pairs)
    if an.check_files and an.mode == "test":
        _open_logs(an, main, servers)
    zones = {**mail_vals.get("limit_conn_zones", {}),
             **mail_vals.get("auth_throttle_zones", {})}
    return Config(main, servers, tuple(f.path for f in an.parsed.files),
                  an.mail is not None,
                  tuple((name, an.shm_zones[name]) for name in zones))


def _ssl_mode(v: dict):
    if v.get("ssl_listen"):
        return "listen ... ssl"
    if v.get("ssl_enable"):
        return "ssl"
    if v["starttls"] != "off":
        return "starttls"
    return None


def _run_files(an):
    """The analysis run's TLS file cache: each file is loaded and checked once."""
    files = getattr(an, "tls_files", None)
    if files is None:
        from .tlsfiles import RunFiles
        files = an.tls_files = RunFiles()
    return files


def _check_ssl(an, srv: Level, v: dict) -> None:
    mode = _ssl_mode(v)
    if mode is None:
        return
    pos = v.get("ssl_pos") or Pos(srv.file, srv.line)
    where = f'the "{mode}" directive in {pos.file}:{pos.line}'
    loc = (pos.file, pos.line)
    certs, keys = v["ssl_certificate"], v["ssl_certificate_key"]
    if an.partial and (not certs or not keys):
        return                  # (a mail{} fragment: the including block may set them)
    if not certs:
        return _err(an, f'no "ssl_certificate" is defined for {where}', *loc)
    if not keys:
        return _err(an, f'no "ssl_certificate_key" is defined for {where}', *loc)
    if len(keys) < len(certs):
        return _err(an, f'no "ssl_certificate_key" is defined for certificate '
                        f'"{certs[-1]}" and {where}', *loc)
    verify = v["ssl_verify_client"]
    from ..proxy.tls import check_ciphers
    problem, seclevel = check_ciphers(v["ssl_ciphers"])
    if problem:
        return _err(an, problem, *loc)
    if an.check_files:
        from .tlsfiles import TlsFileError, check_pairs
        try:
            check_pairs(tuple(certs), tuple(keys), tuple(v.get("ssl_password_file") or ()),
                        _run_files(an))
        except TlsFileError as e:
            return _err(an, str(e), *loc)
    if verify != "off":
        if an.dialect == "nginx":
            if not v["ssl_client_certificate"] and verify != "optional_no_ca":
                return _err(an, "no ssl_client_certificate for ssl_verify_client", *loc)
        elif not v["ssl_client_certificate"] and not v["ssl_trusted_certificate"] \
                and verify != "optional_no_ca":
            return _err(an, "no ssl_client_certificate or ssl_trusted_certificate "
                            "for ssl_verify_client", *loc)
    if not an.check_files:
        if an.mode == "lint":
            # what OpenSSL refuses without reading a file: a curve list or a command
            # value (a typo in ssl_ecdh_curve fails the start)
            from ..proxy.tls import lint_tls_settings
            problem = lint_tls_settings(v)
            if problem:
                where = problem[1] or Pos(*loc)
                an.error(ConfError(problem[0], where.file, where.line, kind="merge"))
        return
    from .tlsfiles import PositionedError, TlsFileError
    files = _run_files(an)
    try:
        if verify != "off":
            if v["ssl_client_certificate"]:
                files.ca_file(v["ssl_client_certificate"])
            if v["ssl_trusted_certificate"]:
                files.ca_file(v["ssl_trusted_certificate"])
            if v["ssl_crl"]:
                files.crl(v["ssl_crl"])
        if v["ssl_dhparam"]:
            files.dhparam(v["ssl_dhparam"], seclevel)
    except TlsFileError as e:
        return _err(an, str(e), *loc)
    problem = None
    try:
        for k in v["ssl_session_ticket_key"]:
            files.ticket_key(k)
    except PositionedError as e:
        problem = str(e)
    from ..proxy.tls import absolute_conf_paths, check_tls_settings
    v["ssl_conf_command"] = absolute_conf_paths(v["ssl_conf_command"], an.conf_prefix)
    if problem is None:
        problem = check_tls_settings(v)
    elif an.dialect == "nginx" and an.mail_close is not None:
        # nginx merges when mail{} closes: the error carries that position
        problem = (problem, Pos(*an.mail_close))
    elif an.mail_open is not None:
        # Angie defers the mail{} merge: its errors point at the "mail {" line
        problem = (problem, Pos(*an.mail_open))
    else:
        problem = (problem, None)
    if problem:
        an.error(ConfError(problem[0], problem[1].file if problem[1] else None,
                           problem[1].line if problem[1] else 0,
                           where="file" if problem[1] else "none", kind="merge"))
        return
    from ..proxy.tls import certificate_compression_supported
    if v.get("ssl_certificate_compression") and not certificate_compression_supported():
        # as ngx_ssl_certificate_compression where OpenSSL has no SSL_CTX_compress_certs
        # (before 3.2): for each server that enables it
        an.error(ConfError('"ssl_certificate_compression" is not supported on this '
                           'platform, ignored', None, 0, where="none", kind="merge",
                           level="warn"))


def _check_guard(an, srv: Level, v: dict) -> None:
    """Zones named by auth_throttle and limit_conn must be declared (nginx's words for
    a zone used but never sized); smtp_refuse_auth only where no password AUTH is
    offered."""
    t = v.get("auth_throttle")
    if t is not None and t[0] not in v.get("auth_throttle_zones", {}):
        pos = t[6]
        return _err(an, f'zero size shared memory zone "{t[0]}"', pos.file, pos.line)
    for name, _, pos in v.get("limit_conn") or ():
        if name not in v.get("limit_conn_zones", {}):
            return _err(an, f'zero size shared memory zone "{name}"', pos.file, pos.line)
    if v.get("smtp_refuse_auth") and v.get("protocol") == "smtp" and \
            set(v["smtp_auth"]) - {"none"}:
        _err(an, f'"smtp_refuse_auth on" needs "smtp_auth none" in server in '
                 f'{srv.file}:{srv.line}', srv.file, srv.line)


def _check_proxy_ssl(an, srv: Level, v: dict) -> None:
    if v.get("proxy_ssl", "off") == "off":
        return
    problem = backend_tls.check(an, v, _run_files(an) if an.check_files else None)
    if problem is None:
        from ..proxy.tls import check_backend_ciphers
        problem = check_backend_ciphers(v["proxy_ssl_ciphers"])
    if problem:
        pos = v.get("proxy_ssl_pos") or Pos(srv.file, srv.line)
        _err(an, f"{problem} in {pos.file}:{pos.line}", pos.file, pos.line)


def _main(an) -> Main:
    mv = an.main.values
    ev = an.main.extra.get("events")
    evv = ev.values if ev is not None else {}
    wp = mv.get("worker_processes", 1)
    auto = wp == "auto"
    if auto:
        wp = os.cpu_count() or 1
    logs = tuple(mv.get("error_log") or ())
    return Main(
        daemon=mv.get("daemon", True),
        master_process=mv.get("master_process", True),
        worker_processes=wp,
        worker_processes_auto=auto,
        pid=mv.get("pid", an.full_name(DEFAULT_PID)),
        error_log=logs,
        user=mv.get("user", default_user()),
        worker_rlimit_nofile=mv.get("worker_rlimit_nofile", 0),
        worker_rlimit_core=mv.get("worker_rlimit_core", -1),
        worker_priority=mv.get("worker_priority", 0),
        worker_shutdown_timeout_ms=mv.get("worker_shutdown_timeout", 0),
        working_directory=mv.get("working_directory", ""),
        env=tuple(mv.get("env") or ()),
        events=Events(worker_connections=evv.get("worker_connections", 512),
                      use=evv.get("use", ""),
                      multi_accept=evv.get("multi_accept", False),
                      accept_mutex=evv.get("accept_mutex", False)),
    )


def _server(an, srv: Level, v: dict, main: Main) -> Server:
    name = v["server_name"] or an.hostname or hostname()
    bc = v.get("ssl_session_cache_builtin", ("none", 0))
    sc = v.get("ssl_session_cache_shared", ("", 0))
    listens = tuple(v.get("listen", ()))
    if v.get("ssl_enable"):
        listens = tuple(l._replace(ssl=True) for l in listens)
    logs = v.get("error_log")
    protocol = v["protocol"]
    pop3_auth = v["pop3_auth"]
    pop3_caps = tuple(v["pop3_capabilities"])
    imap_auth = v["imap_auth"]
    imap_caps = tuple(v["imap_capabilities"])
    user_tags = tuple(v["error_log_user_tag"]) if "error_log_user_tag" in v else ()
    max_commands = v.get("max_commands", 1000) if an.dialect != "nginx" else 1 << 62
    throttle, conns = guard.settings(v, v.get("limit_conn_zones", {}))
    # Built positionally, in Server's field order (one field a line, named in the
    # comment): a keyword call with its 65 names costs more than the rest of a
    # server's merge.  tests/conf/test_merge_record.py checks that each field reads
    # its own setting.
    return tuple.__new__(Server, (
        Pos(srv.file, srv.line),                            # pos
        protocol,                                           # protocol
        listens,                                            # listens
        name,                                               # server_name
        v["timeout"],                                       # timeout_ms
        tuple(logs) if logs else main.error_log,            # error_log
        user_tags,                                          # error_log_user_tag
        v["resolver"],                                      # resolver
        v["resolver_timeout"],                              # resolver_timeout_ms
        v["max_errors"],                                    # max_errors
        max_commands,                                       # max_commands
        v["auth_http"],                                     # auth_http
        v["auth_http_timeout"],                             # auth_http_timeout_ms
        tuple(v["auth_http_header"]),                       # auth_http_header
        v["auth_http_pass_client_cert"],                    # auth_http_pass_client_cert
        v.get("auth_http_keepalive", 0),                    # auth_http_keepalive
        v["proxy"],                                         # proxy
        v["proxy_buffer"],                                  # proxy_buffer
        v["proxy_timeout"],                                 # proxy_timeout_ms
        v["proxy_pass_error_message"],                      # proxy_pass_error_message
        v["xclient"],                                       # xclient
        v["proxy_smtp_auth"],                               # proxy_smtp_auth
        v["proxy_protocol"],                                # proxy_protocol
        tuple(v["set_real_ip_from"]),                       # set_real_ip_from
        pop3_auth,                                          # pop3_auth
        pop3_caps,                                          # pop3_capabilities
        v.get("pop3_client_buffer", 128),                   # pop3_client_buffer
        imap_auth,                                          # imap_auth
        imap_caps,                                          # imap_capabilities
        v["imap_client_buffer"],                            # imap_client_buffer
        v["smtp_auth"],                                     # smtp_auth
        tuple(v["smtp_capabilities"]),                      # smtp_capabilities
        v["smtp_client_buffer"],                            # smtp_client_buffer
        v["smtp_greeting_delay"],                           # smtp_greeting_delay_ms
        v["starttls"],                                      # starttls
        _ssl_mode(v) is not None,                           # ssl
        tuple(v["ssl_certificate"]),                        # ssl_certificate
        tuple(v["ssl_certificate_key"]),                    # ssl_certificate_key
        tuple(v["ssl_password_file"]),                      # ssl_passwords
        v["ssl_protocols"],                                 # ssl_protocols
        v["ssl_ciphers"],                                   # ssl_ciphers
        v["ssl_prefer_server_ciphers"],                     # ssl_prefer_server_ciphers
        v["ssl_ecdh_curve"],                                # ssl_ecdh_curve
        v["ssl_dhparam"],                                   # ssl_dhparam
        v.get("ssl_certificate_compression", False),        # ssl_certificate_compression
        SessionCache(bc[0], bc[1], sc[0], sc[1]),           # ssl_session_cache
        v["ssl_session_tickets"],                           # ssl_session_tickets
        tuple(v["ssl_session_ticket_key"]),                 # ssl_session_ticket_key
        v["ssl_session_timeout"],                           # ssl_session_timeout
        v["ssl_verify_client"],                             # ssl_verify_client
        v["ssl_verify_depth"],                              # ssl_verify_depth
        v["ssl_client_certificate"],                        # ssl_client_certificate
        v["ssl_trusted_certificate"],                       # ssl_trusted_certificate
        v["ssl_crl"],                                       # ssl_crl
        tuple(v["ssl_conf_command"]),                       # ssl_conf_command
        _pop3(pop3_auth, pop3_caps) if protocol == "pop3" else None,  # pop3
        _imap(imap_auth, imap_caps) if protocol == "imap" else None,  # imap
        v.get("login_events", ""),                          # login_events
        v.get("metrics_listen"),                            # metrics_listen
        backend_tls.settings(v),                            # proxy_ssl
        throttle,                                           # auth_throttle
        conns,                                              # limit_conn
        v.get("limit_conn_dry_run", False),                 # limit_conn_dry_run
        v.get("limit_conn_log_level", "error"),             # limit_conn_log_level
        v.get("smtp_refuse_auth", False),                   # smtp_refuse_auth
    ))


# the replies depend only on these settings, which many servers share
@lru_cache(maxsize=256)
def _pop3(auth, caps):
    return pop3_replies(auth, caps)


@lru_cache(maxsize=256)
def _imap(auth, caps):
    return imap_replies(auth, caps)


def _open_logs(an, main: Main, servers) -> None:
    """nginx opens every log file once the configuration is read; so does -t.  Before
    them, -t (``open_pid``) opens a configured pid file as nginx's test mode does
    (created empty when missing, never truncated), so a pid path the start would fail
    on fails the test.  The default one (logs/ under the prefix; nginx's is a path fixed
    at build time) is left alone: -t away from the prefix stays a syntax check."""
    from ..errors import errno_suffix
    if an.open_pid and main.pid and "pid" in an.main.values:
        try:
            os.close(os.open(main.pid, os.O_RDWR | os.O_CREAT, 0o644))
        except OSError as e:
            an.error(ConfError(f'open() "{main.pid}" failed' + errno_suffix(e),
                               where="none", kind="open"))
            return
    seen = set()
    targets = list(main.error_log)
    for s in servers:
        targets.extend(s.error_log)
        if s.login_events:
            targets.append(LogTarget(s.login_events))
    for t in targets:
        if t.target in seen or t.target == "stderr" or t.target.startswith(
                ("syslog:", "memory:")):
            continue
        seen.add(t.target)
        try:
            fd = os.open(t.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.close(fd)
        except OSError as e:
            # nginx opens the log files once the configuration is read: -t has
            # printed "syntax is ok" by then (kind "open", see cli.cmd_test)
            an.error(ConfError(f'open() "{t.target}" failed' + errno_suffix(e),
                               where="none", kind="open"))
