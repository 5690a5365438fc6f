"""Shared code for benchmarks/mail/run and compare (the POP3 / IMAP / SMTP load
harness; the protocol comes from BENCH_PROTOCOL, default pop3).

Everything listens on 127.0.0.1 only.  Processes are started by this module
and are stopped by PID (the PID we started plus its descendants found via
/proc), never by name.
"""
import json
import os
import re
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from bisect import bisect_right

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("BENCH_BUILD") or (os.path.join(HERE, ".build") if os.access(HERE, os.W_OK)
         else os.path.join(os.path.expanduser("~"), ".cache", "angie-mail-bench"))
NGINX = os.environ.get("BENCH_NGINX", "/usr/sbin/nginx")
MAIL_MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"
PERDITION = os.environ.get("BENCH_PERDITION", "/usr/sbin/perdition")
PERDITION_MAP = "/usr/lib/x86_64-linux-gnu/libperditiondb_posix_regex.so.0"
# auth_http endpoint: "nginx" (a separate nginx instance, the reference setup),
# "builtin" (.build/authd, a small C responder) or "auto" (nginx when installed).
AUTH = os.environ.get("BENCH_AUTH", "auto")
REPO = os.path.dirname(os.path.dirname(HERE))   # the angie-mail checkout (benchmarks/mail/..)
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


PROTOCOLS = ("pop3", "imap", "smtp")


def protocol():
    p = os.environ.get("BENCH_PROTOCOL", "pop3").strip().lower() or "pop3"
    if p not in PROTOCOLS:
        sys.exit(f"BENCH_PROTOCOL={p!r}: must be one of {', '.join(PROTOCOLS)}")
    return p


# --------------------------------------------------------------- settings
class Settings:
    def __init__(self):
        self.protocol = protocol()
        base = env_int("BENCH_PORT_BASE", 17100)
        self.proxy_port = base          # proxy under test
        self.backend_port = base + 10   # C backend (POP3, IMAP or SMTP)
        self.auth_port = base + 80      # nginx http auth endpoint
        self.small = env_int("BENCH_SMALL", 1024)
        self.big = env_int("BENCH_BIG", 10 * 1024 * 1024)
        self.w1_conc = env_int("BENCH_W1_CONC", 50)
        self.w1_secs = env_float("BENCH_W1_SECS", 10)
        self.warm = env_float("BENCH_WARMUP", 2)
        self.w2_sessions = env_int("BENCH_W2_SESSIONS", 16)
        self.w2_retrs = env_int("BENCH_W2_RETRS", 32)
        self.w4_conc = env_int("BENCH_W4_CONC", 50)
        self.w4_secs = env_float("BENCH_W4_SECS", 10)
        self.w3_open_conc = env_int("BENCH_W3_OPEN_CONC", 100)
        self.proxy_buffer = os.environ.get("BENCH_PROXY_BUFFER", "16k")
        # SMTP relays the bulk direction (client -> backend) through the
        # client buffer, not proxy_buffer; give it the same size
        self.smtp_client_buffer = os.environ.get("BENCH_SMTP_CLIENT_BUFFER", self.proxy_buffer)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        self.nofile = hard
        # a proxy holds 2 fds per session (client + backend) plus a few
        self.w3_max = min(10000, (hard - 1000) // 2)
        sizes = os.environ.get("BENCH_W3_SIZES", "2000 10000")
        self.w3_sizes = []
        for s in sizes.split():
            n = min(int(s), self.w3_max)
            if n > 0 and n not in self.w3_sizes:
                self.w3_sizes.append(n)

    def as_dict(self):
        return dict(self.__dict__)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def build():
    subprocess.run(["make", "-s", "-C", HERE, "OUT=" + BUILD], check=True)


def nginx_available():
    """(True, "") when the nginx binary and its dynamic mail module are installed,
    else (False, what is missing)."""
    missing = [p for p in (NGINX, MAIL_MODULE) if not os.path.exists(p)]
    if missing:
        return False, "not installed: " + ", ".join(missing) + \
            " (benchmarks/mail/install-deps installs nginx and libnginx-mod-mail)"
    return True, ""


def auth_kind():
    """Which auth_http endpoint this run uses: "nginx" or "builtin"."""
    if AUTH in ("nginx", "builtin"):
        return AUTH
    return "nginx" if os.path.exists(NGINX) else "builtin"


def default_candidate():
    """The angie-mail command line: the console script next to sys.executable, or
    `sys.executable -m angie_mail` when there is none."""
    script = os.path.join(os.path.dirname(sys.executable), "angie-mail")
    if os.access(script, os.X_OK):
        return shlex.quote(script)
    return f"{shlex.quote(sys.executable)} -m angie_mail"


# --------------------------------------------------------------- /proc helpers
def _stat_fields(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()


def descendants(root):
    """root and all its descendants (live or zombie), by scanning /proc."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        f = _stat_fields(d)
        if f:
            kids.setdefault(int(f[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu(root):
    """CPU seconds of a process tree: live/zombie members' utime+stime plus
    cutime+cstime (children already reaped, e.g. perdition's per-session
    processes)."""
    tot = 0
    for p in descendants(root):
        f = _stat_fields(p)
        if f:
            tot += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return tot / CLK


def tree_mem(root):
    """(RSS sum, PSS sum, process count) in KiB over a process tree."""
    rss = pss = n = 0
    for p in descendants(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                        break
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
            n += 1
        except (OSError, ValueError):
            pass
    return rss, pss, n


def timewait_count():
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    t = line.split()
                    return int(t[t.index("tw") + 1])
    except (OSError, ValueError):
        pass
    return -1


def sys_cpu():
    """(busy, total, softirq+irq, user+nice, system, steal) jiffies for the
    whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    total = sum(v[:8])
    return total - idle, total, v[5] + v[6], v[0] + v[1], v[2], v[7]


def wait_quiet(threshold_pct, max_wait, window=0.5):
    """Waits until the machine is idle (busy < threshold_pct, in % of one core)
    over a `window` while nothing of ours runs; other sessions may share this
    machine.  Returns (seconds waited, last busy %)."""
    ncpu = os.cpu_count() or 1
    t0 = time.monotonic()
    while True:
        a = sys_cpu()
        time.sleep(window)
        b = sys_cpu()
        tot = b[1] - a[1]
        busy = 100 * ncpu * (b[0] - a[0]) / tot if tot else 0
        waited = time.monotonic() - t0
        if busy < threshold_pct or waited >= max_wait:
            return round(waited, 1), round(busy, 1)
        time.sleep(1)


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        nv = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    except OSError:
        nv = "nginx not installed"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": os.uname().release,
        "nginx": nv,
        "nofile_hard": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


# --------------------------------------------------------------- processes
class Proc:
    """A process we started; stop() signals it and its descendants by PID."""

    def __init__(self, name, argv, workdir, nofile=None, stdin=None):
        self.name = name
        self.argv = argv
        self.log = os.path.join(workdir, f"{name}.log")
        lf = open(self.log, "wb")

        def pre():
            os.setsid()
            if nofile:
                try:
                    resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
                except (ValueError, OSError):
                    pass

        self.p = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, preexec_fn=pre, cwd=workdir)
        lf.close()
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.p.poll() is not None:
            return
        members = descendants(self.pid)
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        # anything of ours still alive gets SIGKILL, one PID at a time
        for pid in members + descendants(self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def tail(self, n=15):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def wait_port(port, proc, timeout=15):
    t_end = time.time() + timeout
    while time.time() < t_end:
        if proc is not None and not proc.alive():
            return False
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
            s.close()
            return True
        except OSError:
            s.close()
            time.sleep(0.1)
    return False


def port_free(port):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
        s.close()
        return False
    except OSError:
        s.close()
        return True


# --------------------------------------------------------------- configs
def auth_conf(st, workdir):
    # decides by Auth-Protocol and Auth-User: the run's protocol with a bad*
    # user is rejected, with any other user accepted; a request that names
    # another protocol (or none) is refused with a message saying so
    # (.build/authd, the stand-in when nginx is missing, answers the same)
    p = st.protocol
    return f"""# auth_http endpoint (separate nginx instance): bad* users are rejected
worker_processes 1;
daemon off;
pid {workdir}/auth.pid;
error_log {workdir}/auth-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    map "$http_auth_protocol:$http_auth_user" $bench_auth_status {{
        default       "Unexpected Auth-Protocol (expected {p})";
        "~^{p}:bad"   "Invalid login";
        "~^{p}:"      "OK";
    }}
    server {{
        listen 127.0.0.1:{st.auth_port};
        location = /auth {{
            add_header Auth-Status $bench_auth_status;
            add_header Auth-Server 127.0.0.1;
            add_header Auth-Port {st.backend_port};
            return 204;
        }}
    }}
}}
"""


def server_protocol_lines(st):
    """The protocol part of the proxy's server{} block."""
    if st.protocol == "imap":
        return ["protocol imap;", "imap_auth plain;"]
    if st.protocol == "smtp":
        return ["protocol smtp;", "smtp_auth plain login;",
                f"smtp_client_buffer {st.smtp_client_buffer};", "xclient on;", "proxy on;"]
    return ["protocol pop3;", "pop3_auth plain;"]


def mail_conf(st, workdir, workers, load_module=True, extra=""):
    """`workers` is a number or "auto" (written as is to worker_processes); `extra`
    is added to the mail block (e.g. angie-mail's auth_http_keepalive)."""
    lm = f"load_module {MAIL_MODULE};\n" if load_module else ""
    wc = min(st.nofile - 100, 2 * max(st.w3_sizes + [1000]) + 1000)
    proto_lines = "".join(f"        {x}\n" for x in server_protocol_lines(st))
    return f"""{lm}# {st.protocol.upper()} proxy under test (generated by benchmarks/mail/run)
worker_processes {workers};
worker_rlimit_nofile {st.nofile};
daemon off;
pid {workdir}/proxy.pid;
error_log {workdir}/proxy-error.log warn;
events {{
    worker_connections {wc};
}}
mail {{
    auth_http 127.0.0.1:{st.auth_port}/auth;
    proxy_pass_error_message on;
    proxy_buffer {st.proxy_buffer};
    proxy_timeout 10m;
    timeout 60s;
{extra}    server {{
        listen 127.0.0.1:{st.proxy_port};
{proto_lines}    }}
}}
"""


# --------------------------------------------------------------- loadgen
def parse_kv(line):
    d = {}
    for tok in line.split()[1:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            try:
                d[k] = int(v)
            except ValueError:
                try:
                    d[k] = float(v)
                except ValueError:
                    d[k] = v
    return d


class Sampler:
    """CPU seconds of proxy / backend / auth trees plus machine busy time."""

    def __init__(self, procs):
        self.procs = procs  # name -> Proc
        # kernel threads that run overflow network softirq work (for loopback
        # traffic that is our traffic); their CPU is not "other load"
        self.kthreads = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/comm") as f:
                        if f.read().startswith("ksoftirqd/"):
                            self.kthreads.append(int(d))
                except OSError:
                    pass

    def _kcpu(self):
        tot = 0
        for pid in self.kthreads:
            f = _stat_fields(pid)
            if f:
                tot += int(f[11]) + int(f[12])
        return tot / CLK

    def snap(self, extra=None):
        d = {name: tree_cpu(p.pid) for name, p in self.procs.items() if p is not None}
        for name, pid in (extra or {}).items():
            d[name] = tree_cpu(pid)
        d["_ksoftirqd"] = self._kcpu()
        d["_sys"] = sys_cpu()
        d["_t"] = time.monotonic()
        return d

    @staticmethod
    def delta(a, b):
        wall = b["_t"] - a["_t"]
        out = {"wall_s": round(wall, 3)}
        for k in a:
            if k.startswith("_") or k not in b:
                continue
            out[f"cpu_{k}_s"] = round(b[k] - a[k], 3)
            out[f"cpu_{k}_pct"] = round(100 * (b[k] - a[k]) / wall, 1) if wall > 0 else 0
        tot = b["_sys"][1] - a["_sys"][1]
        ncpu = os.cpu_count() or 1
        for i, name in ((0, "machine"), (2, "softirq"), (3, "user"), (4, "system"), (5, "steal")):
            d = b["_sys"][i] - a["_sys"][i]
            out[f"cpu_{name}_pct"] = round(100 * ncpu * d / tot, 1) if tot else 0
        # CPU used by neither our processes nor ksoftirqd: other load on the machine
        ks = b.get("_ksoftirqd", 0) - a.get("_ksoftirqd", 0)
        out["cpu_ksoftirqd_pct"] = round(100 * ks / wall, 1) if wall > 0 else 0
        procs = sum(v for k, v in out.items() if k.endswith("_pct") and k[4:-4] in ("proxy", "backend", "auth", "loadgen"))
        out["cpu_unattributed_pct"] = round(out["cpu_machine_pct"] - procs - out["cpu_ksoftirqd_pct"], 1)
        return out


def run_loadgen(args, sampler, timeout, stdin_hook=None, tick=0.0):
    """Runs loadgen; samples CPU (our processes, the loadgen included, and the
    whole machine) at its 'MARK start' and 'MARK end' lines, and every `tick`
    seconds in between when tick > 0 (returned as result["_snaps"]).
    stdin_hook(readyline, proc) is called on a 'READY' line (idle mode) and
    must write to proc.stdin."""
    lg = os.path.join(BUILD, "loadgen")
    p = subprocess.Popen([lg] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.PIPE, text=True, bufsize=1)
    extra_pids = {"loadgen": p.pid}
    t_end = time.time() + timeout
    snaps = []
    stop = threading.Event()
    ticker = None

    def tick_loop():
        nxt = time.monotonic() + tick
        while not stop.wait(max(0.0, nxt - time.monotonic())):
            snaps.append(sampler.snap(extra_pids))
            nxt += tick

    result = None
    extra = {}
    for line in p.stdout:
        line = line.rstrip("\n")
        if line.startswith("MARK start"):
            snaps.append(sampler.snap(extra_pids))
            if tick > 0:
                ticker = threading.Thread(target=tick_loop, daemon=True)
                ticker.start()
        elif line.startswith("MARK end"):
            stop.set()
            if ticker:
                ticker.join()
            snaps.append(sampler.snap(extra_pids))
        elif line.startswith("READY") and stdin_hook:
            extra.update(stdin_hook(line, p) or {})
        elif line.startswith("RESULT"):
            result = parse_kv(line)
        if time.time() > t_end:
            break
    stop.set()
    try:
        p.wait(max(1, t_end - time.time()))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    err = p.stderr.read()
    if result is None:
        result = {"errors": 1, "failed": "no RESULT line (timeout or crash)"}
    if len(snaps) >= 2:
        result.update(Sampler.delta(snaps[0], snaps[-1]))
    result.update(extra)
    result["stderr"] = err.strip().splitlines()[:10]
    result["rc"] = p.returncode
    result["_snaps"] = snaps
    return result


def clean_window(r, rec_file, threshold):
    """For rate workloads: splits the measurement window at the tick samples,
    drops intervals in which processes outside the benchmark used more than
    `threshold` % of a core, and recomputes rate, latency percentiles and
    per-operation CPU over the clean intervals only.  The whole-window figures
    are kept as *_all."""
    snaps = r.pop("_snaps", [])
    try:
        recs = []
        with open(rec_file) as f:
            for line in f:
                t, l = line.split()
                recs.append((float(t), int(l)))
    except (OSError, ValueError):
        recs = []
    recs.sort()
    times = [t for t, _ in recs]
    for k in ("rate", "p50_ms", "p90_ms", "p99_ms"):
        if k in r:
            r[f"{k}_all"] = r[k]
    if len(snaps) < 2:
        return r
    clean_t = total_t = 0.0
    n = 0
    lats = []
    cpu = {}
    machine = {}
    ivs = []
    for a, b in zip(snaps, snaps[1:]):
        d = Sampler.delta(a, b)
        w = b["_t"] - a["_t"]
        total_t += w
        i0, i1 = bisect_right(times, a["_t"]), bisect_right(times, b["_t"])
        un = d.get("cpu_unattributed_pct", 0)
        ivs.append([round(w, 2), i1 - i0, un])
        if un > threshold:
            continue
        clean_t += w
        n += i1 - i0
        lats.extend(l for _, l in recs[i0:i1])
        for k, v in d.items():
            if k.endswith("_s") and k.startswith("cpu_"):
                cpu[k] = cpu.get(k, 0.0) + v
        for k in ("machine", "softirq", "user", "system", "steal", "ksoftirqd", "unattributed"):
            mk = f"cpu_{k}_pct"
            machine[mk] = machine.get(mk, 0.0) + d.get(mk, 0) * w
    r["intervals"] = ivs  # [seconds, sessions, % of a core used by others]
    r["clean_secs"] = round(clean_t, 2)
    r["window_secs"] = round(total_t, 2)
    r["clean_fraction"] = round(clean_t / total_t, 3) if total_t else 0
    if clean_t > 0 and n:
        lats.sort()
        r["done_clean"] = n
        r["rate"] = round(n / clean_t, 1)
        for q, k in ((0.5, "p50_ms"), (0.9, "p90_ms"), (0.99, "p99_ms")):
            r[k] = round(lats[int(q * (len(lats) - 1) + 0.5)] / 1000.0, 3)
        ncpu = os.cpu_count() or 1
        for k, v in cpu.items():
            r[k] = round(v, 3)
            r[k[:-2] + "_pct"] = round(100 * v / clean_t, 1)
        for k, v in machine.items():
            r[k] = round(v / clean_t, 1)
    return r


# --------------------------------------------------------------- stats
def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt(x, nd=1):
    if x is None or (isinstance(x, float) and x != x):
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1 or x == 0:
        return f"{x:.{max(nd, 2)}f}"
    return f"{x:.3f}"
