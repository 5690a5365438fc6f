"""The POP3 pre-authentication state machine, sans I/O (pop3.md §3–§10).

The driver feeds the bytes the client sent and asks for the next step; a step is one
command line answered.  Nothing here touches a socket or a clock: the driver writes the
replies, runs auth_http when asked, and reports the outcome back.

    s = Pop3Session(server, tls=False)
    send(s.greeting())
    s.feed(data)
    while True:
        code, out = s.step()
        ...               # CONT: write out, step again; NEED: read more; CLOSE: write
                          # out then close; STLS: write out, start TLS; AUTH: write out
                          # (b"" or a SASL challenge), authenticate s.login/s.passwd

Commands are dispatched by name (``cmd_user``, ``cmd_pass``...) per state; SASL
mechanisms live in ``auth_*`` methods.
"""

from __future__ import annotations

import re

from ..mail import sasl
from ..mail.buffer import CR, continuation_args, secret_command
from ..mail.sasl import make_salt

# step() results
NEED, CONT, CLOSE, STLS, AUTH = range(5)

# states: a command, after USER, or a SASL exchange's continuation line (mail.sasl)
START, USER, SASL = range(3)

OK = b"+OK\r\n"
INVALID = b"-ERR invalid command\r\n"
INTERNAL_ERROR = b"-ERR internal server error\r\n"
CERT_ERROR = b"-ERR SSL certificate error\r\n"
NO_CERT = b"-ERR No required SSL certificate\r\n"
GREETING = b"+OK POP3 ready"

COMMANDS = frozenset((b"USER", b"PASS", b"APOP", b"QUIT", b"CAPA", b"AUTH", b"NOOP",
                      b"STLS"))
# a line whose command carries a secret (from PASSsecret on, as Angie's parser reads it)
_SECRET_LINE = secret_command((b"PASS", b"APOP", b"AUTH"), bounded=False)
_BAD = object()          # a parse-level invalid line
_LINE_BREAK = re.compile(rb"[\r\n]")


def parse_command(line: bytes):
    """(COMMAND, [args]) for a line without its LF, or _BAD (pop3.md §3)."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if CR in line:
        return _BAD
    sp = line.find(b" ")
    word = line if sp < 0 else line[:sp]
    if len(word) != 4 or not word.isalpha():
        return _BAD
    cmd = word.upper()
    if cmd not in COMMANDS:
        return _BAD
    if sp < 0:
        return cmd, []
    rest = line[sp + 1:]
    if cmd == b"USER" or cmd == b"PASS":
        arg = rest.lstrip(b" ")
        return cmd, ([arg] if arg else [])
    args = [a for a in rest.split(b" ") if a]
    if len(args) > 3:
        return _BAD
    return cmd, args


def parse_continuation(line: bytes):
    """Arguments of a SASL continuation line (not a command), or _BAD."""
    args = continuation_args(line, 3)
    return _BAD if args is None else args


def _mask(line: bytes, continuation: bool) -> bytes:
    """A line as it may appear in a log: secrets replaced by ***."""
    if continuation:
        return b"***"
    m = _SECRET_LINE.match(line)
    if m and len(line) > m.end():
        return line[m.end() - 4:m.end()] + b" ***"
    return line


def _nolog(level: str, message: str) -> None:
    pass


class Pop3Session:
    """One client's pre-authentication dialogue."""

    __slots__ = ("srv", "replies", "tls", "buf", "limit", "mode", "errors", "commands",
                 "salt", "login", "passwd", "method", "attempt", "log", "sasl",
                 "sasl_error", "max_errors", "max_commands", "starttls", "reset")

    def __init__(self, server, tls: bool = False, salt: bytes | None = None, log=None):
        self.srv = server
        self.replies = server.pop3
        self.tls = tls
        self.starttls = server.starttls
        self.buf = b""
        self.limit = server.pop3_client_buffer
        self.max_errors = server.max_errors
        self.max_commands = server.max_commands
        self.mode = START
        self.errors = 0
        self.commands = 0
        self.salt = salt if salt is not None else (
            make_salt(server.server_name) if self.replies.salt else b"")
        self.login = b""
        self.passwd = b""
        self.method = "plain"
        self.attempt = 0
        self.log = log or _nolog
        self.sasl = sasl.SaslExchange(self.log)
        self.sasl_error = None         # (-ERR line, Auth-Wait) behind an Auth-Error-SASL
        self.reset = False          # close with unread input (Angie leaves it unread: RST)

    @property
    def state(self) -> int:
        """The state in one number: START, USER, then the SASL exchange's states
        (2: LOGIN username ... 9: the line after an Auth-Error-SASL challenge)."""
        return self.mode if self.mode != SASL else 1 + self.sasl.state

    # --- driver interface -----------------------------------------------------------

    def greeting(self) -> bytes:
        if self.salt:
            return GREETING + b" " + self.salt + b"\r\n"
        return GREETING + b"\r\n"

    def feed(self, data: bytes) -> None:
        self.buf += data

    def pending(self) -> int:
        """Client bytes buffered and not yet answered."""
        return len(self.buf)

    def leftover(self) -> bytes:
        """Client bytes buffered after the authenticating command (sent to the backend
        right after login)."""
        out, self.buf = self.buf, b""
        return out

    def tls_started(self) -> None:
        """The STLS handshake completed: back to START, no new greeting."""
        self.tls = True
        self.mode = START

    def step(self):
        """Answer the next buffered line: (code, bytes to send)."""
        buf = self.buf
        lf = buf.find(b"\n", 0, self.limit)
        if lf < 0:
            if len(buf) < self.limit:
                return NEED, b""
            self.log("info", 'client sent too long command "%s"' % _mask(
                buf[:self.limit], self.mode != START and self.mode != USER
            ).decode("utf-8", "backslashreplace"))
            # Angie read only its buffer's worth: what follows is still unread when it
            # closes, and the kernel answers that with a reset
            self.reset = len(buf) > self.limit
            self.buf = b""
            return CLOSE, INVALID
        line = buf[:lf]
        self.buf = buf[lf + 1:]
        state = self.mode
        if state == START or state == USER:
            parsed = parse_command(line)
        else:
            parsed = parse_continuation(line)
        if parsed is _BAD:
            self.errors += 1
            self.mode = START
            if self.errors >= self.max_errors:
                self.log("info", "client sent too many invalid commands")
                self._end_exchange()
                return CLOSE, INVALID
            if self.sasl.state == sasl.SASL_ERROR and not self.sasl_error[1]:
                # the line after an Auth-Error-SASL challenge ends the attempt (§6.7)
                self._end_exchange()
                return CLOSE, INVALID
            self._end_exchange()
            return CONT, INVALID
        self.commands += 1
        if self.commands > self.max_commands:
            self.log("info", "client sent too many commands")
            self.mode = START
            return CLOSE, INVALID
        if state == START or state == USER:
            cmd, args = parsed
            handler = (_START if state == START else _USER).get(cmd)
            if handler is None:
                self.mode = START
                return CONT, INVALID
            return handler(self, args)
        if self.sasl.state == sasl.SASL_ERROR:
            return self.auth_sasl_error(parsed)
        return self._sasl(self.sasl.line(parsed[0]))

    # --- outcomes of authentication (driver -> machine) ------------------------------

    def auth_failed(self, text: bytes, wait: bool, sasl_challenge: bytes | None = None,
                    error_code: bytes | None = None):
        """The auth server refused (after any Auth-Wait delay): what to send.

        Without Auth-Wait the connection closes after the reply.  With an
        ``Auth-Error-SASL`` challenge (XOAUTH2/OAUTHBEARER), the challenge is sent and
        the error waits for the client's next line (pop3.md §6.7)."""
        err = b"-ERR " + text + b"\r\n"
        if self.sasl.failed(sasl_challenge):
            self.sasl_error = (err, wait)
            self.mode = SASL
            return CONT, b"+ " + sasl_challenge + b"\r\n"
        self.mode = START
        self.login_reset()
        if wait:
            return CONT, err
        return CLOSE, err

    def login_reset(self) -> None:
        """After a failed attempt the client must start again (the login stays known
        for logging only)."""
        self.passwd = b""
        self.method = "plain"
        self.sasl.reset()

    def _end_exchange(self) -> None:
        """A parse-level invalid line ends any open exchange."""
        if self.sasl.open:
            self.sasl.reset()
            self.sasl_error = None

    # --- START state commands -------------------------------------------------------

    def _starttls_only(self) -> bool:
        return self.starttls == "only" and not self.tls

    def cmd_user(self, args):
        if self._starttls_only() or len(args) != 1:
            return self._invalid()
        self.login = args[0]
        self.mode = USER
        return CONT, OK

    def cmd_pass_in_start(self, args):
        return self._invalid()

    def cmd_apop(self, args):
        if self._starttls_only() or len(args) != 2 or "apop" not in self.srv.pop3_auth:
            return self._invalid()
        self.login, self.passwd = args
        return self._authenticate("apop")

    def cmd_capa(self, args):
        r = self.replies
        if not self.tls:
            if self.starttls == "on":
                return CONT, r.capa_starttls
            if self.starttls == "only":
                return CONT, r.capa_only
        return CONT, r.capa

    def cmd_noop(self, args):
        return CONT, OK

    def cmd_quit(self, args):
        return CLOSE, OK

    def cmd_stls(self, args):
        if self.tls or self.starttls == "off":
            return self._invalid()
        self.buf = b""          # pipelined plaintext after STLS is dropped (pop3.md §8)
        return STLS, OK

    def cmd_auth(self, args):
        if self._starttls_only():
            return self._invalid()
        if not args:
            return CONT, self.replies.auth_list
        return self._sasl(self.sasl.start(args, self.srv.pop3_auth, self._salt))

    def _salt(self) -> bytes:
        return self.salt

    # --- USER state -------------------------------------------------------------------

    def cmd_pass(self, args):
        if len(args) != 1:
            return self._invalid()
        self.passwd = args[0]
        return self._authenticate("plain")

    def cmd_capa_in_user(self, args):
        return CONT, self.replies.capa           # never STLS here (pop3.md §15.2)

    # --- SASL exchanges (angie_mail.mail.sasl) -----------------------------------------

    def _sasl(self, result):
        rc, payload = result
        if rc == sasl.PROMPT:
            self.mode = SASL
            if self.sasl.state == sasl.LOGIN_PASSWORD:
                self.login = self.sasl.login        # known from here on (log context)
            return CONT, b"+ " + payload + b"\r\n"
        if rc == sasl.INVALID:
            return self._invalid()
        sx = self.sasl
        if _LINE_BREAK.search(sx.login) or _LINE_BREAK.search(sx.passwd):
            # they would go to the backend in USER/PASS lines: a CR or LF there would
            # start a command of the client's choosing (beyond Angie, which sends them)
            self.log("info", "client sent a line break in the login or password")
            sx.reset()
            return self._invalid()
        self.login, self.passwd = sx.login, sx.passwd
        return self._authenticate(sx.method)

    def auth_sasl_error(self, args):
        """The line after an Auth-Error-SASL challenge (pop3.md §6.7): its first token
        decides."""
        err, wait = self.sasl_error
        ok = self.sasl.error_line(args[:1])
        self.sasl_error = None
        self.mode = START
        self.login_reset()
        return (CONT if wait else CLOSE), (err if ok else INVALID)

    # --- helpers ------------------------------------------------------------------------

    def _invalid(self):
        """A handler-level invalid command: not counted in max_errors."""
        self.mode = START
        return CONT, INVALID

    def _authenticate(self, method: str):
        self.method = method
        self.mode = START
        self.attempt += 1
        return AUTH, b""


_START = {
    b"USER": Pop3Session.cmd_user,
    b"PASS": Pop3Session.cmd_pass_in_start,
    b"APOP": Pop3Session.cmd_apop,
    b"CAPA": Pop3Session.cmd_capa,
    b"AUTH": Pop3Session.cmd_auth,
    b"NOOP": Pop3Session.cmd_noop,
    b"QUIT": Pop3Session.cmd_quit,
    b"STLS": Pop3Session.cmd_stls,
}
_USER = {
    b"PASS": Pop3Session.cmd_pass,
    b"CAPA": Pop3Session.cmd_capa_in_user,
    b"NOOP": Pop3Session.cmd_noop,
    b"QUIT": Pop3Session.cmd_quit,
}
