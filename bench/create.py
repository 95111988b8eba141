#!/usr/bin/env python3
"""Benchmark: `share create` against mktorrent and libtorrent on the same 1 GiB file.

Run by hand (not a test):  python3 bench/create.py [--size-mib 1024] [--runs 3]
                                                   [--formats v1,v2,hybrid]
mktorrent takes part in the v1 rows only (it writes nothing else).
Builds share in release mode, makes the file once, warms the page cache, then runs each tool
`--runs` times with the same piece length and prints the best run of each: wall time, MiB/s,
CPU seconds (user+system) and peak RSS, all taken from wait4() on the child.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from common import SHARE, build, measure
LT_CREATE = r"""
import sys, libtorrent as lt
path, piece, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fs = lt.file_storage(); lt.add_files(fs, path)
flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}
t = lt.create_torrent(fs, piece, flags=flags[sys.argv[4]])
lt.set_piece_hashes(t, __import__('os').path.dirname(path))
open(out, 'wb').write(lt.bencode(t.generate()))
"""


def run_tool(cmd):
    wall, cpu, rss, code, err = measure(cmd)
    if code != 0:
        sys.exit(f"{cmd[0]} failed: {err}")
    return wall, cpu, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--piece-log2", type=int, default=20)
    ap.add_argument("--formats", default="v1", help="comma-separated: v1, v2, hybrid")
    args = ap.parse_args()
    build()
    share = SHARE
    cores = os.cpu_count()
    piece = 1 << args.piece_log2
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        data = os.path.join(d, "data.bin")
        with open(data, "wb") as f:
            chunk = os.urandom(1 << 20)
            for i in range(args.size_mib):
                f.write(chunk[i % 256:] + chunk[: i % 256])
        subprocess.run(["cat", data], stdout=subprocess.DEVNULL, check=True)  # warm the cache
        out = os.path.join(d, "out.torrent")
        tools = []
        for fmt in args.formats.split(","):
            tools.append((f"share create ({fmt})",
                          [share, "create", data, "--piece-length", str(piece), "--format", fmt,
                           "--no-date", "-q", "-o", out]))
            if fmt == "v1":
                tools.append((f"mktorrent -t {cores} (v1)",
                              ["mktorrent", "-t", str(cores), "-l", str(args.piece_log2), "-o",
                               out, data]))
            tools.append((f"libtorrent (python, {fmt})",
                          ["/usr/bin/python3", "-c", LT_CREATE, data, str(piece), out, fmt]))
        rows = []
        for name, cmd in tools:
            best = None
            for _ in range(args.runs):
                if os.path.exists(out):
                    os.remove(out)
                r = run_tool(cmd)
                best = r if best is None or r[0] < best[0] else best
            rows.append((name, *best))
    mib = args.size_mib
    print(f"\n{mib} MiB file, piece length {piece}, {cores} cores, page cache warm, "
          f"best of {args.runs}\n")
    print(f"| {'tool':<27} | {'wall s':>7} | {'MiB/s':>7} | {'CPU s':>6} | {'peak RSS MiB':>12} |")
    print(f"|{'-' * 29}|{'-' * 9}|{'-' * 9}|{'-' * 8}|{'-' * 14}|")
    for name, wall, cpu, rss in rows:
        print(f"| {name:<27} | {wall:7.3f} | {mib / wall:7.0f} | {cpu:6.2f} | {rss:12.1f} |")


if __name__ == "__main__":
    main()
