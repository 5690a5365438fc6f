"""ngx_mail_ssl_module: STARTTLS/STLS, implicit TLS and their certificates."""

from __future__ import annotations

import os

from ..model import Pos
from ..registry import ALL, ANGIE, Args, Ctx, Fail, Merge, row
from ..slots import (arg, bitmask_slot, dup, enum_slot, flag_slot,
                     num_slot, path_array_slot, path_slot, sec_slot, str_slot)
from ..values import atoi, cstr, parse_size
from ..zones import declare_zone

MS = Ctx.MAIL | Ctx.SERVER
NGINX = frozenset(("nginx",))
PROTOCOL_WORDS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
SHM_MIN = 8 * 4096          # a shared session cache must hold 8 memory pages


_starttls_slot = enum_slot(["off", "on", "only"])


def _conflict(lv) -> bool:
    """``ssl on`` and an enabled ``starttls`` in the same block (nginx 1.22)."""
    return lv.values.get("ssl_enable") is True and lv.values.get("starttls", "off") != "off"


def _mark(st, lv) -> None:
    """Where a missing certificate is reported: a ``listen ... ssl`` of the server keeps
    its own line whatever comes after it; else the last ``starttls`` or ``ssl``."""
    if not lv.values.get("ssl_listen"):
        lv.values["ssl_pos"] = Pos(st.file, st.end_line)


def starttls(an, st, lv, d):
    _starttls_slot(an, st, lv, d)
    if _conflict(lv):
        raise Fail('"ssl" directive conflicts with "starttls"')
    _mark(st, lv)


def ssl_enable(an, st, lv, d):
    """nginx 1.22's deprecated ``ssl on|off`` (removed from Angie): the value is
    checked, then the deprecation warned, then the conflict with starttls."""
    flag_slot(an, st, lv, d)
    an.warn('the "ssl" directive is deprecated, use the "listen ... ssl" directive instead',
            st)
    if _conflict(lv):
        raise Fail('"starttls" directive conflicts with "ssl on"')
    _mark(st, lv)


def password_file(an, st, lv, d):
    """Read at parse time, as nginx does: one passphrase per line."""
    if d.field in lv.values:
        raise dup(d)
    path = an.full_name(arg(st), conf_prefix=True)
    from ...errors import errno_suffix
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise Fail(f'open() "{path}" failed' + errno_suffix(e))
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Fail(f'read() "{path}" failed' + errno_suffix(e))
    passwords = []
    for line in data.split(b"\n"):
        line = line.rstrip(b"\r")     # nginx strips CR LF and trailing whitespace
        line = line.rstrip(b" \t")
        if line:
            passwords.append(line)
    lv.values[d.field] = tuple(passwords)
    lv.values["ssl_password_path"] = path


def session_cache(an, st, lv, d):
    for w in st.words[1:]:
        v = w.value
        c = cstr(v)
        if c == "off":
            lv.values["ssl_session_cache_builtin"] = ("off", 0)
        elif c == "none":
            lv.values["ssl_session_cache_builtin"] = ("none", 0)
        elif c == "builtin":
            lv.values["ssl_session_cache_builtin"] = ("builtin", 20480)
        elif len(v) > 8 and v.startswith("builtin:"):
            n = atoi(v[8:])
            if n is None:
                raise Fail(f'invalid session cache "{v}"')
            lv.values["ssl_session_cache_builtin"] = ("builtin", n)
        elif len(v) > 7 and v.startswith("shared:"):
            rest = v[7:]
            j = rest.find(":")
            if j <= 0:
                raise Fail(f'invalid session cache "{v}"')
            name, size = rest[:j], parse_size(rest[j + 1:])
            if size is None:
                raise Fail(f'invalid session cache "{v}"')
            if size < SHM_MIN:
                raise Fail(f'session cache "{v}" is too small')
            problem = declare_zone(an, name, size, "mail:ssl_session_cache")
            if problem:
                raise Fail(problem)
            lv.values["ssl_session_cache_shared"] = (name, size)
        else:
            raise Fail(f'invalid session cache "{v}"')
    if "ssl_session_cache_shared" in lv.values and \
            "ssl_session_cache_builtin" not in lv.values:
        lv.values["ssl_session_cache_builtin"] = ("no_builtin", 0)


def conf_command(an, st, lv, d):
    lv.values.setdefault(d.field, []).append(
        (st.words[1].value, st.words[2].value, Pos(st.file, st.end_line)))


def protocols_for(dialect):
    return PROTOCOL_WORDS


ROWS = [
    row("ssl", "ssl", MS, Args.FLAG, ssl_enable, field="ssl_enable", default=False,
        dialects=NGINX, default_text="off",
        doc="nginx 1.22 only (deprecated there, removed from Angie): TLS on every listen"),
    row("starttls", "ssl", MS, Args.TAKE1, starttls, field="starttls", default="off",
        syntax="on | off | only", default_text="off", doc="STLS / STARTTLS support"),
    row("ssl_certificate", "ssl", MS, Args.TAKE1, path_array_slot,
        field="ssl_certificate", default=(), merge=Merge.LIST, syntax="file",
        doc="certificate (chain) in PEM; repeat for RSA + ECDSA"),
    row("ssl_certificate_key", "ssl", MS, Args.TAKE1, path_array_slot,
        field="ssl_certificate_key", default=(), merge=Merge.LIST, syntax="file",
        doc="private key in PEM, one per ssl_certificate"),
    row("ssl_password_file", "ssl", MS, Args.TAKE1, password_file,
        field="ssl_password_file", default=(), syntax="file",
        doc="passphrases for encrypted keys, one per line (read while parsing)"),
    row("ssl_certificate_compression", "ssl", MS, Args.FLAG, flag_slot,
        field="ssl_certificate_compression", default=False, dialects=ANGIE,
        default_text="off", doc="TLS certificate compression"),
    row("ssl_dhparam", "ssl", MS, Args.TAKE1, path_slot, field="ssl_dhparam", default="",
        syntax="file", doc="DH parameters for DHE ciphers"),
    row("ssl_ecdh_curve", "ssl", MS, Args.TAKE1, str_slot, field="ssl_ecdh_curve",
        default="auto", syntax="curve[:curve...] | auto", default_text="auto",
        doc="key exchange groups"),
    row("ssl_protocols", "ssl", MS, Args.ONEMORE, bitmask_slot(protocols_for),
        field="ssl_protocols", syntax="[SSLv2] [SSLv3] [TLSv1] [TLSv1.1] [TLSv1.2] [TLSv1.3]",
        default_text="TLSv1.2 TLSv1.3 (nginx 1.22: TLSv1 TLSv1.1 TLSv1.2 TLSv1.3)",
        merge=Merge.BITMASK, doc="enabled protocol versions"),
    row("ssl_ciphers", "ssl", MS, Args.TAKE1, str_slot, field="ssl_ciphers",
        default="HIGH:!aNULL:!MD5", syntax="ciphers", default_text="HIGH:!aNULL:!MD5",
        doc="OpenSSL cipher list (TLS 1.2 and below)"),
    row("ssl_prefer_server_ciphers", "ssl", MS, Args.FLAG, flag_slot,
        field="ssl_prefer_server_ciphers", default=False, default_text="off",
        doc="server cipher order"),
    row("ssl_session_cache", "ssl", MS, Args.TAKE12, session_cache,
        field="ssl_session_cache", syntax="off | none | [builtin[:size]] [shared:name:size]",
        default_text="none", doc="TLS session cache"),
    row("ssl_session_tickets", "ssl", MS, Args.FLAG, flag_slot,
        field="ssl_session_tickets", default=True, default_text="on",
        doc="session resumption with tickets"),
    row("ssl_session_ticket_key", "ssl", MS, Args.TAKE1, path_array_slot,
        field="ssl_session_ticket_key", default=(), merge=Merge.LIST, syntax="file",
        doc="ticket keys (80 or 48 bytes); the first encrypts"),
    row("ssl_session_timeout", "ssl", MS, Args.TAKE1, sec_slot,
        field="ssl_session_timeout", default=300, syntax="time", default_text="5m",
        doc="lifetime of cached sessions"),
    row("ssl_verify_client", "ssl", MS, Args.TAKE1,
        enum_slot(["off", "on", "optional", "optional_no_ca"]), field="ssl_verify_client",
        default="off", syntax="on | off | optional | optional_no_ca", default_text="off",
        doc="ask for client certificates"),
    row("ssl_verify_depth", "ssl", MS, Args.TAKE1, num_slot, field="ssl_verify_depth",
        default=1, syntax="number", default_text="1",
        doc="client certificate chain depth"),
    row("ssl_client_certificate", "ssl", MS, Args.TAKE1, path_slot,
        field="ssl_client_certificate", default="", syntax="file",
        doc="CAs for client certificates (also sent to clients)"),
    row("ssl_trusted_certificate", "ssl", MS, Args.TAKE1, path_slot,
        field="ssl_trusted_certificate", default="", syntax="file",
        doc="CAs for client certificates (not sent)"),
    row("ssl_crl", "ssl", MS, Args.TAKE1, path_slot, field="ssl_crl", default="",
        syntax="file", doc="revoked client certificates"),
    row("ssl_conf_command", "ssl", MS, Args.TAKE2, conf_command, field="ssl_conf_command",
        default=(), merge=Merge.LIST, syntax="name value",
        doc="OpenSSL configuration commands (SSL_CONF_cmd), applied last"),
]

assert all(r.dialects <= ALL for r in ROWS)
