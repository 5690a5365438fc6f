"""The crossplane-shaped JSON payload of a parsed configuration.

Shape (as ``crossplane.parse`` returns it, so tools written for crossplane work)::

    {"status": "ok"|"failed",
     "errors": [{"file": F, "line": N, "error": "MESSAGE in F:N"}],
     "config": [{"file": F, "status": "ok"|"failed",
                 "errors": [{"error": "...", "line": N}],
                 "parsed": [{"directive": "mail", "line": 3, "args": [],
                             "block": [...]},
                            {"directive": "include", "line": 4, "args": ["x.conf"],
                             "includes": [1]}]}]}

angie-mail adds nothing crossplane does not know, except that with ``positions=True``
each entry also carries ``"column"``, ``"end_line"`` and per-argument ``"quotes"``.
"""

from __future__ import annotations

from .tree import Parsed, Stmt


def _stmt_json(st: Stmt, positions: bool) -> dict:
    d = {"directive": st.name, "line": st.line, "args": [w.value for w in st.words[1:]]}
    if positions:
        d["column"] = st.col
        d["end_line"] = st.end_line
        d["quotes"] = [w.quote for w in st.words]
    if st.includes:
        d["includes"] = list(st.includes)
    if st.block is not None:
        d["block"] = [_stmt_json(c, positions) for c in st.block]
    return d


def _err_line(err) -> int | None:
    return err.line if err.where == "file" else None


def to_payload(parsed: Parsed, positions: bool = False, extra_errors=()) -> dict:
    """The crossplane payload for ``parsed``.  ``extra_errors`` (ConfError) are analysis
    findings to list beside the syntax errors, in crossplane's keep-going style."""
    configs = []
    errors = []
    by_file: dict = {}
    for f in parsed.files:
        entry = {"file": f.path, "status": "ok", "errors": [],
                 "parsed": [_stmt_json(s, positions) for s in f.stmts]}
        configs.append(entry)
        by_file.setdefault(f.path, entry)
        if f.error is not None:
            _add_error(entry, errors, f.error, f.path)
    for err in extra_errors:
        entry = by_file.get(err.file) or configs[0]
        _add_error(entry, errors, err, err.file)
    status = "failed" if errors else "ok"
    return {"status": status, "errors": errors, "config": configs}


def _add_error(entry, errors, err, path):
    entry["status"] = "failed"
    line = _err_line(err)
    entry["errors"].append({"error": err.text(), "line": line})
    errors.append({"file": path, "line": line, "error": err.text()})


def payload_stmts(entry_parsed: list) -> list:
    """Validate the ``parsed`` list of a payload entry (used by the builder)."""
    if not isinstance(entry_parsed, list):
        raise ValueError("'parsed' must be a list")
    for d in entry_parsed:
        if not isinstance(d, dict) or "directive" not in d:
            raise ValueError(f"not a directive entry: {d!r}")
    return entry_parsed
