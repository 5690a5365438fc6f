import os
import sys

# make tests/ helpers (oracle, fixtures) importable as plain modules
sys.path.insert(0, os.path.dirname(__file__))


import pytest  # noqa: E402


@pytest.fixture
def dns_servers():
    """dns_servers(handler) -> a scripted DnsServer (tests/dns_server.py), closed after."""
    from dns_server import DnsServer
    made = []

    def make(handler):
        s = DnsServer(handler)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()
