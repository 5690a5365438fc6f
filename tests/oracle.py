"""Run Debian's nginx (with its mail module) as an oracle for ``-t`` verdicts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MAIL_MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"    # the cases load it

_EMERG = re.compile(r"^nginx: \[(emerg|crit|alert|warn)\] (.*)$")


def available() -> bool:
    return all(os.path.exists(p) for p in (NGINX, MAIL_MODULE, STREAM_MODULE))


def require() -> None:
    """Fail, not skip, a test that needs the oracle when it is missing: a skipped
    comparison would hide a missing install step (.ci/setup installs it)."""
    if not available():
        pytest.fail(f"nginx with its mail and stream modules is not installed ({NGINX}, "
                    f"{MAIL_MODULE}, {STREAM_MODULE}); run .ci/setup", pytrace=False)


def wrap(directory: str, case_name: str = "case.conf") -> str:
    """Write a main config that loads the mail module and includes the case file, so
    that messages about the case keep its own file name and line numbers."""
    path = os.path.join(directory, "wrap.conf")
    with open(path, "w") as f:
        f.write(f"load_module {MAIL_MODULE};\ninclude {os.path.join(directory, case_name)};\n")
    return path


def nginx_t(conf_path: str, prefix: str | None = None) -> tuple[int, list[str]]:
    """(exit status, [level, message] of every emerg/crit/alert line) of ``nginx -t``."""
    prefix = prefix or os.path.dirname(conf_path)
    r = subprocess.run([NGINX, "-t", "-q", "-p", prefix + "/", "-e", "/dev/null",
                        "-c", conf_path], capture_output=True, timeout=30)
    lines = []
    for raw in r.stderr.decode("utf-8", "surrogateescape").split("\n"):
        m = _EMERG.match(raw)
        if m:
            lines.append((m.group(1), m.group(2)))
    return r.returncode, lines


def check_case(directory: str, text: bytes | str) -> tuple[int, list]:
    """nginx's verdict on ``text`` placed in ``directory/case.conf`` behind the wrapper."""
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    with open(os.path.join(directory, "case.conf"), "wb") as f:
        f.write(text)
    return nginx_t(wrap(directory))
