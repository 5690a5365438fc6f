"""Mail-specific lint warnings, beyond what Angie checks.

They look at the merged servers and at the statements that configured them, and never
change the ``-t`` verdict.  Every rule is described, with an example and its fix, in
docs/lint.md; the one-line summaries and fixes are in ``angie_mail.lint.RULES``.

* ``plaintext-auth``: a non-loopback listener without TLS where passwords are accepted
  (POP3 USER/PASS, IMAP LOGIN and SMTP AUTH are always allowed unless ``starttls only``);
* ``oauth-line-too-short``: XOAUTH2/OAUTHBEARER enabled for POP3 while the pre-auth
  line is 128 bytes (real bearer tokens are ~2 KB);
* ``auth-http-cleartext``: ``auth_http`` to a non-loopback host over plain HTTP (the
  request carries the client's password);
* ``weak-tls-protocol``: a TLS server allows SSLv2/SSLv3/TLSv1/TLSv1.1: set explicitly,
  or (once per configuration) by the default ``ssl_protocols`` when the OpenSSL the proxy
  uses can negotiate them (:func:`negotiable`);
* ``smtp-mail-without-tls``: an SMTP server with ``starttls only`` and ``smtp_auth none``
  on a non-loopback listener without ``ssl``: ``starttls only`` refuses only AUTH, so
  mail is accepted in clear text (Angie's MX semantics);
* ``backend-tls-unverified``: ``proxy_ssl`` (angie-mail) without ``proxy_ssl_verify``;
* ``owner-lockout``: ``auth_throttle`` with ``login=`` and no trust (angie-mail);
* ``limit-conn-too-low``: a ``limit_conn`` that well-behaved clients exceed;
* ``other-protocol-directive``: ``smtp_*`` in an IMAP server and the like (ignored);
* ``split-capability``, ``misspelled-capability``, ``unservable-capability``,
  ``capability-reply-text``, ``starttls-capability``: ``*_capabilities`` lists that do
  not say what was meant, or advertise what the proxy refuses before login;
* ``mail-without-server``: a ``mail {}`` that opens no socket;
* ``auth-http-header-variable``: a ``$variable`` in ``auth_http_header`` (sent as is);
* ``auth-on-mx``: AUTH offered by an ``smtp_auth none`` server on port 25;
* ``mx-requires-auth``: an SMTP server on port 25 whose ``smtp_auth`` lacks ``none``;
* ``auth-http-header-replaced``: a server's ``auth_http_header`` lines that drop the
  mail-level ones (the list is replaced, not extended).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import socket
from functools import lru_cache

from ..errors import ConfError

WEAK = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")


def _loopback(addr) -> bool:
    if addr.family == socket.AF_UNIX:
        return True
    try:
        return ipaddress.ip_address(addr.host).is_loopback
    except ValueError:
        return False


def block_stmts(parsed, stmts):
    """The statements of one block, with the files it includes spliced in (not the
    statements of nested blocks)."""
    for st in stmts:
        if st.includes and st.words[0].value == "include":
            for idx in st.includes:
                yield from block_stmts(parsed, parsed.files[idx].stmts)
        else:
            yield st


class Scope:
    """What the rules look at: the analysis, and the statements of each level."""

    def __init__(self, an, context: str):
        self.an = an
        self.parsed = an.parsed
        self.context = context
        self.out: list = []
        self._seen: set = set()
        self._ends = None
        self._levels: dict = {}

    def stmts_of(self, lv) -> list:
        """Statements of a level (a server's block, or every ``mail {}`` block)."""
        if lv is None:
            return []
        got = self._levels.get(id(lv))
        if got is None:
            got = self._levels[id(lv)] = self._stmts_of(lv)
        return got

    def _stmts_of(self, lv) -> list:
        if lv is self.an.mail:
            if self.context == "mail":
                return list(block_stmts(self.parsed, self.parsed.main.stmts))
            out = []
            for st in self.mail_blocks():
                out += block_stmts(self.parsed, st.block or ())
            return out
        if lv.stmt is not None:
            return list(block_stmts(self.parsed, lv.stmt.block or ()))
        return list(block_stmts(self.parsed, self.parsed.main.stmts))

    def mail_blocks(self) -> list:
        if self.context != "main":
            return []
        return [st for st in block_stmts(self.parsed, self.parsed.main.stmts)
                if st.words[0].value == "mail" and st.block is not None]

    def stmt_of(self, field: str, *levels):
        """The statement that set ``field`` at the first of ``levels`` that sets it."""
        for lv in levels:
            if lv is not None:
                st = lv.extra.get("stmts", {}).get(field)
                if st is not None:
                    return st
        return None

    def stmt_at(self, pos, name: str):
        """The ``name`` statement ending at ``pos`` (a Pos the merge recorded)."""
        if self._ends is None:
            self._ends = {}
            for st, _ in _walk(self.parsed):
                self._ends.setdefault((st.file, st.end_line, st.words[0].value), st)
        return self._ends.get((pos.file, pos.line, name))

    def add(self, rule: str, message: str, st=None, hint: str = "", pos=None) -> None:
        if st is not None:
            f = ConfError(message, st.file, st.end_line, col=st.col, level="warn",
                          kind="lint", start_line=st.line, rule=rule)
        else:
            f = ConfError(message, pos.file if pos else None, pos.line if pos else 0,
                          level="warn", kind="lint", rule=rule)
        key = (rule, f.file, f.start_line, message)
        if key in self._seen:
            return
        self._seen.add(key)
        f.hint = hint
        self.out.append(f)


def _walk(parsed):
    from .tree import walk
    return walk(parsed)


def check(an, context: str = "main") -> list:
    """Findings for an analysed configuration (``an``: the Analyzer after the merge)."""
    sc = Scope(an, context)
    mail = an.mail
    for st, _ in _walk(sc.parsed):
        name = st.words[0].value
        if name in CAPABILITIES and st.block is None:
            _capabilities(sc, st, name.split("_")[0])
        elif name == "auth_http_header" and len(st.words) == 3 and st.block is None:
            _header_variables(sc, st)
    if an.mail is not None and not an.servers:
        blocks = sc.mail_blocks()
        if blocks:
            sc.add("mail-without-server", "mail {} has no server {}: it opens no socket",
                   blocks[0], "add a server { listen ...; }, or remove mail {}")
    default_weak = []               # (server, Level) using the default ssl_protocols
    seen = set()                    # (rule, position) of findings on inherited lines
    for srv, lv in an.server_pairs:
        proto = srv.protocol
        for st in sc.stmts_of(lv):
            name = st.words[0].value
            other = name.split("_")[0]
            if other in PROTOCOLS and other != proto and "_" in name:
                article = "a" if proto == "pop3" else "an"
                sc.add("other-protocol-directive",
                       f'"{name}" has no effect in {article} {proto} server', st,
                       f"move it to the {other} server it is meant for, or to mail {{}}")
        _starttls_capability(sc, srv, lv)
        _header_list_replaced(sc, lv, mail)
        if proto == "smtp" and "none" in srv.smtp_auth and len(srv.smtp_auth) > 1 \
                and any(l.addr.port == 25 for l in srv.listens):
            mechs = " ".join(m.upper() for m in SMTP_MECHANISMS if m in srv.smtp_auth)
            sc.add("auth-on-mx",
                   f"smtp_auth offers AUTH {mechs} on port 25 (an MX): no MTA "
                   f"authenticates there, password guessers do",
                   sc.stmt_of("smtp_auth", lv, mail),
                   'use "smtp_auth none;" on port 25 and offer AUTH on 587 or 465',
                   pos=srv.pos)
        if proto == "smtp" and "none" not in srv.smtp_auth \
                and any(l.addr.port == 25 for l in srv.listens):
            sc.add("mx-requires-auth",
                   "smtp_auth has no \"none\" on port 25 (an MX): other MTAs never "
                   "authenticate, so every MAIL FROM gets 530 5.7.1 Authentication "
                   "required and no inbound mail is accepted",
                   sc.stmt_of("smtp_auth", lv, mail),
                   'add "none" to smtp_auth on port 25 (the auth server then decides by '
                   'sender and recipient), and offer AUTH on 587 or 465', pos=srv.pos)
        password_auth = not (proto == "smtp" and srv.smtp_auth == frozenset({"none"}))
        if srv.starttls != "only" and password_auth:
            for l in srv.listens:
                if l.ssl or _loopback(l.addr):
                    continue
                hint = "add ssl to the listen or set starttls only" if srv.ssl else \
                    "use listen ... ssl or starttls only"
                sc.add("plaintext-auth",
                       f"passwords are accepted in clear text on {l.text} ({proto})",
                       sc.stmt_at(l.pos, "listen"), hint, pos=l.pos)
        if proto == "pop3" and {"xoauth2", "oauthbearer"} & srv.pop3_auth \
                and srv.pop3_client_buffer < 2048:
            sc.add("oauth-line-too-short",
                   f"xoauth2/oauthbearer are enabled but POP3 command lines are limited to "
                   f"{srv.pop3_client_buffer} bytes: real OAuth tokens (~2 KB) cannot be sent",
                   sc.stmt_of("pop3_auth", lv, mail),
                   "angie-mail extension: pop3_client_buffer 4k", pos=srv.pos)
        ah = srv.auth_http
        if ah is not None and not _loopback(ah.addr):
            sc.add("auth-http-cleartext",
                   f'auth_http "{ah.url}" sends client passwords over plain HTTP to a '
                   f'non-loopback host', sc.stmt_at(ah.pos, "auth_http"),
                   "run the auth server on loopback or a unix: socket, or protect the "
                   "network path", pos=ah.pos)
        if proto == "smtp" and srv.starttls == "only" and "none" in srv.smtp_auth:
            st = sc.stmt_of("starttls", lv, mail)
            for l in srv.listens:
                if l.ssl or _loopback(l.addr):
                    continue
                sc.add("smtp-mail-without-tls",
                       f"starttls only does not cover MAIL and RCPT: with smtp_auth none, "
                       f"mail is accepted in clear text on {l.text}", st,
                       "accept this for an MX (RFC 3207 forbids requiring TLS on port 25), "
                       "or use listen ... ssl", pos=l.pos)
        t = srv.proxy_ssl
        if t is not None and not t.verify:
            sc.add("backend-tls-unverified",
                   f"proxy_ssl {t.mode} without proxy_ssl_verify: the backend's certificate "
                   f"is not checked, so anyone on the path can take the passwords sent to it",
                   sc.stmt_of("proxy_ssl", lv, mail),
                   "proxy_ssl_verify on; with proxy_ssl_trusted_certificate and "
                   "proxy_ssl_name", pos=srv.pos)
        _abuse(sc, srv, seen)
        if an.check_files:
            _secret_files(sc, srv, lv, mail)
        if srv.ssl:
            st = sc.stmt_of("ssl_protocols", lv, mail)
            if st is None:
                default_weak.append((srv, lv))
            else:
                weak = [p for p in WEAK if p in srv.ssl_protocols]
                if weak:
                    sc.add("weak-tls-protocol",
                           f"weak TLS protocols enabled: {' '.join(weak)}", st,
                           'use "ssl_protocols TLSv1.2 TLSv1.3;"')
    _default_protocols(sc, default_weak)
    return sc.out


def _secret_files(sc, srv, lv, mail) -> None:
    """Private keys and ticket keys that every local user can read (--check-files)."""
    files = [("ssl_certificate_key", p, "private key") for p in srv.ssl_certificate_key]
    files += [("ssl_session_ticket_key", p, "session ticket key")
              for p in srv.ssl_session_ticket_key]
    t = srv.proxy_ssl
    if t is not None and t.certificate_key:
        files.append(("proxy_ssl_certificate_key", t.certificate_key, "private key"))
    for name, path, what in files:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue                    # -t's business
        if mode & 0o004:
            sc.add("secret-readable",
                   f'{what} "{path}" is readable by every user of this machine '
                   f'(mode {mode & 0o777:04o})', sc.stmt_of(name, lv, mail),
                   f"chmod o-rwx {path}: the master reads it as root before the workers "
                   f"start", pos=srv.pos)


# the fewest sessions per key a limit_conn should allow: IMAP clients open several
# connections per account (Thunderbird up to 5 by default); many users share one
# address behind NAT (an office, a mobile carrier)
USER_CONNECTIONS = {"imap": 5, "pop3": 1, "smtp": 2}   # (POP3 servers lock the maildrop)
ADDR_CONNECTIONS = 10


def _abuse(sc, srv, seen) -> None:
    """The brute-force defence (angie-mail): settings that lock out the people it
    protects.  A line inherited by several servers is reported once."""
    t = srv.auth_throttle
    if t is not None and t.login is not None and not t.trust and \
            ("owner-lockout", t.pos) not in seen:
        seen.add(("owner-lockout", t.pos))
        sc.add("owner-lockout",
               f"auth_throttle counts failures per login (login={t.login[0]}/...) with "
               f"auth_throttle_trust off: anyone who knows a login can keep its owner "
               f"locked out from everywhere", sc.stmt_at(t.pos, "auth_throttle"),
               "keep auth_throttle_trust (7d by default), so clients that logged in "
               "recently are exempt; or drop login=", pos=t.pos)
    for lc in srv.limit_conn:
        low = USER_CONNECTIONS[srv.protocol] if lc.key == "$remote_user" else \
            ADDR_CONNECTIONS if lc.key == "$remote_addr" else 0
        if lc.number < low and ("limit-conn-too-low", lc.pos) not in seen:
            seen.add(("limit-conn-too-low", lc.pos))
            who = (f"{srv.protocol.upper()} clients open several connections per account"
                   if lc.key == "$remote_user" else
                   "users behind one NAT address (an office, a carrier) share it")
            sc.add("limit-conn-too-low",
                   f"limit_conn {lc.zone} {lc.number} by {lc.key}: {who}, and a client "
                   f"over the limit is refused with a temporary error it may show as a "
                   f"password prompt", sc.stmt_at(lc.pos, "limit_conn"),
                   f"allow at least {low} per "
                   + ("user" if lc.key == "$remote_user" else "address"), pos=lc.pos)


def _default_protocols(sc, servers) -> None:
    """The default ssl_protocols (nginx 1.22's include TLSv1 and TLSv1.1): reported once,
    for the protocols the proxy's OpenSSL would really negotiate."""
    weak = []
    ciphers = ""
    first = None
    for srv, lv in servers:
        for p in WEAK:
            if p in srv.ssl_protocols and p not in weak and negotiable(p, srv.ssl_ciphers):
                weak.append(p)
                ciphers = ciphers or srv.ssl_ciphers
                first = first or (srv, lv)
    if not weak:
        return
    srv, lv = first
    weak.sort(key=WEAK.index)
    st = sc.stmt_of("starttls", lv, sc.an.mail) if not any(l.ssl for l in srv.listens) \
        else None
    if st is None:
        st = next((s for s in sc.stmts_of(lv) if s.words[0].value == "listen"
                   and any(w.value == "ssl" for w in s.words[2:])), None)
    if st is None:
        st = sc.stmt_of("ssl_enable", lv, sc.an.mail)
    default = " ".join(p for p in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
                       if p in srv.ssl_protocols)
    which = "nginx 1.22" if sc.an.dialect == "nginx" else "Angie"
    sc.add("weak-tls-protocol",
           f"the default ssl_protocols ({default} in {which}) includes {' '.join(weak)}, "
           f'which this OpenSSL negotiates with ssl_ciphers "{ciphers}"', st,
           'set "ssl_protocols TLSv1.2 TLSv1.3;" in mail {}', pos=srv.pos)


# --- capabilities -----------------------------------------------------------------------

PROTOCOLS = ("pop3", "imap", "smtp")
CAPABILITIES = ("pop3_capabilities", "imap_capabilities", "smtp_capabilities")
SMTP_MECHANISMS = ("plain", "login", "cram-md5", "external", "xoauth2", "oauthbearer")
# capability names in use (IANA registries, and common vendor ones)
KNOWN = {
    "imap": """IMAP4 IMAP4rev1 IMAP4rev2 ACL ANNOTATE-EXPERIMENT-1 APPENDLIMIT BINARY
        CATENATE CHILDREN COMPRESS=DEFLATE CONDSTORE CONTEXT=SEARCH CONTEXT=SORT CONVERT
        CREATE-SPECIAL-USE ENABLE ESEARCH ESORT FILTERS I18NLEVEL=1 I18NLEVEL=2 ID IDLE
        IMAPSIEVE= INPROGRESS LANGUAGE LIST-EXTENDED LIST-METADATA LIST-MYRIGHTS
        LIST-STATUS LITERAL+ LITERAL- LOGIN-REFERRALS LOGINDISABLED MAILBOX-REFERRALS
        METADATA METADATA-SERVER MOVE MULTIAPPEND MULTISEARCH NAMESPACE NOTIFY OBJECTID
        PARTIAL PREVIEW QRESYNC QUOTA QUOTASET REPLACE SASL-IR SAVEDATE SEARCH=FUZZY
        SEARCHRES SORT SORT=DISPLAY SPECIAL-USE STARTTLS STATUS=SIZE THREAD=ORDEREDSUBJECT
        THREAD=REFERENCES THREAD=REFS UIDONLY UIDPLUS UNAUTHENTICATE UNSELECT URL-PARTIAL
        URLAUTH URLAUTH=BINARY UTF8=ACCEPT UTF8=ONLY WITHIN XLIST X-GM-EXT-1
        AUTH=PLAIN AUTH=LOGIN AUTH=CRAM-MD5 AUTH=EXTERNAL AUTH=XOAUTH2
        AUTH=OAUTHBEARER""".split(),
    "smtp": """8BITMIME AUTH BINARYMIME BURL CHUNKING CONPERM CONNEG DELIVERBY DSN
        ENHANCEDSTATUSCODES ETRN EXPN FUTURERELEASE HELP LIMITS MT-PRIORITY MTRK
        NO-SOLICITING PIPELINING REQUIRETLS RRVS SIZE SMTPUTF8 STARTTLS SUBMITTER VRFY
        XCLIENT XFORWARD""".split(),
    "pop3": """TOP USER SASL RESP-CODES LOGIN-DELAY PIPELINING EXPIRE UIDL IMPLEMENTATION
        AUTH-RESP-CODE STLS UTF8 LANG""".split(),
}
KNOWN_UPPER = {p: {c.upper() for c in caps} for p, caps in KNOWN.items()}
# capabilities whose line carries parameters after a space (SMTP and POP3 only)
WITH_PARAMETERS = {"smtp": {"SIZE", "AUTH", "DELIVERBY", "MT-PRIORITY", "LIMITS", "MTRK",
                            "FUTURERELEASE"},
                   "pop3": {"EXPIRE", "LOGIN-DELAY", "SASL", "IMPLEMENTATION", "LANG",
                            "UTF8"}}
REPLY_TEXT = {"smtp": re.compile(r"^(\d{3}[- ])"), "pop3": re.compile(r"^(\+OK ?)", re.I),
              "imap": re.compile(r"^(\* CAPABILITY ?|\* )", re.I)}
REPLY = {"smtp": "EHLO reply", "pop3": "CAPA reply", "imap": "CAPABILITY reply"}
STARTTLS_WORD = {"smtp": "STARTTLS", "imap": "STARTTLS", "pop3": "STLS"}


def _known(proto: str, cap: str) -> bool:
    c = cap.upper()
    if c in KNOWN_UPPER[proto]:
        return True
    if proto == "imap":
        return c.startswith(("AUTH=", "QUOTA=", "RIGHTS=", "IMAPSIEVE=", "THREAD=",
                             "COMPRESS=", "CONTEXT=", "I18NLEVEL=", "UTF8=", "SORT="))
    return c.split(" ", 1)[0] in KNOWN_UPPER[proto]


def _suggest(proto: str, cap: str):
    c = cap.upper()
    squeezed = c.replace(" ", "")
    if squeezed != c and _known(proto, squeezed):
        return next((k for k in KNOWN[proto] if k.upper() == squeezed), squeezed)
    key = c.split(" ", 1)[0] if proto != "imap" else c
    m = difflib.get_close_matches(key, KNOWN[proto], n=1, cutoff=0.75)
    return m[0] if m else None


def _capabilities(sc, st, proto: str) -> None:
    words = st.words[1:]
    i = 0
    while i < len(words):
        w = words[i]
        cap = w.value
        i += 1
        nxt = words[i] if i < len(words) else None
        if nxt is not None and not w.quoted and not nxt.quoted and \
                _split(proto, cap, nxt.value):
            joined = cap + nxt.value if proto == "imap" else f"{cap} {nxt.value}"
            where = f", two lines of the {REPLY[proto]}" if proto != "imap" else ""
            hint = f'quote them as one: "{joined}"' if proto != "imap" else f"write {joined}"
            sc.add("split-capability",
                   f'"{cap}" and "{nxt.value}" are two capabilities{where}', st, hint)
            i += 1
            continue
        m = REPLY_TEXT[proto].match(cap)
        if m:
            rest = cap[m.end():]
            sc.add("capability-reply-text",
                   f'"{cap}" holds reply text: the proxy writes "{m.group(1)}" itself', st,
                   f'write the capability only: "{rest}"')
            continue
        upper = cap.upper()
        if proto == "imap" and upper == "ID":
            sc.add("unservable-capability",
                   '"ID" makes clients send ID before login, which the proxy answers with '
                   '"BAD invalid command"', st, "remove ID: the backend offers it after login")
            continue
        if proto == "smtp" and upper.split(" ")[0] in ("CHUNKING", "BDAT"):
            sc.add("unservable-capability",
                   f'"{cap}" makes clients send BDAT with the message right behind it; where '
                   f'the proxy answers itself (a refused RCPT, a failed AUTH) it refuses BDAT '
                   f'and reads the message as commands', st,
                   f"remove {cap}: clients then send DATA, which waits for the go-ahead")
            continue
        if cap and not _known(proto, cap) and not cap.isdigit():
            spaced = proto == "imap" and " " in cap
            if spaced and all(_known(proto, part) for part in cap.split()):
                continue        # several capabilities in one string: shown the same
            guess = _suggest(proto, cap)
            if spaced or guess:
                why = " (IMAP capabilities are single words)" if spaced else ""
                sc.add("misspelled-capability",
                       f'"{cap}" is not an {proto.upper()} capability{why}', st,
                       f"did you mean {guess}?" if guess else
                       "write each capability as an argument of its own")


def _split(proto: str, first: str, second: str) -> bool:
    """Whether two bare words were meant as one capability."""
    if proto == "imap":
        return not _known(proto, first) and _known(proto, first + second)
    if second.isdigit():
        return not first.isdigit()
    return first.upper() in WITH_PARAMETERS[proto] and not _known(proto, second)


def _starttls_capability(sc, srv, lv) -> None:
    proto = srv.protocol
    field = f"{proto}_capabilities"
    word = STARTTLS_WORD[proto]
    caps = getattr(srv, field)
    if not any(c.upper() == word for c in caps):
        return
    level = lv if field in lv.values else sc.an.mail
    st = next((s for s in sc.stmts_of(level) if s.words[0].value == field
               and any(w.value.upper() == word for w in s.words[1:])), None)
    if srv.starttls == "off":
        sc.add("starttls-capability",
               f"{word} is advertised but starttls is off: the proxy refuses {word}", st,
               f'remove {word} from {field} and set "starttls on;" (the proxy advertises it '
               f'then)', pos=srv.pos)
    else:
        sc.add("starttls-capability",
               f'{word} is listed in {field} and added by "starttls {srv.starttls}": '
               f'clients see it twice', st, f"remove {word} from {field}", pos=srv.pos)


_VARIABLE = re.compile(r"\$(\{?[A-Za-z_][A-Za-z0-9_]*\}?)")


def _header_list_replaced(sc, lv, mail) -> None:
    """auth_http_header is a list that a server's own lines replace, not extend: the
    mail-level headers it does not repeat (a shared secret, often) are not sent."""
    own = lv.values.get("auth_http_header")
    inherited = mail.values.get("auth_http_header") if mail is not None else None
    if not own or not inherited:
        return
    names = {name.lower() for name, _v in own}
    lost = [name for name, _v in inherited if name.lower() not in names]
    if lost:
        sc.add("auth-http-header-replaced",
               f"auth_http_header in this server replaces the mail-level list: "
               f"{', '.join(lost)} is not sent for this server",
               sc.stmt_of("auth_http_header", lv),
               "repeat the mail-level auth_http_header lines in this server")


def _header_variables(sc, st) -> None:
    for w in st.words[1:]:
        m = _VARIABLE.search(w.value)
        if m:
            sc.add("auth-http-header-variable",
                   f'"{w.value}" is sent as it is: the mail modules expand no variables', st,
                   "the auth request carries Client-IP, Client-Host and Auth-* headers "
                   "already (docs/auth_http.md)")
            return


# --- which protocol versions the proxy's OpenSSL negotiates ------------------------------

@lru_cache(maxsize=1)
def _probe_identity():
    """A throw-away EC certificate and key (PEM) for :func:`negotiable`."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "angie-mail lint probe")])
    start = datetime.datetime(2000, 1, 1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=365 * 200))
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


@lru_cache(maxsize=None)
def negotiable(protocol: str, ciphers: str) -> bool:
    """Whether a server context as the proxy builds it (proxy/tls.py, the same OpenSSL),
    limited to ``protocol`` and with ``ssl_ciphers`` ``ciphers``, completes a handshake
    with a client that accepts anything (``@SECLEVEL=0``).  OpenSSL 3 and later refuse
    TLSv1 and TLSv1.1 at security level 1 and above (their handshake signatures use
    SHA-1 or MD5-SHA1), so at the default level they are not negotiated; ``@SECLEVEL=0``
    in ``ssl_ciphers`` brings them back.  SSLv2 and SSLv3 are never enabled."""
    import ssl
    import tempfile
    version = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
               "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3
               }.get(protocol)
    if version is None:
        return False
    try:
        cert, key = _probe_identity()
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.minimum_version = server.maximum_version = version
        server.set_ciphers(ciphers)         # SSL_CTX_set_cipher_list, as the proxy
        with tempfile.TemporaryDirectory(prefix="angie-mail-probe-") as d:
            path = os.path.join(d, "probe.pem")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "wb") as f:
                f.write(key + cert)
            server.load_cert_chain(path)
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        client.minimum_version = client.maximum_version = version
        client.set_ciphers("ALL:@SECLEVEL=0")
    except (ssl.SSLError, ValueError, OSError):
        return False
    bios = [ssl.MemoryBIO() for _ in range(2)]
    s = server.wrap_bio(bios[0], bios[1], server_side=True)
    c = client.wrap_bio(bios[1], bios[0], server_side=False)
    done = {id(s): False, id(c): False}
    for _ in range(8):
        for me in (c, s):
            if not done[id(me)]:
                try:
                    me.do_handshake()
                    done[id(me)] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    return False
        if all(done.values()):
            return s.version() == protocol
    return False
