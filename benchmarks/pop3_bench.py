#!/usr/bin/env python3
"""POP3 proxy benchmark, one command: angie-mail against nginx's mail proxy.

    python benchmarks/pop3_bench.py [--quick] [--rounds 3] [--no-auto] [--keepalive]
                                    [--json FILE] [--markdown FILE]

The same as `python benchmarks/mail_bench.py --protocol pop3` (see mail_bench.py for
the kinds it runs and the table it prints): CHECK (every RETR byte verified) and
W1-W4 with USER/PASS, STAT, RETR and QUIT, alternately for nginx and angie-mail,
with medians and ratios to nginx measured in the same run.  BENCH_PROTOCOL is
ignored here.  Every BENCH_* setting of benchmarks/mail/run passes through the
environment; --quick fills in shorter defaults (W1/W4 5 s, W2 8 RETRs per session,
W3 2,000 sessions) for settings that are not already set.  Exit status 0 only when
every run was valid.  See benchmarks/mail/README.md.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mail_bench  # noqa: E402

if __name__ == "__main__":
    sys.exit(mail_bench.main(prog="pop3_bench", protocol="pop3", doc=__doc__))
