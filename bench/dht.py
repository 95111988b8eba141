#!/usr/bin/env python3
"""DHT lookup benchmark (by hand, loopback only): a 50-node test network of our nodes and
libtorrent's, and the median time of a get_peers lookup from ours and from libtorrent's, in
the same run, printed as a table.

  python3 bench/dht.py [--ours 25] [--lt 25] [--lookups 20]

Our nodes are examples/dht_node.rs (release build) on 127.61.i.1:6881, libtorrent's are
tests/peers/lt_dht.py on 127.60.i.1:6881; each side is introduced to the other's node 0.
Then --lookups info-hashes are announced (half by our nodes, half by libtorrent's), and each
is looked up once from one of our nodes and once from one of libtorrent's. A lookup's time
runs from the query to its end (all the closest nodes answered), as each side reports it.
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import time

from common import ROOT, stop

DHT_NODE = os.path.join(ROOT, "target/release/examples/dht_node")
LT_DHT = ["/usr/bin/python3", os.path.join(ROOT, "tests/peers/lt_dht.py")]


class Proc:
    def __init__(self, cmd):
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def wait(self, prefix, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line.strip()
        sys.exit(f"no `{prefix}` line in time")

    def stop(self):
        try:
            self.send("quit")
        except BrokenPipeError:
            pass
        stop(self.p)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", type=int, default=25)
    ap.add_argument("--lt", type=int, default=25)
    ap.add_argument("--lookups", type=int, default=20)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "dht_node"],
                   cwd=ROOT, check=True)

    ours = Proc([DHT_NODE, "--nodes", str(args.ours), "--net", "61",
                 "--bootstrap", "127.60.0.1:6881", "--announce-port", "7000"])
    lt = None
    try:
        ours.wait("ready")
        lt = Proc(LT_DHT + ["--nodes", str(args.lt), "--net", "60", "--timeout", "900",
                            "--bootstrap", "127.61.0.1:6881"])
        lt.wait("ready")
        time.sleep(20)  # let the two halves learn of each other

        rng = random.Random(1)
        hashes = ["%040x" % rng.getrandbits(160) for _ in range(args.lookups)]
        for k, h in enumerate(hashes):
            if k % 2 == 0:
                ours.send("get_peers %s %d announce" % (h, k % args.ours))
                ours.wait("peers")
            else:
                lt.send("announce %s %d" % (h, k % args.lt))
                lt.wait("announced")
        time.sleep(10)  # libtorrent announces a new torrent within seconds

        ours_ms, lt_ms, ours_found, lt_found = [], [], 0, 0
        for k, h in enumerate(hashes):
            ours.send("get_peers %s %d" % (h, (k * 7 + 3) % args.ours))
            w = ours.wait("peers").split()
            ours_ms.append(float(w[2]))
            ours_found += len(w) > 3 and w[3] != ""
            lt.send("get_peers %s %d" % (h, (k * 7 + 3) % args.lt))
            w = lt.wait("peers").split()
            lt_ms.append(float(w[2]))
            lt_found += len(w) > 3 and w[3] != ""
    finally:
        ours.stop()
        if lt:
            lt.stop()

    print()
    print("get_peers lookups in a %d-node loopback DHT (%d ours + %d libtorrent), %d lookups each"
          % (args.ours + args.lt, args.ours, args.lt, args.lookups))
    print("| node       | median ms | p90 ms | min ms | max ms | found the peer |")
    print("|------------|-----------|--------|--------|--------|----------------|")
    for name, ms, found in (("share", ours_ms, ours_found), ("libtorrent", lt_ms, lt_found)):
        q = sorted(ms)
        p90 = q[min(len(q) - 1, int(len(q) * 0.9))]
        print("| %-10s | %9.1f | %6.1f | %6.1f | %6.1f | %7d of %-4d |"
              % (name, statistics.median(q), p90, q[0], q[-1], found, len(q)))


if __name__ == "__main__":
    main()
