"""The SASL dialogue shared by the mail protocols, sans I/O (pop3.md §6, imap.md §7,
smtp.md §7): which mechanisms an ``AUTH``/``AUTHENTICATE`` line may start, the
prompts, the continuation lines and the ``Auth-Error-SASL`` follow-up line.

It knows no protocol's framing: a prompt is returned as its payload (the protocol
prefixes ``+ `` or ``334 ``), a failure as INVALID (the protocol answers with its own
error line).  Payloads are decoded by angie_mail.sasl, whose errors carry Angie's log
texts.
"""

from __future__ import annotations

import random
import time

from .. import sasl as decode

# results of start() / line()
PROMPT, DONE, INVALID = range(3)

USERNAME = b"VXNlcm5hbWU6"              # base64 "Username:"
PASSWORD = b"UGFzc3dvcmQ6"              # base64 "Password:"

# exchange states
IDLE, LOGIN_USERNAME, LOGIN_PASSWORD, PLAIN, CRAM_MD5, EXTERNAL, XOAUTH2, OAUTHBEARER, \
    SASL_ERROR = range(9)

_SIMPLE = {PLAIN: (decode.plain, "plain"),
           CRAM_MD5: (decode.cram_md5, "cram-md5"),
           XOAUTH2: (decode.xoauth2, "xoauth2"),
           OAUTHBEARER: (decode.oauthbearer, "oauthbearer")}


def make_salt(server_name: str) -> bytes:
    """``<R.T@server_name>``: random() and the time, as Angie's ngx_mail_salt (POP3 at
    the greeting, IMAP and SMTP at the first CRAM-MD5)."""
    return b"<%d.%d@%s>" % (random.getrandbits(31), int(time.time()),
                            server_name.encode("utf-8", "surrogateescape"))


class SaslExchange:
    """One connection's SASL state.  After DONE, ``login``/``passwd``/``method`` hold
    the credentials for the auth request."""

    __slots__ = ("state", "login", "passwd", "method", "log", "username_failed", "named")

    def __init__(self, log):
        # a login named by a payload then refused (CRAM-MD5), until the log takes it:
        # nginx's s->login is set before the digest is checked
        self.named = None
        self.state = IDLE
        self.login = b""
        self.passwd = b""
        self.method = "plain"
        self.log = log                   # log(level, message)
        self.username_failed = False     # the last INVALID was a bad LOGIN username line

    @property
    def open(self) -> bool:
        return self.state != IDLE

    def start(self, args, enabled, salt) -> tuple:
        """``AUTH MECH [initial-response]``: (PROMPT, payload) | (DONE, b"") |
        (INVALID, b"").  ``enabled`` is the set of the protocol's *_auth words;
        ``salt()`` gives the CRAM-MD5 challenge's salt."""
        self.username_failed = False
        self.passwd = b""               # nothing of an earlier attempt is reused
        mech = args[0].upper()
        n = len(args)
        if mech == b"LOGIN":
            if n == 1:
                self.state = LOGIN_USERNAME
                return PROMPT, USERNAME
            if n == 2:
                return self._username(args[1])
            return self._invalid()
        if mech == b"PLAIN":
            if n == 1:
                self.state = PLAIN
                return PROMPT, b""
            if n == 2:
                return self._finish(decode.plain, args[1], "plain")
            return self._invalid()
        if mech == b"CRAM-MD5":
            if n != 1 or "cram-md5" not in enabled:
                return self._invalid()
            self.state = CRAM_MD5
            return PROMPT, decode.b64encode(salt())
        if mech == b"EXTERNAL":
            if n > 2 or "external" not in enabled:
                return self._invalid()
            if n == 2:
                return self._finish(_external, args[1], "external")
            self.state = EXTERNAL
            return PROMPT, USERNAME
        if mech == b"XOAUTH2" or mech == b"OAUTHBEARER":
            word = "xoauth2" if mech == b"XOAUTH2" else "oauthbearer"
            if n > 2 or word not in enabled:
                return self._invalid()
            if n == 2:
                return self._finish(decode.xoauth2 if word == "xoauth2"
                                    else decode.oauthbearer, args[1], word)
            self.state = XOAUTH2 if word == "xoauth2" else OAUTHBEARER
            return PROMPT, b""
        return self._invalid()

    def line(self, arg: bytes) -> tuple:
        """A continuation line's first token, while the exchange is open."""
        self.username_failed = False
        state = self.state
        if state == LOGIN_USERNAME:
            return self._username(arg)
        if state == LOGIN_PASSWORD:
            login = self.login
            return self._finish(lambda a: (login, decode.login_password(a)), arg, "plain")
        if state == EXTERNAL:
            return self._finish(_external, arg, "external")
        fn, method = _SIMPLE[state]
        return self._finish(fn, arg, method)

    # --- the Auth-Error-SASL follow-up (pop3.md §6.7, imap.md §7.3, smtp.md §7) --------

    def failed(self, challenge) -> bool:
        """The auth server refused: True when its Auth-Error-SASL challenge is to be
        sent and the exchange stays open for one more line (XOAUTH2/OAUTHBEARER)."""
        if challenge is not None and self.method in ("xoauth2", "oauthbearer"):
            self.state = SASL_ERROR
            return True
        self.reset()
        return False

    def error_line(self, args) -> bool:
        """The line after the challenge: True when it is the client's acknowledgement
        (XOAUTH2: one empty token; OAUTHBEARER: one token starting with AQ==)."""
        if self.method == "xoauth2":
            ok = len(args) == 1 and args[0] == b""
        else:
            ok = len(args) == 1 and args[0].startswith(b"AQ==")
        self.reset()
        return ok

    def reset(self) -> None:
        """No attempt in progress: the next one starts from nothing (the login stays
        known for the log only)."""
        self.state = IDLE
        self.passwd = b""
        self.method = "plain"

    # --- helpers --------------------------------------------------------------------------

    def _username(self, arg):
        try:
            self.login = decode.login_username(arg)
        except decode.SaslError as e:
            self.username_failed = True
            return self._invalid(e)
        self.state = LOGIN_PASSWORD
        return PROMPT, PASSWORD

    def _finish(self, fn, arg, method):
        try:
            login, passwd = fn(arg)
        except decode.SaslError as e:
            return self._invalid(e)
        self.login, self.passwd, self.method = login, passwd, method
        self.state = IDLE
        return DONE, b""

    def _invalid(self, e=None):
        if e is not None:
            if e.login is not None:
                self.named = e.login
            self.log("info", str(e))
        self.state = IDLE
        return INVALID, b""


def _external(arg):
    return decode.external(arg), b""
