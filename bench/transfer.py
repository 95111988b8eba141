#!/usr/bin/env python3
"""Benchmark: moving one file over loopback, share -> share against libtorrent -> libtorrent.

Run by hand (not a test):  python3 bench/transfer.py [--size-mib 1024] [--runs 2]
                               [--modes default,plain,rc4,utp] [--formats v1,v2,hybrid]
                               [--clients share,libtorrent]

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
    ap.add_argument("--modes", default="default",
                    help="comma-separated: default (share's defaults: TCP, MSE handshake, "
                         "plaintext payload; libtorrent's own defaults over TCP), plain "
                         "(plaintext TCP), rc4 (MSE with RC4 on every byte), utp (µTP, "
                         "plaintext)")
    ap.add_argument("--formats", default="v1",
                    help="comma-separated torrent formats: v1, v2, hybrid")
    ap.add_argument("--clients", default="share,libtorrent",
                    help="comma-separated: share (share -> share), libtorrent (lt -> lt)")
    args = ap.parse_args()
    modes = args.modes.split(",")
    clients = args.clients.split(",")
    share_opts = {
        "default": [],
        "plain": ["--encryption", "disable", "--transports", "tcp"],
        "rc4": ["--encryption", "require", "--transports", "tcp"],
        "utp": ["--encryption", "disable", "--transports", "utp"],
    }
    lt_opts = {
        "default": [],
        "plain": ["--out-enc", "disabled"],
        "rc4": ["--force-rc4"],
        "utp": ["--utp-only", "--out-enc", "disabled"],
    }
    build()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        data = os.path.join(src, "data.bin")
        make_data(data, args.size_mib)
        dst = os.path.join(d, "dst")
        pairs = []
        for fmt in args.formats.split(","):
            torrent = os.path.join(d, f"{fmt}.torrent")
            subprocess.run([SHARE, "create", data, "-q", "--format", fmt, "-o", torrent],
                           check=True, stdout=subprocess.DEVNULL)
            tag = "" if fmt == "v1" and args.formats == "v1" else f"{fmt}, "
            for mode in modes:
                so, lo = share_opts[mode], lt_opts[mode]
                if "share" in clients:
                    pairs.append((
                        f"share -> share ({tag}{mode})",
                        [SHARE, "seed", torrent, "-d", src, "--listen", "127.0.0.1:0", "-q",
                         *so], None,
                        lambda a, so=so, t=torrent: [SHARE, "fetch", t, "-o", dst, "--peer", a,
                                                     "--listen", "127.0.0.1:0", "-q", *so]))
                if "libtorrent" in clients:
                    pairs.append((
                        f"libtorrent -> libtorrent ({tag}{mode})",
                        [*LT_PEER, "seed", torrent, src, *lo], "seeding",
                        lambda a, lo=lo, t=torrent: [*LT_PEER, "fetch", t, dst, "--peer", a,
                                                     "--timeout", "600", *lo]))
        rows = []
        # Interleave the runs, so that a slow stretch of the machine hits every pair alike.
        results = {name: [] for name, *_ in pairs}
        for _ in range(args.runs):
            for name, seed_cmd, ready, fetch_cmd in pairs:
                drop_caches()
                subprocess.run(["cat", data], stdout=subprocess.DEVNULL)  # seeder's data warm
                results[name].append(one_run(seed_cmd, ready, fetch_cmd, dst))
        for name, *_ in pairs:
            rows.append((name, results[name]))
    mib = args.size_mib
    print(f"\n{mib} MiB over loopback, {os.cpu_count()} cores, {args.runs} runs (range)\n")
    print(f"| {'pair':<42} | {'MiB/s':>11} | {'seed CPU s':>11} | "
          f"{'leech CPU s':>11} | {'leech peak RSS MiB':>18} |")
    print(f"|{'-' * 44}|{'-' * 13}|{'-' * 13}|{'-' * 13}|{'-' * 20}|")

    def rng(vals, fmt):
        lo, hi = min(vals), max(vals)
        return (fmt % lo) if fmt % lo == fmt % hi else f"{fmt % lo}-{fmt % hi}"
    for name, runs in rows:
        speeds = [mib / r[0] for r in runs]
        print(f"| {name:<42} | {rng(speeds, '%.0f'):>11} | {rng([r[1] for r in runs], '%.1f'):>11} | "
              f"{rng([r[2] for r in runs], '%.1f'):>11} | {rng([r[3] for r in runs], '%.0f'):>18} |")


if __name__ == "__main__":
    main()
