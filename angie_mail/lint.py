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
import sys

from . import __version__

RULES = {
    "syntax": ("error", "Syntax error as nginx's tokenizer reports it"),
    "include": ("error", "An included file cannot be read"),
    "unknown": ("error", "Unknown directive"),
    "not-allowed": ("error", "Directive not allowed in this context"),
    "arguments": ("error", "Wrong number of arguments"),
    "value": ("error", "Invalid directive value"),
    "merge": ("error", "Server configuration incomplete after inheritance"),
    "error": ("error", "Configuration error"),
    "nginx-warning": ("warning", "Warning that nginx/Angie print too"),
    "not-portable": ("warning", "angie-mail extension that Angie does not accept"),
    "plaintext-auth": ("warning", "Passwords accepted without TLS"),
    "oauth-line-too-short": ("warning", "OAuth mechanisms unusable with 128-byte POP3 lines"),
    "auth-http-cleartext": ("warning", "auth_http over plain HTTP to a remote host"),
    "weak-tls-protocol": ("warning", "Obsolete TLS protocol versions enabled"),
}


def rule_of(f) -> str:
    if f.rule:
        return f.rule
    return f.kind if f.kind in RULES else "error"


def lint_one(path: str, args) -> list:
    from .conf.analyze import analyze
    from .conf.lint_rules import check
    from .conf.parse import conf_prefix_of, parse_file, parse_string
    if path == "-":
        parsed = parse_string(sys.stdin.buffer.read(), name="<stdin>", context=args.context,
                              conf_prefix=args.prefix)
        conf_prefix = args.prefix
    else:
        if not path.startswith("/"):
            path = args.prefix + path
        parsed = parse_file(path, context=args.context)
        conf_prefix = conf_prefix_of(path)
    res = analyze(parsed, dialect=args.dialect, prefix=args.prefix, conf_prefix=conf_prefix,
                  mode="lint", check_files=args.check_files)
    findings = list(res.findings)
    an = res.analyzer
    if an.server_pairs:
        findings += check(res.config, an.server_pairs, an.mail)
    seen = set()
    out = []
    for f in findings:
        key = (rule_of(f), f.file, f.line, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _level(f) -> str:
    return "warning" if f.level in ("warn", "notice", "info") else "error"


def _rel(path):
    if not path:
        return path
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def as_text(findings) -> str:
    lines = []
    for f in findings:
        loc = f"{_rel(f.file)}:{f.start_line}:{f.col or 1}" if f.file else "-"
        lines.append(f"{loc}: {_level(f)}: {f.message} [{rule_of(f)}]")
    return "".join(l + "\n" for l in lines)


def as_json(findings) -> str:
    items = [{"file": f.file, "line": f.start_line, "column": f.col or 1,
              "end_line": f.line, "level": _level(f), "rule": rule_of(f),
              "message": f.message, "nginx_message": f.text()} for f in findings]
    summary = {"errors": sum(1 for f in findings if _level(f) == "error"),
               "warnings": sum(1 for f in findings if _level(f) == "warning")}
    return json.dumps({"tool": "angie-mail", "version": __version__, "findings": items,
                       "summary": summary}, indent=2) + "\n"


def as_sarif(findings) -> str:
    results = []
    for f in findings:
        r = {"ruleId": rule_of(f), "level": _level(f), "message": {"text": f.text()}}
        if f.file:
            region = {"startLine": max(f.start_line, 1), "startColumn": max(f.col, 1)}
            if f.line and f.line != f.start_line:
                region["endLine"] = f.line
            r["locations"] = [{"physicalLocation": {
                "artifactLocation": {"uri": _rel(f.file)}, "region": region}}]
        results.append(r)
    rules = [{"id": rid, "shortDescription": {"text": desc},
              "defaultConfiguration": {"level": lvl}} for rid, (lvl, desc) in RULES.items()]
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "angie-mail", "version": __version__,
                                         "rules": rules}},
                     "results": results}]}
    return json.dumps(doc, indent=2) + "\n"


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="angie-mail lint", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", help="configuration files, or - for stdin")
    p.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    p.add_argument("--dialect", choices=("angie-mail", "angie", "nginx"),
                   default="angie-mail")
    p.add_argument("--context", choices=("main", "events", "mail", "server"), default="main")
    p.add_argument("-p", "--prefix", default=None)
    p.add_argument("--check-files", action="store_true",
                   help="also load certificates and open log files, as -t does")
    p.add_argument("--fail-on", choices=("error", "warning"), default="warning")
    p.add_argument("-o", "--output", default="-")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    prefix = args.prefix or os.getcwd()
    args.prefix = prefix if prefix.endswith("/") else prefix + "/"
    files = args.files or ["conf/mail.conf"]
    try:
        findings = []
        for path in files:
            findings += lint_one(path, args)
        text = {"text": as_text, "json": as_json, "sarif": as_sarif}[args.format](findings)
        if args.output == "-":
            sys.stdout.write(text)
        else:
            with open(args.output, "w") as f:
                f.write(text)
    except Exception as e:          # the tool failed, not the configuration
        sys.stderr.write(f"angie-mail lint: internal error: {e.__class__.__name__}: {e}\n")
        return 2
    failing = [f for f in findings
               if _level(f) == "error" or args.fail_on == "warning"]
    return 1 if failing else 0
