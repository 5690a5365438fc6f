"""XOAUTH2/OAUTHBEARER end to end, including real-sized tokens with the
pop3_client_buffer extension and the Auth-Error-SASL flow."""

import base64

from proxy.harness import AuthServer, Client, ok_response

TOKEN = b"ya29." + b"A1b2C3d4" * 512          # a 4 KB bearer token


def xoauth2(user=b"test@example.com", token=TOKEN):
    return base64.b64encode(b"user=" + user + b"\x01auth=Bearer " + token + b"\x01\x01")


def test_4k_token_needs_pop3_client_buffer(backend, start_proxy):
    auth = AuthServer(lambda req: ok_response(backend.port)
                      if req["Auth-Pass"] == TOKEN else
                      b"HTTP/1.0 200 OK\r\nAuth-Status: bad token\r\n\r\n")
    backend.users = {b"test@example.com": TOKEN}
    try:
        p, port = start_proxy(auth_url=auth.url,
                              server_lines=["pop3_auth plain xoauth2;", "pop3_client_buffer 8k;"])
        c = Client(port)
        c.line()
        c.send(b"AUTH XOAUTH2 " + xoauth2() + b"\r\n")
        assert c.line() == b"+OK pass ok\r\n"
        req = auth.requests[0]
        assert (req["Auth-Method"], req["Auth-User"], req["Auth-Pass"]) == \
            (b"xoauth2", b"test@example.com", TOKEN)
        assert backend.lines[:2] == [b"USER test@example.com", b"PASS " + TOKEN]

        # the same token as a continuation line
        c = Client(port)
        c.line()
        c.send(b"AUTH XOAUTH2\r\n")
        assert c.line() == b"+ \r\n"
        c.send(xoauth2() + b"\r\n")
        assert c.line() == b"+OK pass ok\r\n"
    finally:
        auth.close()


def test_angie_128_byte_line_refuses_real_tokens(backend, start_proxy):
    auth = AuthServer(lambda req: ok_response(backend.port))
    try:
        p, port = start_proxy(auth_url=auth.url, server_lines=["pop3_auth plain xoauth2;"])
        c = Client(port)
        c.line()
        c.send(b"AUTH XOAUTH2 " + xoauth2() + b"\r\n")
        assert c.line() == b"-ERR invalid command\r\n"
        assert c.closed()
        assert 'client sent too long command "AUTH ***"' in p.wait_log("too long")
        assert auth.requests == []
    finally:
        auth.close()


def test_oauthbearer_sasl_error_challenge(backend, start_proxy):
    challenge = base64.b64encode(b'{"status":"invalid_token"}')
    auth = AuthServer(lambda req: b"HTTP/1.0 200 OK\r\nAuth-Status: Invalid token\r\n"
                                  b"Auth-Error-SASL: " + challenge + b"\r\n\r\n")
    try:
        p, port = start_proxy(auth_url=auth.url,
                              server_lines=["pop3_auth plain oauthbearer;",
                                            "pop3_client_buffer 8k;"])
        payload = base64.b64encode(b"n,a=test@example.com,\x01host=x\x01auth=Bearer "
                                   + TOKEN + b"\x01\x01")
        c = Client(port)
        c.line()
        c.send(b"AUTH OAUTHBEARER " + payload + b"\r\n")
        assert c.line() == b"+ " + challenge + b"\r\n"
        c.send(b"AQ==\r\n")
        assert c.line() == b"-ERR Invalid token\r\n"
        assert c.closed()
        req = auth.requests[0]
        assert (req["Auth-Method"], req["Auth-User"]) == (b"oauthbearer", b"test@example.com")
    finally:
        auth.close()
