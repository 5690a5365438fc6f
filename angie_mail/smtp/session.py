"""The SMTP pre-authentication machine, sans I/O (smtp.md §3–§11).

Angie's buffer, as for IMAP: one buffer of ``smtp_client_buffer`` bytes holds the line
being parsed; after each command that does not start authentication what follows is
moved to its start, so the limit applies per line.  The line that starts
authentication (a completing AUTH line, a RCPT line of the ``none`` flow) stays in
front of what follows it until the next command completes, so after a failed attempt
the next line has less room (§9).  Bytes beyond the buffer wait, as in the socket.

The driver interface is angie_mail.mail.protocol's Session; the driver also sets
``client_addr`` / ``client_ipv6`` / ``host`` (the resolved client host, §2) before the
greeting, for the auth request and the backend's XCLIENT.
"""

from __future__ import annotations

from ..mail import sasl
from ..mail.buffer import CR, ClientBuffer, continuation_args, secret_command
from ..mail.protocol import AUTH, CLOSE, CONT, NEED, STARTTLS
from .capa import replies

OK = b"250 2.0.0 OK\r\n"
BYE = b"221 2.0.0 Bye\r\n"
START_TLS = b"220 2.0.0 Start TLS\r\n"
INVALID = b"500 5.5.1 Invalid command\r\n"
INVALID_ARGUMENT = b"501 5.5.4 Invalid argument\r\n"
BAD_SEQUENCE = b"503 5.5.1 Bad sequence of commands\r\n"
AUTH_REQUIRED = b"530 5.7.1 Authentication required\r\n"
PIPELINING = b"503 5.5.0 Improper use of SMTP command pipelining\r\n"
INTERNAL_ERROR = b"451 4.3.2 Internal server error\r\n"
CERT_ERROR = b"421 4.7.1 SSL certificate error\r\n"
NO_CERT = b"421 4.7.1 No required SSL certificate\r\n"
AUTH_FAILED_CODE = b"535 5.7.0"
AUTH_REFUSED = b"503 5.5.1 Authentication not enabled\r\n"   # smtp_refuse_auth
UNAVAILABLE = b"[UNAVAILABLE]"

MAX_ARGS = 11
COMMANDS = frozenset((b"HELO", b"EHLO", b"QUIT", b"AUTH", b"NOOP", b"MAIL", b"RSET", b"RCPT",
                      b"VRFY", b"EXPN", b"HELP", b"STARTTLS"))
_BAD = object()                     # a parse-level invalid line

# continuation lines that follow an AUTH line, by mechanism and whether it carried an
# initial response (for masking a buffer in the log)
_FOLLOWING = {(b"LOGIN", False): 2, (b"LOGIN", True): 1, (b"PLAIN", False): 1,
              (b"CRAM-MD5", False): 1, (b"EXTERNAL", False): 1, (b"XOAUTH2", False): 1,
              (b"OAUTHBEARER", False): 1}


_SECRET_LINE = secret_command((b"AUTH",), mechanism=(b"AUTH",))


def parse_command(line: bytes):
    """(COMMAND, [args], the line as typed without trailing spaces) for a line without
    its LF, or _BAD (§4)."""
    if line[-1:] == b"\r":
        line = line[:-1]
    if CR in line:
        return _BAD
    sp = line.find(b" ")
    word = line if sp < 0 else line[:sp]
    n = len(word)
    if n != 4 and n != 8:
        return _BAD
    if not word.isalpha():            # ASCII letters only, for bytes
        return _BAD
    cmd = word.upper()
    if cmd not in COMMANDS:
        return _BAD
    if sp < 0:
        return cmd, [], line
    args = [a for a in line[sp + 1:].split(b" ") if a]
    if len(args) > MAX_ARGS:
        return _BAD
    return cmd, args, line.rstrip(b" ")


def parse_continuation(line: bytes):
    """The tokens of a SASL continuation line, or _BAD."""
    args = continuation_args(line, MAX_ARGS)
    return _BAD if args is None else args


def mask(buf: bytes, continuation: int = 0) -> bytes:
    """A buffer as it may appear in a log: every AUTH argument after the mechanism and
    every SASL continuation line are ``***``.  ``continuation``: how many continuation
    lines the buffer starts with (an exchange is open)."""
    out = []
    secret = continuation
    for line in buf.split(b"\n"):
        if secret:
            secret -= 1
            out.append((b"***\r" if line[-1:] == b"\r" else b"***")
                       if line.rstrip(b"\r") else line)
            continue
        m = _SECRET_LINE.match(line)
        if m:
            rest = line[m.end():].strip(b" \r")
            out.append(m.group() + (b" ***" if rest else b"")
                       + (b"\r" if line[-1:] == b"\r" else b""))
            words = [w for w in line.rstrip(b"\r").split(b" ") if w]
            if words[0].upper() == b"AUTH" and line[:1] != b" " and len(words) > 1:
                # a true AUTH line: its exchange's continuation lines follow
                secret = _FOLLOWING.get((words[1].upper(), len(words) > 2), 0)
            continue
        out.append(line)
    return b"\n".join(out)


def sanitized(buf: bytes, continuation: int = 0) -> str:
    """A buffer for the "client was rejected" lines: secrets masked, CR and LF as _
    (a copy: the buffer itself is untouched, unlike Angie's, smtp.md §17.2)."""
    return mask(buf, continuation).replace(b"\r", b"_").replace(b"\n", b"_").decode(
        "utf-8", "backslashreplace")


def _nolog(level: str, message: str) -> None:
    pass


class SmtpSession(ClientBuffer):
    """One client's dialogue before authentication."""

    __slots__ = ("srv", "replies", "tls", "starttls", "buf", "extra", "pos", "limit",
                 "errors", "commands", "max_errors", "max_commands", "salt", "login",
                 "passwd", "method", "attempt", "log", "sasl", "sasl_error", "reset",
                 "enabled", "none", "helo", "esmtp", "mail_from", "rcpt_to", "host",
                 "client_addr", "client_ipv6")

    def __init__(self, server, tls: bool = False, log=None):
        self.srv = server
        self.replies = replies(server)
        self.tls = tls
        self.starttls = server.starttls
        self.buf = bytearray()          # Angie's buffer: at most ``limit`` bytes
        self.extra = b""                # sent by the client, not yet read into it
        self.pos = 0                    # where the next line starts
        self.limit = server.smtp_client_buffer
        self.errors = 0
        self.commands = 0
        self.max_errors = server.max_errors
        self.max_commands = server.max_commands
        self.salt = b""
        self.login = b""
        self.passwd = b""
        self.method = "plain"
        self.attempt = 0
        self.log = log or _nolog
        self.sasl = sasl.SaslExchange(self.log)
        self.sasl_error = None          # (failure line, Auth-Wait) behind Auth-Error-SASL
        self.reset = False              # close with unread input (a reset, as Angie's)
        self.enabled = server.smtp_auth
        self.none = "none" in server.smtp_auth
        self.helo = b""                 # the last HELO/EHLO argument
        self.esmtp = False              # EHLO was said: never cleared
        self.mail_from = b""            # the stored MAIL line (none flow)
        self.rcpt_to = b""              # the stored RCPT line
        self.host = UNAVAILABLE         # Client-Host (set by the driver, §2)
        self.client_addr = b""          # the client address for XCLIENT ADDR=
        self.client_ipv6 = False

    # --- driver interface -------------------------------------------------------------

    def greeting(self) -> bytes:
        return self.replies.greeting

    def tls_started(self) -> None:
        self.tls = True

    def rejected_before_greeting(self) -> bytes:
        """smtp_greeting_delay: the client talked first (§3).  Logs what one read of
        the buffer's size got and gives the reply (the connection closes after it)."""
        data = (bytes(self.buf) + self.extra)[:self.limit]
        self.log("info", 'client was rejected before greeting: "%s"' % sanitized(data))
        return PIPELINING

    def step(self):
        """Answer the next buffered line: (code, bytes)."""
        buf = self.buf
        lf = buf.find(b"\n", self.pos)
        if lf < 0:
            if len(buf) < self.limit:
                return NEED, b""
            return self._too_long()
        line = bytes(buf[self.pos:lf])
        self.pos = lf + 1
        sx = self.sasl
        if sx.open:
            parsed = parse_continuation(line)
        else:
            parsed = parse_command(line)
        if parsed is _BAD:
            return self._parse_invalid()
        self.commands += 1
        if self.commands > self.max_commands:
            self.log("info", "client sent too many commands")
            return CLOSE, INVALID
        if sx.state == sasl.SASL_ERROR:
            err, wait = self.sasl_error
            ok = sx.error_line(parsed[:1])
            self._auth_over()
            self._compact()
            return (CONT if wait else CLOSE), (err if ok else INVALID)
        if sx.open:
            return self._sasl_result(*sx.line(parsed[0]))
        cmd, args, typed = parsed
        handler = _HANDLERS[cmd]
        return handler(self, args, typed)

    def auth_failed(self, text: bytes, wait: bool, sasl_challenge: bytes | None = None,
                    error_code: bytes | None = None):
        """The auth server refused (after any Auth-Wait delay): ``<code> <text>`` with
        Auth-Error-Code or 535 5.7.0, or first the Auth-Error-SASL challenge (§7)."""
        code = error_code.rstrip(b" ") if error_code else b""
        err = (code or AUTH_FAILED_CODE) + b" " + text + b"\r\n"
        if self.sasl.failed(sasl_challenge):
            self.sasl_error = (err, wait)
            return CONT, b"334 " + sasl_challenge + b"\r\n"
        self._auth_over()
        return (CONT if wait else CLOSE), err

    # --- commands (START) -----------------------------------------------------------------

    def cmd_helo(self, args, typed):
        if len(args) != 1:
            return self._reply(INVALID_ARGUMENT)
        self.helo = args[0]
        self.mail_from = self.rcpt_to = b""
        return self._reply(self.replies.helo)

    def cmd_ehlo(self, args, typed):
        if len(args) != 1:
            return self._reply(INVALID_ARGUMENT)
        self.helo = args[0]
        self.mail_from = self.rcpt_to = b""
        self.esmtp = True
        r = self.replies
        if self.tls or self.starttls == "off":
            return self._reply(r.ehlo)
        return self._reply(r.ehlo_starttls if self.starttls == "on" else r.ehlo_only)

    def cmd_mail(self, args, typed):
        if not self.none:
            self.log("info", 'client was rejected: "%s"' % sanitized(bytes(self.buf)))
            return self._reply(AUTH_REQUIRED)
        if self.mail_from:
            return self._reply(BAD_SEQUENCE)
        if not args:
            return self._reply(INVALID_ARGUMENT)
        self.mail_from = typed
        self.login = self.passwd = b""          # A!: no credentials of an earlier AUTH
        return self._reply(OK)

    def cmd_rcpt(self, args, typed):
        if not self.mail_from:
            return self._reply(BAD_SEQUENCE)
        if not args:
            return self._reply(INVALID_ARGUMENT)
        self.rcpt_to = typed
        # a new attempt starts with empty credentials (smtp.md §17.4, decided)
        self.login = self.passwd = b""
        self.sasl.login = b""
        if self.pos == len(self.buf) and not self.extra:
            self.buf = bytearray()          # nothing follows the RCPT line: emptied
            self.pos = 0
        return self._authenticate("none")

    def cmd_rset(self, args, typed):
        self.mail_from = self.rcpt_to = b""
        return self._reply(OK)

    def cmd_noop(self, args, typed):
        return self._reply(OK)

    def cmd_quit(self, args, typed):
        self._compact()
        return CLOSE, BYE

    def cmd_starttls(self, args, typed):
        if self.tls or self.starttls == "off":
            return self._reply(INVALID)
        # bytes after STARTTLS are dropped (§6); helo and the stored lines are cleared
        self._drop_input()
        self.helo = self.mail_from = self.rcpt_to = b""
        return STARTTLS, START_TLS

    def cmd_invalid(self, args, typed):
        """VRFY, EXPN, HELP: handler level, not counted in max_errors."""
        return self._reply(INVALID)

    def cmd_auth(self, args, typed):
        if self.srv.smtp_refuse_auth:
            # an MX (angie-mail): no password is checked here, the auth server is not
            # asked; a client insisting is closed after max_errors
            self.errors += 1
            if self.errors >= self.max_errors:
                self.log("info", "client sent too many invalid commands")
                return CLOSE, AUTH_REFUSED
            return self._reply(AUTH_REFUSED)
        if self.starttls == "only" and not self.tls:
            return self._reply(INVALID)
        if not args:
            return self._reply(INVALID_ARGUMENT)
        return self._sasl_result(*self.sasl.start(args, self.enabled, self._salt))

    # --- SASL -----------------------------------------------------------------------------

    def _salt(self) -> bytes:
        if not self.salt:
            self.salt = sasl.make_salt(self.srv.server_name)
        return self.salt

    def _sasl_result(self, rc, payload):
        sx = self.sasl
        if rc == sasl.PROMPT:
            if sx.state == sasl.LOGIN_PASSWORD:
                self.login = sx.login               # known from here on (log context)
            return self._reply(b"334 " + payload + b"\r\n")
        if rc == sasl.INVALID:
            return self._reply(INVALID)
        self.login, self.passwd = sx.login, sx.passwd
        return self._authenticate(sx.method)

    # --- helpers ------------------------------------------------------------------------------

    def _reply(self, out: bytes):
        self._compact()
        return CONT, out

    def _authenticate(self, method: str):
        self.method = method
        self.attempt += 1
        return AUTH, b""

    def _auth_over(self) -> None:
        """An attempt ended: the method and password are forgotten (the login stays
        known for the log); the stored MAIL/RCPT lines are kept (§11)."""
        self.sasl.reset()
        self.sasl_error = None
        self.passwd = b""
        self.method = "plain"

    def _parse_invalid(self):
        """A parse-level invalid line: counted in max_errors."""
        self.errors += 1
        close = False
        if self.sasl.state == sasl.SASL_ERROR:
            close = not self.sasl_error[1]       # the attempt ends, without Auth-Wait the connection
            self._auth_over()
        elif self.sasl.open:
            self.sasl.reset()
        self._compact()
        if self.errors >= self.max_errors:
            self.log("info", "client sent too many invalid commands")
            return CLOSE, INVALID
        return (CLOSE if close else CONT), INVALID

    def _too_long(self):
        state = self.sasl.state
        following = 0 if state == sasl.IDLE else 2 if state == sasl.LOGIN_USERNAME else 1
        self.log("info", 'client sent too long command "%s"' % mask(
            bytes(self.buf), following).decode("utf-8", "backslashreplace"))
        self.reset = bool(self.extra)
        self._drop_input()
        return CLOSE, INVALID


_HANDLERS = {
    b"HELO": SmtpSession.cmd_helo,
    b"EHLO": SmtpSession.cmd_ehlo,
    b"MAIL": SmtpSession.cmd_mail,
    b"RCPT": SmtpSession.cmd_rcpt,
    b"RSET": SmtpSession.cmd_rset,
    b"NOOP": SmtpSession.cmd_noop,
    b"QUIT": SmtpSession.cmd_quit,
    b"STARTTLS": SmtpSession.cmd_starttls,
    b"VRFY": SmtpSession.cmd_invalid,
    b"EXPN": SmtpSession.cmd_invalid,
    b"HELP": SmtpSession.cmd_invalid,
    b"AUTH": SmtpSession.cmd_auth,
}
