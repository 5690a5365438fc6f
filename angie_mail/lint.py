"""``angie-mail lint``: every finding in one run, for CI.

    angie-mail lint [--format text|json|sarif] [--dialect angie-mail|angie|nginx]
                    [--context main|events|mail|server] [-p PREFIX] [--check-files]
                    [--fail-on error|warning] [FILE ... | -]

Unlike ``-t`` (which stops at the first error, as Angie does), lint keeps going where
the structure allows and adds mail-specific warnings (conf/lint_rules.py).  Files that
the configuration names (certificates, logs) are only checked with ``--check-files``,
so that a repository can be linted away from the machine it deploys to.

Exit status: 0 clean, 1 findings (errors, or warnings unless ``--fail-on error``),
2 the tool itself failed (bad usage or an internal error).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
from typing import NamedTuple, Optional

from . import __version__


class Rule(NamedTuple):
    level: str          # "error" or "warning"
    summary: str        # one line: what is wrong
    fix: str            # one line: what to do


RULES = {
    "syntax": Rule("error", "Syntax error as nginx's tokenizer reports it",
                   "fix the quoting, the ';' or the braces at the reported line"),
    "include": Rule("error", "An included file cannot be read",
                    "fix the path (relative paths are taken under the directory of the "
                    "main configuration file, or --conf-dir)"),
    "unknown": Rule("error", "Unknown directive",
                    "fix the spelling, or choose the --dialect the configuration is for"),
    "not-allowed": Rule("error", "Directive not allowed in this context",
                        "move the directive to a block where it is allowed"),
    "arguments": Rule("error", "Wrong number of arguments",
                      "give the number of arguments the directive takes (quote a value "
                      "that contains spaces)"),
    "value": Rule("error", "Invalid directive value", "use a value the directive accepts"),
    "merge": Rule("error", "Server configuration incomplete after inheritance",
                  "set the missing directive in the server or at mail level"),
    "error": Rule("error", "Configuration error", "see the message"),
    "nginx-warning": Rule("warning", "Warning that nginx/Angie print too", "see the message"),
    "not-portable": Rule("warning", "angie-mail extension that Angie does not accept",
                         "remove it when the configuration must also run on Angie"),
    "plaintext-auth": Rule("warning", "Passwords accepted without TLS",
                           "use listen ... ssl, or starttls only"),
    "oauth-line-too-short": Rule("warning",
                                 "OAuth mechanisms unusable with 128-byte POP3 lines",
                                 "pop3_client_buffer 4k (angie-mail), or drop xoauth2 and "
                                 "oauthbearer from pop3_auth"),
    "auth-http-cleartext": Rule("warning", "auth_http over plain HTTP to a remote host",
                                "run the auth server on loopback or a unix: socket"),
    "weak-tls-protocol": Rule("warning", "Obsolete TLS protocol versions enabled",
                              'use "ssl_protocols TLSv1.2 TLSv1.3;"'),
    "host-not-found": Rule("error", "A host name in the configuration does not resolve "
                           "(checked with --resolve)",
                           "fix the name, or use an address"),
    "backend-tls-unverified": Rule("warning", "TLS to the backend without verifying it",
                                   "proxy_ssl_verify on; with proxy_ssl_trusted_certificate"),
    "owner-lockout": Rule("warning", "Failed-login throttling that can lock out a login's "
                          "owner", "keep auth_throttle_trust, or drop login="),
    "limit-conn-too-low": Rule("warning", "Connection limit that well-behaved clients "
                               "exceed", "allow more sessions per key"),
    "smtp-mail-without-tls": Rule("warning", "MX accepts mail in clear text under "
                                  "starttls only", "accept it for an MX on port 25, or use "
                                  "listen ... ssl"),
    "other-protocol-directive": Rule("warning", "Another protocol's directive in a server "
                                     "(ignored there)", "move it to the server of that "
                                     "protocol, or to mail {}"),
    "split-capability": Rule("warning", "One capability written as two words",
                             'quote it as one: smtp_capabilities "SIZE 50000000";'),
    "misspelled-capability": Rule("warning", "Capability name that does not exist",
                                  "use the name the protocol defines"),
    "unservable-capability": Rule("warning", "Capability that makes clients send what the "
                                  "proxy refuses before login", "remove it (IMAP ID, SMTP "
                                  "CHUNKING)"),
    "capability-reply-text": Rule("warning", "Reply text (250-, +OK, * CAPABILITY) in a "
                                  "capability", "write the capability only"),
    "starttls-capability": Rule("warning", "STARTTLS/STLS written in the capabilities",
                                "remove it and use the starttls directive"),
    "mail-without-server": Rule("warning", "mail {} without server {}",
                                "add a server, or remove mail {}"),
    "auth-http-header-variable": Rule("warning", "$variable in auth_http_header (sent as "
                                      "it is)", "remove it: the mail modules expand no "
                                      "variables"),
    "auth-on-mx": Rule("warning", "AUTH offered on an smtp_auth none server on port 25",
                       'use "smtp_auth none;" on port 25, AUTH on 587/465'),
    "auth-http-header-replaced": Rule("warning", "A server's auth_http_header lines drop "
                                      "the mail-level ones",
                                      "repeat the mail-level lines in the server"),
    "mx-requires-auth": Rule("warning", "An SMTP server on port 25 whose smtp_auth lacks "
                             "none: it refuses all inbound mail",
                             'add "none" to smtp_auth on port 25, AUTH on 587/465'),
    "secret-readable": Rule("warning", "Private key or ticket key readable by every local "
                            "user", "chmod o-rwx the file"),
}

LEVEL_NAMES = ("warn", "notice", "info")


class Finding(NamedTuple):
    """One finding, as every output format shows it."""
    file: Optional[str]         # as given on the command line (or reached by include)
    line: int                   # where the statement starts; 0: the whole file
    column: int                 # 1-based, in characters; 0 with line 0
    end_line: int               # where nginx reports it (the ";" or "{")
    level: str                  # "error" | "warning"
    rule: str
    message: str
    nginx_message: str          # the text Angie prints after "[emerg] "
    hint: str = ""


def rule_of(f) -> str:
    if f.rule:
        return f.rule
    return f.kind if f.kind in RULES else "error"


def _level(f) -> str:
    return "warning" if f.level in LEVEL_NAMES else "error"


def _hint(err, rule: str) -> str:
    hint = getattr(err, "hint", "")
    if hint:
        return hint
    if err.message in ('unknown directive "ssl"', 'the "ssl" directive is deprecated, use '
                       'the "listen ... ssl" directive instead'):
        return 'use "listen ... ssl" for implicit TLS (the "ssl" directive was removed ' \
               'from Angie)'
    return ""


class HostNames:
    """Host name lookups while linting (installed as ``conf.url.lookup``).

    Without ``--resolve`` no name is looked up: a configuration is linted away from the
    network it deploys to, and CI runs must not depend on DNS.  A name then stands for
    an address of its own (127.0.0.1 for ``localhost``, else one of 198.18.0.0/15, never
    loopback), so the checks that follow (duplicate listens, loopback or not) still
    work.  With ``--resolve`` every name is looked up once; one that fails is reported
    once, at the first statement naming it, instead of failing the directive (which
    would make every server that inherits it look unconfigured)."""

    def __init__(self, resolve: bool):
        self.resolve = resolve
        self.found: dict = {}
        self.failed: list = []

    def __call__(self, host: str, port: int):
        from .conf.url import Addr, addr_text, system_lookup
        if host not in self.found:
            addrs = system_lookup(host, 0) if self.resolve else None
            if addrs is None:
                if self.resolve:
                    self.failed.append(host)
                n = len(self.found)
                ip = "127.0.0.1" if host.lower().rstrip(".") == "localhost" else \
                    f"198.{18 + (n >> 16 & 1)}.{n >> 8 & 255}.{n & 255}"
                addrs = [Addr(socket.AF_INET, ip, 0, ip)]
            self.found[host] = addrs
        return [a._replace(port=port, text=addr_text(a.family, a.host, port)
                           if self.resolve and host not in self.failed else f"{host}:{port}")
                for a in self.found[host]]

    def not_found(self, parsed) -> list:
        """host-not-found errors for ``parsed``: one per name, at its first statement."""
        from .conf.tree import walk
        from .errors import ConfError
        failed = set(self.failed)
        out = []
        for st, _ in walk(parsed):
            for host, message in _host_names(st):
                if host in failed:
                    failed.discard(host)
                    out.append(ConfError(message, st.file, st.end_line, col=st.col,
                                         kind="value", start_line=st.line,
                                         rule="host-not-found"))
        return out


def _host_names(st):
    """(host name, nginx's message if it is not found) for the names ``st`` holds."""
    from .conf.url import parse_url, ptocidr
    name = st.words[0].value
    vals = [w.value for w in st.words[1:]]
    if not vals:
        return
    if name == "auth_http":
        text = vals[0][7:] if vals[0].startswith("http://") else vals[0]
        u = parse_url(text, uri_part=True, default_port=80, no_resolve=True)
        if not u.err and not u.addrs:
            yield u.host, f'host not found in auth_http "{text}"'
    elif name == "listen":
        u = parse_url(vals[0], listen=True, no_resolve=True)
        if not u.err and not u.addrs:
            yield u.host, f'host not found in "{vals[0]}" of the "listen" directive'
    elif name == "resolver":
        for v in vals:
            if "=" in v or v in ("off", "conf"):
                continue
            u = parse_url(v, default_port=53, no_resolve=True)
            if not u.err and not u.addrs:
                yield u.host, f'host not found in resolver "{v}"'
    elif name in ("set_real_ip_from", "debug_connection"):
        if vals[0] != "unix:" and ptocidr(vals[0]) is None:
            yield vals[0], f'host not found in {name} "{vals[0]}"'
    elif name == "error_log" and vals[0].startswith("syslog:"):
        for p in vals[0][7:].split(","):
            if p.startswith("server="):
                u = parse_url(p[7:], default_port=514, no_resolve=True)
                if not u.err and not u.addrs:
                    yield u.host, f'host not found in syslog server "{p[7:]}"'


def conf_dir_of(path: str, args) -> str:
    """Where relative includes and TLS files are taken: --conf-dir; else, for a whole
    configuration, the directory of its file (nginx's conf prefix); else (a fragment,
    or stdin) the directory of the default main file, PREFIX/conf/."""
    from .conf.parse import conf_prefix_of
    if args.conf_dir:
        return args.conf_dir if args.conf_dir.endswith("/") else args.conf_dir + "/"
    if args.fragment or path == "-":
        return args.prefix + "conf/"
    return conf_prefix_of(path)


def lint_one(path: str, args) -> list:
    """Findings for one file given on the command line (and what it includes); paths
    stay as given: relative ones are relative to the current directory."""
    from .conf.analyze import analyze
    from .conf.lint_rules import check
    from .conf.parse import parse_file, parse_string
    conf_dir = conf_dir_of(path, args)
    if path == "-":
        name = "<stdin>"
        parsed = parse_string(sys.stdin.buffer.read(), name=name, context=args.context,
                              conf_prefix=conf_dir)
    else:
        name = path
        parsed = parse_file(path, context=args.context, conf_prefix=conf_dir)
    res = analyze(parsed, dialect=args.dialect, prefix=args.prefix, conf_prefix=conf_dir,
                  mode="lint", check_files=args.check_files)
    findings = list(res.findings)
    findings += args.hosts.not_found(parsed)
    findings += check(res.analyzer, args.context)
    pos = Positions(parsed)
    quiet = Suppressions(parsed)
    # past a syntax error the rest of that file is unknown: what the merge misses
    # (a server cut in the middle has no auth_http, no protocol) is not reported
    cut = any(f.error is not None and f.error.kind == "syntax" for f in parsed.files)
    out = []
    seen = set()
    for err in findings:
        rule = rule_of(err)
        if cut and (err.kind == "merge" or rule == "mail-without-server"):
            continue
        if args.fragment and rule == "mail-without-server":
            continue            # Angie joins every mail {}: the servers may be in another
        if err.message == 'no "events" section in configuration' and (
                args.fragment or parsed.main.error is not None):
            continue            # a fragment included at main level has its events {}
            #                     elsewhere; a file not read to its end may have one
        file = err.file if err.file is not None and err.line else name
        key = (rule, file, err.line, err.message)
        if key in seen:
            continue
        seen.add(key)
        line, col = pos.start(err) if file is err.file else (0, 0)
        f = Finding(file, line, col, err.line if line else 0, _level(err), rule,
                    err.message, err.text(), _hint(err, rule))
        if selected(f, args) and not quiet.covers(f):
            out.append(f)
    return out


class Positions:
    """Where a finding starts, in lines and characters.

    A finding keeps the line nginx reports (the ``;`` or ``{`` of its statement); one
    raised without a column (merge-time errors, which cite only FILE:LINE) gets the
    statement ending there, preferably the one the message names.  Columns count
    characters, not bytes, as editors and SARIF viewers do."""

    def __init__(self, parsed):
        from .conf.tree import walk
        self.raw = {f.path: f.raw for f in parsed.files}
        self.ends: dict = {}
        for st, _ in walk(parsed):
            self.ends.setdefault((st.file, st.end_line), []).append(st)

    def start(self, err):
        line, col = err.start_line, err.col
        if not col:
            sts = self.ends.get((err.file, err.line), [])
            named = [st for st in sts if f'for {st.words[0].value} in' in err.message
                     or f'"{st.words[0].value}"' in err.message]
            st = (named or sts or [None])[0]
            if st is None:
                return line, 1
            line, col = st.line, st.col
        return line, self.chars(err.file, line, col)

    def chars(self, file, line, col) -> int:
        raw = self.raw.get(file)
        if not raw or col <= 1:
            return max(col, 1)
        start = 0
        for _ in range(line - 1):
            start = raw.find(b"\n", start) + 1
            if start == 0:
                return col
        return len(raw[start:start + col - 1].decode("utf-8", "replace")) + 1


def as_text(findings) -> str:
    lines = []
    for f in findings:
        loc = f"{f.file}:{f.line}:{f.column}" if f.line else f.file
        lines.append(f"{loc}: {f.level}: {f.message} [{f.rule}]")
        if f.hint:
            lines.append(f"  hint: {f.hint}")
    return "".join(l + "\n" for l in lines)


def as_json(findings) -> str:
    items = [{"file": f.file, "line": f.line or None, "column": f.column or None,
              "end_line": f.end_line or None,
              "level": f.level, "rule": f.rule, "message": f.message,
              "nginx_message": f.nginx_message, "hint": f.hint} for f in findings]
    summary = {"errors": sum(1 for f in findings if f.level == "error"),
               "warnings": sum(1 for f in findings if f.level == "warning")}
    return json.dumps({"tool": "angie-mail", "version": __version__, "findings": items,
                       "summary": summary}, indent=2) + "\n"


DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lint.md")


def help_uri(rule: str) -> str:
    """The rule's section of docs/lint.md (shipped in the package as lint.md)."""
    import pathlib
    return pathlib.Path(os.path.realpath(DOCS)).as_uri() + "#" + rule


def artifact_uri(path: str) -> dict:
    """A SARIF artifactLocation: an absolute path as a file: URI, a relative one as a
    relative reference under %SRCROOT% (the current directory), percent-encoded (spaces,
    ``<stdin>``, non-ASCII bytes)."""
    from urllib.parse import quote
    raw = path.encode("utf-8", "surrogateescape")
    if path.startswith("/"):
        return {"uri": "file://" + quote(raw, safe="/")}
    return {"uri": quote(raw, safe="/"), "uriBaseId": "%SRCROOT%"}


def as_sarif(findings) -> str:
    import pathlib
    ids = list(RULES)
    results = []
    for f in findings:
        text = f.nginx_message + (f" (hint: {f.hint})" if f.hint else "")
        r = {"ruleId": f.rule, "ruleIndex": ids.index(f.rule), "level": f.level,
             "message": {"text": text}}
        loc = {"artifactLocation": artifact_uri(f.file)}
        if f.line:
            loc["region"] = {"startLine": f.line, "startColumn": f.column}
            if f.end_line and f.end_line != f.line:
                loc["region"]["endLine"] = f.end_line
        r["locations"] = [{"physicalLocation": loc}]
        results.append(r)
    rules = []
    for rid, r in RULES.items():
        rules.append({
            "id": rid,
            "name": "".join(w.capitalize() for w in rid.split("-")),
            "shortDescription": {"text": r.summary},
            "fullDescription": {"text": f"{r.summary}. Fix: {r.fix}."},
            "help": {"text": f"{r.summary}. Fix: {r.fix}. See docs/lint.md#{rid}.",
                     "markdown": f"**{r.summary}.** Fix: {r.fix}. See "
                                 f"[docs/lint.md]({help_uri(rid)})."},
            "helpUri": help_uri(rid),
            "defaultConfiguration": {"level": r.level}})
    cwd = pathlib.Path(os.getcwd()).as_uri().rstrip("/") + "/"
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "angie-mail", "version": __version__,
                                         "rules": rules}},
                     "originalUriBaseIds": {"%SRCROOT%": {"uri": cwd}},
                     "columnKind": "unicodeCodePoints",
                     "results": results}]}
    return json.dumps(doc, indent=2) + "\n"


class UsageError(Exception):
    """Bad options or settings: exit status 2."""


SETTINGS = ("select", "ignore", "fail-on", "dialect")


def find_pyproject(start: str):
    """The nearest pyproject.toml upward from ``start`` that has [tool.angie-mail]:
    (path, its [tool.angie-mail.lint] table), or (None, {})."""
    import tomllib
    d = os.path.abspath(start)
    while True:
        path = os.path.join(d, "pyproject.toml")
        if os.path.isfile(path):
            try:
                with open(path, "rb") as f:
                    doc = tomllib.load(f)
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise UsageError(f"{path}: {e}")
            tool = doc.get("tool", {}).get("angie-mail")
            if tool is not None:
                table = tool.get("lint", {}) if isinstance(tool, dict) else None
                if not isinstance(table, dict):
                    raise UsageError(f"{path}: [tool.angie-mail.lint] must be a table")
                return path, table
        parent = os.path.dirname(d)
        if parent == d:
            return None, {}
        d = parent


def rule_list(value, where: str) -> list:
    """Rule ids from "a,b", ["a", "b"] or repeated options; unknown ids are an error."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, str):
            raise UsageError(f"{where}: rule ids must be strings")
        for rid in item.split(","):
            rid = rid.strip()
            if not rid:
                continue
            if rid not in RULES:
                raise UsageError(f'{where}: unknown rule "{rid}"')
            out.append(rid)
    return out


def settings(args) -> None:
    """Fill args.select/ignore/fail_on/dialect: the command line over pyproject.toml
    over the defaults.  --select replaces a configured select; --ignore adds to a
    configured ignore."""
    path, table = find_pyproject(os.getcwd())
    where = f"{path}: [tool.angie-mail.lint]"
    for key in table:
        if key not in SETTINGS:
            raise UsageError(f'{where}: unknown setting "{key}"')
    for key, choices in (("fail-on", ("error", "warning")),
                         ("dialect", ("angie-mail", "angie", "nginx"))):
        if key in table and table[key] not in choices:
            raise UsageError(f'{where}: {key} must be one of ' + ", ".join(choices))
    select = rule_list(args.select, "--select") if args.select else \
        rule_list(table["select"], where) if "select" in table else None
    args.select = set(select) if select is not None else None
    args.ignore = set(rule_list(table.get("ignore", []), where)) | \
        set(rule_list(args.ignore or [], "--ignore"))
    args.fail_on = args.fail_on or table.get("fail-on", "warning")
    args.dialect = args.dialect or table.get("dialect", "angie-mail")


class Suppressions:
    """``# angie-mail: ignore[rule-id, ...]`` comments of the files read.  A comment
    after a statement covers the statement's lines; a comment alone on its line covers
    the statement that starts on the next line."""
    PATTERN = re.compile(rb"#\s*angie-mail:\s*ignore\[([^\]\n]*)\]")

    def __init__(self, parsed):
        self.same: dict = {}        # (file, line) -> rule ids
        self.next: dict = {}
        for f in parsed.files:
            if b"angie-mail:" not in f.raw:
                continue
            for n, line in enumerate(f.raw.split(b"\n"), 1):
                m = self.PATTERN.search(line)
                if m is None:
                    continue
                ids = {i.strip().decode("utf-8", "replace") for i in m.group(1).split(b",")}
                if line[:m.start()].strip(b" \t\r"):
                    self.same.setdefault((f.path, n), set()).update(ids)
                else:
                    self.next.setdefault((f.path, n + 1), set()).update(ids)

    def covers(self, f: Finding) -> bool:
        if not f.line:
            return False
        if f.rule in self.next.get((f.file, f.line), ()):
            return True
        return any(f.rule in self.same.get((f.file, n), ())
                   for n in range(f.line, max(f.end_line, f.line) + 1))


def selected(f: Finding, args) -> bool:
    return (args.select is None or f.rule in args.select) and f.rule not in args.ignore


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="angie-mail lint", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", help="configuration files, or - for stdin")
    p.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    p.add_argument("--dialect", choices=("angie-mail", "angie", "nginx"), default=None,
                   help="what the configuration is written for (default: angie-mail)")
    p.add_argument("--context", choices=("main", "events", "mail", "server"), default=None,
                   help="lint a fragment: the contents of this context, included from "
                        "elsewhere (default: a whole configuration)")
    p.add_argument("-p", "--prefix", default=None,
                   help="the prefix (load_module paths; default: the current directory)")
    p.add_argument("--conf-dir", default=None,
                   help="directory of the main configuration file, under which relative "
                        "includes and TLS files are taken (default: the directory of "
                        "FILE; for a fragment or stdin, PREFIX/conf)")
    p.add_argument("--check-files", action="store_true",
                   help="also load certificates and open log files, as -t does")
    p.add_argument("--resolve", action="store_true",
                   help="look up the host names of auth_http, resolver, listen... (by "
                        "default lint uses no DNS)")
    p.add_argument("--select", action="append", metavar="RULE,...",
                   help="report only these rules")
    p.add_argument("--ignore", action="append", metavar="RULE,...",
                   help="do not report these rules")
    p.add_argument("--fail-on", choices=("error", "warning"), default=None,
                   help="what makes the exit status 1 (default: warning)")
    p.add_argument("-o", "--output", default="-")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    try:
        settings(args)
    except UsageError as e:
        sys.stderr.write(f"angie-mail lint: {e}\n")
        return 2
    args.fragment = args.context is not None
    args.context = args.context or "main"
    prefix = args.prefix or ""
    args.prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    files = args.files or [args.prefix + "conf/mail.conf"]
    from .conf import url
    args.hosts = HostNames(args.resolve)
    url.lookup = args.hosts
    try:
        findings = []
        for path in files:
            findings += lint_one(path, args)
        findings.sort(key=lambda f: (f.file, f.line, f.column, f.rule, f.message))
        text = {"text": as_text, "json": as_json, "sarif": as_sarif}[args.format](findings)
        if args.output == "-":
            sys.stdout.write(text)
        else:
            with open(args.output, "w") as f:
                f.write(text)
    except Exception as e:          # the tool failed, not the configuration
        sys.stderr.write(f"angie-mail lint: internal error: {e.__class__.__name__}: {e}\n")
        return 2
    finally:
        url.lookup = None
    failing = [f for f in findings
               if f.level == "error" or args.fail_on == "warning"]
    return 1 if failing else 0
