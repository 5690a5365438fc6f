"""Process titles as operators expect them in ps/top (via setproctitle)."""

from __future__ import annotations


def set_title(text: str) -> None:
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(f"angie-mail: {text}")
