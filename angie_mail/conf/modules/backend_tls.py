"""angie-mail's TLS from the proxy to the backend (``proxy_ssl``), named and defaulted
as nginx's ``proxy_ssl_*`` directives of the http and stream proxies."""

from __future__ import annotations

from ..model import BackendTls, Pos
from ..registry import EXTENSION, Args, Ctx, Merge, row
from ..slots import bitmask_slot, enum_slot, flag_slot, path_slot, str_slot
from .ssl import PROTOCOL_WORDS, password_file

MS = Ctx.MAIL | Ctx.SERVER

_mode_slot = enum_slot(["off", "on", "starttls"])


def proxy_ssl(an, st, lv, d):
    _mode_slot(an, st, lv, d)
    lv.values["proxy_ssl_pos"] = Pos(st.file, st.end_line)


def proxy_password_file(an, st, lv, d):
    had = "ssl_password_path" in lv.values
    kept = lv.values.get("ssl_password_path")
    password_file(an, st, lv, d)
    if had:
        lv.values["ssl_password_path"] = kept
    else:
        del lv.values["ssl_password_path"]


def settings(v: dict):
    """The merged values as the model's BackendTls, or None with proxy_ssl off (or in
    a dialect without the directives)."""
    mode = v.get("proxy_ssl", "off")
    if mode == "off":
        return None
    return BackendTls(
        mode=mode, verify=v["proxy_ssl_verify"],
        trusted_certificate=v["proxy_ssl_trusted_certificate"], name=v["proxy_ssl_name"],
        server_name=v["proxy_ssl_server_name"], certificate=v["proxy_ssl_certificate"],
        certificate_key=v["proxy_ssl_certificate_key"],
        passwords=tuple(v["proxy_ssl_password_file"]), protocols=v["proxy_ssl_protocols"],
        ciphers=v["proxy_ssl_ciphers"], session_reuse=v["proxy_ssl_session_reuse"],
        pos=v.get("proxy_ssl_pos"))


def check(an, v: dict, files):
    """What -t checks of a server with proxy_ssl (but the cipher list, which merge
    checks with the TLS library), in nginx's words for its http proxy
    (ngx_http_proxy_set_ssl): a message, or None.  ``files`` is the run's TLS file
    cache (tlsfiles.RunFiles) or None when files are not read."""
    t = settings(v)
    if t is None:
        return None
    if t.certificate and not t.certificate_key:
        return (f'no "proxy_ssl_certificate_key" is defined for certificate '
                f'"{t.certificate}"')
    if t.verify and not t.trusted_certificate:
        return "no proxy_ssl_trusted_certificate for proxy_ssl_verify"
    if files is None:
        return None
    from ..tlsfiles import TlsFileError, check_pairs
    try:
        if t.certificate:
            check_pairs((t.certificate,), (t.certificate_key,), t.passwords, files)
        if t.trusted_certificate:
            files.ca_file(t.trusted_certificate)
    except TlsFileError as e:
        return str(e)
    return None


ROWS = [
    row("proxy_ssl", "proxy_ssl", MS, Args.TAKE1, proxy_ssl, field="proxy_ssl",
        default="off", dialects=EXTENSION, syntax="on | off | starttls", default_text="off",
        doc="TLS to the backend: on (implicit TLS) or starttls (STLS / STARTTLS before "
            "the login) (docs/backend-tls.md)"),
    row("proxy_ssl_verify", "proxy_ssl", MS, Args.FLAG, flag_slot, field="proxy_ssl_verify",
        default=False, dialects=EXTENSION, default_text="off",
        doc="verify the backend's certificate and name"),
    row("proxy_ssl_trusted_certificate", "proxy_ssl", MS, Args.TAKE1, path_slot,
        field="proxy_ssl_trusted_certificate", default="", dialects=EXTENSION,
        syntax="file", doc="CAs the backend's certificate is verified against"),
    row("proxy_ssl_name", "proxy_ssl", MS, Args.TAKE1, str_slot, field="proxy_ssl_name",
        default="", dialects=EXTENSION, syntax="name", default_text="the Auth-Server value",
        doc="the name the backend's certificate must carry (and the SNI sent)"),
    row("proxy_ssl_server_name", "proxy_ssl", MS, Args.FLAG, flag_slot,
        field="proxy_ssl_server_name", default=False, dialects=EXTENSION,
        default_text="off", doc="send the name as SNI (always sent with proxy_ssl_verify)"),
    row("proxy_ssl_certificate", "proxy_ssl", MS, Args.TAKE1, path_slot,
        field="proxy_ssl_certificate", default="", dialects=EXTENSION, syntax="file",
        doc="client certificate for the backend (mutual TLS)"),
    row("proxy_ssl_certificate_key", "proxy_ssl", MS, Args.TAKE1, path_slot,
        field="proxy_ssl_certificate_key", default="", dialects=EXTENSION, syntax="file",
        doc="key of proxy_ssl_certificate"),
    row("proxy_ssl_password_file", "proxy_ssl", MS, Args.TAKE1, proxy_password_file,
        field="proxy_ssl_password_file", default=(), dialects=EXTENSION, syntax="file",
        doc="passphrases for an encrypted proxy_ssl_certificate_key"),
    row("proxy_ssl_protocols", "proxy_ssl", MS, Args.ONEMORE,
        bitmask_slot(lambda dialect: PROTOCOL_WORDS), field="proxy_ssl_protocols",
        default=frozenset(("TLSv1.2", "TLSv1.3")), merge=Merge.BITMASK,
        dialects=EXTENSION, syntax="[TLSv1] [TLSv1.1] [TLSv1.2] [TLSv1.3]",
        default_text="TLSv1.2 TLSv1.3", doc="protocol versions offered to the backend"),
    row("proxy_ssl_ciphers", "proxy_ssl", MS, Args.TAKE1, str_slot, field="proxy_ssl_ciphers",
        default="DEFAULT", dialects=EXTENSION, syntax="ciphers", default_text="DEFAULT",
        doc="OpenSSL cipher list offered to the backend (TLS 1.2 and below)"),
    row("proxy_ssl_session_reuse", "proxy_ssl", MS, Args.FLAG, flag_slot,
        field="proxy_ssl_session_reuse", default=True, dialects=EXTENSION,
        default_text="on", doc="resume the last TLS session with the same backend"),
]
