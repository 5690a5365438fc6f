"""The login in a log line's context, side by side with the real nginx 1.22: a CRAM-MD5
response names its login before its digest is refused, and from then on the session's
lines carry it (nginx's s->login), on every protocol."""

from __future__ import annotations

import base64
import re

import pytest

import oracle
from proxy.harness import AuthServer, Client, fail_response, one_server, side_by_side

LOGIN = re.compile(r'\] \d+#\d+: \*\d+ (client sent [^,]*?)(?: while [^,]*)?, client: .*?'
                   r'(?:, login: "([^"]*)")?$', re.M)


@pytest.fixture(autouse=True)
def _nginx_installed():
    oracle.require()


PROTOCOLS = {
    # protocol: (auth directive, the exchange's start, a line the machine refuses)
    "pop3": ("pop3_auth plain cram-md5;", b"AUTH CRAM-MD5\r\n", b"FOO\r\n"),
    "imap": ("imap_auth cram-md5;", b"a AUTHENTICATE CRAM-MD5\r\n", b"b FOO\r\n"),
    "smtp": ("smtp_auth cram-md5;", b"EHLO x\r\nAUTH CRAM-MD5\r\n", b"FOO\r\n"),
}


def session(port: int, protocol: str, response: bytes) -> None:
    _, start, bad = PROTOCOLS[protocol]
    c = Client(port)
    c.line()
    c.send(start)
    line = c.line()
    while not line.startswith((b"+ ", b"334 ")):         # EHLO's reply first
        line = c.line()
    c.send(base64.b64encode(response) + b"\r\n")
    c.line()
    c.send(bad)          # a parse-level error (the refused digest is not one): max_errors 1
    c.line()
    assert c.closed()
    c.close()


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("response", [b"someone short", b"nospace"])
def test_a_refused_cram_md5_login_is_in_the_log_context(tmp_path, protocol, response):
    auth = AuthServer(lambda req: fail_response())
    try:
        logged = side_by_side(
            tmp_path, lambda port: one_server(auth.url, port, protocol,
                                              ["max_errors 1;", PROTOCOLS[protocol][0]]),
            lambda port: session(port, protocol, response), "too many invalid commands",
            LOGIN)
    finally:
        auth.close()
    login = response.split(b" ")[0].decode()
    assert logged["nginx"] == [
        ("client sent invalid CRAM-MD5 hash in AUTH CRAM-MD5 command", login),
        ("client sent too many invalid commands", login)], logged
    assert logged["angie-mail"] == logged["nginx"]
