#!/usr/bin/env python3
"""Benchmark: one seed and four leechers on loopback, share against libtorrent.

Run by hand (not a test):  python3 bench/swarm.py [--size-mib 1024] [--leechers 4]

Each swarm meets through a `share tracker` on loopback. The leechers start together; the
table gives the time until all of them are complete, the seed's upload as a fraction of
(leechers x size) -- 1.0 means the seed sent every leecher its own copy, lower means the
leechers traded -- and the seed's CPU seconds.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from common import LT_PEER, SHARE, build, cpu_of, make_data, stop, start_listening as start


def stop_counts(p):
    """SIGTERM, then the `uploaded: U downloaded: D` line."""
    out = stop(p)
    m = re.findall(r"uploaded: (\d+) downloaded: (\d+)", out)
    return int(m[-1][0]) if m else 0


def swarm(name, seed_cmd, seed_ready, leech_cmd, n, size):
    seed, seed_addr = start(seed_cmd, seed_ready)
    if seed_ready is None:
        time.sleep(3)  # share seed checks its data after `listening on`
    cpu0 = cpu_of(seed.pid)
    t0 = time.monotonic()
    leechers = [subprocess.Popen(leech_cmd(i, seed_addr), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for i in range(n)]
    for l in leechers:
        if l.wait(timeout=900) != 0:
            sys.exit(f"{name}: a leecher failed")
    wall = time.monotonic() - t0
    cpu = cpu_of(seed.pid) - cpu0
    up = stop_counts(seed)
    return name, wall, up / (n * size), cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--leechers", type=int, default=4)
    ap.add_argument("--share-arg", action="append", default=[],
                    help="an option for every share process (repeatable)")
    ap.add_argument("--only-share", action="store_true")
    args = ap.parse_args()
    extra = args.share_arg
    build()
    size = args.size_mib << 20
    n = args.leechers
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        tracker, taddr = start([SHARE, "tracker", "--listen", "127.0.0.1:0", "-q",
                                "--interval", "10"])
        src = os.path.join(d, "src")
        os.makedirs(src)
        data = os.path.join(src, "data.bin")
        make_data(data, args.size_mib)
        torrent = os.path.join(d, "t.torrent")
        subprocess.run([SHARE, "create", data, "-q", "-o", torrent,
                        "-t", f"http://{taddr}/announce"], check=True, stdout=subprocess.DEVNULL)
        rows = []
        for kind in ("share",) if args.only_share else ("share", "libtorrent"):
            for i in range(n):
                subprocess.run(["rm", "-rf", os.path.join(d, f"l{i}")])
                os.makedirs(os.path.join(d, f"l{i}"))
            subprocess.run(["sync"])
            if kind == "share":
                rows.append(swarm(
                    "share", [SHARE, "seed", torrent, "-d", src, "--listen", "127.0.0.1:0", "-q",
                              *extra],
                    None,
                    lambda i, a: [SHARE, "fetch", torrent, "-o", os.path.join(d, f"l{i}"),
                                  "--listen", "127.0.0.1:0", "-q", *extra], n, size))
            else:
                rows.append(swarm(
                    "libtorrent (python)", [*LT_PEER, "seed", torrent, src, "--timeout", "900"],
                    "seeding",
                    lambda i, a: [*LT_PEER, "fetch", torrent, os.path.join(d, f"l{i}"),
                                  "--peer", a, "--timeout", "900"], n, size))
        stop(tracker, timeout=10)
    print(f"\none seed, {n} leechers, {args.size_mib} MiB, loopback, {os.cpu_count()} cores\n")
    print(f"| {'swarm':<20} | {'all done s':>10} | {'seed upload / (n x size)':>24} | "
          f"{'seed CPU s':>10} |")
    print(f"|{'-' * 22}|{'-' * 12}|{'-' * 26}|{'-' * 12}|")
    for name, wall, frac, cpu in rows:
        print(f"| {name:<20} | {wall:10.1f} | {frac:24.2f} | {cpu:10.2f} |")


if __name__ == "__main__":
    main()
