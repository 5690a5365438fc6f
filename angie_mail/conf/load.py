"""Loading a configuration as the command line asks: the prefix, the file, then
parse and analyze (the process model and -t both start here)."""

from __future__ import annotations

import os

DEFAULT_CONF = "conf/mail.conf"


def prefix_of(o) -> str:
    """The prefix, absolute and ending with "/" (-p, else the current directory)."""
    prefix = o.prefix if o.prefix is not None else os.getcwd()
    if not prefix.endswith("/"):
        prefix += "/"
    if not prefix.startswith("/"):
        prefix = os.getcwd().rstrip("/") + "/" + prefix
    return prefix


def resolve_paths(o):
    """(prefix, conf path): a relative -c is under the prefix."""
    prefix = prefix_of(o)
    conf = o.conf if o.conf is not None else DEFAULT_CONF
    if not conf.startswith("/"):
        conf = prefix + conf
    return prefix, conf


def load_config(o, mode: str = "test"):
    """Parse and analyze the configuration: (Result, parsed)."""
    from .analyze import analyze
    from .parse import conf_prefix_of, parse_file
    prefix, conf = resolve_paths(o)
    parsed = parse_file(conf)
    res = analyze(parsed, dialect=o.dialect, prefix=prefix,
                  conf_prefix=conf_prefix_of(conf), mode=mode, params=o.params,
                  open_pid=bool(getattr(o, "test", False)))
    return res, conf
