"""The import rules between angie_mail's packages, enforced by reading every module's
imports (no import is executed):

* the protocol packages (pop3, imap) use only the shared mail core, the configuration
  model and the SASL decoders: a protocol is "just another package";
* mail (the protocol-independent sans-I/O core) knows no protocol, no I/O driver and
  no process model;
* proxy (the I/O driver) reaches protocols only through the protocols table;
* conf (the configuration pipeline) uses only conf and errors, apart from the few
  imports listed in CONF_EXCEPTIONS, which may shrink but not grow.
"""

from __future__ import annotations

import ast
import os

import angie_mail

ROOT = os.path.dirname(angie_mail.__file__)

# conf modules computing per-protocol replies at merge, and the TLS checks of -t
CONF_EXCEPTIONS = {
    ("angie_mail.conf.merge", "angie_mail.pop3.capa"),
    ("angie_mail.conf.merge", "angie_mail.imap.capa"),
    ("angie_mail.conf.merge", "angie_mail.proxy.tls"),
}


def modules():
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                if rel.endswith(".__init__"):
                    rel = rel[:-9]
                yield rel, path


def imports(name: str, path: str):
    """Every angie_mail module ``name`` imports (absolute names)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    pkg = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("angie_mail")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("angie_mail"):
                continue
            if node.module is None or node.level and not node.module:
                out |= {f"{mod}.{a.name}" for a in node.names}
            else:
                out.add(mod)
    return out


def package(mod: str) -> str:
    parts = mod.split(".")
    return ".".join(parts[:2])


GRAPH = {name: imports(name, path) for name, path in modules()}


def test_protocol_packages_use_only_the_core():
    allowed = ("angie_mail.mail", "angie_mail.conf.model", "angie_mail.sasl")
    for name, deps in GRAPH.items():
        pkg = package(name)
        if pkg not in ("angie_mail.pop3", "angie_mail.imap", "angie_mail.smtp"):
            continue
        for d in deps:
            assert package(d) == pkg or d.startswith(allowed), (name, d)


def test_mail_core_knows_no_protocol_nor_io():
    for name, deps in GRAPH.items():
        if package(name) != "angie_mail.mail":
            continue
        for d in deps:
            assert package(d) in ("angie_mail.mail", "angie_mail.sasl"), (name, d)


def test_proxy_reaches_protocols_through_the_table():
    for name, deps in GRAPH.items():
        if package(name) != "angie_mail.proxy":
            continue
        for d in deps:
            assert package(d) not in ("angie_mail.pop3", "angie_mail.imap", "angie_mail.smtp"), (name, d)


def test_conf_uses_only_conf_and_errors():
    for name, deps in GRAPH.items():
        if package(name) != "angie_mail.conf":
            continue
        for d in deps:
            if package(d) in ("angie_mail.conf", "angie_mail.errors"):
                continue
            assert (name, d) in CONF_EXCEPTIONS, (name, d)


def test_process_does_not_import_the_command_line():
    for name, deps in GRAPH.items():
        if package(name) == "angie_mail.process":
            assert "angie_mail.cli" not in deps, name


def test_no_cycles_between_the_protocol_core_and_the_driver():
    # mail must never need the driver; protocols never the driver or the process model
    for name, deps in GRAPH.items():
        if package(name) in ("angie_mail.mail", "angie_mail.pop3", "angie_mail.imap",
                            "angie_mail.smtp"):
            assert not any(package(d) in ("angie_mail.proxy", "angie_mail.process")
                           for d in deps), name
