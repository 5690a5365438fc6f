import pytest

import certs
from proxy.harness import AuthServer, Backend, Proxy, free_port, ok_response


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Certificates for TLS tests (certs.make), one set per module."""
    return certs.make(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def backend():
    b = Backend()
    yield b
    b.close()


@pytest.fixture
def auth(backend):
    """auth_http server that accepts password "secret" (any user) for ``backend``."""
    def handler(req):
        if req.get("Auth-Pass") == b"secret" or req.get("Auth-Method") in (b"apop",):
            return ok_response(backend.port)
        return b"HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n\r\n"
    a = AuthServer(handler)
    yield a
    a.close()


@pytest.fixture
def start_proxy(tmp_path):
    """start_proxy(server_lines, mail_lines=(), main="") -> (proxy, port); one ``server``
    of ``protocol`` (pop3 by default) unless a whole ``mail_block`` is given."""
    started = []

    def start(server_lines=(), mail_lines=(), main="", port=None, listen=None, auth_url=None,
              wait=True, mail_block=None, workers=False, extra_args=(), protocol="pop3"):
        port = port or free_port()
        if mail_block is None:
            mail = "".join(f"    {l}\n" for l in mail_lines)
            srv = "".join(f"        {l}\n" for l in server_lines)
            listen_line = listen or f"listen 127.0.0.1:{port};"
            auth_line = f"    auth_http {auth_url};\n" if auth_url else ""
            mail_block = (f"mail {{\n{auth_line}{mail}    server {{\n        {listen_line}\n"
                          f"        protocol {protocol};\n{srv}    }}\n}}\n")
        d = tmp_path / f"p{len(started)}"
        d.mkdir()
        p = Proxy(d, mail_block, main=main, workers=workers, extra_args=extra_args)
        started.append(p)
        p.start(wait=wait)
        return p, port

    yield start
    for p in started:
        p.stop()
