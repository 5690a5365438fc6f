"""Stage 3 output: the frozen, resolved configuration the runtime reads.

Records are NamedTuples: immutable, cheap to build at merge.  Every value here is final: inheritance (server <- mail <- default) is done, paths are
absolute, times are in milliseconds (``*_ms``) or seconds, and work that depends only on
configuration (POP3 greeting shape, CAPA/AUTH replies) is precomputed.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from .url import Addr


class Pos(NamedTuple):
    """Where something was configured."""
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Listen(NamedTuple):
    """One ``listen`` socket address of a mail server, with its parameters."""
    addr: Addr
    ssl: bool = False
    proxy_protocol: bool = False
    bind: bool = False
    backlog: int = 511
    rcvbuf: int = -1
    sndbuf: int = -1
    ipv6only: bool = True
    so_keepalive: int = 0              # 0 unset, 1 on, 2 off
    keepidle: int = 0                  # seconds
    keepintvl: int = 0
    keepcnt: int = 0
    multipath: bool = False
    pos: Pos = Pos("", 0)

    @property
    def text(self) -> str:
        return self.addr.text


class LogTarget(NamedTuple):
    """One ``error_log`` destination: a file path, ``stderr``, or ``syslog:...``."""
    target: str                        # absolute path, "stderr", "syslog:..." or "memory:..."
    level: str = "error"               # emerg alert crit error warn notice info debug
    params: tuple = ()                 # extra Angie parameters (format=, filter=...)
    pos: Pos = Pos("", 0)


class AuthHttp(NamedTuple):
    """The ``auth_http`` peer: address, Host header and URI, inherited together."""
    url: str
    addr: Addr
    host_header: str
    uri: str
    pos: Pos = Pos("", 0)


class Resolver(NamedTuple):
    servers: tuple                     # tuple[Addr]
    valid: int = 0                     # seconds, 0 = use the TTL
    ipv4: bool = True
    ipv6: bool = True


class SessionCache(NamedTuple):
    builtin: str = "none"              # "off", "none", "builtin"
    builtin_size: int = 0
    shared_name: str = ""
    shared_size: int = 0


class Pop3Replies(NamedTuple):
    """POP3 replies that depend only on configuration (pop3.md §2, §4, §6.0)."""
    salt: bool                         # greeting carries <R.T@server_name>
    capa: bytes                        # variant (a): normal
    capa_starttls: bytes               # variant (b): starttls on, plain, START
    capa_only: bytes                   # variant (c): starttls only, plain, START
    auth_list: bytes                   # "+OK methods supported:" ... "."
    mechanisms: tuple                  # enabled SASL mechanism names, in listing order


class ImapReplies(NamedTuple):
    """IMAP's CAPABILITY lines (imap.md §5), each ``* CAPABILITY ...`` CRLF."""
    capability: bytes                  # TLS already, or starttls off
    capability_starttls: bytes         # plain text, starttls on
    capability_only: bytes             # plain text, starttls only


class BackendTls(NamedTuple):
    """proxy_ssl and its settings (angie-mail): TLS from the proxy to the backend."""
    mode: str                          # on | starttls
    verify: bool
    trusted_certificate: str
    name: str                          # "": the Auth-Server value
    server_name: bool                  # send SNI even without verify
    certificate: str
    certificate_key: str
    passwords: tuple
    protocols: frozenset
    ciphers: str
    session_reuse: bool
    pos: Optional[Pos] = None


class AuthThrottle(NamedTuple):
    """auth_throttle and its settings (angie-mail): failed-login throttling."""
    zone: str
    addr: Optional[tuple]              # (failures, window seconds) or None
    login: Optional[tuple]
    pair: Optional[tuple]
    delay: float                       # seconds: the first delay, doubled per failure
    max_delay: float
    trust: int                         # seconds a success exempts its pair (0: off)
    trust_certificate: bool
    log_level: str
    mask_login: bool
    pos: Optional[Pos] = None


class LimitConn(NamedTuple):
    """One limit_conn (angie-mail, as freenginx's mail module)."""
    zone: str
    key: str                           # $remote_addr, $remote_user, $auth_http_<name>
    number: int
    pos: Optional[Pos] = None


class Server(NamedTuple):
    """A resolved ``server {}`` of the mail block."""
    pos: Pos                           # the "server {" line
    protocol: str                      # pop3 | imap | smtp
    listens: tuple                     # tuple[Listen]
    # core
    server_name: str
    timeout_ms: int
    error_log: tuple                   # tuple[LogTarget] (the global ones when unset)
    error_log_user_tag: tuple
    resolver: Optional[Resolver]
    resolver_timeout_ms: int
    max_errors: int
    max_commands: int
    # auth_http
    auth_http: AuthHttp
    auth_http_timeout_ms: int
    auth_http_header: tuple            # ((name, value), ...)
    auth_http_pass_client_cert: bool
    auth_http_keepalive: int
    # proxy
    proxy: bool
    proxy_buffer: int
    proxy_timeout_ms: int
    proxy_pass_error_message: bool
    xclient: bool
    proxy_smtp_auth: bool
    proxy_protocol: int                # to the backend: 0 off, 1 v1, 2 v2 (angie-mail)
    # realip
    set_real_ip_from: tuple            # tuple[Cidr]
    # pop3 / imap / smtp
    pop3_auth: frozenset
    pop3_capabilities: tuple
    pop3_client_buffer: int
    imap_auth: frozenset
    imap_capabilities: tuple
    imap_client_buffer: int
    smtp_auth: frozenset
    smtp_capabilities: tuple
    smtp_client_buffer: int
    smtp_greeting_delay_ms: int
    # ssl
    starttls: str                      # off | on | only
    ssl: bool                          # the server uses TLS (listen ssl or starttls)
    ssl_certificate: tuple
    ssl_certificate_key: tuple
    ssl_passwords: tuple
    ssl_protocols: frozenset
    ssl_ciphers: str
    ssl_prefer_server_ciphers: bool
    ssl_ecdh_curve: str
    ssl_dhparam: str
    ssl_certificate_compression: bool
    ssl_session_cache: SessionCache
    ssl_session_tickets: bool
    ssl_session_ticket_key: tuple
    ssl_session_timeout: int           # seconds
    ssl_verify_client: str             # off | on | optional | optional_no_ca
    ssl_verify_depth: int
    ssl_client_certificate: str
    ssl_trusted_certificate: str
    ssl_crl: str
    ssl_conf_command: tuple
    pop3: Optional[Pop3Replies] = None
    imap: Optional[ImapReplies] = None
    login_events: str = ""             # the login events file ("": off)
    metrics_listen: Optional[tuple] = None   # (family, host, port) of the metrics endpoint
    proxy_ssl: Optional[BackendTls] = None   # TLS to the backend
    auth_throttle: Optional[AuthThrottle] = None
    limit_conn: tuple = ()             # tuple[LimitConn]
    limit_conn_dry_run: bool = False
    limit_conn_log_level: str = "error"
    smtp_refuse_auth: bool = False


class Events(NamedTuple):
    worker_connections: int = 512
    use: str = ""
    multi_accept: bool = False
    accept_mutex: bool = False


class Main(NamedTuple):
    """Main-context settings that matter to the process model."""
    daemon: bool = True
    master_process: bool = True
    worker_processes: int = 1
    worker_processes_auto: bool = False
    pid: str = ""
    error_log: tuple = ()              # tuple[LogTarget]
    user: Optional[tuple] = None       # (user, group)
    worker_rlimit_nofile: int = 0
    worker_rlimit_core: int = -1       # bytes; -1 = unset
    worker_priority: int = 0
    worker_shutdown_timeout_ms: int = 0
    working_directory: str = ""
    env: tuple = ()
    events: Events = Events()


class Config(NamedTuple):
    """The whole resolved configuration."""
    main: Main
    servers: tuple                     # tuple[Server], in definition order
    files: tuple                       # paths of every file read
    has_mail: bool = False
    zones: tuple = ()                  # ((name, size), ...): limit_conn / auth_throttle
