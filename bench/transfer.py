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
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARE = os.path.join(ROOT, "target/release/share")
LT_PEER = [ "/usr/bin/python3", os.path.join(ROOT, "tests/peers/lt_peer.py")]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start_listening(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        m = re.match(r"listening on (\S+)", line)
        if m:
            return p, m.group(1)
    p.kill()
    sys.exit(f"{cmd[0]} did not start listening")


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
    start = time.monotonic()
    leech = subprocess.Popen([*fetch_cmd(addr)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(leech.pid, 0)
    wall = time.monotonic() - start
    seed_cpu = cpu_of(seeder.pid) - seed_cpu0
    seeder.send_signal(signal.SIGTERM)
    try:
        seeder.wait(timeout=20)
    except subprocess.TimeoutExpired:
        seeder.kill()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"leecher failed: {leech.stderr.read().decode()[-2000:]}")
    return wall, seed_cpu, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        data = os.path.join(src, "data.bin")
        with open(data, "wb") as f:
            chunk = os.urandom(1 << 20)
            for i in range(args.size_mib):
                f.write(chunk[i % 256:] + chunk[: i % 256])
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
