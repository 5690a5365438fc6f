"""The login events log (``login_events``, dialect angie-mail): one JSON line per
session end, written to a file that is reopened on USR1 with the error logs
(docs/login-events.md).  Never the password: the login is the only credential in it."""

from __future__ import annotations

import json
import time

from ..conf.model import LogTarget
from ..log import ErrorLog

# what became of a session
LOGGED_IN = "logged in"          # it reached the backend (the relay ran)
AUTH_FAILED = "auth failed"      # the auth server refused its last attempt
REJECTED = "rejected"            # the proxy refused it (greeting delay, limits, errors)
TIMED_OUT = "timed out"          # the pre-auth deadline passed
ERROR = "error"                  # auth server or backend failure (internal error)
CLOSED = "closed"                # the client left (or quit) before logging in


def writer(path: str):
    """The file's target, shared with the error logs' reopen (SIGUSR1)."""
    return ErrorLog.for_targets((LogTarget(path, "info", ("login-events",)),)).targets[0]


def record(c, now: float) -> str:
    """The JSON line of client connection ``c`` (angie_mail.proxy.client)."""
    ms = int(now * 1000) % 1000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{ms:03d}Z"
    info = c.tls_info
    rec = {
        "time": stamp,
        "protocol": c.proto.name,
        "server": c.conf.addr_text,
        "server_name": c.server.server_name,
        "client": c.client_ip or "",
        "client_port": c.client_port,
        "login": c.login.decode("utf-8", "backslashreplace"),
        "outcome": c.outcome,
        "reason": c.reason.decode("utf-8", "backslashreplace") if c.reason else None,
        "attempts": c.attempts,
        "backend": c.upstream or None,
        "tls": {"protocol": info.protocol, "cipher": info.cipher,
                "starttls": not c.conf.listen.ssl} if info is not None else None,
        "bytes_in": c.bytes_in,
        "bytes_out": c.bytes_out,
        "duration": round(now - c.started, 3),
    }
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
