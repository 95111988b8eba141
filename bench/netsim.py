#!/usr/bin/env python3
"""Network simulation: a share swarm against plain HTTP, N downloaders at once.

Run by hand, as root (not a test):

    /usr/bin/python3 bench/netsim.py [--counts 1,2,4,8,16] [--size-mib 16] [--rate-mib 2]

It builds a small private network of its own out of Linux network namespaces and touches no
other networking: one namespace `shs-br` holds a bridge, and every host is a namespace of its
own (`shs-tracker`, `shs-seed`, `shs-l01`...) joined to that bridge by a veth pair, with an
address in 10.99.0.0/16 and no route anywhere else. Every host's upload (the egress of its veth)
is limited by the same `tc tbf` rate; downloads are not limited, so the origin's upload is the
bottleneck, as on a home or office uplink.

For each N it runs, from the same start:
  share:  `share tracker` on 10.99.0.1, `share seed` on 10.99.0.2, and N `share fetch` (peers
          from the tracker only); time until every fetch has exited, and the seed's uploaded
          bytes (its `uploaded: U downloaded: D` line after SIGTERM).
  HTTP:   `python3 -m http.server` on the seed host and N `curl` downloads of the same file;
          time until every curl has exited; the origin sends N x size.

With --free-rider, every share run has one more downloader, `share fetch --no-upload` (it
never uploads), and the line says when it finished against the others' mean (the issue's
test: at least 1.5x later, and their mean no later than without it: compare a run of the
same N without --free-rider). --runs repeats each N. Each share line also says how far the
last downloader finished behind the median one.

Then it prints a table and draws time against N to bench/netsim.png (--plot), with the numbers in
a .json beside it. matplotlib is needed only for the plot (Debian: python3-matplotlib); when the
running python lacks it, /usr/bin/python3 is tried. Logs of every process are kept under --work
(stdout and stderr per host and run): set --share-log share_engine=debug for the engine's own.

Every wait has a deadline; every process and namespace it made is removed at the end, also on
Ctrl-C, SIGTERM or an exception; namespaces left with the prefix by an aborted run are removed
at the start.
"""
import argparse
import atexit
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# Inside its own namespaces, but with no way out: no DHT (it would bootstrap from public
# nodes), and no local service discovery, so that peers come from the tracker as before.
os.environ.setdefault("SHARE_NO_DHT", "1")
os.environ.setdefault("SHARE_NO_LSD", "1")
os.environ.setdefault("SHARE_NO_PORT_MAPPING", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARE = os.path.join(ROOT, "target/release/share")
PREFIX = "shs-"
BRIDGE_NS = PREFIX + "br"
TRACKER_NS = PREFIX + "tracker"
SEED_NS = PREFIX + "seed"
TRACKER_IP = "10.99.0.1"
SEED_IP = "10.99.0.2"
HTTP_PORT = 8000


def leecher_ns(i):
    return f"{PREFIX}l{i + 1:02d}"


def leecher_ip(i):
    return f"10.99.1.{i + 1}"


# ---------------------------------------------------------------- commands and cleanup

def sh(*args, check=True, timeout=30, quiet=False):
    """Runs a command (a list of words) and returns its stdout."""
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    if not quiet and r.returncode != 0:
        print(f"  note: {' '.join(args)}: {r.stderr.strip()}", file=sys.stderr)
    return r.stdout


def nsx(ns, *args, **kw):
    return sh("ip", "netns", "exec", ns, *args, **kw)


PROCS = []  # every Popen this script started


def spawn(ns, cmd, log_prefix, env=None):
    """Starts cmd inside namespace ns, stdout and stderr to log files. `ip netns exec` execs the
    command, so the Popen's pid is the command's own."""
    out = open(log_prefix + ".out", "w")
    err = open(log_prefix + ".err", "w")
    p = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, stdout=out, stderr=err,
                         stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    out.close()
    err.close()
    p.log_prefix = log_prefix
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=10):
    """Stops one process we started: sig, then SIGKILL after timeout. Returns its exit code."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
    return p.returncode


def our_namespaces():
    out = sh("ip", "netns", "list", check=False, quiet=True)
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(PREFIX)]


def remove_namespaces():
    """Deletes every namespace with our prefix, after ending the processes still inside them
    (only ours can be there: the namespaces are this script's). Deleting a namespace deletes
    its veth ends, their peers and the bridge with it."""
    for ns in our_namespaces():
        pids = sh("ip", "netns", "pids", ns, check=False, quiet=True).split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", ns, check=False)


_cleaned = False


def cleanup():
    global _cleaned
    if _cleaned:
        return
    _cleaned = True
    for p in PROCS:
        try:
            stop(p, signal.SIGTERM, timeout=3)
        except Exception:
            pass
    remove_namespaces()
    left = our_namespaces()
    if left:
        print(f"warning: namespaces left: {' '.join(left)}", file=sys.stderr)


def on_signal(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")


# ---------------------------------------------------------------- the network

def add_host(ns, ip, rate_bps, burst, latency_ms, veth):
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    # The pair is made inside the bridge's namespace, its other end moved straight into the
    # host's: nothing is ever created in the root namespace.
    sh("ip", "-n", BRIDGE_NS, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
       "netns", ns)
    sh("ip", "-n", BRIDGE_NS, "link", "set", veth, "master", "br0")
    sh("ip", "-n", BRIDGE_NS, "link", "set", veth, "up")
    sh("ip", "-n", ns, "addr", "add", f"{ip}/16", "dev", "eth0")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
    # The host's upload: the egress of its own end.
    nsx(ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", f"{rate_bps}bit",
        "burst", str(burst), "latency", f"{latency_ms}ms")


def build_network(leechers, rate, latency_ms):
    remove_namespaces()
    rate_bps = int(rate * 8)
    burst = max(32 * 1024, int(rate / 100))  # >= 10 ms at the rate
    sh("ip", "netns", "add", BRIDGE_NS)
    sh("ip", "-n", BRIDGE_NS, "link", "set", "lo", "up")
    sh("ip", "-n", BRIDGE_NS, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", BRIDGE_NS, "link", "set", "br0", "up")
    add_host(TRACKER_NS, TRACKER_IP, rate_bps, burst, latency_ms, "v-tracker")
    add_host(SEED_NS, SEED_IP, rate_bps, burst, latency_ms, "v-seed")
    for i in range(leechers):
        add_host(leecher_ns(i), leecher_ip(i), rate_bps, burst, latency_ms, f"v-l{i + 1:02d}")
    # Every host reaches the last leecher: the bridge forwards.
    last = leecher_ip(leechers - 1)
    if shutil.which("ping"):
        r = subprocess.run(["ip", "netns", "exec", SEED_NS, "ping", "-c", "1", "-W", "2", last],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        if r.returncode != 0:
            raise RuntimeError(f"{SEED_IP} cannot reach {last} over the bridge")


# ---------------------------------------------------------------- helpers

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_line(p, pattern, timeout):
    """Waits until the process's stdout log holds a line matching pattern; returns the match."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, read(p.log_prefix + ".out"), re.M)
        if m:
            return m
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{p.args[3:]} gave no line /{pattern}/ in {timeout} s "
                       f"(exit {p.poll()}): {read(p.log_prefix + '.err')[-2000:]}")


def bencode_count(body, key):
    m = re.search(rb"%d:%si(\d+)e" % (len(key), key.encode()), body)
    return int(m.group(1)) if m else None


def scrape(info_hash_hex, timeout=5):
    """The tracker's counts for the torrent, asked from the tracker's own namespace."""
    q = "".join("%" + info_hash_hex[i:i + 2] for i in range(0, 40, 2))
    r = subprocess.run(["ip", "netns", "exec", TRACKER_NS, "curl", "-s", "--max-time",
                        str(timeout), f"http://{TRACKER_IP}:6969/scrape?info_hash={q}"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout + 5)
    return {k: bencode_count(r.stdout, k) for k in ("complete", "incomplete", "downloaded")}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def wait_all(procs, timeout, label):
    """Waits until every process has exited or the deadline passes; returns each one's exit
    time (seconds from now) or None, killing the ones still running at the deadline."""
    start = time.monotonic()
    done = [None] * len(procs)
    while time.monotonic() - start < timeout:
        for i, p in enumerate(procs):
            if done[i] is None and p.poll() is not None:
                done[i] = time.monotonic() - start
        if all(d is not None for d in done):
            return done
        time.sleep(0.02)
    late = [i for i, d in enumerate(done) if d is None]
    print(f"  {label}: {len(late)} of {len(procs)} did not finish in {timeout:.0f} s; stopping "
          "them", file=sys.stderr)
    for i in late:
        stop(procs[i], signal.SIGTERM, timeout=5)
    return done


def swarm_env(args):
    env = dict(os.environ)
    if args.share_log:
        env["SHARE_LOG"] = args.share_log
    return env


# ---------------------------------------------------------------- the two runs

def run_share(n, args, work, data_path, torrent, info_hash, run=0):
    rundir = os.path.join(work, f"share-n{n}-r{run}")
    riders = 1 if args.free_rider else 0
    os.makedirs(rundir)
    env = swarm_env(args)
    tracker = seed = None
    fetches = []
    try:
        tracker = spawn(TRACKER_NS, [SHARE, "tracker", "--listen", f"{TRACKER_IP}:6969",
                                     "--interval", str(args.interval), "--quiet"],
                        os.path.join(rundir, "tracker"), env)
        wait_line(tracker, r"^listening on ", 20)
        seed = spawn(SEED_NS, [SHARE, "seed", torrent, "-d", os.path.dirname(data_path),
                               "--listen", f"{SEED_IP}:6881", "--quiet"] + args.seed_arg,
                     os.path.join(rundir, "seed"), env)
        wait_line(seed, r"^listening on ", 60)
        # Ready when the tracker lists the seed (it announces once its check is done).
        deadline = time.monotonic() + 60
        while scrape(info_hash).get("complete") != 1:
            if time.monotonic() > deadline or seed.poll() is not None:
                raise RuntimeError(f"the seed never showed on the tracker: "
                                   f"{read(seed.log_prefix + '.err')[-2000:]}")
            time.sleep(0.1)

        t0 = time.monotonic()
        for i in range(n + riders):
            out = os.path.join(rundir, f"dl{i + 1:02d}")
            os.makedirs(out)
            rider = ["--no-upload"] if i >= n else []
            fetches.append(spawn(leecher_ns(i),
                                 [SHARE, "fetch", torrent, "-o", out,
                                  "--listen", f"{leecher_ip(i)}:6881", "--quiet"]
                                 + args.fetch_arg + rider,
                                 os.path.join(rundir, f"l{i + 1:02d}"), env))
        n += riders
        spawn_s = time.monotonic() - t0
        timeout = args.timeout or max(120, 3 * n * args.size_mib / args.rate_mib + 60)
        # Sample the tracker now and then (swarm shape), while waiting.
        samples = []
        start = time.monotonic()
        done = [None] * n
        while time.monotonic() - start < timeout and any(d is None for d in done):
            for i, p in enumerate(fetches):
                if done[i] is None and p.poll() is not None:
                    done[i] = time.monotonic() - t0
            if not samples or time.monotonic() - samples[-1][0] - t0 >= 1:
                c = scrape(info_hash, timeout=2)
                samples.append((time.monotonic() - t0, c.get("complete"), c.get("incomplete")))
            time.sleep(0.02)
        late = [i for i, d in enumerate(done) if d is None]
        for i in late:
            print(f"  share N={n}: leecher {i + 1} did not finish in {timeout:.0f} s",
                  file=sys.stderr)
            stop(fetches[i], signal.SIGTERM, timeout=5)
        elapsed = max(d for d in done if d is not None) if len(late) < n else None

        stop(seed, signal.SIGTERM, timeout=15)
        m = re.findall(r"^uploaded: (\d+) downloaded: (\d+)", read(seed.log_prefix + ".out"), re.M)
        seed_up = int(m[-1][0]) if m else None
        stop(tracker, signal.SIGTERM, timeout=5)

        want = sha256(data_path)
        leechers = []
        for i, p in enumerate(fetches):
            m = re.findall(r"^uploaded: (\d+) downloaded: (\d+)", read(p.log_prefix + ".out"),
                           re.M)
            got = os.path.join(rundir, f"dl{i + 1:02d}", os.path.basename(data_path))
            ok = p.returncode == 0 and os.path.exists(got) and sha256(got) == want
            leechers.append({"exit": p.returncode, "time": done[i], "ok": ok,
                             "up": int(m[-1][0]) if m else None,
                             "down": int(m[-1][1]) if m else None})
            err = read(p.log_prefix + ".err").strip()
            if err and not args.share_log:
                print(f"  share N={n} leecher {i + 1} stderr: {err[-1500:]}", file=sys.stderr)
        for sub in os.listdir(rundir):  # the data, not the logs
            if sub.startswith("dl"):
                shutil.rmtree(os.path.join(rundir, sub), ignore_errors=True)
        return {"time": elapsed, "seed_up": seed_up, "leechers": leechers,
                "spawn_s": spawn_s, "tracker": samples,
                "all_ok": all(x["ok"] for x in leechers) and not late}
    finally:
        for p in fetches + [seed, tracker]:
            if p is not None:
                stop(p, signal.SIGKILL if p in fetches else signal.SIGTERM, timeout=5)


def run_http(n, args, work, data_path):
    rundir = os.path.join(work, f"http-n{n}")
    os.makedirs(rundir)
    name = os.path.basename(data_path)
    server = None
    curls = []
    try:
        server = spawn(SEED_NS, [sys.executable, "-u", "-m", "http.server", str(HTTP_PORT),
                                 "--bind", SEED_IP, "--directory", os.path.dirname(data_path)],
                       os.path.join(rundir, "server"))
        wait_line(server, r"^Serving HTTP on ", 20)
        url = f"http://{SEED_IP}:{HTTP_PORT}/{name}"
        timeout = args.timeout or max(120, 3 * n * args.size_mib / args.rate_mib + 60)
        t0 = time.monotonic()
        for i in range(n):
            curls.append(spawn(leecher_ns(i),
                               ["curl", "-sS", "--fail", "--max-time", str(int(timeout)),
                                "-o", os.path.join(rundir, f"dl{i + 1:02d}"), url],
                               os.path.join(rundir, f"l{i + 1:02d}")))
        done = wait_all(curls, timeout, f"HTTP N={n}")
        late = [i for i, d in enumerate(done) if d is None]
        elapsed = max(d for d in done if d is not None) if len(late) < n else None
        size = os.path.getsize(data_path)
        oks = []
        for i, p in enumerate(curls):
            got = os.path.join(rundir, f"dl{i + 1:02d}")
            oks.append(p.returncode == 0 and os.path.exists(got) and os.path.getsize(got) == size)
            if not oks[-1]:
                print(f"  HTTP N={n} client {i + 1}: exit {p.returncode}: "
                      f"{read(p.log_prefix + '.err')[-500:]}", file=sys.stderr)
            if os.path.exists(got):
                os.remove(got)
        return {"time": elapsed, "origin_up": n * size, "times": done,
                "all_ok": all(oks) and not late}
    finally:
        for p in curls:
            stop(p, signal.SIGKILL, timeout=5)
        if server is not None:
            stop(server, signal.SIGTERM, timeout=5)


# ---------------------------------------------------------------- report

def summary(s, size, n, free_rider):
    """One run's figures: the origin's copies, the last downloader against the median one
    (of the reciprocating ones), and a free-rider's finish against their mean."""
    times = [x["time"] for x in s["leechers"]]
    rider = times[n] if free_rider and len(times) > n else None
    honest = sorted(t for t in times[:n] if t is not None)
    out = []
    if s.get("seed_up") is not None:
        out.append(f"origin copies {s['seed_up'] / size:.2f}")
    if honest:
        median = honest[len(honest) // 2] if len(honest) % 2 else \
            (honest[len(honest) // 2 - 1] + honest[len(honest) // 2]) / 2
        mean = sum(honest) / len(honest)
        out.append(f"last {honest[-1]:.1f} s vs median {median:.1f} s "
                   f"(+{100 * (honest[-1] / median - 1):.0f}%), mean {mean:.1f} s")
        if rider is not None:
            out.append(f"free-rider {rider:.1f} s = {rider / mean:.2f}x the others' mean")
    return "; ".join(out)


def fmt_t(t):
    return f"{t:.1f}" if t is not None else "-"


def table(results, size):
    head = (f"{'N':>3}  {'share s':>8}  {'HTTP s':>8}  {'share origin up':>24}  "
            f"{'HTTP origin up':>22}  {'leechers up':>20}")
    lines = [head, "-" * len(head)]
    for r in results:
        n, s, h = r["n"], r.get("share") or {}, r.get("http") or {}
        su = s.get("seed_up")
        sup = f"{su} ({su / size:.2f}x)" if su is not None else "-"
        hu = h.get("origin_up")
        hup = f"{hu} ({hu / size:.2f}x)" if hu is not None else "-"
        lu = sum(x["up"] or 0 for x in s.get("leechers", []))
        lup = f"{lu} ({lu / size:.2f}x)" if s else "-"
        flag = ""
        if s and not s.get("all_ok"):
            flag += "  share: INCOMPLETE"
        if h and not h.get("all_ok"):
            flag += "  HTTP: INCOMPLETE"
        lines.append(f"{n:>3}  {fmt_t(s.get('time')):>8}  {fmt_t(h.get('time')):>8}  "
                     f"{sup:>24}  {hup:>22}  {lup:>20}{flag}")
    return "\n".join(lines)


def plot(data, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = data["results"]
    ns = [r["n"] for r in results]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for key, label, style in (("share", "share (BitTorrent swarm)", "o-"),
                              ("http", "plain HTTP (curl)", "s-")):
        pts = [(r["n"], r[key]["time"]) for r in results if r.get(key) and r[key].get("time")]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    ideal = data["size"] / data["rate"]
    ax.plot(ns, [ideal * n for n in ns], ":", color="grey", label="N x size / rate")
    ax.axhline(ideal, ls="--", color="grey", lw=0.8, label="size / rate")
    ax.set_xlabel("downloaders at once (N)")
    ax.set_ylabel("time until all have the file (s)")
    ax.set_xticks(ns)
    ax.set_title(f"{data['size'] / 2**20:g} MiB file, every host's upload "
                 f"{data['rate'] / 2**20:g} MiB/s")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def draw(data, path, json_path):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        other = "/usr/bin/python3"
        if os.path.realpath(sys.executable) != os.path.realpath(other) and os.path.exists(other):
            r = subprocess.run([other, os.path.abspath(__file__), "--replot", json_path,
                                "--plot", path], timeout=120)
            return r.returncode == 0
        print("matplotlib is missing (apt-get install python3-matplotlib): no plot",
              file=sys.stderr)
        return False
    plot(data, path)
    return True


# ---------------------------------------------------------------- main

def main():
    global SHARE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="1,2,4,8,16", help="the N to run, comma-separated")
    ap.add_argument("--size-mib", type=float, default=16, help="the file's size in MiB")
    ap.add_argument("--rate-mib", type=float, default=2,
                    help="every host's upload limit in MiB/s")
    ap.add_argument("--latency-ms", type=int, default=400,
                    help="the most a packet waits in a host's upload queue (tbf latency)")
    ap.add_argument("--interval", type=int, default=5, help="the tracker's announce interval")
    ap.add_argument("--timeout", type=float, default=0,
                    help="seconds one run may take (default: from N, size and rate)")
    ap.add_argument("--only", choices=("share", "http"), help="run one side only")
    ap.add_argument("--share-log", default="", help="SHARE_LOG for every share process, "
                    "e.g. share_engine=debug (logs go to WORK/share-nN/*.err)")
    ap.add_argument("--fetch-arg", action="append", default=[],
                    help="an extra argument for every share fetch (repeatable)")
    ap.add_argument("--seed-arg", action="append", default=[],
                    help="an extra argument for share seed (repeatable)")
    ap.add_argument("--free-rider", action="store_true",
                    help="one more share downloader that never uploads (--no-upload)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each N")
    ap.add_argument("--work", help="the folder for the file and the logs (default: a new one "
                    "under /tmp, kept)")
    ap.add_argument("--plot", default=os.path.join(ROOT, "bench", "netsim.png"))
    ap.add_argument("--share", default=SHARE, help="the share binary (default: %(default)s)")
    ap.add_argument("--replot", metavar="JSON", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.replot:
        with open(args.replot) as f:
            plot(json.load(f), args.plot)
        return
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces and tc)")
    SHARE = os.path.abspath(args.share)
    if not os.access(SHARE, os.X_OK):
        sys.exit(f"{SHARE} is missing: build it with cargo build --release")
    for tool in ("ip", "tc", "curl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing")
    counts = sorted({int(x) for x in args.counts.split(",") if x.strip()})
    if not counts or counts[0] < 1 or counts[-1] > 250:
        sys.exit("--counts: numbers from 1 to 250")

    atexit.register(cleanup)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where SIGINT was ignored
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    work = args.work or tempfile.mkdtemp(prefix="netsim-", dir="/tmp")
    os.makedirs(work, exist_ok=True)
    size = int(args.size_mib * 2**20)
    rate = args.rate_mib * 2**20
    results = []
    try:
        print(f"work folder: {work}")
        data_dir = os.path.join(work, "origin")
        os.makedirs(data_dir, exist_ok=True)
        data_path = os.path.join(data_dir, "payload.bin")
        with open(data_path, "wb") as f:
            left = size
            while left:
                chunk = os.urandom(min(left, 1 << 20))
                f.write(chunk)
                left -= len(chunk)
        torrent = os.path.join(work, "payload.torrent")
        out = sh(SHARE, "create", data_path, "-o", torrent, "-t",
                 f"http://{TRACKER_IP}:6969/announce", "-q", timeout=120)
        m = re.search(r"\b([0-9a-f]{40})\b", out)
        if not m:
            raise RuntimeError(f"no info-hash in share create's output: {out!r}")
        info_hash = m.group(1)
        print(f"file: {size} bytes, info-hash {info_hash}; upload per host "
              f"{args.rate_mib:g} MiB/s; N = {', '.join(map(str, counts))}")

        build_network(counts[-1] + (1 if args.free_rider else 0), rate, args.latency_ms)
        for n in counts:
            r = {"n": n}
            for run in range(args.runs):
                r = {"n": n, "run": run}
                if args.only != "http":
                    r["share"] = run_share(n, args, work, data_path, torrent, info_hash, run)
                    s = r["share"]
                    ups = [x["up"] for x in s["leechers"]]
                    print(f"N={n:>2} share: {fmt_t(s['time'])} s, seed up {s['seed_up']}, "
                          f"leechers up {ups}, finish times "
                          f"{[fmt_t(x['time']) for x in s['leechers']]}", flush=True)
                    print(f"      {summary(s, size, n, args.free_rider)}", flush=True)
                if args.only != "share":
                    r["http"] = run_http(n, args, work, data_path)
                    print(f"N={n:>2} HTTP:  {fmt_t(r['http']['time'])} s", flush=True)
                results.append(r)
    finally:
        cleanup()

    print()
    print(table(results, size))
    data = {"size": size, "rate": rate, "latency_ms": args.latency_ms, "share": SHARE,
            "share_mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(
                os.path.getmtime(SHARE))),
            "interval": args.interval, "results": results}
    json_path = os.path.splitext(args.plot)[0] + ".json"
    with open(json_path, "w") as f:
        json.dump(data, f, indent=1)
    print(f"\nnumbers: {json_path}\nlogs: {work}")
    if draw(data, args.plot, json_path):
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (processes stopped, namespaces removed)")
