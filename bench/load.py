#!/usr/bin/env python3
"""Benchmark: one seeder under 500 connected leechers, share against libtorrent.

Run by hand (not a test):
  python3 bench/load.py [--leechers 500] [--size-mib 256] [--rate 1] [--only share|libtorrent]

The load is --leechers raw peers from this script (asyncio TCP clients on 127.0.0.1 speaking
the wire protocol: handshake, interested, then while unchoked one 16 KiB request every 1/--rate
s, at most a few outstanding, the replies read and thrown away; a keep-alive every 30 s; they
never upload nor claim a piece). For each seeder, in turn:

  1. the seeder starts and is waited for until it serves (a probe peer gets its bitfield);
  2. baseline: one honest `share fetch` of the whole torrent with no load, timed;
  3. the raw peers connect (8 at a time, failures retried up to 4 times) and are left alone
     for --settle s, the seeder's CPU measured over that stretch ("load alone");
  4. the honest fetch again, beside them, timed; CPU over steps 3-4 ("run").

Seeder figures: RSS (VmRSS) and open descriptors (/proc/PID/fd), both the peak sampled every
0.5 s during steps 3-4; connected peers = its ESTABLISHED TCP sockets (/proc/net/tcp matched
against its socket descriptors): the peak over steps 3-4, and the count once the fetch ended.

share seeds with --max-connections/--max-peers/--max-per-ip raised to leechers + 100 (every
peer is 127.0.0.1). libtorrent is tests/peers/lt_peer.py seed; lt_peer.py has no option for
libtorrent's connections_limit (default 200 in libtorrent 2.0), so this script runs it with
lt.session wrapped to set connections_limit to 2 x leechers + 100 (--lt-keep-limit: leave it
at the default): libtorrent 2.0.8 turns incoming peers away ("too many connections") at about
70 % of connections_limit (410 of 600, 676 of 1000, 210 of 300 seen). lt_peer.py unchokes
everyone (unchoke_slots_limit -1); share keeps its --upload-slots (default 4, plus one
rotating) unless --share-arg says otherwise.

Needs descriptors: this script raises its own RLIMIT_NOFILE to the hard limit (the raw peers
take one each); the seeder inherits it. Want `ulimit -n` >= leechers + 200 (hard limit).
This script's own CPU (the raw peers) competes with the seeder on a small machine: the
table notes it.
"""
import argparse
import asyncio
import hashlib
import os
import random
import resource
import struct
import subprocess
import sys
import tempfile
import threading
import time

from common import LT_PEER, SHARE, build, cpu_of, make_data, start_listening, stop

BLOCK = 16 * 1024


# --- torrent metadata ----------------------------------------------------------------------

def bdecode(b, i=0):
    """Returns (value, end index)."""
    c = b[i:i + 1]
    if c == b"i":
        e = b.index(b"e", i)
        return int(b[i + 1:e]), e + 1
    if c == b"l":
        i, out = i + 1, []
        while b[i:i + 1] != b"e":
            v, i = bdecode(b, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i, out = i + 1, {}
        while b[i:i + 1] != b"e":
            k, i = bdecode(b, i)
            start = i
            v, i = bdecode(b, i)
            out[k] = v
            if k == b"info":
                out[b"__info_span"] = (start, i)
        return out, i + 1
    colon = b.index(b":", i)
    n = int(b[i:colon])
    return b[colon + 1:colon + 1 + n], colon + 1 + n


def torrent_meta(path):
    """(info-hash, piece length, total length)."""
    with open(path, "rb") as f:
        raw = f.read()
    top, _ = bdecode(raw)
    s, e = top[b"__info_span"]
    info = top[b"info"]
    total = info[b"length"] if b"length" in info else sum(x[b"length"] for x in info[b"files"])
    return hashlib.sha1(raw[s:e]).digest(), info[b"piece length"], total


# --- seeder figures ------------------------------------------------------------------------

def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def established(pid):
    """ESTABLISHED TCP sockets held by `pid`."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "01" and cols[9] in inodes:
                        n += 1
        except OSError:
            pass
    return n


class Sampler:
    """Samples a process's RSS, descriptors and ESTABLISHED sockets every 0.5 s in a thread,
    keeping peaks."""

    def __init__(self, pid):
        self.pid, self.rss, self.fds, self.peers = pid, 0.0, 0, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.rss = max(self.rss, rss_mib(self.pid))
                self.fds = max(self.fds, fd_count(self.pid))
                self.peers = max(self.peers, established(self.pid))
            except OSError:
                return
            self._stop.wait(0.5)

    def done(self):
        self._stop.set()
        self._t.join(timeout=5)
        return self.rss, self.fds, self.peers


# --- raw peers -----------------------------------------------------------------------------

def handshake_bytes(info_hash, i):
    peer_id = b"-LD0001-" + b"%012d" % i
    return bytes([19]) + b"BitTorrent protocol" + bytes(8) + info_hash + peer_id


def msg(mid, payload=b""):
    return struct.pack(">IB", 1 + len(payload), mid) + payload


class Swarm:
    """The raw leechers, run on an asyncio loop in a thread of their own."""

    def __init__(self, addr, info_hash, piece_len, total, rate):
        host, _, port = addr.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.info_hash, self.piece_len, self.total, self.rate = info_hash, piece_len, total, rate
        self.pieces = (total + piece_len - 1) // piece_len
        self.connected = 0      # handshakes answered, connection still open
        self.ever = 0           # handshakes answered, in all
        self.failed = {}        # why a peer never got connected (after retries): count
        self.dropped = {}       # why a connected peer's connection ended: count
        self.retries = {}       # failed attempts that were retried, by why
        self.unchoked = 0
        self.blocks = 0
        self.loop = asyncio.new_event_loop()
        self.tasks = []
        self.stopping = False
        self._t = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._t.start()

    def _count(self, d, why):
        d[why] = d.get(why, 0) + 1

    def _block(self):
        """A random block (piece, offset, length) within the torrent."""
        p = random.randrange(self.pieces)
        plen = min(self.piece_len, self.total - p * self.piece_len)
        off = random.randrange((plen + BLOCK - 1) // BLOCK) * BLOCK
        return p, off, min(BLOCK, plen - off)

    async def _peer(self, i, gate):
        r = w = None
        try:
            for attempt in range(5):
                async with gate:
                    try:
                        r, w = await asyncio.wait_for(
                            asyncio.open_connection(self.host, self.port), 10)
                        w.write(handshake_bytes(self.info_hash, i))
                        hs = await asyncio.wait_for(r.readexactly(68), 15)
                        break
                    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                        why = type(e).__name__
                        if w is not None:
                            w.close()
                            r = w = None
                        if attempt == 4:
                            self._count(self.failed, why)
                            return
                        self._count(self.retries, why)
                await asyncio.sleep(0.5 * (attempt + 1))
            if hs[28:48] != self.info_hash:
                self._count(self.failed, "wrong info-hash")
                return
            self.connected += 1
            self.ever += 1
            try:
                await self._talk(r, w)
            finally:
                self.connected -= 1
        except asyncio.CancelledError:
            pass
        finally:
            if w is not None:
                w.close()

    async def _talk(self, r, w):
        w.write(msg(2))  # interested
        state = {"unchoked": False, "outstanding": 0}

        async def requester():
            await asyncio.sleep(random.random() / self.rate)
            last_sent = time.monotonic()
            while True:
                if state["unchoked"] and state["outstanding"] < 4:
                    w.write(msg(6, struct.pack(">III", *self._block())))
                    state["outstanding"] += 1
                    last_sent = time.monotonic()
                elif time.monotonic() - last_sent > 30:
                    w.write(b"\0\0\0\0")  # keep-alive
                    last_sent = time.monotonic()
                await w.drain()
                await asyncio.sleep(1 / self.rate)

        req = asyncio.ensure_future(requester())
        try:
            while True:
                head = await r.readexactly(4)
                (n,) = struct.unpack(">I", head)
                if n == 0:
                    continue
                body = await r.readexactly(n)
                mid = body[0]
                if mid == 0:
                    if state["unchoked"]:
                        self.unchoked -= 1
                    state["unchoked"], state["outstanding"] = False, 0
                elif mid == 1:
                    if not state["unchoked"]:
                        self.unchoked += 1
                    state["unchoked"] = True
                elif mid == 7:
                    state["outstanding"] = max(0, state["outstanding"] - 1)
                    self.blocks += 1
        except (OSError, asyncio.IncompleteReadError) as e:
            if not self.stopping:
                self._count(self.dropped, "closed by seeder" if isinstance(
                    e, asyncio.IncompleteReadError) else type(e).__name__)
        finally:
            if state["unchoked"]:
                self.unchoked -= 1
            req.cancel()

    def start(self, n, concurrency):
        async def launch():
            gate = asyncio.Semaphore(concurrency)
            self.tasks = [asyncio.ensure_future(self._peer(i, gate)) for i in range(n)]
        asyncio.run_coroutine_threadsafe(launch(), self.loop).result(10)

    def close(self):
        self.stopping = True

        async def cancel():
            for t in self.tasks:
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        try:
            asyncio.run_coroutine_threadsafe(cancel(), self.loop).result(30)
        except Exception:  # noqa: BLE001 - tear down regardless
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._t.join(timeout=10)


def probe(addr, info_hash, timeout):
    """Waits until a peer at `addr` answers a handshake and sends a message (its bitfield)."""
    import socket
    host, _, port = addr.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as s:
                s.settimeout(5)
                s.sendall(handshake_bytes(info_hash, 999999))
                got = b""
                while len(got) < 68 + 5:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                if len(got) >= 68 + 5 and got[28:48] == info_hash:
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


# --- one seeder ----------------------------------------------------------------------------

def on_disk_mib(path):
    """MiB of blocks allocated under `path` (share writes pieces into sparse files)."""
    n = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                n += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return n / (1 << 20)


def honest_fetch(torrent, dst, addr, timeout):
    """`share fetch` of everything from `addr`; returns seconds, or None on failure/timeout."""
    subprocess.run(["rm", "-rf", dst], check=True)
    os.makedirs(dst)
    p, _ = start_listening([SHARE, "fetch", torrent, "-o", dst, "--listen", "127.0.0.1:0",
                            "--peer", addr, "--no-dht", "--no-lsd", "-q"], timeout=60)
    t0 = time.monotonic()
    try:
        code = p.wait(timeout=timeout)
        wall = time.monotonic() - t0
        return (wall, "") if code == 0 else (None, f"fetch exit {code}")
    except subprocess.TimeoutExpired:
        return None, f"timeout >{timeout:.0f} s ({on_disk_mib(dst):.0f} MiB in)"
    finally:
        if p.poll() is None:
            stop(p, timeout=10)


def run_seeder(name, seed_cmd, ready, args, torrent, dst, meta):
    info_hash, piece_len, total = meta
    size_mib = total / (1 << 20)
    row = {"name": name}
    seeder = swarm = sampler = None
    try:
        seeder, addr = start_listening(seed_cmd, ready, timeout=600)
        if not probe(addr, info_hash, 600):
            row["error"] = "never served"
            return row
        print(f"{name}: serving on {addr} (RSS {rss_mib(seeder.pid):.0f} MiB, "
              f"{fd_count(seeder.pid)} fds)", file=sys.stderr, flush=True)
        wall, why = honest_fetch(torrent, dst, addr, args.fetch_timeout)
        row["base"] = size_mib / wall if wall else why
        print(f"{name}: baseline fetch {'%.1f s' % wall if wall else why}",
              file=sys.stderr, flush=True)
        row["idle_rss"], row["idle_fds"] = rss_mib(seeder.pid), fd_count(seeder.pid)

        sampler = Sampler(seeder.pid)
        cpu0, t0 = cpu_of(seeder.pid), time.monotonic()
        me0 = sum(os.times()[:2])
        swarm = Swarm(addr, info_hash, piece_len, total, args.rate)
        swarm.start(args.leechers, args.connect_concurrency)
        deadline = time.monotonic() + args.connect_timeout
        while time.monotonic() < deadline:
            settled = swarm.ever + sum(swarm.failed.values())
            if settled >= args.leechers:
                break
            time.sleep(0.5)
        row["connect_s"] = time.monotonic() - t0
        print(f"{name}: {swarm.connected}/{args.leechers} raw peers connected in "
              f"{row['connect_s']:.1f} s; failed {swarm.failed or 0}", file=sys.stderr,
              flush=True)
        cpu1, t1 = cpu_of(seeder.pid), time.monotonic()
        time.sleep(args.settle)
        cpu2, t2 = cpu_of(seeder.pid), time.monotonic()
        row["cpu_alone"] = 100 * (cpu2 - cpu1) / (t2 - t1)
        row["raw_before"] = swarm.connected
        blocks0 = swarm.blocks
        wall, why = honest_fetch(torrent, dst, addr, args.fetch_timeout)
        row["load"] = size_mib / wall if wall else why
        if seeder.poll() is not None:
            row["error"] = f"seeder exited with {seeder.returncode}"
            return row
        row["peers_after"] = established(seeder.pid)
        cpu3, t3 = cpu_of(seeder.pid), time.monotonic()
        row["cpu_run"] = 100 * (cpu3 - cpu0) / (t3 - t0)
        row["me_cpu"] = 100 * (sum(os.times()[:2]) - me0) / (t3 - t0)
        row["rss"], row["fds"], row["peers_peak"] = sampler.done()
        sampler = None
        row["raw_after"] = swarm.connected
        row["raw_mib_s"] = (swarm.blocks - blocks0) * BLOCK / (1 << 20) / (t3 - t2)
        row["unchoked"] = swarm.unchoked
        row["failed"], row["dropped"] = dict(swarm.failed), dict(swarm.dropped)
        row["retries"] = dict(swarm.retries)
        print(f"{name}: loaded fetch {'%.1f s' % wall if wall else why}",
              file=sys.stderr, flush=True)
        return row
    finally:
        if sampler:
            sampler.done()
        if swarm:
            swarm.close()
        if seeder is not None:
            if seeder.poll() is not None and "error" not in row:
                row["error"] = f"seeder exited with {seeder.returncode}"
            stop(seeder, timeout=20)


LT_WRAP = (
    "import runpy, sys, libtorrent as lt\n"
    "_session, _limit = lt.session, int(sys.argv[1])\n"
    "def session(settings):\n"
    "    settings = dict(settings, connections_limit=_limit)\n"
    "    return _session(settings)\n"
    "lt.session = session\n"
    "path = sys.argv[2]\n"
    "sys.argv = [path] + sys.argv[3:]\n"
    "runpy.run_path(path, run_name='__main__')\n"
)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leechers", type=int, default=500)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--piece-length", default=None, help="passed to share create")
    ap.add_argument("--rate", type=float, default=1.0,
                    help="requests per second per raw leecher while unchoked (default 1)")
    ap.add_argument("--only", choices=["share", "libtorrent"])
    ap.add_argument("--settle", type=float, default=10.0,
                    help="seconds the raw peers are left alone before the loaded fetch")
    ap.add_argument("--connect-timeout", type=float, default=180.0)
    ap.add_argument("--connect-concurrency", type=int, default=8,
                    help="raw peers connecting/handshaking at once (share takes at most 8 "
                         "handshakes at once from one IP and closes the rest; default 8)")
    ap.add_argument("--fetch-timeout", type=float, default=600.0)
    ap.add_argument("--share-arg", action="append", default=[],
                    help="an extra option for share seed (repeatable)")
    ap.add_argument("--lt-keep-limit", action="store_true",
                    help="leave libtorrent's connections_limit at its default")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.leechers + 200
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < want:
        sys.exit(f"RLIMIT_NOFILE is {soft}; {want} wanted: raise `ulimit -Hn`")
    limit = args.leechers + 100
    lt_limit = 2 * args.leechers + 100
    build()
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        data = os.path.join(src, "data.bin")
        make_data(data, args.size_mib)
        torrent = os.path.join(d, "t.torrent")
        subprocess.run([SHARE, "create", data, "-q", "--no-date", "-o", torrent,
                        *(["--piece-length", args.piece_length] if args.piece_length else [])],
                       check=True, stdout=subprocess.DEVNULL, timeout=600)
        meta = torrent_meta(torrent)
        dst = os.path.join(d, "dst")
        if args.only in (None, "share"):
            rows.append(run_seeder(
                "share",
                [SHARE, "seed", torrent, "-d", src, "--listen", "127.0.0.1:0", "--no-dht",
                 "--no-lsd", "-q", "--max-connections", str(limit), "--max-peers", str(limit),
                 "--max-per-ip", str(limit), *args.share_arg],
                None, args, torrent, dst, meta))
        if args.only in (None, "libtorrent"):
            lt_cmd = ([*LT_PEER, "seed", torrent, src, "--timeout", "3600"]
                      if args.lt_keep_limit else
                      [LT_PEER[0], "-c", LT_WRAP, str(lt_limit), LT_PEER[1], "seed", torrent, src,
                       "--timeout", "3600"])
            rows.append(run_seeder(
                "libtorrent (lt_peer)" + (" default limit" if args.lt_keep_limit else ""),
                lt_cmd, "seeding", args, torrent, dst, meta))

    def f(v, fmt):
        return fmt % v if isinstance(v, float) else str(v or "-")
    print(f"\none seeder, {args.leechers} raw leechers ({args.rate:g} req/s each while "
          f"unchoked) + one honest share fetch, {args.size_mib} MiB, piece "
          f"{meta[1] // 1024} KiB, loopback, {os.cpu_count()} cores\n")
    print("| seeder | peers connected | RSS MiB | CPU % (run) | CPU % (load alone) | fds | "
          "honest fetch MiB/s (with load) | honest fetch MiB/s (no load) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "peers_after" not in r:
            print(f"| {r['name']} | {r.get('error', '?')} | | | | | | {f(r.get('base'), '%.1f')} |")
            continue
        load = f(r["load"], "%.1f")
        print(f"| {r['name']} | {r['peers_peak']} ({r['peers_after']}) | {r['rss']:.0f} | "
              f"{r['cpu_run']:.0f} | {r['cpu_alone']:.0f} | {r['fds']} | {load} | "
              f"{f(r['base'], '%.1f')} |")
    print()
    for r in rows:
        if "peers_after" not in r:
            continue
        print(f"{r['name']}: idle before load RSS {r['idle_rss']:.0f} MiB, {r['idle_fds']} fds; "
              f"raw peers connected {r['raw_before']} -> {r['raw_after']} "
              f"(took {r['connect_s']:.1f} s, retried {r['retries'] or 0}), never connected "
              f"{r['failed'] or 0}, "
              f"dropped {r['dropped'] or 0}; {r['unchoked']} unchoked at the end, raw peers "
              f"got {r['raw_mib_s']:.1f} MiB/s during the fetch; this script's CPU "
              f"{r['me_cpu']:.0f} %" + (f"; {r['error']}" if r.get("error") else ""))
    print("peers connected = peak of the seeder's ESTABLISHED TCP sockets during load + loaded "
          "fetch (the honest leecher included), in brackets once the fetch has ended; RSS, fds: "
          "peaks over the same stretch; CPU % (run): seeder over load + loaded fetch, (load "
          "alone): over --settle s with only the raw peers; 100 % = one core")


if __name__ == "__main__":
    main()
