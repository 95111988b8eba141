#!/usr/bin/env python3
"""Magnet to first verified piece through the DHT only, share against libtorrent (by hand).

  python3 bench/dht_first_piece.py [--lt-nodes 25] [--share-nodes 25] [--runs 5]
                                   [--size-kib 256] [--piece-kib 256] [--settle 15]

A loopback DHT of --lt-nodes libtorrent sessions (tests/peers/lt_dht.py, on 127.60.i.1) and
--share-nodes `share seed` processes (each seeding a tiny torrent of its own, on
127.61.i.1; bootstrapped from libtorrent's node 0 and share's node 0), left --settle seconds
to fill their tables. Then one `share seed` on 127.62.0.1 of a torrent with no tracker,
reachable only through the DHT (or, with --seed libtorrent, libtorrent's node 1 seeding it in
16 KiB pieces): ready once a libtorrent lookup finds it. Each run, one node
of the DHT (a different one each run, the same for both clients) is the only bootstrap node
of two fresh clients, started one after the other (which goes first alternates), each
given only `magnet:?xt=urn:btih:HEX`:

  share       `share fetch MAGNET --dht-bootstrap NODE --no-lsd` with an empty --state-dir,
              on 127.70.r.1; times from its start to its `metadata:` line, to its first
              verified piece and to its `complete:` line.
  libtorrent  a new session (this script, --lt-fetch, under /usr/bin/python3) on 127.71.r.1
              with add_dht_node(NODE), no routers; times from the session's creation to
              metadata_received_alert, the first piece_finished_alert and
              torrent_finished_alert.

The first verified piece: share prints nothing per piece, so with one piece (the default:
--size-kib = --piece-kib) it is exactly the `complete:` line; with more pieces it is the
first progress-bar frame (standard error on a pseudo-terminal) showing verified bytes,
which lags by up to ~0.3 s (the bar is updated every 200 ms), or `complete:` if sooner.
Prints median and range (milliseconds).
Fetchers that finished are announced peers that have gone: later lookups return them too,
for both clients alike.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import ROOT, SHARE, Watched, build, parse_bar

os.environ["SHARE_LOOPBACK_ONLY"] = "1"
DHT_ENV = dict(os.environ, SHARE_NO_DHT="0", SHARE_NO_LSD="1")
LT_PY = "/usr/bin/python3"
LT_DHT = [LT_PY, os.path.join(ROOT, "tests/peers/lt_dht.py")]


# ---------------------------------------------------------------- the libtorrent fetcher

def lt_fetch(hexh, out, ip, boot, timeout):
    """Runs in its own /usr/bin/python3: waits for `go` on stdin, then fetches the magnet
    with a new session and prints `metadata MS`, `piece MS`, `finished MS` (or `timeout`)."""
    sys.path.insert(0, os.path.join(ROOT, "tests/peers"))
    import libtorrent as lt
    import lt_dht
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    t0 = time.monotonic()
    ses = lt_dht.make_session(ip, 0)
    c = lt.alert.category_t
    ses.apply_settings({"alert_mask": c.error_notification | c.status_notification
                        | c.piece_progress_notification | c.dht_notification})
    host, _, port = boot.rpartition(":")
    ses.add_dht_node((host, int(port)))
    atp = lt.add_torrent_params()
    atp.info_hash = lt.sha1_hash(bytes.fromhex(hexh))
    atp.save_path = out
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    ses.add_torrent(atp)
    seen = set()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        ses.wait_for_alert(50)
        for a in ses.pop_alerts():
            ms = (time.monotonic() - t0) * 1000
            for kind, name in ((lt.metadata_received_alert, "metadata"),
                               (lt.piece_finished_alert, "piece"),
                               (lt.torrent_finished_alert, "finished")):
                if isinstance(a, kind) and name not in seen:
                    seen.add(name)
                    print(f"{name} {ms:.1f}", flush=True)
            if "finished" in seen:
                return 0
    print("timeout", flush=True)
    return 3


# ---------------------------------------------------------------- the benchmark

def share_run(r, hexh, boot, work, pieces, timeout):
    d = os.path.join(work, f"share-{r}")
    os.makedirs(d)
    t0 = time.monotonic()
    w = Watched([SHARE, "fetch", f"magnet:?xt=urn:btih:{hexh}", "-o", d, "--no-lsd",
                 "--listen", f"127.70.{r}.1:0", "--dht-bootstrap", boot,
                 "--state-dir", os.path.join(work, f"share-state-{r}")],
                env=DHT_ENV, tty=True, log=os.path.join(work, f"share-{r}.log"))
    try:
        w.wait("complete:", timeout)
        try:
            w.p.wait(10)
        except subprocess.TimeoutExpired:
            pass
        meta = w.find(lambda x: x.startswith("metadata:"))
        done = w.find(lambda x: x.startswith("complete:"))
        ms = lambda e: None if e is None else (e[0] - t0) * 1000
        first = ms(done)
        if pieces > 1:  # the first bar frame with verified bytes, if before the end
            bar = ms(w.find(lambda x: (parse_bar(x) or {}).get("done", 0) > 0))
            if bar is not None and (first is None or bar < first):
                first = bar
        return ms(meta), first, ms(done)
    finally:
        w.stop(timeout=10)


def lt_run(r, hexh, boot, work, timeout):
    d = os.path.join(work, f"lt-{r}")
    os.makedirs(d)
    w = Watched([LT_PY, os.path.abspath(__file__), "--lt-fetch", hexh, d, f"127.71.{r}.1",
                 boot, str(timeout)], stdin=True, log=os.path.join(work, f"lt-{r}.log"))
    try:
        if not w.wait("ready", 60):
            raise RuntimeError("the libtorrent fetcher did not start: " + w.tail())
        w.send("go")
        w.wait(lambda x: x.startswith("finished") or x == "timeout", timeout + 10)
        got = {}
        for name in ("metadata", "piece", "finished"):
            e = w.find(lambda x: x.startswith(name + " "))
            got[name] = float(e[1].split()[1]) if e else None
        return got["metadata"], got["piece"], got["finished"]
    finally:
        w.stop(timeout=10)


def summary(xs):
    ok = [x for x in xs if x is not None]
    if not ok:
        return "-"
    return f"{statistics.median(ok):.0f} ({min(ok):.0f}-{max(ok):.0f})"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--lt-fetch":
        h, out, ip, boot, timeout = sys.argv[2:7]
        sys.exit(lt_fetch(h, out, ip, boot, float(timeout)))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lt-nodes", type=int, default=25)
    ap.add_argument("--share-nodes", type=int, default=25)
    ap.add_argument("--lt-port", type=int, default=6881, help="libtorrent nodes' port")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-kib", type=int, default=256)
    ap.add_argument("--piece-kib", type=int, default=256,
                    help="piece size of the share seed's torrent (libtorrent's: 16 KiB)")
    ap.add_argument("--seed", choices=("share", "libtorrent"), default="share",
                    help="who seeds: a share seed on 127.62.0.1, or libtorrent's DHT node 1")
    ap.add_argument("--settle", type=float, default=15,
                    help="seconds for the DHT to form before the seed starts")
    ap.add_argument("--timeout", type=float, default=120, help="per fetch, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = ap.parse_args()
    if args.lt_nodes < 3 or args.runs < 1 or args.share_nodes < 0:
        sys.exit("at least 3 libtorrent nodes and 1 run")
    if args.seed == "libtorrent":
        args.piece_kib = 16
    pieces = -(-args.size_kib // args.piece_kib)
    build()
    work = tempfile.mkdtemp(prefix="dht-first-", dir=os.environ.get("BENCH_DIR"))
    procs = []
    rows = {"share": [], "libtorrent": []}
    try:
        lt = Watched(LT_DHT + ["--nodes", str(args.lt_nodes), "--net", "60",
                               "--port", str(args.lt_port), "--timeout", "3600"],
                     stdin=True, log=os.path.join(work, "lt_dht.log"))
        procs.append(lt)
        if not lt.wait("ready", 90):
            raise RuntimeError("lt_dht.py did not get ready: " + lt.tail())
        lt_nodes = [x.split()[2] for _, _, x in lt.lines if x.startswith("node ")]
        share_nodes = []
        for i in range(args.share_nodes):
            src = os.path.join(work, f"node{i}")
            os.makedirs(src)
            with open(os.path.join(src, f"n{i}.bin"), "wb") as f:
                f.write(os.urandom(16384))
            t = os.path.join(work, f"node{i}.torrent")
            subprocess.run([SHARE, "create", os.path.join(src, f"n{i}.bin"), "-q", "-o", t],
                           check=True, stdout=subprocess.DEVNULL)
            boots = [lt_nodes[0]] + share_nodes[:1]
            w = Watched([SHARE, "seed", t, "-d", src, "-q", "--no-lsd",
                         "--listen", f"127.61.{i}.1:0", "--state-dir",
                         os.path.join(work, f"node{i}-state"),
                         *[a for b in boots for a in ("--dht-bootstrap", b)]],
                        env=DHT_ENV, log=os.path.join(work, f"node{i}.log"))
            procs.append(w)
            share_nodes.append(w.addr())
        print(f"DHT: {len(lt_nodes)} libtorrent + {len(share_nodes)} share nodes; "
              f"settling {args.settle:.0f} s", file=sys.stderr, flush=True)
        time.sleep(args.settle)

        src = os.path.join(work, "src")
        os.makedirs(src)
        data = os.path.join(src, "first.bin")
        with open(data, "wb") as f:
            f.write(os.urandom(args.size_kib << 10))
        if args.seed == "share":
            torrent = os.path.join(work, "first.torrent")
            out = subprocess.run([SHARE, "create", data, "-o", torrent, "--piece-length",
                                  str(args.piece_kib << 10)], check=True, text=True,
                                 stdout=subprocess.PIPE).stdout
            hexh = re.search(r"info-hash: ([0-9a-f]{40})", out).group(1)
            seed = Watched([SHARE, "seed", torrent, "-d", src, "-q", "--no-lsd",
                            "--listen", "127.62.0.1:0", "--dht-bootstrap", lt_nodes[1],
                            "--state-dir", os.path.join(work, "seed-state")],
                           env=DHT_ENV, log=os.path.join(work, "seed.log"))
            procs.append(seed)
            seed_addr = seed.addr()
        else:  # libtorrent's session 1 seeds it, in 16 KiB pieces
            n = len(lt.lines)
            lt.send(f"seed_file {data}")
            e = lt.wait("seeding ", 60, since=n)
            if not e:
                raise RuntimeError("lt_dht.py did not seed: " + lt.tail())
            hexh, seed_addr = e[1].split()[1:3]
            seed = lt
        deadline = time.monotonic() + 90
        while True:  # announced: a libtorrent lookup from its last node finds the seed
            n = len(lt.lines)
            lt.send(f"get_peers {hexh}")
            e = lt.wait(f"peers {hexh}", 70, since=n)
            if e and seed_addr in e[1]:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the seed was never found on the DHT: " + seed.tail())
            time.sleep(1)
        print(f"seed {seed_addr} announced; {args.runs} runs", file=sys.stderr, flush=True)

        nodes = lt_nodes + share_nodes
        for r in range(args.runs):
            boot = nodes[(r * 7 + 2) % len(nodes)]
            order = ("share", "libtorrent") if r % 2 == 0 else ("libtorrent", "share")
            for who in order:
                if who == "share":
                    rows[who].append(share_run(r, hexh, boot, work, pieces, args.timeout))
                else:
                    rows[who].append(lt_run(r, hexh, boot, work, args.timeout))
                print(f"  run {r} via {boot}: {who} {rows[who][-1]}", file=sys.stderr,
                      flush=True)
    finally:
        for w in reversed(procs):
            if w is procs[0] and w.alive():
                try:
                    w.send("quit")
                except (BrokenPipeError, OSError):
                    pass
            w.stop(timeout=10)
        if args.keep:
            print(f"logs in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    kind = ("= complete (one piece)" if pieces == 1
            else "share: first bar frame with bytes (+0-0.3 s) or complete")
    print(f"\nmagnet to first verified piece through the DHT only: {args.lt_nodes} libtorrent + "
          f"{args.share_nodes} share DHT nodes on loopback, one {args.seed} seed, {args.size_kib} KiB "
          f"in {pieces} piece(s), {args.runs} runs, each client fresh with one bootstrap node\n")
    print(f"| client | metadata ms, median (range) | first piece ms [{kind}] | "
          "complete ms | completed |")
    print("|---|---|---|---|---|")
    for who, rs in rows.items():
        print(f"| {who} | {summary([x[0] for x in rs])} | {summary([x[1] for x in rs])} | "
              f"{summary([x[2] for x in rs])} | {sum(x[2] is not None for x in rs)} of "
              f"{len(rs)} |")


if __name__ == "__main__":
    main()
