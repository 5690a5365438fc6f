"""The client host name lookup against a scripted DNS server (smtp.md §2)."""

from __future__ import annotations

import asyncio
import socket
import time

import dns.rcode
import pytest

from angie_mail.conf.model import Resolver as ResolverConf
from angie_mail.conf.url import Addr
from angie_mail.mail import dns as codec
from angie_mail.proxy.resolver import TEMPUNAVAIL, UNAVAILABLE, Resolver
from dns_server import reply, zone

PTR_LOCAL = "1.0.0.127.in-addr.arpa."


class Log:
    def __init__(self):
        self.lines = []

    def log(self, level, text, *args):
        self.lines.append((level, text))


def run(servers, ip="127.0.0.1", timeout=2.0, ipv4=True, ipv6=True, valid=0, times=1):
    """Resolve ``ip`` ``times`` times in a row on one Resolver: [(host, session log,
    actions)], the resolver's own log."""
    loop = asyncio.new_event_loop()
    errlog = Log()
    conf = ResolverConf(tuple(Addr(socket.AF_INET, "127.0.0.1", s.port, f"127.0.0.1:{s.port}")
                              for s in servers), valid, ipv4, ipv6)
    r = Resolver(loop, conf, errlog)
    out = []
    try:
        for _ in range(times):
            fut = loop.create_future()
            session, actions = [], []
            r.client_host(ip, timeout, lambda lvl, t: session.append((lvl, t)), actions.append,
                          fut.set_result)
            host = loop.run_until_complete(asyncio.wait_for(fut, timeout * 3 + 6))
            out.append((host, session, actions))
    finally:
        r.close()
        loop.close()
    return out, errlog.lines


@pytest.fixture
def servers(dns_servers):
    return dns_servers


def test_ptr_then_matching_forward_gives_the_name(servers):
    s = servers(zone(ptr={PTR_LOCAL: "A.Example.NET."}, a={"a.example.net.": "127.0.0.1"},
                     aaaa={"a.example.net.": []}))
    [(host, log, actions)], errs = run([s])
    assert host == "a.example.net"                       # lower-cased, no trailing dot
    assert log == [] and errs == []
    assert actions == ["in resolving client address", "in resolving client hostname"]
    # A first, then AAAA, back to back
    assert s.asked() == [(PTR_LOCAL, "PTR", False), ("a.example.net.", "A", False),
                         ("a.example.net.", "AAAA", False)]


def test_first_ptr_record_wins(servers):
    s = servers(zone(ptr={PTR_LOCAL: ["first.example.", "second.example."]},
                     a={"first.example.": "127.0.0.1"}, aaaa={"first.example.": []}))
    [(host, _, _)], _ = run([s])
    assert host == "first.example"


@pytest.mark.parametrize("rcode,host,text", [
    (dns.rcode.NXDOMAIN, UNAVAILABLE, "(3: Host not found)"),
    (dns.rcode.SERVFAIL, TEMPUNAVAIL, "(2: Server failure)"),
    (dns.rcode.NOTIMP, TEMPUNAVAIL, "(4: Unimplemented)"),
    (dns.rcode.REFUSED, TEMPUNAVAIL, "(5: Operation refused)"),
])
def test_ptr_errors(servers, rcode, host, text):
    s = servers(zone(ptr={PTR_LOCAL: rcode}))
    [(got, log, _)], _ = run([s])
    assert got == host
    assert log == [("error", "127.0.0.1 could not be resolved " + text)]


def test_ptr_no_data_is_host_not_found(servers):
    s = servers(zone(ptr={PTR_LOCAL: []}))
    [(got, log, _)], _ = run([s])
    assert got == UNAVAILABLE
    assert log == [("error", "127.0.0.1 could not be resolved (3: Host not found)")]


def test_silent_server_times_out(servers):
    s = servers(lambda q, tcp: None)
    t = time.monotonic()
    [(got, log, _)], _ = run([s], timeout=0.4)
    assert 0.35 <= time.monotonic() - t < 2
    assert got == TEMPUNAVAIL
    assert log == [("error", "127.0.0.1 could not be resolved (110: Operation timed out)")]


@pytest.mark.parametrize("bad", [
    lambda q: reply(q, rcode=dns.rcode.FORMERR),                 # RCODE 1: ignored
    lambda q: b"\x00",                                           # short
    lambda q: reply(q, answers=[(PTR_LOCAL, 60, "CNAME", "x.example.")]),   # CNAME only
    lambda q: (lambda r: (setattr(r, "id", (q.id + 1) % 65536), r)[1])(reply(q)),  # wrong ID
    lambda q: q.to_wire(),                                       # not a response (QR clear)
    lambda q: reply(q).to_wire()[:5] + b"\x02" + reply(q).to_wire()[6:],   # QDCOUNT 2
])
def test_ignored_responses_end_in_the_timeout(servers, bad):
    s = servers(lambda q, tcp: bad(q))
    [(got, log, _)], errs = run([s], timeout=0.4)
    assert got == TEMPUNAVAIL
    assert log == [("error", "127.0.0.1 could not be resolved (110: Operation timed out)")]
    assert errs and all(level == "error" for level, _ in errs)


def test_cname_only_ptr_is_logged_and_ignored(servers):
    s = servers(lambda q, tcp: reply(q, answers=[(PTR_LOCAL, 60, "CNAME", "x.example.")]))
    [(got, _, _)], errs = run([s], timeout=0.3)
    assert got == TEMPUNAVAIL
    assert ("error", "no PTR type in DNS response") in errs


@pytest.mark.parametrize("name", ["bad_name.example.net.", r"bad\032name.example.",
                                  r"evil\013\010name.example.", r"a\:b.example."])
def test_invalid_ptr_names_never_reach_the_host(servers, name):
    s = servers(zone(ptr={PTR_LOCAL: name}, a={name: "127.0.0.1"}))
    [(got, log, _)], _ = run([s])
    assert got == TEMPUNAVAIL
    assert len(log) == 1 and log[0][1].startswith('127.0.0.1 resolved to invalid host name "')
    assert "\r" not in log[0][1] and "\n" not in log[0][1] and " name" not in log[0][1][40:]
    assert [q[1] for q in s.asked()] == ["PTR"]              # no forward lookup


def test_oversized_label_is_ignored(servers):
    # a 64-byte label cannot be encoded: the response is malformed and ignored
    def handler(q, tcp):
        wire = bytearray(reply(q, answers=[(PTR_LOCAL, 60, "PTR", "ok.example.")]).to_wire())
        i = wire.rfind(b"\x02ok")
        wire[i] = 64
        return bytes(wire)
    s = servers(handler)
    [(got, _, _)], errs = run([s], timeout=0.3)
    assert got == TEMPUNAVAIL and errs


def test_forward_mismatch_is_unavailable_without_a_log(servers):
    s = servers(zone(ptr={PTR_LOCAL: "a.example."}, a={"a.example.": "127.0.0.2"},
                     aaaa={"a.example.": "::1"}))
    [(got, log, _)], _ = run([s])
    assert got == UNAVAILABLE and log == []


def test_forward_nxdomain(servers):
    s = servers(zone(ptr={PTR_LOCAL: "a.example."}))
    [(got, log, _)], _ = run([s])
    assert got == UNAVAILABLE
    assert log == [("error", '"a.example" could not be resolved (3: Host not found)')]


def test_forward_no_data_in_both_families_is_host_not_found(servers):
    s = servers(zone(ptr={PTR_LOCAL: "a.example."}, a={"a.example.": []},
                     aaaa={"a.example.": []}))
    [(got, log, _)], _ = run([s])
    assert got == UNAVAILABLE
    assert log == [("error", '"a.example" could not be resolved (3: Host not found)')]


def test_forward_error_in_one_family_wins_over_addresses(servers):
    s = servers(zone(ptr={PTR_LOCAL: "a.example."}, a={"a.example.": "127.0.0.1"},
                     aaaa={"a.example.": dns.rcode.SERVFAIL}))
    [(got, log, _)], _ = run([s])
    assert got == TEMPUNAVAIL
    assert log == [("error", '"a.example" could not be resolved (2: Server failure)')]


def test_forward_missing_answer_times_out(servers):
    s = servers(zone(ptr={PTR_LOCAL: "a.example."}, a={"a.example.": "127.0.0.1"},
                     aaaa={"a.example.": lambda q, tcp: None}))
    [(got, log, _)], _ = run([s], timeout=0.3)
    assert got == TEMPUNAVAIL
    assert log == [("error", '"a.example" could not be resolved (110: Operation timed out)')]


def test_forward_follows_cname(servers):
    s = servers(zone(ptr={PTR_LOCAL: "a.example."},
                     a={"a.example.": lambda q, tcp: reply(q, answers=[
                         ("a.example.", 60, "CNAME", "b.example.")]),
                        "b.example.": "127.0.0.1"},
                     aaaa={"a.example.": lambda q, tcp: reply(q, answers=[
                         ("a.example.", 60, "CNAME", "b.example.")]),
                           "b.example.": []}))
    [(got, _, _)], _ = run([s])
    assert got == "a.example"


def test_ipv6_off_asks_only_a(servers):
    s = servers(zone(ptr={PTR_LOCAL: "a.example."}, a={"a.example.": "127.0.0.1"}))
    [(got, _, _)], _ = run([s], ipv6=False)
    assert got == "a.example"
    assert [q[1] for q in s.asked()] == ["PTR", "A"]


def test_ipv6_client(servers):
    ptr6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."
    assert codec.ptr_name("::1") == ptr6
    s = servers(zone(ptr={ptr6: "six.example."}, a={"six.example.": "127.0.0.1"},
                     aaaa={"six.example.": "::1"}))
    [(got, _, _)], _ = run([s], ip="::1")
    assert got == "six.example"


def test_ipv4_mapped_client_never_matches_an_a_record(servers):
    ip = "::ffff:127.0.0.1"
    s = servers(zone(ptr={codec.ptr_name(ip): "m.example."}, a={"m.example.": "127.0.0.1"},
                     aaaa={"m.example.": []}))
    [(got, _, _)], _ = run([s], ip=ip)
    assert got == UNAVAILABLE


def test_answers_are_cached(servers):
    s = servers(zone(ptr={PTR_LOCAL: "a.example."}, a={"a.example.": "127.0.0.1"},
                     aaaa={"a.example.": "::1"}))
    results, _ = run([s], times=2)
    assert [r[0] for r in results] == ["a.example", "a.example"]
    assert len(s.asked()) == 3                 # the second lookup asked nothing


def test_errors_are_not_cached(servers):
    s = servers(zone(ptr={PTR_LOCAL: dns.rcode.SERVFAIL}))
    results, _ = run([s], times=2)
    assert [r[0] for r in results] == [TEMPUNAVAIL, TEMPUNAVAIL]
    assert len(s.asked()) == 2


def test_truncated_forward_answer_is_asked_again_over_tcp(servers):
    def a(q, tcp):
        if not tcp:
            return reply(q, tc=True)
        return reply(q, answers=[("a.example.", 60, "A", "127.0.0.1")])
    s = servers(zone(ptr={PTR_LOCAL: "a.example."}, a={"a.example.": a},
                     aaaa={"a.example.": []}))
    [(got, _, _)], _ = run([s])
    assert got == "a.example"
    assert ("a.example.", "A", True) in s.asked()


def test_unanswered_query_goes_to_the_next_server_after_5s(servers):
    silent = servers(lambda q, tcp: None)
    good = servers(zone(ptr={PTR_LOCAL: "a.example."}, a={"a.example.": "127.0.0.1"},
                        aaaa={"a.example.": []}))
    t = time.monotonic()
    [(got, _, _)], _ = run([silent, good], timeout=7)
    assert got == "a.example"
    assert 4.8 <= time.monotonic() - t < 7
    assert [q[1] for q in silent.asked()] == ["PTR"]
    # the forward lookup is a new lookup: it starts at the next server in turn
    assert [q[1] for q in good.asked()] == ["PTR", "A", "AAAA"]
