"""The IMAP pre-authentication machine, sans I/O (imap.md §2–§11).

It follows Angie's ngx_mail_imap_parse_command byte by byte, with its state kept
between reads, and Angie's buffer: one buffer of ``imap_client_buffer`` bytes that
holds the command being parsed (literal data included); it is compacted when a
command is done and no AUTHENTICATE exchange is open, so an AUTHENTICATE line and its
continuation lines must fit in it together.  Bytes the client sent beyond the buffer
wait (as they would in the socket) until there is room.

The driver interface is angie_mail.mail.protocol's Session.
"""

from __future__ import annotations

from ..mail import sasl
from ..mail.buffer import ClientBuffer, secret_command
from ..mail.protocol import AUTH, CLOSE, CONT, NEED, STARTTLS

GREETING = b"* OK IMAP4 ready\r\n"
INTERNAL_ERROR = b"* BAD internal server error\r\n"
CERT_ERROR = b"* BYE SSL certificate error\r\n"
NO_CERT = b"* BYE No required SSL certificate\r\n"
OK = b"OK completed\r\n"
BAD = b"BAD invalid command\r\n"
LITERAL_NEXT = b"+ OK\r\n"
BYE = b"* BYE\r\n"

# parser states (ngx_mail_imap_parse_command)
(S_START, S_TAG, S_INVALID, S_SPACES_BEFORE_COMMAND, S_COMMAND, S_SPACES_BEFORE_ARGUMENT,
 S_ARGUMENT, S_BACKSLASH, S_LITERAL, S_NO_SYNC_LITERAL, S_START_LITERAL, S_LITERAL_ARGUMENT,
 S_END_LITERAL, S_ALMOST_DONE) = range(14)

# parse results
P_AGAIN, P_NEXT, P_OK, P_INVALID = range(4)

COMMANDS = {b"NOOP", b"LOGIN", b"LOGOUT", b"STARTTLS", b"CAPABILITY", b"AUTHENTICATE"}
LITERAL_MAX = 1844674407370955161          # SIZE_MAX / 10: a longer length is invalid
_TAG_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       b"0123456789-._")
_LETTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SECRET_LINE = secret_command((b"LOGIN", b"AUTHENTICATE"), tagged=True,
                              mechanism=(b"AUTHENTICATE",))


def _nolog(level: str, message: str) -> None:
    pass


def mask(buf: bytes) -> bytes:
    """The buffer as it may appear in a log: every argument of LOGIN and AUTHENTICATE
    after the mechanism name, literal data and SASL continuation lines are ``***``."""
    out = []
    secret = False                       # the lines that follow belong to a secret command
    for line in buf.split(b"\n"):
        if secret:
            if line.rstrip(b"\r"):
                out.append(b"***")
            else:
                out.append(line)
            continue
        m = _SECRET_LINE.match(line)
        if m:
            rest = line[m.end():].strip(b" \r")
            out.append(m.group().rstrip(b"\r") + (b" ***" if rest else b""))
            secret = True                # literal data or continuation lines follow
            continue
        out.append(line)
    return b"\n".join(out)


class ImapSession(ClientBuffer):
    """One client's dialogue before authentication."""

    __slots__ = ("srv", "replies", "tls", "starttls", "buf", "extra", "pos", "limit",
                 "state", "quoted", "backslash", "literal_len", "no_sync", "tag_start",
                 "tag", "cmd", "args", "arg_start", "errors", "commands", "max_errors",
                 "max_commands", "salt", "login", "passwd", "method", "attempt", "log",
                 "sasl", "auth_tag", "quit", "reset", "enabled", "sasl_error")

    def __init__(self, server, tls: bool = False, log=None):
        self.srv = server
        self.replies = server.imap
        self.tls = tls
        self.starttls = server.starttls
        self.buf = bytearray()          # Angie's buffer: at most ``limit`` bytes
        self.extra = b""                # sent by the client, not yet read into it
        self.pos = 0                    # where parsing goes on
        self.limit = server.imap_client_buffer
        self.state = S_START
        self.quoted = False
        self.backslash = False
        self.literal_len = 0
        self.no_sync = False
        self.tag_start = 0
        self.tag = b""                  # the tag with its space, once a space was seen
        self.cmd = b""
        self.args: list = []
        self.arg_start = 0
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
        self.auth_tag = b""             # the AUTHENTICATE line's tag, during the exchange
        self.quit = False
        self.reset = False              # close with unread input (a reset, as Angie's)
        self.enabled = server.imap_auth
        self.sasl_error = None          # (NO line, Auth-Wait) behind an Auth-Error-SASL

    # --- driver interface -------------------------------------------------------------

    def greeting(self) -> bytes:
        return GREETING

    def tls_started(self) -> None:
        self.tls = True

    def step(self):
        """Answer the next buffered command: (code, bytes)."""
        while True:
            if self.quit:
                return CLOSE, b""
            rc = self._parse()
            if rc == P_AGAIN:
                if len(self.buf) < self.limit:
                    return NEED, b""
                return self._too_long()
            if rc == P_NEXT:
                return CONT, LITERAL_NEXT
            if rc == P_INVALID:
                return self._parse_invalid()
            out = self._command()
            if out is not None:
                return out

    def auth_failed(self, text: bytes, wait: bool, sasl_challenge: bytes | None = None,
                    error_code: bytes | None = None):
        """The auth server refused (after any Auth-Wait delay): ``<tag>NO <text>``,
        or first the Auth-Error-SASL challenge for XOAUTH2/OAUTHBEARER (§7.3)."""
        err = self.auth_tag + b"NO " + text + b"\r\n"
        if self.sasl.failed(sasl_challenge):
            self.sasl_error = (err, wait)
            self.state = S_ARGUMENT             # the next line is a continuation line
            self.arg_start = self.pos
            return CONT, b"+ " + sasl_challenge + b"\r\n"
        self._auth_over()
        return (CONT if wait else CLOSE), err

    # --- parsing (ngx_mail_imap_parse_command) -----------------------------------------

    def _parse(self) -> int:
        buf = self.buf
        end = len(buf)
        p = self.pos
        state = self.state
        while p < end:
            ch = buf[p]
            if state == S_START:
                self.tag_start = p
                state = S_TAG
            if state == S_TAG:
                if ch == 0x20:
                    self.tag = bytes(buf[self.tag_start:p + 1])
                    state = S_SPACES_BEFORE_COMMAND
                elif ch not in _TAG_BYTES or p - self.tag_start > 31:
                    return self._invalid(p)
            elif state == S_SPACES_BEFORE_COMMAND:
                if ch == 0x0D or ch == 0x0A:
                    return self._invalid(p)
                if ch != 0x20:
                    self.arg_start = p           # the command word starts
                    state = S_COMMAND
            elif state == S_COMMAND:
                if ch == 0x20 or ch == 0x0D or ch == 0x0A:
                    word = bytes(buf[self.arg_start:p]).upper()
                    if word not in COMMANDS:
                        return self._invalid(p)
                    self.cmd = word
                    if ch == 0x20:
                        state = S_SPACES_BEFORE_ARGUMENT
                    elif ch == 0x0D:
                        state = S_ALMOST_DONE
                    else:
                        return self._done(p)
                elif ch not in _LETTERS:
                    return self._invalid(p)
            elif state == S_SPACES_BEFORE_ARGUMENT:
                if ch == 0x20:
                    pass
                elif ch == 0x0D:
                    state = S_ALMOST_DONE
                elif ch == 0x0A:
                    return self._done(p)
                elif len(self.args) > 2:
                    return self._invalid(p)
                elif ch == 0x22:                  # "
                    self.quoted = True
                    self.arg_start = p + 1
                    state = S_ARGUMENT
                elif ch == 0x7B:                  # {
                    state = S_LITERAL
                else:
                    self.arg_start = p
                    state = S_ARGUMENT
            elif state == S_ARGUMENT:
                if ch == 0x20 and self.quoted:
                    pass
                elif (ch == 0x22 and self.quoted) or ch == 0x20 or ch == 0x0D or ch == 0x0A:
                    if ch == 0x22:
                        self.quoted = False
                    arg = bytes(buf[self.arg_start:p])
                    if self.backslash:
                        arg = _unescape(arg)
                        self.backslash = False
                    self.args.append(arg)
                    if ch == 0x22 or ch == 0x20:
                        state = S_SPACES_BEFORE_ARGUMENT
                    elif ch == 0x0D:
                        state = S_ALMOST_DONE
                    else:
                        return self._done(p)
                elif ch == 0x5C and self.quoted:   # backslash
                    self.backslash = True
                    state = S_BACKSLASH
            elif state == S_BACKSLASH:
                if ch == 0x0D or ch == 0x0A:
                    return self._invalid(p)
                state = S_ARGUMENT
            elif state == S_LITERAL:
                if 0x30 <= ch <= 0x39:
                    n = self.literal_len
                    if n > LITERAL_MAX:
                        return self._invalid(p)
                    self.literal_len = n * 10 + (ch - 0x30)
                elif ch == 0x7D:                  # }
                    state = S_START_LITERAL
                elif ch == 0x2B:                  # +
                    state = S_NO_SYNC_LITERAL
                else:
                    return self._invalid(p)
            elif state == S_NO_SYNC_LITERAL:
                if ch != 0x7D:
                    return self._invalid(p)
                self.no_sync = True
                state = S_START_LITERAL
            elif state == S_START_LITERAL:
                if ch == 0x0A:
                    if self.literal_len > LITERAL_MAX:
                        return self._invalid(p)
                    self.arg_start = p + 1
                    if not self.no_sync:
                        self.pos = p + 1
                        self.state = S_LITERAL_ARGUMENT
                        return P_NEXT
                    self.no_sync = False
                    state = S_LITERAL_ARGUMENT
                elif ch != 0x0D:
                    return self._invalid(p)
            elif state == S_LITERAL_ARGUMENT:
                n = self.literal_len
                if n:
                    n -= 1
                    self.literal_len = n
                    if n:
                        # the rest of the literal, at once
                        take = min(n, end - p - 1)
                        p += take
                        self.literal_len = n - take
                        if self.literal_len:
                            p += 1
                            continue
                self.args.append(bytes(buf[self.arg_start:p + 1]))
                state = S_END_LITERAL
            elif state == S_END_LITERAL:
                # Angie: only a space or the line end may follow the data
                if ch == 0x20:
                    state = S_SPACES_BEFORE_ARGUMENT
                elif ch == 0x0D:
                    state = S_ALMOST_DONE
                elif ch == 0x0A:
                    return self._done(p)
                else:
                    return self._invalid(p)
            elif state == S_ALMOST_DONE:
                if ch != 0x0A:
                    return self._invalid(p)
                return self._done(p)
            elif state == S_INVALID:
                return self._invalid(p)
            p += 1
        self.pos = p
        self.state = state
        return P_AGAIN

    def _done(self, p: int) -> int:
        self.pos = p + 1
        self.state = S_START
        return P_OK

    def _invalid(self, p: int) -> int:
        """Skip to the LF; (P_INVALID) with the +} guard, or P_AGAIN without a LF."""
        self.state = S_INVALID
        self.quoted = False
        self.backslash = False
        self.no_sync = False
        self.literal_len = 0
        buf = self.buf
        lf = buf.find(b"\n", p)
        if lf < 0:
            self.pos = len(buf)
            return P_AGAIN
        self.state = S_START
        self.pos = lf + 1
        if lf > 4:                             # (p - buffer->start) > sizeof("{1+}") - 1
            q = lf - 1
            if buf[q] == 0x0D:
                q -= 1
            if buf[q] == 0x7D and buf[q - 1] == 0x2B:
                self.quit = True
        return P_INVALID

    # --- replies ---------------------------------------------------------------------------

    def _parse_invalid(self):
        """A parse-level invalid line: counted in max_errors."""
        tag = self.auth_tag if self.sasl.open else (self.tag or b"* ")
        self.errors += 1
        out = tag + BAD
        quit_ = self.quit
        if self.sasl.state == sasl.SASL_ERROR:
            # the line answering the challenge was not even a line: the attempt ends
            # (and, without Auth-Wait, the connection)
            quit_ = quit_ or not self.sasl_error[1]
            self._auth_over()
        elif self.sasl.open:
            self.sasl.reset()
        self._command_done()
        if self.errors >= self.max_errors:
            self.log("info", "client sent too many invalid commands")
            return CLOSE, out
        if quit_:
            self.quit = False
            return CLOSE, out
        return CONT, out

    def _too_long(self):
        self.log("info", 'client sent too long command "%s"' % mask(bytes(self.buf)).decode(
            "utf-8", "backslashreplace"))
        tag = self.auth_tag if self.sasl.open else self.tag
        self.reset = bool(self.extra)
        self._drop_input()
        return CLOSE, (tag or b"* ") + BAD

    def _command_done(self) -> None:
        """After a command: forget its tag and arguments; move what follows to the
        buffer's start unless an exchange is open (Angie's per-command compaction)."""
        self.args = []
        if self.sasl.open:
            self.state = S_ARGUMENT
            self.arg_start = self.pos
            return
        self.tag = b""
        self.auth_tag = b""
        self._compact()

    def _command(self):
        """Execute a parsed line: (code, bytes), or None to go on parsing."""
        self.commands += 1
        sx = self.sasl
        if self.commands > self.max_commands:
            self.log("info", "client sent too many commands")
            tag = self.auth_tag if sx.open else (self.tag or b"* ")
            return CLOSE, tag + BAD
        if sx.state == sasl.SASL_ERROR:
            err, wait = self.sasl_error
            ok = sx.error_line(self.args)
            out = err if ok else self.auth_tag + BAD
            self._auth_over()
            self._command_done()
            return (CONT if wait else CLOSE), out
        if sx.open:
            rc, payload = sx.line(self.args[0] if self.args else b"")
            return self._sasl_result(rc, payload, True)
        cmd = self.cmd
        tag = self.tag or b"* "
        args = self.args
        only = self.starttls == "only" and not self.tls
        if cmd == b"NOOP":
            return self._reply(tag + OK)
        if cmd == b"CAPABILITY":
            r = self.replies
            if not self.tls and self.starttls == "on":
                line = r.capability_starttls
            elif only:
                line = r.capability_only
            else:
                line = r.capability
            return self._reply(line + tag + OK)
        if cmd == b"LOGOUT":
            self._command_done()
            return CLOSE, BYE + tag + OK
        if cmd == b"STARTTLS":
            if self.tls or self.starttls == "off":
                return self._reply(tag + BAD)
            # what the client sent after STARTTLS is dropped (imap.md §9)
            self._drop_input()
            self._command_done()
            return STARTTLS, tag + OK
        if cmd == b"LOGIN":
            if only or len(args) != 2 or not args[0]:
                return self._reply(tag + BAD)
            self.login, self.passwd = args
            self.sasl.login = args[0]
            return self._authenticate("plain", tag)
        # AUTHENTICATE
        if only or not args:
            return self._reply(tag + BAD)
        self.auth_tag = tag
        rc, payload = sx.start(args, self.enabled, self._salt)
        return self._sasl_result(rc, payload, False)

    def _reply(self, out: bytes):
        self._command_done()
        return CONT, out

    def _salt(self) -> bytes:
        if not self.salt:
            self.salt = sasl.make_salt(self.srv.server_name)
        return self.salt

    def _sasl_result(self, rc, payload, continuation: bool):
        sx = self.sasl
        if rc == sasl.PROMPT:
            if sx.state == sasl.LOGIN_PASSWORD:
                self.login = sx.login               # known from here on (log context)
            self._command_done()                # keeps the buffer: the exchange is open
            return CONT, b"+ " + payload + b"\r\n"
        if rc == sasl.INVALID:
            # the quirk of §4: a bad base64 username *line* of AUTHENTICATE LOGIN is
            # answered with neither tag nor "*"
            out = BAD if continuation and sx.username_failed else self.auth_tag + BAD
            self._command_done()
            return CONT, out
        self.login, self.passwd, self.method = sx.login, sx.passwd, sx.method
        return self._authenticate(sx.method, self.auth_tag)

    def _authenticate(self, method: str, tag: bytes):
        self.method = method
        self.auth_tag = tag
        self.attempt += 1
        self.args = []
        self.state = S_START
        if self.cmd == b"LOGIN" and self.pos == len(self.buf) and not self.extra and \
                not self.sasl.open:
            # a LOGIN with nothing behind it: the buffer is emptied
            self.buf = bytearray()
            self.pos = 0
        return AUTH, b""

    def _auth_over(self) -> None:
        """An attempt ended: forget its tag, parser state and method (A!); the login
        stays known for the log.  The authenticating lines stay in the buffer until
        the next command completes (imap.md §9)."""
        self.sasl.reset()
        self.sasl_error = None
        self.passwd = b""
        self.method = "plain"
        self.tag = b""
        self.auth_tag = b""
        self.args = []
        self.state = S_START
        self.quoted = False
        self.backslash = False
        self.no_sync = False
        self.literal_len = 0


def _unescape(arg: bytes) -> bytes:
    """A quoted string's backslashes: each escapes the byte that follows."""
    out = bytearray()
    i = 0
    n = len(arg)
    while i < n:
        c = arg[i]
        if c == 0x5C and i + 1 < n:
            i += 1
            c = arg[i]
        out.append(c)
        i += 1
    return bytes(out)
