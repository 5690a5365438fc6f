"""Regenerate angie_mail/conf/data/nginx-1.22-http-stream.tsv from the real nginx.

    python tests/conf/nginx_tables.py            # print the table
    python tests/conf/nginx_tables.py --write    # replace the data file

The table is what the nginx dialect knows inside ``http {}`` and ``stream {}``: the
http and stream rows of Angie's table (angie-directive-names.tsv), each tried in every
context of its subsystem with 0 to 7 arguments, as ``;`` or ``{}`` statement, under
Debian's nginx 1.22 with ngx_mail_module.so and ngx_stream_module.so loaded.  A row is
kept with the contexts nginx accepts it in and the argument counts it accepts there;
names nginx does not know are left out.  The ``file`` column says which dynamic module
defines the name ("-": compiled in): ngx_stream_module.so from the run; the http and
stream modules Debian packages separately (geoip, image_filter, perl, xslt) from
DYNAMIC below, since the oracle machine does not install them; and EXTRA holds the
names nginx 1.22 has that Angie's table no longer lists.

A full run starts nginx about 40 000 times (three to four minutes on two cores).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "angie_mail", "conf", "data")
ANGIE_TSV = os.path.join(DATA, "angie-directive-names.tsv")
OUT_TSV = os.path.join(DATA, "nginx-1.22-http-stream.tsv")
MODULES = "/usr/lib/nginx/modules"

HEAD = (f"load_module {MODULES}/ngx_mail_module.so;\n"
        f"load_module {MODULES}/ngx_stream_module.so;\nevents {{}}\n")
LINE = HEAD.count("\n") + 2            # the line of the statement tried
WRAP = {
    "http": ("http {\n", "\n}\n"),
    "http_srv": ("http { server {\n", "\n} }\n"),
    "http_loc": ("http { server { location / {\n", "\n} } }\n"),
    "http_ups": ("http { upstream u { server 127.0.0.1;\n", "\n} }\n"),
    "http_sif": ("http { server { if ($a) {\n", "\n} } }\n"),
    "http_lif": ("http { server { location / { if ($a) {\n", "\n} } } }\n"),
    "http_lmt": ("http { server { location / { limit_except GET {\n", "\n} } } }\n"),
    "stream": ("stream {\n", "\n}\n"),
    "stream_srv": ("stream { server {\n", "\n} }\n"),
    "stream_ups": ("stream { upstream u { server 127.0.0.1:1;\n", "\n} }\n"),
}
SUBSYSTEM_CONTEXTS = {s: [c for c in WRAP if c.split("_")[0] == s] for s in ("http", "stream")}

# Debian's separately packaged modules: file -> the names nginx 1.22 gives them (their
# rows are taken from Angie's table, which has the same contexts and counts for them)
DYNAMIC = {
    "ngx_http_geoip_module.so": ("http", ("geoip_country", "geoip_org", "geoip_city",
                                          "geoip_proxy", "geoip_proxy_recursive")),
    "ngx_http_image_filter_module.so": ("http", (
        "image_filter", "image_filter_jpeg_quality", "image_filter_webp_quality",
        "image_filter_sharpen", "image_filter_transparency", "image_filter_interlace",
        "image_filter_buffer")),
    "ngx_http_perl_module.so": ("http", ("perl_modules", "perl_require", "perl",
                                         "perl_set")),
    "ngx_http_xslt_filter_module.so": ("http", (
        "xml_entities", "xslt_stylesheet", "xslt_param", "xslt_string_param",
        "xslt_types", "xslt_last_modified")),
    "ngx_stream_geoip_module.so": ("stream", ("geoip_country", "geoip_org", "geoip_city")),
}
# nginx 1.22 names that Angie removed: (name, module, subsystem, contexts, args, file)
EXTRA = [
    ("ssl", "ngx_http_ssl_module", "http", "http,http_srv", "flag", "-"),
]


def angie_rows():
    with open(ANGIE_TSV, encoding="utf-8") as f:
        lines = f.read().splitlines()[1:]
    return [tuple(l.split("\t")[:5]) for l in lines if l.strip()]


def _counts(args: str) -> set:
    sys.path.insert(0, ROOT)
    from angie_mail.conf.registry import _tsv_args
    a = _tsv_args(args)
    return {n for n in range(8) if a.accepts(n)}


def _args_text(block: bool, counts: set) -> str:
    """The table's notation for a set of accepted counts (0..7)."""
    parts = ["block"] if block else []
    if counts == set(range(8)):
        parts.append("any")
    elif counts == set(range(1, 8)):
        parts.append("1more")
    elif counts == set(range(2, 8)):
        parts.append("2more")
    elif counts == {0}:
        parts.append("noargs")
    else:
        if 0 in counts:
            parts.append("noargs")
        rest = sorted(c for c in counts if c)
        if rest:
            parts.append("take" + "".join(map(str, rest)))
    return ",".join(parts)


def try_one(name: str, ctx: str, nargs: int, block: bool) -> str:
    """nginx's verdict on one statement: unknown, notallowed, noopen, noterm, nargs or
    ok (anything else: the statement passed the generic checks)."""
    pre, post = WRAP[ctx]
    words = [name] + (["on"] if nargs == 1 else ["x"] * nargs)
    text = HEAD + pre + " ".join(words) + (" {}" if block else ";") + post
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.conf")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run(["nginx", "-t", "-q", "-p", d + "/", "-e", "/dev/null",
                            "-c", path], capture_output=True, text=True, timeout=30)
    msg = ""
    for line in r.stderr.splitlines():
        m = re.match(r"nginx: \[(emerg|crit|alert)\] (.*)", line)
        if m:
            msg = m.group(2)
            break
    if f"in {path}:{LINE}" not in msg:
        return "ok"
    for kind, pattern in (("unknown", "unknown directive"),
                          ("notallowed", "directive is not allowed here"),
                          ("noopen", 'has no opening "{"'),
                          ("noterm", 'is not terminated by ";"'),
                          ("nargs", "invalid number of arguments")):
        if pattern in msg:
            return kind
    return "ok"


def sweep(rows) -> dict:
    """{(name, subsystem, block, ctx): {nargs: verdict}} for every http/stream row."""
    jobs = set()
    for name, module, sub, ctxs, args in rows:
        if sub not in SUBSYSTEM_CONTEXTS or name in ("http", "stream"):
            continue
        block = "block" in args
        for ctx in SUBSYSTEM_CONTEXTS[sub]:
            for n in range(8):
                jobs.add((name, sub, block, ctx, n))
    out: dict = {}
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        futures = {ex.submit(try_one, j[0], j[3], j[4], j[2]): j for j in jobs}
        for f in concurrent.futures.as_completed(futures):
            name, sub, block, ctx, n = futures[f]
            out.setdefault((name, sub, block, ctx), {})[n] = f.result()
    return out


def build(rows, verdicts) -> list:
    dynamic = {(sub, name): file for file, (sub, names) in DYNAMIC.items() for name in names}
    out = []
    for name, module, sub, ctxs, args in rows:
        if sub not in SUBSYSTEM_CONTEXTS:
            continue
        if name in ("http", "stream"):
            out.append((name, module, sub, ctxs, args,
                        "ngx_stream_module.so" if name == "stream" else "-"))
            continue
        file = dynamic.get((sub, name))
        if file is not None:
            if module.endswith(file[:-3]):
                out.append((name, module, sub, ctxs, args, file))
            continue
        block = "block" in args
        want = [c for c in ctxs.split(",") if c in WRAP]
        kept, counts = [], None
        for ctx in want:
            v = verdicts.get((name, sub, block, ctx), {})
            kinds = set(v.values())
            if not v or kinds <= {"unknown", "notallowed"}:
                continue
            kept.append(ctx)
            here = {n for n, k in v.items() if k == "ok"}
            counts = here if counts is None else counts & here
        if not kept:
            continue
        if counts == _counts(args):
            new_args = args
        else:
            new_args = _args_text(block, counts)
        out.append((name, module, sub, ",".join(kept), new_args,
                    "ngx_stream_module.so" if sub == "stream" else "-"))
    out.extend(EXTRA)
    return sorted(set(out), key=lambda r: (r[2], r[0], r[1]))


def render(table) -> str:
    head = ("# nginx 1.22 (Debian) inside http {} and stream {}: generated by "
            "tests/conf/nginx_tables.py\nname\tmodule\tsubsystem\tcontexts\targs\tfile\n")
    return head + "".join("\t".join(r) + "\n" for r in table)


def main(argv) -> int:
    rows = angie_rows()
    text = render(build(rows, sweep(rows)))
    if "--write" in argv:
        with open(OUT_TSV, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
