"""The SMTP proxy in front of a real SMTP server (aiosmtpd, with XCLIENT answered as an
MTA does): submission and MX flows, plain, STARTTLS and implicit TLS towards the
client, a 20 MB message relayed byte for byte."""

from __future__ import annotations

import smtplib
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from proxy.harness import AuthServer, fail_response, free_port, ok_response, tls_lines


class XclientSMTP(SMTP):
    """aiosmtpd with Postfix's XCLIENT: the attributes are recorded and the session
    restarts (220), as smtpd does for an authorized client."""

    async def smtp_XCLIENT(self, arg):
        self.event_handler.xclient.append(arg)
        await self.push("220 2.0.0 xclient ok")


class Collect:
    def __init__(self):
        self.envelopes = []
        self.xclient = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                               session.host_name))
        return "250 2.0.0 accepted"


class XclientController(Controller):
    def factory(self):
        return XclientSMTP(self.handler, data_size_limit=64 << 20)


@pytest.fixture
def peer():
    handler = Collect()
    c = XclientController(handler, hostname="127.0.0.1", port=free_port())
    c.start()
    yield c, handler
    c.stop()


@pytest.fixture
def proxy_to(peer, start_proxy):
    controller, _ = peer

    def handler(req):
        if req.get("Auth-Pass") == b"secret" or req.get("Auth-Method") == b"none":
            return ok_response(controller.port)
        return fail_response()
    auth = AuthServer(handler)

    def start(*lines, listen=None):
        port = free_port()
        p, _ = start_proxy(("protocol smtp;", "server_name proxyhost;", *lines), port=port,
                           listen=listen and listen.format(port=port), auth_url=auth.url)
        return port
    yield start
    auth.close()


MESSAGE = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: dots\r\n\r\n"
           + b"".join(b".%d leading dot\r\n" % i if i % 3 == 0 else
                      b"%d plain line with some more text to fill it up a bit\r\n" % i
                      for i in range(440000))
           + b".\r\n..\r\nlast\r\n")
SHORT = MESSAGE[:MESSAGE.index(b"\r\n", 300000) + 2]


def test_submission_relays_a_20_mb_message_byte_for_byte(peer, proxy_to):
    assert len(MESSAGE) > 20_000_000
    port = proxy_to()
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    s.ehlo("client.example")
    s.login("test@example.com", "secret")
    assert s.sendmail("a@example.com", ["b@example.com", "c@example.com"], MESSAGE) == {}
    s.quit()
    _, handler = peer
    (mail_from, rcpts, content, helo), = handler.envelopes
    assert (mail_from, rcpts) == ("a@example.com", ["b@example.com", "c@example.com"])
    assert content == MESSAGE
    assert helo == "client.example"          # the client's EHLO, after XCLIENT
    assert handler.xclient == ["ADDR=127.0.0.1 LOGIN=test@example.com NAME=[UNAVAILABLE]"]


def test_mx_flow_replays_helo_mail_and_rcpt(peer, proxy_to):
    port = proxy_to("smtp_auth none;")
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.helo("mx.example")
    assert s.sendmail("a@example.com", ["b@example.com"], b"Subject: mx\r\n\r\nhello\r\n") == {}
    s.quit()
    _, handler = peer
    assert handler.envelopes == [("a@example.com", ["b@example.com"],
                                  b"Subject: mx\r\n\r\nhello\r\n", "mx.example")]
    assert handler.xclient == ["ADDR=127.0.0.1 NAME=[UNAVAILABLE]"]


def test_without_xclient_the_proxy_greets_in_its_own_name(peer, proxy_to):
    port = proxy_to("xclient off;")
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.ehlo("client.example")
    s.login("test@example.com", "secret")
    assert s.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nhi\r\n") == {}
    s.quit()
    _, handler = peer
    assert handler.envelopes[0][3] == "proxyhost" and handler.xclient == []


def test_starttls_and_implicit_tls_towards_the_client(peer, proxy_to, pki):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.check_hostname = False
    port = proxy_to("starttls only;", *tls_lines(pki))
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.ehlo("client.example")
    assert not s.has_extn("auth")
    s.starttls(context=ctx)
    s.ehlo("client.example")
    assert s.has_extn("auth")
    s.login("test@example.com", "secret")
    assert s.sendmail("a@example.com", ["b@example.com"], SHORT) == {}
    s.quit()
    port = proxy_to(*tls_lines(pki), listen="listen 127.0.0.1:{port} ssl;")
    s = smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=ctx)
    s.login("test@example.com", "secret")
    assert s.sendmail("a@example.com", ["c@example.com"], SHORT) == {}
    s.quit()
    _, handler = peer
    assert [e[2] for e in handler.envelopes] == [SHORT] * 2
