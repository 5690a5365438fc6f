"""The SMTP proxy in front of a real SMTP server (aiosmtpd): submission and MX flows,
messages relayed byte for byte."""

from __future__ import annotations

import smtplib

import pytest
from aiosmtpd.controller import Controller

from proxy.harness import AuthServer, fail_response, free_port, ok_response


class Collect:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                               session.host_name))
        return "250 2.0.0 accepted"


@pytest.fixture
def peer():
    handler = Collect()
    c = Controller(handler, hostname="127.0.0.1", port=free_port())
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

    def start(*lines):
        p, port = start_proxy(("protocol smtp;", "server_name proxyhost;", "xclient off;",
                               *lines), auth_url=auth.url)
        return port
    yield start
    auth.close()


MESSAGE = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: dots\r\n\r\n"
           + b"".join(b".%d leading dot\r\n" % i if i % 3 == 0 else
                      b"%d plain line with some text in it\r\n" % i for i in range(40000))
           + b".\r\n..\r\nlast\r\n")


def test_submission_relays_a_large_message_byte_for_byte(peer, proxy_to):
    port = proxy_to()
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.ehlo("client.example")
    s.login("test@example.com", "secret")
    assert s.sendmail("a@example.com", ["b@example.com", "c@example.com"], MESSAGE) == {}
    s.quit()
    _, handler = peer
    (mail_from, rcpts, content, helo), = handler.envelopes
    assert (mail_from, rcpts) == ("a@example.com", ["b@example.com", "c@example.com"])
    assert content == MESSAGE



def test_mx_flow_replays_helo_mail_and_rcpt(peer, proxy_to):
    port = proxy_to("smtp_auth none;")
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.helo("mx.example")
    assert s.sendmail("a@example.com", ["b@example.com"], b"Subject: mx\r\n\r\nhello\r\n") == {}
    s.quit()
    _, handler = peer
    assert handler.envelopes == [("a@example.com", ["b@example.com"],
                                  b"Subject: mx\r\n\r\nhello\r\n", "proxyhost")]
