"""DNS queries and answers for the client host name lookup, sans I/O (smtp.md §2).

The wire format is dnspython's (a maintained, pure-Python codec); what an answer
*means* is decided here, with nginx's resolver semantics rather than a stub
resolver's: the first PTR record wins, NOERROR without data is "host not found",
and a response that does not answer the question asked is ignored (the lookup
keeps waiting) instead of failing it.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

PTR = dns.rdatatype.PTR
A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
CNAME = dns.rdatatype.CNAME

# nginx's texts for the resolver's error codes (ngx_resolver_strerror)
ERROR_TEXT = {
    1: "Format error",
    2: "Server failure",
    3: "Host not found",
    4: "Unimplemented",
    5: "Operation refused",
    110: "Operation timed out",
}
TIMEDOUT = 110
NXDOMAIN = 3


class Answer(NamedTuple):
    """A usable response to one question."""
    rcode: int            # 0, or 2..5
    names: tuple          # PTR targets (str, lower-case, no trailing dot), in order
    addresses: tuple      # A/AAAA addresses (ipaddress objects), in order
    cname: str            # the CNAME target when the answer is only a CNAME, else ""
    ttl: int              # smallest TTL of the records used (0 when none)
    truncated: bool       # TC set


class Ignored(Exception):
    """A response the lookup does not use (it keeps waiting); the text is what the
    resolver logs at error level."""


def ptr_name(ip: str) -> str:
    """``d.c.b.a.in-addr.arpa.`` / the 32 reversed nibbles ``...ip6.arpa.``."""
    return ipaddress.ip_address(ip).reverse_pointer + "."


def query(name: str, rdtype: int, qid: int) -> bytes:
    """One question, class IN, RD set, the given ID, no EDNS (as nginx sends)."""
    q = dns.message.make_query(name, rdtype, use_edns=False, id=qid)
    q.flags = dns.flags.RD
    return q.to_wire()


def parse(data: bytes, qid: int, name: str, rdtype: int) -> Answer:
    """The meaning of a response to (qid, name, rdtype), or raise Ignored."""
    if len(data) < 12:
        raise Ignored("short DNS response")
    try:
        msg = dns.message.from_wire(data, ignore_trailing=True, one_rr_per_rrset=True)
    except (dns.exception.DNSException, ValueError, IndexError) as e:
        raise Ignored(f"invalid DNS response ({e.__class__.__name__})") from None
    if msg.id != qid:
        raise Ignored(f"wrong ident {msg.id} in DNS response, expect {qid}")
    if not msg.flags & dns.flags.QR or msg.opcode() != dns.opcode.QUERY:
        raise Ignored("invalid DNS response")
    if len(msg.question) != 1:
        raise Ignored(f"invalid number of questions in DNS response")
    q = msg.question[0]
    if q.rdclass != dns.rdataclass.IN or q.rdtype != rdtype or \
            q.name != dns.name.from_text(name):
        raise Ignored("wrong question in DNS response")
    rcode = msg.rcode()
    if rcode == 1 or rcode > 5:
        raise Ignored(f"DNS error ({rcode}: {ERROR_TEXT.get(rcode, 'Unknown error')})")
    truncated = bool(msg.flags & dns.flags.TC)
    if rcode:
        return Answer(rcode, (), (), "", 0, truncated)
    names, addresses, cname, ttls = [], [], "", []
    other = None
    for rrset in msg.answer:
        if rrset.rdclass != dns.rdataclass.IN:
            continue
        for rd in rrset:
            t = rrset.rdtype
            if t == rdtype == PTR:
                names.append(rd.target.to_text(omit_final_dot=True).lower())
                ttls.append(rrset.ttl)
            elif t == rdtype and t in (A, AAAA):
                addresses.append(ipaddress.ip_address(rd.address))
                ttls.append(rrset.ttl)
            elif t == CNAME and rdtype != PTR:
                cname = cname or rd.target.to_text(omit_final_dot=True).lower()
                ttls.append(rrset.ttl)
            else:
                other = t
    if rdtype == PTR and not names and msg.answer:
        if other is not None and other != CNAME:
            raise Ignored(f"unexpected RR type {other} in DNS response")
        raise Ignored("no PTR type in DNS response")
    if addresses or names:
        cname = ""
    return Answer(0, tuple(names), tuple(addresses), cname, min(ttls) if ttls else 0,
                  truncated)


VALID_HOST = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.")


def valid_host_name(name: str) -> bool:
    """Angie accepts a PTR name only of letters, digits, '-' and '.' (smtp.md §2)."""
    raw = name.encode("utf-8", "surrogateescape")
    return bool(raw) and all(b in VALID_HOST for b in raw)
