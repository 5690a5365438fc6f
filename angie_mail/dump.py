"""``angie-mail dump``: what ``-T`` dumps, as text or as crossplane's JSON payload.

    angie-mail dump [--format text|json] [--positions] [--indent N] [--dialect D]
                    [-p PREFIX] [--conf-dir DIR] [FILE]

``-T`` is nginx's option and prints the files read only when the test succeeds; tools
that read configurations (crossplane's users) want the parsed tree, with the errors
beside it.  ``--format json`` prints exactly the payload ``crossplane.parse(FILE)``
returns (``status``, ``errors``, ``config``: one entry per file read, includes as
indices), with the errors of angie-mail's analysis in place of crossplane's;
``--positions`` adds ``column``, ``end_line`` and each word's ``quotes``.  ``--format
text`` prints what ``-T`` prints after a successful test.  Paths follow lint's rules
(FILE from the current directory, includes under its directory or ``--conf-dir``); no
host name is looked up and no certificate or log is opened.

Exit status: 0, 1 when the configuration has errors, 2 bad usage or an internal error.
"""

from __future__ import annotations

import argparse
import json
import sys


def write_files(files, broken: bool = False) -> None:
    """What -T prints: each file read, once, after a ``# configuration file`` line;
    with ``broken``, also a file that failed to parse, as far as it was read."""
    out = sys.stdout.buffer
    seen = set()
    for f in files:
        if f.path in seen or f.error is not None and not (broken and f.raw):
            continue
        seen.add(f.path)
        out.write(f"# configuration file {f.path}:\n".encode("utf-8", "surrogateescape"))
        out.write(f.raw)
        out.write(b"\n")
    out.flush()


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="angie-mail dump",
                                description="Print the configuration as -T does, or as "
                                            "crossplane's JSON.")
    p.add_argument("file", nargs="?", help="the configuration file (default: "
                                           "PREFIX/conf/mail.conf)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--positions", action="store_true",
                   help="json: add column, end_line and quotes to every directive")
    p.add_argument("--indent", type=int, default=None, help="json: indentation")
    p.add_argument("--dialect", choices=("angie-mail", "angie", "nginx"),
                   default="angie-mail")
    p.add_argument("-p", "--prefix", default="")
    p.add_argument("--conf-dir", default=None)
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    from .conf import url
    from .conf.analyze import analyze
    from .conf.parse import conf_prefix_of, parse_file
    from .conf.payload import to_payload
    from .lint import HostNames
    prefix = args.prefix if not args.prefix or args.prefix.endswith("/") else args.prefix + "/"
    path = args.file or prefix + "conf/mail.conf"
    conf_dir = args.conf_dir or conf_prefix_of(path)
    if not conf_dir.endswith("/") and conf_dir:
        conf_dir += "/"
    url.lookup = HostNames(False)
    try:
        parsed = parse_file(path, conf_prefix=conf_dir)
        res = analyze(parsed, dialect=args.dialect, prefix=prefix, conf_prefix=conf_dir,
                      mode="lint", check_files=False)
    except Exception as e:          # the tool failed, not the configuration
        sys.stderr.write(f"angie-mail dump: internal error: {e.__class__.__name__}: {e}\n")
        return 2
    finally:
        url.lookup = None
    syntax = {id(f.error) for f in parsed.files if f.error is not None}
    errors = [e for e in res.errors if id(e) not in syntax]
    if args.format == "json":
        payload = to_payload(parsed, positions=args.positions, extra_errors=errors)
        sys.stdout.write(json.dumps(payload, indent=args.indent) + "\n")
        return 1 if payload["status"] == "failed" else 0
    write_files(parsed.files, broken=True)
    for e in res.errors:
        sys.stderr.write(f"angie-mail: [{e.level}] {e.text()}\n")
    return 1 if res.errors else 0
