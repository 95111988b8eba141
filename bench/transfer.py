#!/usr/bin/env python3
"""Benchmark: moving one file over loopback, share -> share against libtorrent -> libtorrent.

Run by hand (not a test):  python3 bench/transfer.py [--size-mib 1024] [--runs 2]

For each pair it starts the seeder, waits until it serves, then times the leecher from start
to exit and prints wall time, MiB/s, the CPU seconds of each side and the leecher's peak RSS
(from wait4() on the leecher; the seeder's CPU from /proc before it is stopped). The page cache
is dropped between runs when possible (root), so both pairs start alike.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from common import LT_PEER, SHARE, build, cpu_of, make_data, measure, start_listening, stop


def wait_ready(p, word, timeout=300):
    """Reads the seeder's stdout until a line holding `word` (its check is done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            return
        if word in line:
            return


def drop_caches():
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
    except OSError:
        pass


def one_run(seed_cmd, ready_word, fetch_cmd, dst):
    subprocess.run(["rm", "-rf", dst])
    os.makedirs(dst)
    seeder, addr = start_listening(seed_cmd)
    if ready_word:
        wait_ready(seeder, ready_word)
    else:
        time.sleep(3)  # share seed: the check runs before it serves; wait it out
    seed_cpu0 = cpu_of(seeder.pid)
    wall, leech_cpu, rss, code, err = measure(fetch_cmd(addr))
    seed_cpu = cpu_of(seeder.pid) - seed_cpu0
    stop(seeder, timeout=20)
    if code != 0:
        sys.exit(f"leecher failed: {err[-2000:]}")
    return wall, seed_cpu, leech_cpu, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    build()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        data = os.path.join(src, "data.bin")
        make_data(data, args.size_mib)
        torrent = os.path.join(d, "t.torrent")
        subprocess.run([SHARE, "create", data, "-q", "-o", torrent], check=True,
                       stdout=subprocess.DEVNULL)
        dst = os.path.join(d, "dst")
        pairs = [
            ("share -> share",
             [SHARE, "seed", torrent, "-d", src, "--listen", "127.0.0.1:0", "-q"], None,
             lambda a: [SHARE, "fetch", torrent, "-o", dst, "--peer", a,
                        "--listen", "127.0.0.1:0", "-q"]),
            ("libtorrent -> libtorrent",
             [*LT_PEER, "seed", torrent, src], "seeding",
             lambda a: [*LT_PEER, "fetch", torrent, dst, "--peer", a, "--timeout", "600"]),
        ]
        rows = []
        for name, seed_cmd, ready, fetch_cmd in pairs:
            best = None
            for _ in range(args.runs):
                drop_caches()
                subprocess.run(["cat", data], stdout=subprocess.DEVNULL)  # seeder's data warm
                r = one_run(seed_cmd, ready, fetch_cmd, dst)
                best = r if best is None or r[0] < best[0] else best
            rows.append((name, *best))
    mib = args.size_mib
    print(f"\n{mib} MiB over loopback, {os.cpu_count()} cores, best of {args.runs}\n")
    print(f"| {'pair':<26} | {'wall s':>7} | {'MiB/s':>6} | {'seed CPU s':>10} | "
          f"{'leech CPU s':>11} | {'leech peak RSS MiB':>18} |")
    print(f"|{'-' * 28}|{'-' * 9}|{'-' * 8}|{'-' * 12}|{'-' * 13}|{'-' * 20}|")
    for name, wall, scpu, lcpu, rss in rows:
        print(f"| {name:<26} | {wall:7.2f} | {mib / wall:6.0f} | {scpu:10.2f} | {lcpu:11.2f} | "
              f"{rss:18.1f} |")


if __name__ == "__main__":
    main()
