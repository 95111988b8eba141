#!/usr/bin/env python3
"""A stand-in for the daemon's HTTP side, to try the web page without the daemon (stdlib only).

Usage:
  mock_rpc.py [--port N] [--extra N] [--empty] [--rotate SECS]

Serves the page's three files from crates/share-daemon/web/ with the daemon's
Content-Security-Policy, a Transmission RPC at POST /transmission/rpc (with the 409
session-id dance; the id changes every --rotate seconds so that the page has to redo it),
and /stream/<hash>/<index> (zeros, with HTTP ranges). Prints `listening on 127.0.0.1:PORT`.

Simulated torrents: a few to start with (one named `<img src=x onerror=alert(1)>` with
hostile file names, one downloading, one paused, one with an error, one fetching metadata
for ever, one checking), plus --extra N fillers. `torrent-add` of a magnet makes a torrent
that fetches its metadata for 1 s and then downloads 50 MB in about 5 s, then seeds.
A URL with "fail" in it fails; other URLs add a torrent named after the URL. `metainfo` is
decoded (bencode) for its name, files and info-hash. stop/start/remove/set work.

Every request for a path it does not serve is logged on stderr as `404 PATH`, so that a
page that loads something it should not (an injected <img src=x>) shows up.
"""
import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB = os.path.join(ROOT, "crates", "share-daemon", "web")
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; media-src 'self'; frame-ancestors 'none'")
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
HOSTILE = "<img src=x onerror=alert(1)>"
MB = 1_000_000


class Torrent:
    def __init__(self, tid, hash_hex, name, files, *, status=4, have=0.0, rate=0,
                 up_rate=0, meta=True, meta_at=None, error="", forever=False):
        self.id = tid
        self.hash = hash_hex
        self.name = name
        self.files = files  # [(path, length)]
        self.have = [0.0] * len(files)
        self.wanted = [True] * len(files)
        self.priority = [0] * len(files)
        self.status = status
        self.rate = rate  # bytes/s while downloading
        self.up_rate = up_rate  # bytes/s while seeding
        self.meta = meta
        self.meta_at = meta_at  # when the metadata "arrives"
        self.error = error
        self.forever = forever  # never gets its metadata
        self.uploaded = 0.0
        self.downloaded = 0.0
        self.last = time.monotonic()
        total = self.total()
        for i, (_, length) in enumerate(files):
            self.have[i] = length * have if total else 0

    def total(self):
        return sum(l for _, l in self.files)

    def left(self):
        return sum(l - h for (_, l), h, w in zip(self.files, self.have, self.wanted) if w)

    def when_done(self):
        return sum(l for (_, l), w in zip(self.files, self.wanted) if w)

    def tick(self):
        now = time.monotonic()
        dt = now - self.last
        self.last = now
        if self.status == 0 or self.error:
            return
        if not self.meta:
            if self.meta_at is not None and now >= self.meta_at and not self.forever:
                self.meta = True
                self.files = self.pending_files
                self.have = [0.0] * len(self.files)
                self.wanted = [True] * len(self.files)
                self.priority = [0] * len(self.files)
            return
        if self.status == 2:
            return  # checks for ever
        if self.status == 4:
            budget = self.rate * dt
            for i, (_, length) in enumerate(self.files):
                if budget <= 0:
                    break
                if not self.wanted[i]:
                    continue
                take = min(budget, length - self.have[i])
                self.have[i] += take
                self.downloaded += take
                budget -= take
            if self.left() <= 0:
                self.status = 6
        elif self.status == 6:
            self.uploaded += self.up_rate * dt

    def current_rates(self):
        if self.error or self.status == 0 or not self.meta:
            return 0, 0
        if self.status == 4:
            return (self.rate if self.left() > 0 else 0), 0
        if self.status == 6:
            return 0, self.up_rate
        return 0, 0

    def get(self, fields):
        down, up = self.current_rates()
        left = int(self.left()) if self.meta else 0
        wd = self.when_done()
        pct = 0.0 if not self.meta or wd == 0 else (wd - left) / wd
        if left <= 0:
            eta = -1
        elif down <= 0:
            eta = -2
        else:
            eta = int(left / down)
        values = {
            "id": self.id,
            "hashString": self.hash,
            "name": self.name,
            "status": self.status,
            "percentDone": pct,
            "totalSize": self.total() if self.meta else 0,
            "sizeWhenDone": wd if self.meta else 0,
            "leftUntilDone": left,
            "rateDownload": int(down),
            "rateUpload": int(up),
            "eta": eta,
            "peersConnected": 0 if self.status == 0 or self.error else (7 if self.meta else 2),
            "error": 3 if self.error else 0,
            "errorString": self.error,
            "isFinished": self.meta and left == 0 and self.status == 0,
            "files": [{"name": p, "length": l, "bytesCompleted": int(h)}
                      for (p, l), h in zip(self.files, self.have)] if self.meta else [],
            "fileStats": [{"wanted": w, "priority": pr, "bytesCompleted": int(h)}
                          for w, pr, h in zip(self.wanted, self.priority, self.have)]
            if self.meta else [],
            "downloadedEver": int(self.downloaded),
            "uploadedEver": int(self.uploaded),
            "metadataPercentComplete": 1.0 if self.meta else 0.0,
            "downloadDir": "/srv/downloads",
        }
        return {f: values[f] for f in fields if f in values}


class Registry:
    def __init__(self):
        self.lock = threading.Lock()
        self.torrents = {}
        self.next_id = 1

    def add(self, hash_hex, name, files, **kw):
        t = Torrent(self.next_id, hash_hex, name, files, **kw)
        self.next_id += 1
        self.torrents[t.id] = t
        return t

    def by_hash(self, h):
        for t in self.torrents.values():
            if t.hash == h:
                return t
        return None

    def select(self, args):
        ids = args.get("ids")
        if ids is None or ids == "recently-active":
            return list(self.torrents.values())
        if not isinstance(ids, list):
            ids = [ids]
        out = []
        for i in ids:
            if isinstance(i, int) and i in self.torrents:
                out.append(self.torrents[i])
            elif isinstance(i, str):
                t = self.by_hash(i.lower())
                if t:
                    out.append(t)
        return out


def fake_hash(seed):
    return hashlib.sha1(seed.encode()).hexdigest()


def seed_registry(reg, extra):
    reg.add(fake_hash("hostile"), HOSTILE, [
        (HOSTILE + '/"><script>window.__pwned=1</script>.mkv', 700 * MB),
        (HOSTILE + "/<b onmouseover=alert(2)>bold</b>.txt", 1200),
        (HOSTILE + "/&lt;entity&gt; & \u202eevil.exe", 4096),
    ], status=6, have=1.0, up_rate=48_000)
    reg.add(fake_hash("debian"), "debian-12.7.0-amd64-netinst.iso",
            [("debian-12.7.0-amd64-netinst.iso", 661 * MB)], status=4, have=0.37,
            rate=1_250_000)
    reg.add(fake_hash("paused"), "Big Buck Bunny (1080p)", [
        ("Big Buck Bunny (1080p)/bbb_sunflower_1080p_60fps_normal.mp4", 355 * MB),
        ("Big Buck Bunny (1080p)/poster.jpg", 240_000),
        ("Big Buck Bunny (1080p)/README.txt", 1_300),
    ], status=0, have=0.6)
    reg.add(fake_hash("error"), "ubuntu-24.04-desktop-amd64.iso",
            [("ubuntu-24.04-desktop-amd64.iso", 5_800 * MB)], status=0, have=0.12,
            error="writing piece 1234: No space left on device (os error 28)")
    t = reg.add(fake_hash("forever"), "a magnet nobody seeds", [], status=4, meta=False,
                forever=True)
    t.pending_files = []
    reg.add(fake_hash("checking"), "Sintel.2010.1080p.mkv",
            [("Sintel.2010.1080p.mkv", 1_200 * MB)], status=2, have=0.8)
    for n in range(extra):
        reg.add(fake_hash("filler%d" % n), "filler torrent %03d" % n,
                [("filler torrent %03d/data.bin" % n, (n + 1) * 3 * MB)],
                status=(4, 6, 0)[n % 3], have=(n % 10) / 10, rate=200_000 + n * 1000,
                up_rate=10_000)


# ---- bencode, for metainfo -------------------------------------------------------------

def bdecode(data, i=0):
    """Returns (value, end). Dicts come back as {key: (value, start, end)}."""
    c = data[i:i + 1]
    if c == b"i":
        j = data.index(b"e", i)
        return int(data[i + 1:j]), j + 1
    if c == b"l":
        i += 1
        out = []
        while data[i:i + 1] != b"e":
            v, i = bdecode(data, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i += 1
        out = {}
        while data[i:i + 1] != b"e":
            k, i = bdecode(data, i)
            start = i
            v, i = bdecode(data, i)
            out[k] = (v, start, i)
        return out, i + 1
    if c.isdigit():
        j = data.index(b":", i)
        n = int(data[i:j])
        if j + 1 + n > len(data):
            raise ValueError("string past the end")
        return data[j + 1:j + 1 + n], j + 1 + n
    raise ValueError("bad bencode at %d" % i)


def parse_metainfo(raw):
    top, end = bdecode(raw)
    if not isinstance(top, dict) or b"info" not in top:
        raise ValueError("no info dictionary")
    info, s, e = top[b"info"]
    h = hashlib.sha1(raw[s:e]).hexdigest()
    name = info.get(b"name", (b"unnamed",))[0].decode("utf-8", "replace")
    if b"files" in info:
        files = []
        for f in info[b"files"][0]:
            path = "/".join(p.decode("utf-8", "replace") for p in f[b"path"][0])
            files.append((name + "/" + path, f[b"length"][0]))
    else:
        files = [(name, info[b"length"][0])]
    return h, name, files


B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def magnet_hash(uri):
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
    for xt in q.get("xt", []):
        m = re.fullmatch(r"urn:btih:([0-9a-fA-F]{40})", xt)
        if m:
            return m.group(1).lower(), q
        m = re.fullmatch(r"urn:btih:([A-Za-z2-7]{32})", xt)
        if m:
            return base64.b32decode(m.group(1).upper()).hex(), q
    return None, q


# ---- RPC -------------------------------------------------------------------------------

class RpcFail(Exception):
    pass


def rpc(reg, method, args):
    with reg.lock:
        for t in reg.torrents.values():
            t.tick()
        if method == "session-get":
            return {"rpc-version": 17, "rpc-version-minimum": 14, "version": "mock",
                    "download-dir": "/srv/downloads"}
        if method == "torrent-get":
            fields = args.get("fields")
            if not isinstance(fields, list):
                raise RpcFail("no fields given")
            return {"torrents": [t.get(fields) for t in reg.select(args)], "removed": []}
        if method == "torrent-add":
            return torrent_add(reg, args)
        if method in ("torrent-stop", "torrent-start", "torrent-start-now"):
            for t in reg.select(args):
                if method == "torrent-stop":
                    t.status = 0
                else:
                    t.status = 6 if t.meta and t.left() <= 0 else 4
                t.last = time.monotonic()
            return {}
        if method == "torrent-remove":
            for t in reg.select(args):
                del reg.torrents[t.id]
                print("removed %s delete-local-data=%s" % (t.hash, bool(args.get("delete-local-data"))),
                      file=sys.stderr, flush=True)
            return {}
        if method == "torrent-set":
            for t in reg.select(args):
                for key, val in (("files-wanted", True), ("files-unwanted", False)):
                    if key in args:
                        idx = args[key]
                        if not isinstance(idx, list):
                            raise RpcFail("`%s` must be a list" % key)
                        if not idx:
                            idx = list(range(len(t.files)))
                        for i in idx:
                            if not isinstance(i, int) or not 0 <= i < len(t.files):
                                raise RpcFail("file index %r out of range" % (i,))
                            t.wanted[i] = val
                if t.status == 6 and t.left() > 0:
                    t.status = 4
                elif t.status == 4 and t.meta and t.left() <= 0:
                    t.status = 6
            return {}
        raise RpcFail("method name not recognized")


def torrent_add(reg, args):
    if "metainfo" in args:
        try:
            raw = base64.b64decode(args["metainfo"], validate=False)
            h, name, files = parse_metainfo(raw)
        except Exception:
            raise RpcFail("invalid or corrupt torrent file")
        old = reg.by_hash(h)
        if old:
            return {"torrent-duplicate": {"id": old.id, "name": old.name, "hashString": old.hash}}
        t = reg.add(h, name, files, status=4, rate=10 * MB)
        return {"torrent-added": {"id": t.id, "name": t.name, "hashString": t.hash}}
    fn = args.get("filename")
    if not isinstance(fn, str) or not fn:
        raise RpcFail("no filename or metainfo given")
    if fn.startswith("magnet:"):
        h, q = magnet_hash(fn)
        if not h:
            raise RpcFail("invalid magnet link: no btih info-hash")
        old = reg.by_hash(h)
        if old:
            return {"torrent-duplicate": {"id": old.id, "name": old.name, "hashString": old.hash}}
        dn = (q.get("dn") or [h])[0]
        t = reg.add(h, dn, [], status=4, rate=10 * MB, meta=False,
                    meta_at=time.monotonic() + 1.0)
        t.pending_files = [(dn + "/" + dn + ".mp4", 48 * MB), (dn + "/notes.txt", 2 * MB)]
        return {"torrent-added": {"id": t.id, "name": t.name, "hashString": t.hash}}
    if re.match(r"https?://", fn):
        if "fail" in fn:
            raise RpcFail("fetching %s: HTTP 404 Not Found" % fn)
        name = urllib.parse.unquote(fn.rstrip("/").rsplit("/", 1)[-1]) or "download"
        name = re.sub(r"\.torrent$", "", name)
        h = fake_hash(fn)
        old = reg.by_hash(h)
        if old:
            return {"torrent-duplicate": {"id": old.id, "name": old.name, "hashString": old.hash}}
        t = reg.add(h, name, [(name + ".bin", 20 * MB)], status=4, rate=4 * MB)
        return {"torrent-added": {"id": t.id, "name": t.name, "hashString": t.hash}}
    raise RpcFail("invalid or corrupt torrent file")


# ---- HTTP ------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    server_version = "mock-share"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s\n" % (fmt % args))

    def send(self, code, body, ctype="text/plain; charset=utf-8", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path in ASSETS:
            name, ctype = ASSETS[path]
            with open(os.path.join(WEB, name), "rb") as f:
                body = f.read()
            return self.send(200, body, ctype, [("Content-Security-Policy", CSP),
                                                ("Cache-Control", "no-cache"),
                                                ("Referrer-Policy", "no-referrer")])
        m = re.fullmatch(r"/stream/([0-9a-fA-F]{40})/(\d+)", path)
        if m:
            return self.stream(m.group(1).lower(), int(m.group(2)))
        print("404 %s" % path, file=sys.stderr, flush=True)
        self.server.misses.append(path)
        self.send(404, "not found\n")

    def stream(self, h, index):
        with self.server.reg.lock:
            t = self.server.reg.by_hash(h)
            if not t or not t.meta or index >= len(t.files):
                return self.send(404, "no such file\n")
            length = t.files[index][1]
        start, end = 0, length - 1
        code = 200
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return self.send(416, "bad range\n", headers=[("Content-Range", "bytes */%d" % length)])
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), length - 1) if m.group(2) else length - 1
            else:
                start = max(0, length - int(m.group(2)))
            if start > end or start >= length:
                return self.send(416, "bad range\n", headers=[("Content-Range", "bytes */%d" % length)])
            code = 206
        n = end - start + 1
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.send_header("Accept-Ranges", "bytes")
        if code == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, length))
        self.end_headers()
        if self.command == "HEAD":
            return
        chunk = b"\0" * 65536
        try:
            while n > 0:
                k = min(n, len(chunk))
                self.wfile.write(chunk[:k])
                n -= k
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path != "/transmission/rpc":
            return self.send(404, "not found\n")
        size = int(self.headers.get("Content-Length") or 0)
        if size > 64 * 1024 * 1024:
            return self.send(413, "too big\n")
        body = self.rfile.read(size)
        sid = self.server.session_id()
        if self.headers.get("X-Transmission-Session-Id") != sid:
            self.server.handshakes += 1
            return self.send(409, "<h1>409: Conflict</h1><p>Your request had an invalid "
                                  "session-id header.</p>", "text/html; charset=utf-8",
                             [("X-Transmission-Session-Id", sid)])
        req = None
        try:
            req = json.loads(body)
            method = req.get("method")
            args = req.get("arguments") or {}
            if not isinstance(args, dict):
                raise RpcFail("arguments must be an object")
            result, out = "success", rpc(self.server.reg, method, args)
        except RpcFail as e:
            result, out = str(e), {}
        except (ValueError, AttributeError):
            result, out = "the request is not JSON", {}
        answer = {"result": result, "arguments": out}
        if isinstance(req, dict) and "tag" in req:
            answer["tag"] = req["tag"]
        self.send(200, json.dumps(answer), "application/json",
                  [("X-Transmission-Session-Id", sid)])


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, rotate, verbose):
        super().__init__(addr, Handler)
        self.reg = Registry()
        self.rotate = rotate
        self.verbose = verbose
        self.misses = []
        self.handshakes = 0
        self._sid = secrets.token_hex(24)
        self._sid_at = time.monotonic()

    def session_id(self):
        if self.rotate and time.monotonic() - self._sid_at > self.rotate:
            self._sid = secrets.token_hex(24)
            self._sid_at = time.monotonic()
        return self._sid


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--extra", type=int, default=0, help="filler torrents to add")
    ap.add_argument("--empty", action="store_true", help="start with no torrents")
    ap.add_argument("--rotate", type=float, default=20.0,
                    help="change the session id every SECS (0: never)")
    ap.add_argument("--verbose", action="store_true", help="log every request")
    args = ap.parse_args()
    srv = Server(("127.0.0.1", args.port), args.rotate, args.verbose)
    if not args.empty:
        seed_registry(srv.reg, args.extra)
    print("listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
