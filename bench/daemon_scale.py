#!/usr/bin/env python3
"""Benchmark: `share daemon` against Debian's `transmission-daemon`, many torrents and
hundreds of peer connections, both driven over the Transmission RPC.

Run by hand (not a test; it never runs cargo when SHARE_BIN is set):

    SHARE_BIN=/tmp/share-bin/share python3 bench/daemon_scale.py [--torrents 200]
        [--peers-per-torrent K] [--leechers 2] [--size-kib 256] [--workdir DIR] [--keep]
        [--daemons share,transmission] [--settle 20] [--rest 20] [--calls 20]
        [--timeout 600]

It makes N files of --size-kib random bytes and a .torrent for each (`share create`, 16 KiB
pieces). Even-numbered torrents are "seeding": their data is put in the daemon's download
folder before they are added. Odd-numbered ones are "fetching": the daemon downloads them.
Then, for each daemon in turn (never two at once, each with a fresh swarm):

  * the daemon starts empty; all N torrents are added with `torrent-add` (metainfo in
    base64); the script waits until the seeding ones are checked and every torrent has
    been announced;
  * then the external peers start, each a share process holding all N torrents on one
    port: one `share seed` with the complete data; K (--peers-per-torrent) `share seed`
    "partial seeds" whose copy has one damaged piece, so that they never complete, never
    download and stay connected once everything is done (two seeds drop each other); L
    (--leechers) `share fetch --seed` leechers that download everything from the daemon.
    The time until every torrent has percentDone 1 is taken from there (--timeout bounds
    it, as it bounds every wait);
  * after --settle seconds (and until its connection count holds still for 10 s) the
    daemon's resident memory, descriptors and established peer connections are read from
    /proc; its CPU at rest is sampled over --rest seconds; then `torrent-get` of all N
    torrents (ten fields) is timed --calls times.

At rest the daemon holds about N x K peer connections (each partial seed, in each torrent);
the default K is ceil(500 / N), at most 8: N=200 gives 600.

Two things of transmission's shape the swarm. It ignores loopback addresses that a tracker
lists (127/8 is "martian" to it), so it only takes connections that peers make to it; and
it keeps at most one connection per IP address and torrent (its peer manager is keyed by
address), while every process here would connect from 127.0.0.1. So each external peer
runs with a small LD_PRELOAD library (built here with cc) that binds its outgoing TCP
sockets to a loopback address of its own (127.0.0.2, 127.0.0.10, ...), and the tracker is
a small HTTP one inside this script that lists the daemon to every external peer and
nobody to the daemon: a star, every connection made by an external peer to the daemon,
the same for both daemons, and no connections between external peers. share's limits are
set to transmission's (50 peers per torrent, 2000 in all, so no per-IP cap below that).
Both run TCP only, with DHT, LSD/LPD, PEX, uTP and port mapping off, and their default
encryption (prefer). Loopback only; every process started is stopped by its PID at the
end (SIGTERM, then SIGKILL after 30 s).
"""
import argparse
import base64
import http.server
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import common
from common import SHARE, cpu_of

PIECE = 16 * 1024
FIELDS = ["id", "name", "status", "percentDone", "rateDownload", "rateUpload",
          "peersConnected", "totalSize", "leftUntilDone", "eta"]
TRANSMISSION = os.environ.get("TRANSMISSION_BIN", "/usr/bin/transmission-daemon")
# Peer limits both daemons get: transmission's per-torrent default and a global cap.
PER_TORRENT = 50
GLOBAL = 2000

PROCS = []  # every process this script started, stopped in `stop_all`


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- processes

class Proc:
    """A started process: its stdout read by a thread (lines kept), stderr into a file."""

    def __init__(self, name, cmd, log_path, env=None):
        self.name = name
        self.log_path = log_path
        self.lines = []
        self.cond = threading.Condition()
        with open(log_path, "w") as err:
            self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                      stdin=subprocess.DEVNULL, text=True, env=env)
        PROCS.append(self)
        self.pid = self.p.pid
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, prefix, timeout):
        """The first stdout line starting with `prefix` (the text after it)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line[len(prefix):].strip()
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    raise RuntimeError(f"{self.name}: no `{prefix}` line "
                                       f"(exit {self.p.poll()}; see {self.log_path})")
                self.cond.wait(min(left, 0.5))

    def stderr_count(self, text):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read().count(text)
        except FileNotFoundError:
            return 0

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=30):
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pid {self.pid}) ignored SIGTERM for {timeout} s: SIGKILL")
                self.p.kill()
                self.p.wait(10)
            except ProcessLookupError:
                pass
        if self in PROCS:
            PROCS.remove(self)


def stop_all(procs):
    for p in reversed(list(procs)):
        try:
            p.stop()
        except Exception as e:  # keep stopping the others
            log(f"stopping {p.name}: {e}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WaitTimeout(Exception):
    pass


def wait_until(what, pred, timeout, every=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}")


# ---------------------------------------------------------------------------- /proc

def rss_kib(pid, key="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def _tcp_table():
    """inode -> (local port, remote `HEXIP:HEXPORT`, state) for every TCP socket."""
    out = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    p = line.split()
                    out[p[9]] = (int(p[1].rsplit(":", 1)[1], 16), p[2], p[3])
        except FileNotFoundError:
            pass
    return out


def peer_connections(pid, rpc_port, tracker_port):
    """Established TCP connections of `pid`, less the RPC's and the tracker's."""
    table = _tcp_table()
    tracker = f"0100007F:{tracker_port:04X}"
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if not link.startswith("socket:["):
            continue
        s = table.get(link[8:-1])
        if s and s[2] == "01" and s[0] != rpc_port and s[1] != tracker:
            n += 1
    return n


# ---------------------------------------------------------------------------- bencode

def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    raise TypeError(type(v))


# ---------------------------------------------------------------------------- tracker

class Tracker:
    """An HTTP tracker on 127.0.0.1 for a star: it lists the daemon (the peer announcing
    from `daemon_port`) to every other peer of a torrent, and nobody to the daemon."""

    def __init__(self):
        self.lock = threading.Lock()
        self.swarms = {}  # info hash -> {port: (source ip, left)}
        self.daemon_port = None
        tracker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = {}
                for part in url.query.split("&"):
                    k, _, v = part.partition("=")
                    q.setdefault(urllib.parse.unquote(k), []).append(
                        urllib.parse.unquote_to_bytes(v))
                try:
                    if url.path.endswith("/announce"):
                        body = tracker.announce(q, self.client_address[0])
                    elif url.path.endswith("/scrape"):
                        body = tracker.scrape(q)
                    else:
                        self.send_error(404)
                        return
                except (KeyError, ValueError, IndexError) as e:
                    body = bencode({"failure reason": f"bad request: {e}"})
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/announce"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self, daemon_port=None):
        with self.lock:
            self.swarms.clear()
            self.daemon_port = daemon_port

    def announce(self, q, source):
        ih = q["info_hash"][0]
        port = int(q["port"][0])
        left = int(q.get("left", [b"1"])[0])
        event = q.get("event", [b""])[0].decode()
        with self.lock:
            swarm = self.swarms.setdefault(ih, {})
            if event == "stopped":
                swarm.pop(port, None)
            else:
                swarm[port] = (source, left)
            peers = b""
            if port != self.daemon_port and self.daemon_port in swarm:
                ip = swarm[self.daemon_port][0]
                peers = socket.inet_aton(ip) + self.daemon_port.to_bytes(2, "big")
            complete = sum(1 for _, l in swarm.values() if l == 0)
        return bencode({"interval": 1800, "min interval": 60, "complete": complete,
                        "incomplete": len(swarm) - complete, "peers": peers})

    def scrape(self, q):
        files = {}
        with self.lock:
            for ih in q.get("info_hash", []):
                swarm = self.swarms.get(ih, {})
                c = sum(1 for _, l in swarm.values() if l == 0)
                files[ih] = {"complete": c, "downloaded": 0, "incomplete": len(swarm) - c}
        return bencode({"files": files})

    def has(self, ih, port):
        with self.lock:
            return port in self.swarms.get(ih, {})

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------- source address

SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif
/* connect() that first binds an unbound IPv4 TCP socket bound for 127/8 to the source
   address in BENCH_SOURCE_IP, so that processes on one machine look like several hosts. */
int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    const char *src = getenv("BENCH_SOURCE_IP");
    if (src && addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)
        && (ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr) >> 24) == 127) {
        int type = 0, one = 1;
        socklen_t tl = sizeof type;
        struct sockaddr_in cur, me;
        socklen_t cl = sizeof cur;
        memset(&me, 0, sizeof me);
        me.sin_family = AF_INET;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM
            && getsockname(fd, (struct sockaddr *)&cur, &cl) == 0 && cur.sin_family == AF_INET
            && cur.sin_port == 0 && inet_pton(AF_INET, src, &me.sin_addr) == 1) {
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            bind(fd, (struct sockaddr *)&me, sizeof me);
        }
    }
    return real(fd, addr, len);
}
"""


def build_shim(work):
    """An LD_PRELOAD library that gives each external peer its own source address, or
    None (without a C compiler: every peer then connects from 127.0.0.1)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    src, lib = os.path.join(work, "srcaddr.c"), os.path.join(work, "srcaddr.so")
    with open(src, "w") as f:
        f.write(SHIM_C)
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", lib, src, "-ldl"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        log(f"warning: could not build the source-address shim: {r.stderr.strip()}")
        return None
    return lib


# ---------------------------------------------------------------------------- RPC

class Rpc:
    """The Transmission RPC over urllib, with the X-Transmission-Session-Id exchange."""

    def __init__(self, url):
        self.url = url
        self.sid = ""

    def call(self, method, arguments=None, timeout=120):
        body = json.dumps({"method": method, "arguments": arguments or {}}).encode()
        for _ in range(3):
            req = urllib.request.Request(self.url, data=body, method="POST", headers={
                "Content-Type": "application/json",
                "X-Transmission-Session-Id": self.sid})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    out = json.loads(r.read())
            except urllib.error.HTTPError as e:
                if e.code == 409:
                    self.sid = e.headers.get("X-Transmission-Session-Id", "")
                    continue
                raise RuntimeError(f"{method}: HTTP {e.code}: {e.read()[:300]!r}")
            if out.get("result") != "success":
                raise RuntimeError(f"{method}: {out.get('result')!r}")
            return out.get("arguments", {})
        raise RuntimeError(f"{method}: no session id after three 409s")

    def wait_ready(self, timeout, proc):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited (see {proc.log_path})")
            try:
                return self.call("session-get", timeout=5)
            except (OSError, RuntimeError):
                time.sleep(0.3)
        raise RuntimeError(f"{proc.name}: the RPC did not answer in {timeout} s")


# ---------------------------------------------------------------------------- setup

def make_torrents(work, n, size_kib, tracker_url):
    data = os.path.join(work, "data")
    tdir = os.path.join(work, "torrents")
    os.makedirs(data)
    os.makedirs(tdir)
    out = []
    for i in range(n):
        name = f"f{i:04d}.bin"
        path = os.path.join(data, name)
        with open(path, "wb") as f:
            f.write(os.urandom(size_kib * 1024))
        t = os.path.join(tdir, f"f{i:04d}.torrent")
        r = subprocess.run([SHARE, "create", path, "-q", "--no-date", "--piece-length",
                            str(PIECE), "-t", tracker_url, "-o", t], check=True,
                           capture_output=True, text=True, timeout=60)
        ih = next(w for w in r.stdout.split() if len(w) == 40 and
                  all(c in "0123456789abcdef" for c in w))
        with open(t, "rb") as f:
            meta = base64.b64encode(f.read()).decode()
        out.append({"name": name, "torrent": t, "hash": bytes.fromhex(ih), "hex": ih,
                    "metainfo": meta, "seeding": i % 2 == 0})
    return data, out


def make_partial(work, data, torrents, k, size_kib):
    """A copy of the data with piece (k mod pieces) of every file damaged."""
    d = os.path.join(work, f"partial{k}")
    os.makedirs(d)
    pieces = math.ceil(size_kib * 1024 / PIECE)
    for t in torrents:
        dst = os.path.join(d, t["name"])
        shutil.copyfile(os.path.join(data, t["name"]), dst)
        with open(dst, "r+b") as f:
            f.seek((k % pieces) * PIECE)
            b = f.read(1)
            f.seek((k % pieces) * PIECE)
            f.write(bytes([b[0] ^ 0xFF]))
    return d


SHARE_NET = ["--no-dht", "--no-lsd", "--no-pex", "--transports", "tcp",
             "--max-per-ip", str(GLOBAL), "--max-connections", str(GLOBAL)]


def start_swarm(run, data, partials, torrents, leechers, shim):
    """The external peers, each on (and, with the shim, connecting from) its own loopback
    address. They learn the daemon from the tracker and dial it."""
    paths = [t["torrent"] for t in torrents]
    peers = []
    plan = [("seeder", "127.0.0.2", ["seed", *paths, "-d", data])]
    for k, d in enumerate(partials):
        plan.append((f"partial{k}", f"127.0.0.{10 + k}", ["seed", *paths, "-d", d]))
    for k in range(leechers):
        out = os.path.join(run, f"leecher{k}")
        os.makedirs(out)
        plan.append((f"leecher{k}", f"127.0.0.{200 + k}",
                     ["fetch", *paths, "--seed", "-o", out]))
    for name, ip, args in plan:
        # Not -q: the `checked:` and `complete:` lines on stderr tell how far they are.
        cmd = [SHARE, *args, "--listen", f"{ip}:0", *SHARE_NET,
               "--max-peers", str(PER_TORRENT)]
        env = dict(os.environ)
        if shim:
            env.update(LD_PRELOAD=shim, BENCH_SOURCE_IP=ip)
        peers.append(Proc(name, cmd, os.path.join(run, f"{name}.log"), env))
    for p in peers:
        p.wait_line("listening on", 30)
    return peers


def start_share(run, tracker):
    d, s = os.path.join(run, "download"), os.path.join(run, "state")
    os.makedirs(s)
    cmd = [SHARE, "daemon", "--listen", "127.0.0.1:0", "--rpc", "127.0.0.1:0",
           "--download-dir", d, "--state-dir", s, *SHARE_NET, "--max-peers", str(PER_TORRENT)]
    p = Proc("share daemon", cmd, os.path.join(run, "daemon.log"))
    addr = p.wait_line("listening on", 60)
    rpc = p.wait_line("rpc on", 60).rstrip("/")
    p.peer_port = int(addr.rsplit(":", 1)[1])
    p.rpc_port = int(rpc.rsplit(":", 1)[1])
    return p, Rpc(rpc + "/transmission/rpc")


def start_transmission(run, tracker):
    d, conf = os.path.join(run, "download"), os.path.join(run, "config")
    os.makedirs(conf)
    rpc_port, peer_port = free_port(), free_port()
    settings = {
        "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False,
        "utp-enabled": False, "port-forwarding-enabled": False,
        "rpc-whitelist-enabled": False, "rpc-host-whitelist-enabled": False,
        "rpc-authentication-required": False, "rpc-bind-address": "127.0.0.1",
        "rpc-port": rpc_port, "peer-port": peer_port, "peer-port-random-on-start": False,
        "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1",
        "peer-limit-global": GLOBAL, "peer-limit-per-torrent": PER_TORRENT,
        "download-queue-enabled": False, "seed-queue-enabled": False,
        "queue-stalled-enabled": False, "download-dir": d, "incomplete-dir-enabled": False,
        "watch-dir-enabled": False, "blocklist-enabled": False, "start-added-torrents": True,
        "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False,
        "speed-limit-up-enabled": False, "speed-limit-down-enabled": False,
        "alt-speed-enabled": False, "encryption": 1, "message-level": 1,
    }
    with open(os.path.join(conf, "settings.json"), "w") as f:
        json.dump(settings, f, indent=1)
    cmd = [TRANSMISSION, "-f", "-g", conf, "-w", d, "--rpc-bind-address", "127.0.0.1",
           "-p", str(rpc_port), "-T"]
    p = Proc("transmission-daemon", cmd, os.path.join(run, "daemon.log"))
    p.peer_port, p.rpc_port = peer_port, rpc_port
    rpc = Rpc(f"http://127.0.0.1:{rpc_port}/transmission/rpc")
    rpc.wait_ready(60, p)
    return p, rpc


# ---------------------------------------------------------------------------- one run

def run_daemon(kind, work, tracker, data, partials, torrents, shim, args):
    run = os.path.join(work, kind)
    os.makedirs(run)
    download = os.path.join(run, "download")
    os.makedirs(download)
    for t in torrents:
        if t["seeding"]:
            shutil.copyfile(os.path.join(data, t["name"]), os.path.join(download, t["name"]))
    n = len(torrents)
    seeding_ids = []
    tracker.reset()
    started = []
    try:
        log(f"[{kind}] starting the daemon")
        start = start_share if kind == "share" else start_transmission
        daemon, rpc = start(run, tracker)
        started.append(daemon)
        version = rpc.wait_ready(60, daemon).get("version", "?")
        tracker.reset(daemon.peer_port)
        base_rss = rss_kib(daemon.pid) / 1024

        log(f"[{kind}] adding {n} torrents")
        t0 = time.monotonic()
        ids = []
        for t in torrents:
            r = rpc.call("torrent-add", {"metainfo": t["metainfo"], "download-dir": download,
                                         "paused": False})
            added = r.get("torrent-added") or r.get("torrent-duplicate")
            if not added or "id" not in added:
                raise RuntimeError(f"torrent-add {t['name']}: no torrent-added in {r}")
            if str(added.get("hashString", "")).lower() != t["hex"]:
                raise RuntimeError(f"torrent-add {t['name']}: {added} is not {t['hex']}")
            ids.append(added["id"])
            if t["seeding"]:
                seeding_ids.append(added["id"])
        if len(set(ids)) != n:
            raise RuntimeError(f"torrent-add gave {len(set(ids))} distinct ids for {n} torrents")
        t_added = time.monotonic() - t0

        last = {}

        def done(which):
            if not daemon.alive():
                raise RuntimeError(f"{daemon.name} exited (see {daemon.log_path})")
            got = rpc.call("torrent-get", {"ids": which, "fields": ["id", "percentDone"]})
            rows = got.get("torrents", [])
            last["done"] = sum(1 for r in rows if r.get("percentDone") == 1)
            last["rows"] = len(rows)
            return len(rows) == len(which) and last["done"] == len(which)

        def bounded(what, pred):
            try:
                wait_until(what, pred, args.timeout)
            except WaitTimeout as e:
                raise RuntimeError(f"{kind}: {e} ({last})") from None

        # The external peers start once the daemon is in every swarm (so that their first
        # announce lists it) and has checked the data of the seeding torrents.
        log(f"[{kind}] waiting for the checks and the announces")
        bounded("the seeding torrents to be checked", lambda: done(seeding_ids))
        bounded("the daemon to announce every torrent",
                lambda: all(tracker.has(t["hash"], daemon.peer_port) for t in torrents))
        t_checked = time.monotonic() - t0

        log(f"[{kind}] starting {1 + len(partials) + args.leechers} external peers")
        t1 = time.monotonic()
        peers = start_swarm(run, data, partials, torrents, args.leechers, shim)
        started[:0] = peers
        leechers = [p for p in peers if p.name.startswith("leecher")]
        log(f"[{kind}] waiting until all {n} are complete (at most {args.timeout:.0f} s)")
        try:
            wait_until("every torrent to complete", lambda: done(ids), args.timeout)
            t_complete = time.monotonic() - t1
        except WaitTimeout:
            # Measured all the same, at rest with what it has; the table says how far it got.
            log(f"[{kind}] warning: {last['done']} of {n} complete after {args.timeout:.0f} s")
            t_complete = float("nan")
        log(f"[{kind}] all complete after {t_complete:.1f} s; waiting for the leechers")
        try:
            wait_until("the leechers to complete",
                       lambda: all(p.stderr_count("complete: every piece verified") >= n
                                   for p in leechers), args.timeout)
        except WaitTimeout as e:
            log(f"[{kind}] warning: {e}")
        t_leechers = time.monotonic() - t1
        for p in peers:
            if not p.alive():
                log(f"[{kind}] warning: {p.name} exited ({p.p.returncode}; see {p.log_path})")

        log(f"[{kind}] settling {args.settle:.0f} s")
        time.sleep(args.settle)
        conns = lambda: peer_connections(daemon.pid, daemon.rpc_port, tracker.port)
        # Until the connection count holds still for 10 s, at most 2 minutes.
        history = [conns()]
        deadline = time.monotonic() + min(args.timeout, 120)
        while time.monotonic() < deadline:
            time.sleep(2)
            history.append(conns())
            if len(history) >= 6 and len(set(history[-6:])) == 1:
                break

        rss = rss_kib(daemon.pid) / 1024
        peak = rss_kib(daemon.pid, "VmHWM:") / 1024
        nfd = fds(daemon.pid)
        npeer = conns()
        rows = rpc.call("torrent-get", {"ids": ids, "fields": FIELDS})["torrents"]
        rpc_peers = sum(r.get("peersConnected", 0) for r in rows)
        missing = sorted(set(FIELDS) - set().union(*(r.keys() for r in rows))) if rows else FIELDS

        log(f"[{kind}] CPU at rest over {args.rest:.0f} s")
        c0, w0 = cpu_of(daemon.pid), time.monotonic()
        time.sleep(args.rest)
        cpu = (cpu_of(daemon.pid) - c0) / (time.monotonic() - w0) * 100
        npeer_after = conns()

        log(f"[{kind}] {args.calls} torrent-get calls")
        lat = []
        for _ in range(args.calls):
            s = time.perf_counter()
            got = rpc.call("torrent-get", {"ids": ids, "fields": FIELDS})
            lat.append((time.perf_counter() - s) * 1000)
            if len(got.get("torrents", [])) != n:
                raise RuntimeError(f"torrent-get listed {len(got.get('torrents', []))} of {n}")
        lat.sort()
        p95 = lat[max(0, math.ceil(0.95 * len(lat)) - 1)]
        return {
            "version": version, "rss0": base_rss, "add": t_added, "checked": t_checked,
            "complete": t_complete, "leechers": t_leechers, "conns": npeer,
            "conns_after": npeer_after,
            "rpc_peers": rpc_peers, "rss": rss, "peak": peak, "fds": nfd, "cpu": cpu,
            "get_med": statistics.median(lat), "get_p95": p95, "missing": missing,
            "sample": {k: v for k, v in rows[0].items() if k != "name"} if rows else {},
        }
    finally:
        stop_all(started)


# ---------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--torrents", type=int, default=200)
    ap.add_argument("--peers-per-torrent", type=int, default=None,
                    help="partial seeds, so connections held at rest per torrent "
                         "(default ceil(500 / torrents), at most 8)")
    ap.add_argument("--leechers", type=int, default=2,
                    help="`share fetch --seed` processes downloading from the daemon")
    ap.add_argument("--size-kib", type=int, default=256)
    ap.add_argument("--workdir", help="where to make the files (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true", help="leave the work folder in place")
    ap.add_argument("--daemons", default="share,transmission")
    ap.add_argument("--settle", type=float, default=20.0)
    ap.add_argument("--rest", type=float, default=20.0, help="seconds of the CPU sample")
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()
    n = args.torrents
    k = args.peers_per_torrent or max(1, min(8, math.ceil(500 / n)))
    daemons = [d.strip() for d in args.daemons.split(",") if d.strip()]
    if n < 1 or args.size_kib < 2 * PIECE // 1024 or k > 180 or args.leechers > 50:
        sys.exit("need --torrents >= 1, --size-kib >= 32, --peers-per-torrent <= 180, "
                 "--leechers <= 50")
    if set(daemons) - {"share", "transmission"}:
        sys.exit("--daemons takes share and transmission")
    if "transmission" in daemons and not os.access(TRANSMISSION, os.X_OK):
        sys.exit(f"no {TRANSMISSION}: apt-get install -y transmission-daemon")
    common.build()  # cargo build --release, unless SHARE_BIN names a binary
    if not os.access(SHARE, os.X_OK):
        sys.exit(f"no {SHARE}: build it or set SHARE_BIN")
    # A SIGTERM to this script stops what it started, too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        work = tempfile.mkdtemp(prefix="daemon-scale-", dir=args.workdir)
    else:
        work = tempfile.mkdtemp(prefix="share-bench-daemon-")
    tracker = Tracker()
    results = {}
    try:
        log(f"work folder {work}; {n} torrents of {args.size_kib} KiB, {k} partial seeds, "
            f"{args.leechers} leechers")
        data, torrents = make_torrents(work, n, args.size_kib, tracker.url)
        partials = [make_partial(work, data, torrents, i, args.size_kib) for i in range(k)]
        shim = build_shim(work)
        if not shim:
            log("warning: no C compiler: every external peer connects from 127.0.0.1, and "
                "transmission takes one connection per address and torrent")
        for d in daemons:
            results[d] = run_daemon(d, work, tracker, data, partials, torrents, shim, args)
            log(f"[{d}] {results[d]}")
    finally:
        stop_all(PROCS)
        tracker.close()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    seeding = sum(t["seeding"] for t in torrents)
    names = {"share": f"share daemon {results.get('share', {}).get('version', '')}",
             "transmission": "transmission-daemon "
                             f"{results.get('transmission', {}).get('version', '')}"}
    print()
    print(f"{n} torrents of {args.size_kib} KiB ({seeding} seeding, {n - seeding} fetching); "
          f"external peers: 1 seed, {k} partial seeds, {args.leechers} leechers; "
          f"{k} connections per torrent expected at rest ({n * k} in all)")
    print()
    print("| | " + " | ".join(names[d] for d in daemons) + " |")
    print("|---|" + "---|" * len(daemons))
    rows = [
        ("RSS, empty (MiB)", "rss0", "{:.1f}"),
        ("torrent-add x N (s)", "add", "{:.2f}"),
        ("add -> seeding ones checked, all announced (s)", "checked", "{:.2f}"),
        ("peers start -> all complete (s)", "complete", "{:.1f}"),
        ("peers start -> leechers complete (s)", "leechers", "{:.1f}"),
        ("peer connections (established)", "conns", "{}"),
        ("  after the CPU sample", "conns_after", "{}"),
        ("peersConnected (RPC, sum)", "rpc_peers", "{}"),
        ("RSS at rest (MiB)", "rss", "{:.1f}"),
        ("peak RSS, VmHWM (MiB)", "peak", "{:.1f}"),
        ("open fds", "fds", "{}"),
        (f"CPU at rest (% of a core, {args.rest:.0f} s)", "cpu", "{:.2f}"),
        (f"torrent-get x N, median (ms, {args.calls} calls)", "get_med", "{:.1f}"),
        ("torrent-get x N, p95 (ms)", "get_p95", "{:.1f}"),
    ]
    for label, key, fmt in rows:
        print(f"| {label} | " + " | ".join(fmt.format(results[d][key]) for d in daemons) + " |")
    for d in daemons:
        if results[d]["missing"]:
            print(f"\n{names[d]}: torrent-get left out {results[d]['missing']}")


if __name__ == "__main__":
    main()
