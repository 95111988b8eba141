#!/usr/bin/env python3
"""Benchmark: memory of one process seeding many torrents, share against libtorrent.

Run by hand (not a test):  python3 bench/many.py [--counts 1,10,100] [--size-kib 1024]

For each count N it makes N torrents of N different small files, starts one `share seed`
with all of them (one port), waits until every torrent has been checked, lets it rest for a
few seconds and reads its resident memory (VmRSS) and open descriptors from /proc. Then it
does the same with one libtorrent session (python3-libtorrent) seeding the same N torrents.
libtorrent runs inside a Python interpreter: the table also gives that interpreter with an
empty libtorrent session, so that the difference can be read off. Loopback only, DHT and
LSD off on both sides.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from common import SHARE, build

LT_SEED_MANY = r"""
import sys, time, libtorrent as lt
s = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                "enable_upnp": False, "enable_natpmp": False, "active_seeds": -1,
                "active_limit": -1})
handles = []
for t in sys.argv[2:]:
    p = lt.add_torrent_params()
    p.ti = lt.torrent_info(t)
    p.save_path = sys.argv[1]
    p.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    handles.append(s.add_torrent(p))
while not all(h.status().is_seeding for h in handles):
    time.sleep(0.1)
print("ready", flush=True)
time.sleep(3600)
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(p, want, count, timeout=600):
    """Reads p's stream (stdout or stderr, as piped) until `want` appeared `count` times."""
    seen = 0
    deadline = time.monotonic() + timeout
    stream = p.stdout if p.stdout else p.stderr
    while seen < count and time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        if want in line:
            seen += 1
    if seen < count:
        sys.exit(f"only {seen} of {count} `{want}` lines")


def measure(p, settle):
    time.sleep(settle)
    return rss_kib(p.pid) / 1024, fds(p.pid)


def stop(p):
    p.terminate()
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="1,10,100")
    ap.add_argument("--size-kib", type=int, default=1024)
    ap.add_argument("--settle", type=float, default=5.0)
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    build()
    rows = []
    with tempfile.TemporaryDirectory(prefix="share-bench-many-") as work:
        src = os.path.join(work, "src")
        os.makedirs(src)
        torrents = []
        for i in range(max(counts)):
            path = os.path.join(src, f"f{i:04d}.bin")
            with open(path, "wb") as f:
                f.write(os.urandom(args.size_kib * 1024))
            t = os.path.join(work, f"f{i:04d}.torrent")
            subprocess.run([SHARE, "create", path, "-q", "-o", t, "--piece-length", "65536"],
                           check=True, stdout=subprocess.DEVNULL)
            torrents.append(t)
        # libtorrent's interpreter alone, with an empty session.
        p = subprocess.Popen(["/usr/bin/python3", "-c", LT_SEED_MANY, src], stdout=subprocess.PIPE,
                             text=True)
        wait_for(p, "ready", 1)
        lt_base, lt_base_fds = measure(p, args.settle)
        stop(p)
        for n in counts:
            ts = torrents[:n]
            env = dict(os.environ, SHARE_NO_DHT="1", SHARE_NO_LSD="1", SHARE_LOOPBACK_ONLY="1")
            p = subprocess.Popen([SHARE, "seed", *ts, "-d", src, "--listen", "127.0.0.1:0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env=env)
            wait_for(p, "checked:", n if n > 1 else 1)
            share_mib, share_fds = measure(p, args.settle)
            stop(p)
            p = subprocess.Popen(["/usr/bin/python3", "-c", LT_SEED_MANY, src, *ts],
                                 stdout=subprocess.PIPE, text=True)
            wait_for(p, "ready", 1)
            lt_mib, lt_fds = measure(p, args.settle)
            stop(p)
            rows.append((n, share_mib, share_fds, lt_mib, lt_fds))
            print(f"N={n}: share {share_mib:.1f} MiB {share_fds} fds; "
                  f"libtorrent {lt_mib:.1f} MiB {lt_fds} fds", file=sys.stderr)
    print()
    print(f"| torrents | share RSS | share fds | libtorrent RSS | libtorrent fds |")
    print(f"|---|---|---|---|---|")
    print(f"| 0 | | | {lt_base:.1f} MiB (the interpreter) | {lt_base_fds} |")
    for n, s, sf, l, lf in rows:
        print(f"| {n} | {s:.1f} MiB | {sf} | {l:.1f} MiB | {lf} |")


if __name__ == "__main__":
    main()
