"""PROXY protocol: reading v1/v2 headers from clients, writing v1 to backends
(ssl-realip-proxy.md §3–§4; ngx_proxy_protocol_read/_write), and v2 with the client's
TLS facts (``proxy_protocol v2``, docs/proxy-protocol.md)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import NamedTuple, Optional

from ..conf.url import _inet4, _inet6

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107
MAX_HEADER = 4096


class Header(NamedTuple):
    """What a PROXY header told; addresses are None for UNKNOWN / LOCAL."""
    length: int                  # bytes the header occupies
    src_addr: Optional[str] = None
    src_port: int = 0
    dst_addr: Optional[str] = None
    dst_port: int = 0
    family: int = 0


class BrokenHeader(Exception):
    """``str(e)`` is the error log line: ``broken header: "..."``."""


def _broken(data: bytes) -> BrokenHeader:
    end = len(data)
    for i, b in enumerate(data):
        if b in (0x0D, 0x0A):
            end = i
            break
    return BrokenHeader('broken header: "%s"' % data[:end].decode("latin-1"))


def _addr(text: bytes, family: int) -> Optional[str]:
    t = text.decode("latin-1")
    return _inet4(t) if family == socket.AF_INET else _inet6(t)


def _port(text: bytes) -> Optional[int]:
    if not text or not text.isdigit() or len(text) > 5:
        return None
    n = int(text)
    return n if 0 < n <= 65535 else None


def parse(data: bytes) -> Header:
    """Parse the header at the start of ``data`` (all of one read); raise BrokenHeader."""
    if len(data) >= 16 and data[:12] == V2_SIG:
        return _parse_v2(data)
    last = min(len(data), V1_MAX)
    buf = data[:last]
    if len(buf) < 8 or not buf.startswith(b"PROXY "):
        raise _broken(data)
    p = 6
    if buf[p:p + 7] == b"UNKNOWN":
        end = buf.find(b"\r\n", p + 7)
        if end < 0:
            raise _broken(data)
        return Header(end + 2)
    if buf[p:p + 3] != b"TCP" or buf[p + 3:p + 4] not in (b"4", b"6") or \
            buf[p + 4:p + 5] != b" ":
        raise _broken(data)
    family = socket.AF_INET if buf[p + 3:p + 4] == b"4" else socket.AF_INET6
    end = buf.find(b"\r\n", p + 5)
    if end < 0:
        raise _broken(data)
    parts = buf[p + 5:end].split(b" ")
    if len(parts) != 4:
        raise _broken(data)
    src, dst = _addr(parts[0], family), _addr(parts[1], family)
    sport, dport = _port(parts[2]), _port(parts[3])
    if src is None or dst is None or sport is None or dport is None:
        raise _broken(data)
    return Header(end + 2, src, sport, dst, dport, family)


def _parse_v2(data: bytes) -> Header:
    ver_cmd, fam, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    total = 16 + length
    if ver_cmd >> 4 != 2 or len(data) < total:
        raise _broken(data)
    cmd = ver_cmd & 0x0F
    if cmd == 0:                                     # LOCAL: no addresses
        return Header(total)
    if cmd != 1:
        raise _broken(data)
    af = fam >> 4
    body = data[16:total]
    if af == 1 and len(body) >= 12:
        src = str(ipaddress.IPv4Address(body[0:4]))
        dst = str(ipaddress.IPv4Address(body[4:8]))
        sport, dport = struct.unpack("!HH", body[8:12])
        return Header(total, src, sport, dst, dport, socket.AF_INET)
    if af == 2 and len(body) >= 36:
        src = str(ipaddress.IPv6Address(body[0:16]))
        dst = str(ipaddress.IPv6Address(body[16:32]))
        sport, dport = struct.unpack("!HH", body[32:36])
        return Header(total, src, sport, dst, dport, socket.AF_INET6)
    if af in (1, 2):
        raise _broken(data)
    return Header(total)                             # AF_UNIX / UNSPEC: no addresses


def outbound_header(client) -> bytes:
    """``PROXY TCP4 <client-ip> <local-ip> <client-port> <local-port>\\r\\n`` for the
    backend; client = the (realip-substituted) client, local = our address of the
    client connection.  Unix-socket clients get ``PROXY UNKNOWN``."""
    ip = client.client_ip
    local = client.local
    if ip is None or ip == "unix:" or not isinstance(local, tuple):
        return b"PROXY UNKNOWN\r\n"
    fam = "TCP6" if ":" in ip else "TCP4"
    lip = local[0]
    if fam == "TCP4" and ":" in lip:
        lip = lip[7:] if lip.startswith("::ffff:") else lip
    return f"PROXY {fam} {ip} {lip} {client.client_port} {local[1]}\r\n".encode()


# PROXY v2 (haproxy's proxy-protocol.txt §2.2)
_V2_PROXY = 0x21                 # version 2, command PROXY
_AF_UNSPEC, _TCP4, _TCP6 = 0x00, 0x11, 0x21
PP2_TYPE_AUTHORITY = 0x02        # the server name the client asked for (SNI)
PP2_TYPE_SSL = 0x20
PP2_SUBTYPE_SSL_VERSION = 0x21
PP2_SUBTYPE_SSL_CN = 0x22
PP2_SUBTYPE_SSL_CIPHER = 0x23
PP2_CLIENT_SSL = 0x01
PP2_CLIENT_CERT_CONN = 0x02


def _tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def _tls_tlvs(info) -> bytes:
    """PP2_TYPE_SSL (client flags, verify result, version, cipher, the certificate's
    CN) and PP2_TYPE_AUTHORITY (SNI), as HAProxy's send-proxy-v2-ssl-cn writes them."""
    if info is None:
        return b""
    flags = PP2_CLIENT_SSL
    subs = _tlv(PP2_SUBTYPE_SSL_VERSION, info.protocol.encode()) + \
        _tlv(PP2_SUBTYPE_SSL_CIPHER, info.cipher.encode())
    if info.cert is not None:
        flags |= PP2_CLIENT_CERT_CONN
        from cryptography.x509.oid import NameOID
        cns = info.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if cns:
            subs += _tlv(PP2_SUBTYPE_SSL_CN, str(cns[0].value).encode("utf-8"))
    # verify: 0 unless the client's certificate was checked and failed
    verify = 1 if info.verify.startswith("FAILED") else 0
    out = _tlv(PP2_TYPE_SSL, struct.pack("!BI", flags, verify) + subs)
    if info.sni:
        out += _tlv(PP2_TYPE_AUTHORITY, info.sni)
    return out


def _v6(ip: str) -> bytes:
    if ":" in ip:
        return ipaddress.IPv6Address(ip).packed
    return ipaddress.IPv6Address("::ffff:" + ip).packed


def outbound_header_v2(client) -> bytes:
    """The binary v2 header for the backend: the (realip-substituted) client and our
    address of the client connection, as v1 has them (AF_UNSPEC for a unix-socket
    client), then the TLS TLVs when the client came over TLS."""
    ip = client.client_ip
    local = client.local
    tlvs = _tls_tlvs(client.tls_info)
    if ip is None or ip == "unix:" or not isinstance(local, tuple):
        fam, addrs = _AF_UNSPEC, b""
    else:
        lip = local[0]
        if lip.startswith("::ffff:") and "." in lip:
            lip = lip[7:]
        ports = struct.pack("!HH", client.client_port, local[1])
        if ":" not in ip and ":" not in lip:
            fam = _TCP4
            addrs = ipaddress.IPv4Address(ip).packed + ipaddress.IPv4Address(lip).packed + ports
        else:
            fam = _TCP6
            addrs = _v6(ip) + _v6(lip) + ports
    body = addrs + tlvs
    return V2_SIG + bytes((_V2_PROXY, fam)) + struct.pack("!H", len(body)) + body
