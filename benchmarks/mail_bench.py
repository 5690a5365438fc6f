#!/usr/bin/env python3
"""Mail proxy benchmark, one command per protocol: angie-mail against nginx's mail proxy.

    python benchmarks/mail_bench.py [--protocol pop3|imap|smtp] [--quick] [--rounds 3]
                                    [--no-auto] [--keepalive] [--json FILE] [--markdown FILE]

(benchmarks/pop3_bench.py is the same with the protocol fixed to POP3.)

Builds the load harness's C tools (benchmarks/mail/.build/), then runs, alternately
for --rounds rounds (nginx, angie-mail 1 worker, angie-mail auto, then again...):

  nginx           Debian nginx mail proxy, worker_processes 1 (the reference)
  candidate1      angie-mail, worker_processes 1
  candidate-auto  angie-mail, worker_processes auto (left out with --no-auto)
  ...-ka          with --keepalive, the same with auth_http_keepalive 64 (an angie-mail
                  extension; the reference keeps Angie's connection per login)

each through CHECK (protocol conformance, every relayed byte verified) and W1-W4 of
the protocol (--protocol, default $BENCH_PROTOCOL or pop3; see benchmarks/mail/README.md
for what each workload does in each protocol), and prints the harness's full table
followed by a headline table: W1 sessions/s, W1 CPU per session, W2 MB/s, W3 KB per
idle session, W4 rejections/s, as medians and as ratios to nginx measured in the same
run.  When nginx (or its mail module) is not
installed it says so, serves auth_http with the harness's C responder, and reports
angie-mail's own figures without ratios.

angie-mail is the `angie-mail` console script next to this Python (sys.executable),
or `python -m angie_mail` when there is none; BENCH_CANDIDATE overrides it.  Every
BENCH_* setting of benchmarks/mail/run passes through the environment; --quick fills
in shorter defaults (W1/W4 5 s, W2 8 transfers per session, W3 2,000 sessions) for
settings that are not already set.  Exit status 0 only when every run was valid.
See benchmarks/mail/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "mail")
sys.path.insert(0, HARNESS)
import benchlib as B  # noqa: E402

QUICK = {"BENCH_W1_SECS": "5", "BENCH_W4_SECS": "5", "BENCH_W2_RETRS": "8", "BENCH_W3_SIZES": "2000"}

LABELS = {
    "nginx": "nginx (1 worker)",
    "candidate1": "angie-mail (1 worker)",
    "candidate-auto": f"angie-mail (auto = {os.cpu_count()} workers)",
    "candidate1-ka": "angie-mail + auth_http_keepalive (1 worker)",
    "candidate-auto-ka": f"angie-mail + auth_http_keepalive (auto = {os.cpu_count()} workers)",
}

def _largest_w3_size(records):
    sizes = {int(k[3:]) for r in records for k in r["results"] if k.startswith("W3_")}
    return max(sizes) if sizes else None


# (label, unit, workload, getter(result) or W3 field name, higher_is_better)
HEADLINE = [
    ("W1 sessions/s", "", "W1", lambda r: r.get("rate"), True),
    ("W1 proxy CPU per session", "us", "W1", lambda r: r.get("proxy_us_per_session"), False),
    ("W2 bulk relay", "MB/s", "W2", lambda r: r.get("mbps"), True),
    ("W2 proxy CPU per GB", "CPU-s", "W2", lambda r: r.get("proxy_cpu_s_per_GB"), False),
    ("W3 PSS per idle session", "KB", "W3", "pss_per_conn_kb", False),
    ("W3 RSS per idle session", "KB", "W3", "rss_per_conn_kb", False),
    ("W4 rejections/s", "", "W4", lambda r: r.get("rate"), True),
    ("W4 proxy CPU per rejection", "us", "W4", lambda r: r.get("proxy_us_per_reject"), False),
]


def values(records, kind, wl, get):
    out = []
    for rec in records:
        if rec["kind"] != kind:
            continue
        res = rec["results"]
        if wl == "W3":
            keys = sorted((int(k[3:]), k) for k in res if k.startswith("W3_"))
            if not keys:
                continue
            r = res[keys[-1][1]]
            v = r.get(get)
        else:
            r = res.get(wl)
            if not r:
                continue
            v = get(r)
        if v is None or r.get("errors") or r.get("disturbed"):
            continue
        out.append(float(v))
    return out


def headline(records, kinds, have_nginx):
    n3 = _largest_w3_size(records)
    cols = [LABELS.get(k, k) for k in kinds]
    ratio_kinds = [k for k in kinds if k != "nginx"] if have_nginx else []
    head = ["figure"] + cols + [f"{LABELS.get(k, k)} / nginx" for k in ratio_kinds]
    rows = []
    for label, unit, wl, get, better in HEADLINE:
        lab = label + (f" ({n3:,})" if wl == "W3" and n3 else "") + (f", {unit}" if unit else "")
        row = [lab]
        meds = {}
        for k in kinds:
            xs = values(records, k, wl, get)
            if xs:
                meds[k] = B.median(xs)
                row.append(B.fmt(meds[k]) + (f" [{B.fmt(min(xs))}-{B.fmt(max(xs))}]" if len(xs) > 1 else ""))
            else:
                row.append("n/a")
        for k in ratio_kinds:
            if k in meds and meds.get("nginx"):
                row.append(f"{meds[k] / meds['nginx']:.3f} ({'higher' if better else 'lower'} is better)")
            else:
                row.append("n/a")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    md = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines), "\n".join(md)


def main(prog: str = "mail_bench", protocol: str | None = None, doc: str | None = None) -> int:
    """`protocol` fixes the protocol (no --protocol option), as pop3_bench.py does."""
    ap = argparse.ArgumentParser(prog=prog + ".py", description=doc or __doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    if protocol is None:
        ap.add_argument("--protocol", choices=B.PROTOCOLS,
                        default=os.environ.get("BENCH_PROTOCOL", "pop3").strip().lower() or "pop3",
                        help="protocol of the workloads (default: $BENCH_PROTOCOL, else pop3)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--quick", action="store_true", help="shorter defaults for unset BENCH_* settings")
    ap.add_argument("--no-auto", action="store_true", help="skip the worker_processes auto run")
    ap.add_argument("--keepalive", action="store_true",
                    help="also run angie-mail with its auth_http_keepalive extension "
                         "(nginx, like Angie, opens an auth_http connection per login)")
    ap.add_argument("--json", help="JSON-lines file for the run records (default: under benchmarks/mail/.build/results/)")
    ap.add_argument("--markdown", help="also write the headline table as Markdown to this file")
    a = ap.parse_args()
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    proto = protocol or a.protocol
    if proto not in B.PROTOCOLS:
        ap.error(f"protocol {proto!r}: must be one of {', '.join(B.PROTOCOLS)}")

    env = dict(os.environ)
    env["BENCH_PROTOCOL"] = proto
    if a.quick:
        for k, v in QUICK.items():
            env.setdefault(k, v)
    env.setdefault("BENCH_CANDIDATE", B.default_candidate())
    os.environ.update(env)

    for tool in ("make", os.environ.get("CC", "gcc")):
        if shutil.which(tool) is None:
            print(f"{prog}: {tool} not found; run benchmarks/mail/install-deps (as root)", file=sys.stderr)
            return 2
    B.build()
    v = subprocess.run(env["BENCH_CANDIDATE"] + " -v", shell=True, capture_output=True, text=True)
    if v.returncode != 0:
        print(f"{prog}: the candidate does not run ({env['BENCH_CANDIDATE']} -v):\n{v.stderr.strip()}\n"
              "install the project first: python3 -m pip install -e .", file=sys.stderr)
        return 2

    have_nginx, why = B.nginx_available()
    kinds = (["nginx"] if have_nginx else []) + ["candidate1"] + ([] if a.no_auto else ["candidate-auto"])
    if a.keepalive:
        kinds += ["candidate1-ka"] + ([] if a.no_auto else ["candidate-auto-ka"])
    settings = {k: env[k] for k in sorted(env) if k.startswith("BENCH_") and k != "BENCH_PROTOCOL"}
    print(f"# {prog}: candidate {env['BENCH_CANDIDATE']} ({v.stdout.strip() or v.stderr.strip()})")
    if not have_nginx:
        print(f"# nginx {why}")
        print("# -> no nginx reference in this run: auth_http is served by benchmarks/mail/.build/authd and")
        print("#    only angie-mail's own figures are reported (no ratios).")
    print(f"# {'' if proto == 'pop3' else 'protocol ' + proto + ', '}kinds {' '.join(kinds)}, "
          f"{a.rounds} round(s), alternating; settings: "
          + (" ".join(f"{k}={v!r}" for k, v in settings.items()) or "harness defaults"), flush=True)

    path = a.json or os.path.join(B.BUILD, "results", time.strftime(f"{proto}-bench-%Y%m%d-%H%M%S.jsonl"))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if len(kinds) >= 2:
        rc = subprocess.run([sys.executable, os.path.join(HARNESS, "compare"), *kinds, "--rounds", str(a.rounds),
                             "--json", path], env=env).returncode
    else:
        rc = 0
        for rnd in range(1, a.rounds + 1):
            print(f"\n=== round {rnd}/{a.rounds}: {kinds[0]} ===", flush=True)
            rc |= subprocess.run([sys.executable, os.path.join(HARNESS, "run"), kinds[0], "--json", path],
                                 env=env).returncode
    if not os.path.exists(path):
        print(f"{prog}: no run wrote a record to {path}", file=sys.stderr)
        return 1
    records = [json.loads(line) for line in open(path) if line.strip()]
    # records from before the protocol switch have no "protocol" and are POP3
    records = [r for r in records if r["kind"] in kinds and r.get("protocol", "pop3") == proto]
    text, md = headline(records, kinds, have_nginx)
    valid = {k: (sum(1 for r in records if r["kind"] == k and r.get("valid")),
                 sum(1 for r in records if r["kind"] == k)) for k in kinds}
    print(f"\n## {'' if proto == 'pop3' else proto.upper() + ' '}Headline (medians [min-max] over valid, undisturbed runs"
          + ("; ratios = angie-mail / nginx, same run)" if have_nginx else "; nginx not installed, no ratios)"))
    print(text)
    print("valid runs: " + ", ".join(f"{LABELS.get(k, k)} {ok}/{n}" for k, (ok, n) in valid.items()))
    print(f"records: {path}")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(md + "\n")
    all_valid = all(ok == n and n > 0 for ok, n in valid.values())
    return 0 if all_valid and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
