"""Process titles as operators expect them in ps/top (via setproctitle), in Angie's
form under angie-mail's own name: the reload generation ``#G`` tells the processes of
the current configuration from those still finishing an older one.

    angie-mail: master process v0.1.0 #2 [angie-mail -c /etc/angie-mail/mail.conf]
    angie-mail: worker process #2
    angie-mail: worker process is shutting down #1
"""

from __future__ import annotations

import sys


def set_title(text: str) -> None:
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(f"angie-mail: {text}")


def set_master_title(generation: int, single: bool = False) -> None:
    from .. import __version__
    kind = "single" if single else "master"
    set_title(f"{kind} process v{__version__} #{generation} [{' '.join(sys.argv)}]")


def set_worker_title(generation: int, shutting_down: bool = False) -> None:
    name = "worker process is shutting down" if shutting_down else "worker process"
    set_title(f"{name} #{generation}")
