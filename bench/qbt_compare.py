#!/usr/bin/env python3
"""Runs one sequence of qBittorrent WebUI API calls against Debian's qbittorrent-nox and
against `share daemon`, and prints, per call, the differences in status, JSON keys and
value types. By hand, not CI: needs root, `ip`, qbittorrent-nox (apt-get install
qbittorrent-nox) and the PyPI requests package (qbittorrent-api brings it).

    sudo python3 bench/qbt_compare.py [--share target/debug/share]

qbittorrent-nox reaches out on its own at start, so everything (nox, share's daemon, seed
and tracker, and this script's client) runs inside a network namespace that has loopback
alone; the namespace is deleted at the end and every process is stopped by its PID.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HASH = re.compile(r"^[0-9a-f]{40}$")


def kind(v):
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list",
            dict: "object", type(None): "null"}[type(v)]


def shape(v, path, out):
    """Every key path of a JSON value with its type (40-hex keys as <hash>)."""
    out.setdefault(path, set()).add(kind(v))
    if isinstance(v, dict):
        for k, x in v.items():
            shape(x, f"{path}.{'<hash>' if HASH.match(k) else k}", out)
    elif isinstance(v, list):
        for x in v:
            shape(x, f"{path}[]", out)
    return out


def compare(name, a, b):
    lines = []
    if a["status"] != b["status"]:
        lines.append(f"  status: qbittorrent {a['status']} share {b['status']}")
    if a["json"] is None or b["json"] is None:
        if (a["json"] is None) != (b["json"] is None):
            lines.append(f"  body: qbittorrent {a['text'][:60]!r} share {b['text'][:60]!r}")
        elif a["text"] != b["text"] and len(a["text"]) < 40:
            lines.append(f"  text: qbittorrent {a['text']!r} share {b['text']!r}")
    else:
        sa, sb = shape(a["json"], "$", {}), shape(b["json"], "$", {})
        missing = sorted(k for k in sa if k not in sb)
        extra = sorted(k for k in sb if k not in sa)
        if missing:
            lines.append(f"  only in qbittorrent: {', '.join(missing)}")
        if extra:
            lines.append(f"  only in share: {', '.join(extra)}")
        for k in sorted(set(sa) & set(sb)):
            ta, tb = sa[k] - {"null"}, sb[k] - {"null"}
            if ta and tb and ta != tb:
                lines.append(f"  type of {k}: qbittorrent {'/'.join(sorted(sa[k]))} "
                             f"share {'/'.join(sorted(sb[k]))}")
    print(f"== {name}: " + ("same" if not lines else ""))
    for l in lines:
        print(l)


class Api:
    def __init__(self, port):
        import requests
        self.base = f"http://127.0.0.1:{port}/api/v2/"
        self.s = requests.Session()

    def call(self, path, data=None, files=None, get=False, cookie=True):
        import requests
        s = self.s if cookie else requests
        if get:
            r = s.get(self.base + path, params=data, timeout=30)
        else:
            r = s.post(self.base + path, data=data or {}, files=files, timeout=30)
        try:
            j = r.json() if "json" in r.headers.get("content-type", "") else None
        except ValueError:
            j = None
        return {"status": r.status_code, "json": j, "text": r.text}


def wait_port(port, timeout=30):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on {port}")


def sequence(api, t, magnet, one_hash, many_hash):
    """The calls, in order: [(name, answer)]."""
    out = []
    rec = lambda name, a: out.append((name, a))
    rec("app/webapiVersion (no login)", api.call("app/webapiVersion", get=True, cookie=False))
    rec("auth/login", api.call("auth/login", {"username": "admin", "password": "adminadmin"}))
    for p in ("app/version", "app/webapiVersion", "app/buildInfo", "app/preferences",
              "app/defaultSavePath", "transfer/info", "transfer/speedLimitsMode"):
        rec(p, api.call(p, get=True))
    rec("sync/maindata rid=0", api.call("sync/maindata", {"rid": 0}))
    rid = (out[-1][1]["json"] or {}).get("rid", 0)
    rec("torrents/createCategory", api.call("torrents/createCategory", {"category": "tv", "savePath": "tv"}))
    rec("torrents/createTags", api.call("torrents/createTags", {"tags": "a,b"}))
    rec("torrents/add (multipart)", api.call("torrents/add", {"category": "tv", "tags": "a,b"},
                                             files={"torrents": ("one.torrent", open(t["one"], "rb"))}))
    rec("torrents/add (multipart, stopped)", api.call(
        "torrents/add", {"stopped": "true", "paused": "true"},
        files={"torrents": ("many.torrent", open(t["many"], "rb"))}))
    rec("torrents/add (magnet)", api.call("torrents/add", {"urls": magnet, "category": "movies", "tags": "m"}))
    rec("sync/maindata delta after adds", api.call("sync/maindata", {"rid": rid}))
    rid = (out[-1][1]["json"] or {}).get("rid", 0)
    rec("torrents/filePrio", api.call("torrents/filePrio", {"hash": many_hash, "id": "1", "priority": "0"}))
    rec("torrents/start", api.call("torrents/start", {"hashes": many_hash}))
    rec("torrents/resume", api.call("torrents/resume", {"hashes": many_hash}))
    deadline = time.time() + 90
    while time.time() < deadline:
        info = api.call("torrents/info", {"filter": "completed"})["json"] or []
        if len(info) == 3 and all(x["progress"] == 1 for x in info):
            break
        time.sleep(1)
    else:
        print("(not every torrent completed; comparing anyway)")
    for p, d in (("torrents/info", {}), ("torrents/info category=tv", {"category": "tv"}),
                 ("torrents/info tag=m", {"tag": "m"}), ("torrents/info sort=name", {"sort": "name"}),
                 ("torrents/properties", {"hash": one_hash}), ("torrents/files", {"hash": many_hash}),
                 ("torrents/trackers", {"hash": one_hash}), ("torrents/webseeds", {"hash": one_hash}),
                 ("torrents/pieceStates", {"hash": one_hash}), ("torrents/categories", {}),
                 ("torrents/tags", {}), ("torrents/count", {}),
                 ("torrents/uploadLimit", {"hashes": one_hash}),
                 ("sync/torrentPeers", {"hash": one_hash, "rid": 0})):
        rec(p, api.call(p.split(" ")[0], d))
    rec("sync/maindata delta after completion", api.call("sync/maindata", {"rid": rid}))
    rid = (out[-1][1]["json"] or {}).get("rid", 0)
    rec("torrents/stop", api.call("torrents/stop", {"hashes": one_hash}))
    rec("torrents/pause", api.call("torrents/pause", {"hashes": one_hash}))
    time.sleep(2)
    rec("sync/maindata delta after stop", api.call("sync/maindata", {"rid": rid}))
    rid = (out[-1][1]["json"] or {}).get("rid", 0)
    rec("torrents/setShareLimits", api.call("torrents/setShareLimits", {
        "hashes": one_hash, "ratioLimit": 2.5, "seedingTimeLimit": -1, "inactiveSeedingTimeLimit": -2}))
    rec("torrents/setLocation", api.call("torrents/setLocation", {"hashes": one_hash, "location": t["moved"]}))
    rec("torrents/rename", api.call("torrents/rename", {"hash": one_hash, "name": "renamed one"}))
    rec("torrents/recheck", api.call("torrents/recheck", {"hashes": many_hash}))
    time.sleep(2)
    rec("sync/maindata delta after changes", api.call("sync/maindata", {"rid": rid}))
    rid = (out[-1][1]["json"] or {}).get("rid", 0)
    rec("transfer/setDownloadLimit", api.call("transfer/setDownloadLimit", {"limit": 1048576}))
    rec("transfer/downloadLimit", api.call("transfer/downloadLimit"))
    rec("torrents/topPrio", api.call("torrents/topPrio", {"hashes": one_hash}))
    rec("torrents/properties unknown hash", api.call("torrents/properties", {"hash": "ab" * 20}))
    rec("torrents/stop unknown hash", api.call("torrents/stop", {"hashes": "ab" * 20}))
    rec("torrents/nothing", api.call("torrents/nothing"))
    rec("GET torrents/delete", api.call("torrents/delete", get=True))
    rec("torrents/info without a cookie", api.call("torrents/info", cookie=False))
    rec("app/setPreferences dht", api.call("app/setPreferences", {"json": json.dumps({"dht": True})}))
    rec("app/setPreferences bad json", api.call("app/setPreferences", {"json": "{"}))
    rec("torrents/delete", api.call("torrents/delete", {"hashes": many_hash, "deleteFiles": "true"}))
    time.sleep(1)
    rec("sync/maindata delta after delete", api.call("sync/maindata", {"rid": rid}))
    rec("auth/logout", api.call("auth/logout"))
    return out


def inner(a):
    share = os.path.abspath(a.share)
    work = a.work
    env = dict(os.environ, SHARE_NO_DHT="1", SHARE_NO_LSD="1")
    procs = []

    def start(cmd, **kw):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                             text=True, **kw)
        procs.append(p)
        return p

    def line(p, prefix):
        for l in p.stdout:
            if l.startswith(prefix):
                return l[len(prefix):].strip()
        raise SystemExit(f"{p.args[:2]} ended before {prefix!r}")

    try:
        src = os.path.join(work, "src")
        os.makedirs(os.path.join(src, "many"))
        for name, size in (("one.bin", 1_500_001), ("many/a.bin", 300_007), ("many/b.bin", 500_009),
                           ("mag.bin", 600_011)):
            with open(os.path.join(src, name), "wb") as f:
                f.write(os.urandom(size))
        tr = start([share, "tracker", "--listen", "127.0.0.1:0"])
        announce = f"http://{line(tr, 'listening on ')}/announce"
        t = {}
        for name, path in (("one", "one.bin"), ("many", "many"), ("mag", "mag.bin")):
            out = subprocess.run([share, "create", os.path.join(src, path), "-q", "--no-date", "-t",
                                  announce, "-o", os.path.join(work, f"{name}.torrent")],
                                 check=True, capture_output=True, text=True, env=env).stdout
            t[name] = os.path.join(work, f"{name}.torrent")
            t[name + "_hash"] = re.search(r"info-hash: ([0-9a-f]{40})", out).group(1)
            t[name + "_magnet"] = out.strip().splitlines()[-1].split("magnet: ", 1)[1]
        seed = start([share, "seed", t["one"], t["many"], t["mag"], "-d", src, "--listen", "127.0.0.1:0"])
        seed_addr = line(seed, "listening on ")
        magnet = f"{t['mag_magnet']}&x.pe={seed_addr}"

        # qbittorrent-nox: a fresh profile, the WebUI on loopback, admin/adminadmin (4.x).
        prof = os.path.join(work, "nox")
        conf = os.path.join(prof, "qBittorrent", "config")
        os.makedirs(conf)
        nox_dl = os.path.join(work, "nox-dl")
        with open(os.path.join(conf, "qBittorrent.conf"), "w") as f:
            f.write("[LegalNotice]\nAccepted=true\n\n[BitTorrent]\nSession\\Port=7881\n"
                    f"Session\\DefaultSavePath={nox_dl}\n\n[Preferences]\n"
                    "WebUI\\Address=127.0.0.1\nWebUI\\Port=18080\nWebUI\\LocalHostAuth=true\n"
                    f"Downloads\\SavePath={nox_dl}\nConnection\\UPnP=false\n")
        start(["qbittorrent-nox", f"--profile={prof}", "--webui-port=18080"])
        wait_port(18080)
        share_dl = os.path.join(work, "share-dl")
        d = start([share, "daemon", "--listen", "127.0.0.1:0", "--rpc", "127.0.0.1:0",
                   "--rpc-auth", "admin:adminadmin", "--download-dir", share_dl,
                   "--state-dir", os.path.join(work, "share-state")])
        line(d, "listening on ")
        share_port = int(line(d, "rpc on http://").rstrip("/").rsplit(":", 1)[1])

        answers = []
        for port, dl in ((18080, nox_dl), (share_port, share_dl)):
            tt = dict(t, moved=os.path.join(os.path.realpath(dl), "moved"))
            answers.append(sequence(Api(port), tt, magnet, t["one_hash"], t["many_hash"]))
        nox_ver = next(a["text"] for n, a in answers[0] if n == "app/version")
        print(f"# qbittorrent-nox {nox_ver} (left) vs share daemon (right)\n")
        for (name, a), (_, b) in zip(*answers):
            compare(name, a, b)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--share", default="target/debug/share")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.inner:
        return inner(a)
    if not shutil.which("qbittorrent-nox"):
        raise SystemExit("qbittorrent-nox is missing: apt-get install qbittorrent-nox")
    ns = f"qbtcmp{os.getpid()}"
    work = tempfile.mkdtemp(prefix="qbt-compare-")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
                            "--inner", "--share", os.path.abspath(a.share), "--work", work])
        return r.returncode
    finally:
        subprocess.run(["ip", "netns", "delete", ns])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
