#!/usr/bin/env python3
"""No single point of failure, on loopback (run by hand, not a test).

  python3 bench/nospof.py [--size-mib 8] [--seed-rate 1M] [--leechers 4] [--late 2]
                          [--scenarios a,b,c,d,e,f] [--timeout 240] [--keep]

One `share seed` (upload limited to --seed-rate) and --leechers `share fetch --seed`
leechers of a torrent whose tracker is a `share tracker` on 127.0.0.1. Every share process
has the DHT on with one loopback bootstrap node, a `share seed` of another small torrent
started first (its own bootstrap is 127.0.0.1:9, where nobody listens), and LSD off; each
listens on an address of its own (a /24 each: share's routing table keeps one node per IP):
the bootstrap node on 127.40.0.1, leecher i on 127.(50+i).0.1, and the seed on 127.0.0.1,
because share's outgoing TCP connections and tracker announces leave from 127.0.0.1 whatever
--listen says, so the tracker (and PEX, for peers that dialed in over TCP) record
127.0.0.1:PORT: right for the seed only. (With --share-arg=--transports=utp, peer
connections leave from the listen address.) The seed is ready once its DHT lookup has
announced it. Scenarios, each run from
scratch the same way and timed from the first leecher's start to the last `complete:` line:

  a  baseline: tracker and bootstrap node up throughout
  b  tracker killed (SIGKILL) once every leecher is listening and one is --kill-at done
  c  tracker down from the start (the torrent names a dead port): DHT and PEX only
  d  tracker down from the start, bootstrap node killed once every leecher is connected to
     a peer and one is --kill-at done: PEX and the routing tables they hold
  e  as b, but only leechers - late leechers start first; the --late others start after the
     kill, knowing only the (dead) tracker URL and the bootstrap node
  f  as d with late leechers: the others start after the bootstrap node is killed, with a
     surviving peer (the first leecher) as their only --dht-bootstrap node

Peers per leecher come from its progress bar (standard error on a pseudo-terminal), the last
frame before its `complete:` line: peers connected, then peers learned from each source.
SHARE_LOOPBACK_ONLY=1 stays set, so share itself refuses anything but loopback.
Logs of every process go to the work folder (kept with --keep).
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from common import NOBODY, SHARE, Watched, build, free_port, make_data, parse_bar

os.environ["SHARE_LOOPBACK_ONLY"] = "1"
DHT_ENV = dict(os.environ, SHARE_NO_DHT="0", SHARE_NO_LSD="1")

SCENARIOS = {
    "a": dict(name="a baseline", tracker=True, kill=None, late=False),
    "b": dict(name="b tracker killed", tracker=True, kill="tracker", late=False),
    "c": dict(name="c no tracker", tracker=False, kill=None, late=False),
    "d": dict(name="d no tracker, boot killed", tracker=False, kill="boot", late=False),
    "e": dict(name="e tracker killed, late", tracker=True, kill="tracker", late=True),
    "f": dict(name="f no tracker, boot killed, late", tracker=False, kill="boot", late=True),
}


def create(data, out, tracker_url, piece):
    subprocess.run([SHARE, "create", data, "-q", "-o", out, "--piece-length", str(piece),
                    "-t", tracker_url], check=True, stdout=subprocess.DEVNULL)


def bars(w):
    """The leecher's last bar frame before its `complete:` line (or the last one)."""
    done = w.find(lambda x: x.startswith("complete:"))
    best = None
    with w.cond:
        for t, s, x in w.lines:
            if done and t > done[0]:
                break
            b = parse_bar(x)
            if b and b["phase"] == "fetching":
                best = b
    return best


def progress(w):
    b = None
    with w.cond:
        for _, _, x in reversed(w.lines):
            b = parse_bar(x)
            if b:
                break
    return b


def run(key, args, work, data, boot_torrent, boot_src):
    sc = SCENARIOS[key]
    rd = os.path.join(work, key)
    os.makedirs(rd)
    procs = []

    def start(name, cmd, env=DHT_ENV, tty=False):
        w = Watched(cmd, env=env, tty=tty, log=os.path.join(rd, name + ".log"))
        procs.append(w)
        return w

    def state(name):
        return ["--state-dir", os.path.join(rd, "state-" + name)]

    row = {"scenario": sc["name"], "complete": 0, "n": args.leechers, "time": None,
           "event": "", "peers": [], "sources": {}}
    try:
        boot = start("boot", [SHARE, "seed", boot_torrent, "-d", boot_src, "-q", "--no-lsd",
                              "--listen", "127.40.0.1:0", "--dht-bootstrap", NOBODY,
                              *state("boot")])
        boot_addr = boot.addr()
        tracker = None
        if sc["tracker"]:
            tracker = start("tracker", [SHARE, "tracker", "--listen", "127.0.0.1:0", "-q",
                                        "--interval", "10"], env=os.environ)
            url = f"http://{tracker.addr()}/announce"
        else:
            url = f"http://127.0.0.1:{free_port()}/announce"  # nobody listens there
        torrent = os.path.join(rd, "t.torrent")
        create(data, torrent, url, args.piece_kib << 10)
        seed = start("seed", [SHARE, "seed", torrent, "-d", os.path.dirname(data), "-q",
                              "--no-lsd", "--listen", "127.0.0.1:0", "--dht-bootstrap",
                              boot_addr, "--max-upload-rate", args.seed_rate, *state("seed"),
                              *args.share_arg],
                     env=dict(DHT_ENV, SHARE_LOG="share_engine::dht::task=debug"))
        seed_addr = seed.addr()
        if not seed.wait(lambda x: "lookup done" in x and "get_peers=true" in x
                         and not re.search(r"announced=0\b", x), 60, stream="err"):
            raise RuntimeError("the seed never announced itself on the DHT: " + seed.tail())

        n = args.leechers
        first = n - args.late if sc["late"] else n
        leechers = []

        def leecher(i, bootstrap):
            out = os.path.join(rd, f"l{i}")
            os.makedirs(out)
            leechers.append(start(f"l{i}", [SHARE, "fetch", torrent, "-o", out, "--seed",
                                            "--no-lsd", "--listen", f"127.{50 + i}.0.1:0",
                                            "--dht-bootstrap", bootstrap, *state(f"l{i}"),
                                            *args.share_arg],
                                  tty=True))

        t0 = time.monotonic()
        for i in range(first):
            leecher(i, boot_addr)
        addrs = [w.addr() for w in leechers]
        deadline = t0 + args.timeout

        def n_complete():
            return sum(w.find(lambda x: x.startswith("complete:")) is not None
                       for w in leechers)

        if sc["kill"]:
            # Every leecher started (and, for the bootstrap node, connected to someone);
            # one of them --kill-at done.
            while time.monotonic() < deadline:
                ps = [progress(w) for w in leechers]
                joined = all(p is not None and (sc["kill"] == "tracker" or p["peers"] > 0)
                             for p in ps)
                far = any(p and p["total"] and p["done"] >= args.kill_at * p["total"]
                          for p in ps)
                if (joined and far) or n_complete():
                    break
                time.sleep(0.05)
            victim = tracker if sc["kill"] == "tracker" else boot
            victim.stop(signal.SIGKILL)
            row["event"] = (f"{sc['kill']} killed at {time.monotonic() - t0:.1f} s, "
                            f"{n_complete()} complete")
            for i in range(first, n):
                leecher(i, boot_addr if sc["kill"] == "tracker" else addrs[0])
        while time.monotonic() < deadline and n_complete() < n:
            time.sleep(0.05)
        ends = [w.find(lambda x: x.startswith("complete:")) for w in leechers]
        row["complete"] = sum(e is not None for e in ends)
        if row["complete"] == n:
            row["time"] = max(e[0] for e in ends) - t0
        for i, w in enumerate(leechers):
            b = bars(w)
            row["peers"].append(b["peers"] if b else None)
            for s, k in (b["sources"] if b else {}).items():
                row["sources"][s] = row["sources"].get(s, 0) + k
            if ends[i] and not same(data, os.path.join(rd, f"l{i}", os.path.basename(data))):
                row["event"] += f" l{i} DIFFERS"
        for i, e in enumerate(ends):
            if e is None:
                print(f"  {sc['name']}: leecher {i} incomplete: {leechers[i].tail(3)}",
                      file=sys.stderr)
    finally:
        for w in reversed(procs):
            w.stop(timeout=10)
    return row


def same(a, b):
    try:
        with open(a, "rb") as f, open(b, "rb") as g:
            while True:
                x, y = f.read(1 << 20), g.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except FileNotFoundError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=8)
    ap.add_argument("--piece-kib", type=int, default=64)
    ap.add_argument("--seed-rate", default="1M", help="the seed's --max-upload-rate")
    ap.add_argument("--leechers", type=int, default=4)
    ap.add_argument("--late", type=int, default=2, help="leechers started after the kill (e, f)")
    ap.add_argument("--kill-at", type=float, default=0.25,
                    help="fraction one leecher has when the tracker or bootstrap node is killed")
    ap.add_argument("--scenarios", default="a,b,c,d,e,f")
    ap.add_argument("--timeout", type=float, default=240, help="per scenario, seconds")
    ap.add_argument("--share-arg", action="append", default=[],
                    help="an option for the seed and every leecher (repeatable), e.g. "
                         "--share-arg=--transports=utp")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = ap.parse_args()
    keys = [k.strip() for k in args.scenarios.split(",") if k.strip()]
    if any(k not in SCENARIOS for k in keys):
        sys.exit(f"scenarios are {','.join(SCENARIOS)}")
    if not 0 < args.late < args.leechers:
        sys.exit("--late must be between 1 and --leechers - 1")
    build()
    work = tempfile.mkdtemp(prefix="nospof-", dir=os.environ.get("BENCH_DIR"))
    rows = []
    try:
        src = os.path.join(work, "src")
        os.makedirs(src)
        data = os.path.join(src, "data.bin")
        make_data(data, args.size_mib)
        boot_src = os.path.join(work, "boot-src")
        os.makedirs(boot_src)
        with open(os.path.join(boot_src, "other.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        boot_torrent = os.path.join(work, "other.torrent")
        create(os.path.join(boot_src, "other.bin"), boot_torrent,
               f"http://127.0.0.1:{free_port()}/announce", 65536)
        for k in keys:
            print(f"scenario {SCENARIOS[k]['name']} ...", file=sys.stderr, flush=True)
            rows.append(run(k, args, work, data, boot_torrent, boot_src))
    finally:
        if args.keep:
            print(f"logs in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\none seed at {args.seed_rate}/s, {args.leechers} leechers ({args.late} late in e, f),"
          f" {args.size_mib} MiB in {args.piece_kib} KiB pieces, loopback, one DHT bootstrap"
          " node, no LSD\n")
    print("| scenario | all complete? | time to all complete (s) | peers per leecher at "
          "completion | learned, all leechers (by source) | event |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        peers = " ".join("?" if p is None else str(p) for p in r["peers"])
        src = ", ".join(f"{s} {k}" for s, k in sorted(r["sources"].items())) or "-"
        t = f"{r['time']:.1f}" if r["time"] is not None else "-"
        ok = "yes" if r["complete"] == r["n"] else f"no ({r['complete']}/{r['n']})"
        print(f"| {r['scenario']} | {ok} | {t} | {peers} | {src} | {r['event'] or '-'} |")


if __name__ == "__main__":
    main()
