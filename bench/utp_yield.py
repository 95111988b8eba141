#!/usr/bin/env python3
"""µTP beside TCP on one shaped link (network namespaces, as bench/netsim.py builds them).

Run by hand, as root (not a test):  /usr/bin/python3 bench/utp_yield.py [--size-mib 16]
                                      [--rate-mib 2] [--latency-ms 400] [--runs 2]

One seed host and one leecher host on a bridge; the seed's upload is capped by `tc tbf` at
--rate-mib with --latency-ms of queue. On the seed host run a `share seed` and a plain HTTP
server of a file of the same size. For each transport (TCP, µTP) it times, from the leecher
host:
  - the share fetch alone, and a curl download alone;
  - both at once, started together: how the two flows share the seed's upload. A µTP with
    LEDBAT would yield to the TCP flow (curl's time close to alone); one with a TCP-like
    congestion control (librqbit-utp's Cubic) takes about half.
Prints a table; every namespace and process is removed at the end.
"""
import argparse
import atexit
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netsim  # noqa: E402  (same folder)
from netsim import (SEED_IP, SEED_NS, SHARE, build_network, cleanup, leecher_ip,  # noqa: E402
                    leecher_ns, spawn, stop, wait_line)

HTTP_PORT = 8000


def timed(procs, timeout):
    t0 = time.monotonic()
    done = [None] * len(procs)
    while time.monotonic() - t0 < timeout and any(d is None for d in done):
        for i, p in enumerate(procs):
            if done[i] is None and p.poll() is not None:
                done[i] = time.monotonic() - t0
        time.sleep(0.02)
    for i, p in enumerate(procs):
        if done[i] is None:
            stop(p, signal.SIGKILL, timeout=5)
    return done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=16)
    ap.add_argument("--rate-mib", type=float, default=2.0)
    ap.add_argument("--latency-ms", type=int, default=400)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, netsim.on_signal)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=netsim.ROOT, check=True)
    build_network(1, args.rate_mib * (1 << 20), args.latency_ms)
    env = dict(os.environ, SHARE_NO_DHT="1", SHARE_NO_LSD="1")
    rows = []
    with tempfile.TemporaryDirectory(prefix="share-utp-yield-") as work:
        os.chmod(work, 0o755)
        src = os.path.join(work, "src")
        os.makedirs(src)
        data = os.path.join(src, "data.bin")
        with open(data, "wb") as f:
            f.write(os.urandom(args.size_mib << 20))
        torrent = os.path.join(work, "t.torrent")
        subprocess.run([SHARE, "create", data, "-q", "-o", torrent], check=True,
                       stdout=subprocess.DEVNULL)
        http = spawn(SEED_NS, ["python3", "-m", "http.server", str(HTTP_PORT), "--bind",
                               SEED_IP, "--directory", src], os.path.join(work, "http"))
        time.sleep(1)
        url = f"http://{SEED_IP}:{HTTP_PORT}/data.bin"
        ln, lip = leecher_ns(0), leecher_ip(0)
        for transport in ("tcp", "utp"):
            seed = spawn(SEED_NS, [SHARE, "seed", torrent, "-d", src, "--listen",
                                   f"{SEED_IP}:6881", "-q", "--transports", transport],
                         os.path.join(work, f"seed-{transport}"), env)
            wait_line(seed, r"^listening on ", 60)
            time.sleep(1)
            for run in range(args.runs):
                def fetch(tag):
                    out = os.path.join(work, f"dl-{transport}-{run}-{tag}")
                    os.makedirs(out)
                    return spawn(ln, [SHARE, "fetch", torrent, "-o", out, "--listen",
                                      f"{lip}:0", "-q", "--peer", f"{SEED_IP}:6881",
                                      "--transports", transport],
                                 os.path.join(work, f"fetch-{transport}-{run}-{tag}"), env)

                def curl(tag):
                    return spawn(ln, ["curl", "-s", "-o", os.path.join(work, f"curl-{tag}"),
                                      url], os.path.join(work, f"curl-{transport}-{run}-{tag}"))
                limit = 10 * args.size_mib / args.rate_mib + 60
                (share_alone,) = timed([fetch("alone")], limit)
                (curl_alone,) = timed([curl("alone")], limit)
                share_both, curl_both = timed([fetch("both"), curl("both")], limit)
                rows.append((transport, share_alone, curl_alone, share_both, curl_both))
                print(f"  {transport} run {run + 1}: share {share_alone:.1f} s, curl "
                      f"{curl_alone:.1f} s; together: share {share_both:.1f} s, curl "
                      f"{curl_both:.1f} s", file=sys.stderr)
            stop(seed, signal.SIGTERM, timeout=10)
        stop(http, signal.SIGTERM, timeout=5)
    print(f"\n{args.size_mib} MiB each, seed upload {args.rate_mib} MiB/s, tbf latency "
          f"{args.latency_ms} ms\n")
    print("| share over | share alone s | curl alone s | together: share s | together: curl s |")
    print("|---|---|---|---|---|")

    def r(vals):
        vals = [v for v in vals if v is not None]
        if not vals:
            return "timeout"
        lo, hi = min(vals), max(vals)
        return f"{lo:.1f}" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}-{hi:.1f}"
    for t in ("tcp", "utp"):
        sel = [x for x in rows if x[0] == t]
        print(f"| {'TCP' if t == 'tcp' else 'µTP'} | {r([x[1] for x in sel])} | "
              f"{r([x[2] for x in sel])} | {r([x[3] for x in sel])} | {r([x[4] for x in sel])} |")


if __name__ == "__main__":
    main()
