#!/usr/bin/env python3
"""Drives the qBittorrent WebUI API of a server (share daemon) with the PyPI
`qbittorrent-api` client, as scripts and qbit_manage do.

Usage: qbt_client.py --port PORT --user U --password P --download-dir DIR
                     --one ONE.torrent --one-src FILE --many MANY.torrent --many-src DIR
                     --magnet LINK --magnet-src FILE --seen-hash HASH [--timeout 60]

Logs in, reads the versions and preferences, follows `sync/maindata` from a full update
through every change below, and checks each delta: adds ONE (multipart, category `tv`
whose folder is `tv`, tags a,b), MANY (multipart, stopped, into `many-dir`, tag x) and the
magnet (`urls`, a new category `movies`, tag m); lists them by category and tag; sets
MANY's second file to skip and starts it; reads properties, files and trackers; compares
every download byte for byte; stops and starts ONE; sets its share limits; moves it
(setLocation), renames it, rechecks the magnet; deletes MANY with its files. HASH (added
through the Transmission RPC) must be listed too. Prints one line per step and `ALL OK`;
exits 1 with `FAIL: ...` at the first check that does not hold. Every wait is bounded.
"""
import argparse
import filecmp
import os
import sys
import time


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def wait(what, timeout, probe):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    fail(f"timed out waiting for {what}")


class Sync:
    """Follows sync/maindata as a UI does: merges every delta into its own copy."""

    def __init__(self, c):
        self.c = c
        self.rid = 0
        self.torrents = {}
        self.categories = {}
        self.tags = set()

    def poll(self):
        d = self.c.sync_maindata(rid=self.rid)
        check(d["rid"] != self.rid, f"the rid did not move: {d['rid']}")
        if d.get("full_update"):
            self.torrents, self.categories, self.tags = {}, {}, set()
        for h, t in d.get("torrents", {}).items():
            check("hash" not in t, "a maindata torrent carries its hash")
            self.torrents.setdefault(h, {}).update(t)
        for h in d.get("torrents_removed", []):
            self.torrents.pop(h, None)
        for n, cat in d.get("categories", {}).items():
            self.categories.setdefault(n, {}).update(cat)
        for n in d.get("categories_removed", []):
            self.categories.pop(n, None)
        self.tags |= set(d.get("tags", []))
        self.tags -= set(d.get("tags_removed", []))
        self.rid = d["rid"]
        return d

    def same_as_info(self):
        """The merged state equals what torrents/info says now (except moving numbers)."""
        info = {t["hash"]: t for t in self.c.torrents_info()}
        check(set(info) == set(self.torrents), f"maindata {set(self.torrents)} != info {set(info)}")
        for h, t in info.items():
            for k in ("name", "category", "tags", "save_path", "total_size", "size", "seq_dl",
                      "ratio_limit", "seeding_time_limit", "infohash_v1"):
                check(self.torrents[h].get(k) == t[k],
                      f"maindata {k} of {h}: {self.torrents[h].get(k)!r} != {t[k]!r}")


def main():
    ap = argparse.ArgumentParser()
    for a in ("--user", "--password", "--download-dir", "--one", "--one-src", "--many",
              "--many-src", "--magnet", "--magnet-src", "--seen-hash"):
        ap.add_argument(a, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    try:
        import qbittorrentapi
    except ImportError:
        fail("the PyPI package qbittorrent-api is missing: run scripts/install-peers")
    T = a.timeout
    dl = a.download_dir

    c = qbittorrentapi.Client(host="127.0.0.1", port=a.port, username=a.user,
                              password=a.password, REQUESTS_ARGS={"timeout": 30})
    c.auth_log_in()
    print(f"logged in: app {c.app.version}, webapi {c.app.web_api_version}")
    check(c.app.version == "v5.1.4" and c.app.web_api_version == "2.11.4", "versions")
    prefs = c.app.preferences
    check(prefs["save_path"] == dl, f"save_path {prefs['save_path']!r}")
    check(prefs["dht"] is False and isinstance(prefs["max_ratio_act"], int), "preferences")
    check(c.app.default_save_path == dl, "defaultSavePath")

    s = Sync(c)
    full = s.poll()
    check(full.get("full_update") is True and "server_state" in full, f"first maindata {full}")
    check(a.seen_hash in s.torrents, "the torrent added through the Transmission RPC is not listed")
    seen = c.torrents_info(torrent_hashes=a.seen_hash)
    check(len(seen) == 1 and seen[0]["infohash_v1"] == a.seen_hash, f"info by hash: {seen}")

    c.torrents_create_category(name="tv", save_path="tv")
    c.torrents_create_tags(tags=["a", "b"])
    r = c.torrents_add(torrent_files=open(a.one, "rb"), category="tv", tags=["a", "b"])
    check(r == "Ok.", f"add ONE: {r!r}")
    r = c.torrents_add(torrent_files={"many.torrent": open(a.many, "rb").read()},
                       save_path="many-dir", tags="x", is_stopped=True)
    check(r == "Ok.", f"add MANY: {r!r}")
    r = c.torrents_add(urls=a.magnet, category="movies", tags=["m"])
    check(r == "Ok.", f"add the magnet: {r!r}")
    check(c.torrents_add(torrent_files=open(a.one, "rb")) == "Fails.", "a duplicate was added")
    d = s.poll()
    check(len(d.get("torrents", {})) >= 3 and "movies" in d.get("categories", {}),
          f"the delta after the adds: {d}")
    check({"a", "b", "x", "m"} <= s.tags, f"tags {s.tags}")
    print(f"added three, delta rid {d['rid']} with {len(d['torrents'])} torrents")

    by_name = lambda name: wait(name, T, lambda: next(
        (t for t in c.torrents_info() if t["name"] == name), None))
    one = by_name(os.path.basename(a.one_src))
    many = by_name(os.path.basename(a.many_src))
    mag = wait("the magnet", T, lambda: next(
        (t for t in c.torrents_info(tag="m")), None))
    check([t["hash"] for t in c.torrents_info(category="tv")] == [one["hash"]], "category tv")
    check([t["hash"] for t in c.torrents_info(tag="x")] == [many["hash"]], "tag x")
    check(one["tags"] == "a, b" and one["category"] == "tv", f"ONE {one['tags']!r}")
    check(one["save_path"] == os.path.join(dl, "tv"), f"ONE save_path {one['save_path']}")
    check(many["state"] in ("stoppedDL", "pausedDL"), f"MANY state {many['state']}")
    cats = c.torrents_categories()
    check(cats["tv"]["savePath"] == os.path.join(dl, "tv") and "movies" in cats, f"{cats}")

    files = c.torrents_files(torrent_hash=many["hash"])
    check(len(files) == 2 and files[0]["name"].startswith(many["name"] + "/"), f"{files}")
    c.torrents_file_priority(torrent_hash=many["hash"], file_ids=1, priority=0)
    files = c.torrents_files(torrent_hash=many["hash"])
    check([f["priority"] for f in files] == [1, 0], f"priorities {files}")
    c.torrents_start(torrent_hashes=many["hash"])

    def all_done():
        ts = c.torrents_info(filter="completed")
        return ts if len(ts) == 4 and all(t["progress"] == 1.0 for t in ts) else None
    wait("four complete", T, all_done)
    one_path = os.path.join(dl, "tv", os.path.basename(a.one_src))
    check(filecmp.cmp(a.one_src, one_path, shallow=False), "ONE differs")
    check(filecmp.cmp(a.magnet_src, os.path.join(dl, os.path.basename(a.magnet_src)),
                      shallow=False), "the magnet's file differs")
    wanted, skipped = sorted(os.listdir(a.many_src))
    got = os.path.join(dl, "many-dir", many["name"])
    check(filecmp.cmp(os.path.join(a.many_src, wanted), os.path.join(got, wanted), shallow=False),
          "MANY's wanted file differs")
    skip = os.path.join(got, skipped)
    check(not os.path.exists(skip) or not filecmp.cmp(os.path.join(a.many_src, skipped), skip,
                                                      shallow=False), "the skipped file came")
    print("every download is complete and byte for byte the same")
    s.poll()
    s.same_as_info()

    p = c.torrents_properties(torrent_hash=one["hash"])
    check(p["save_path"] == os.path.join(dl, "tv") and p["total_size"] == os.path.getsize(a.one_src)
          and p["pieces_have"] == p["pieces_num"], f"properties {p}")
    tr = c.torrents_trackers(torrent_hash=one["hash"])
    check([t["url"] for t in tr[:3]] == ["** [DHT] **", "** [PeX] **", "** [LSD] **"]
          and tr[3]["url"].endswith("/announce"), f"trackers {tr}")
    check(c.torrents_piece_states(torrent_hash=one["hash"]) == [2] * p["pieces_num"], "pieces")

    c.torrents_stop(torrent_hashes=one["hash"])
    wait("a stop", T, lambda: c.torrents_info(torrent_hashes=one["hash"])[0]["state"] == "stoppedUP")
    d = s.poll()
    check(d["torrents"][one["hash"]].get("state") == "stoppedUP" and
          "name" not in d["torrents"][one["hash"]], f"the stop's delta: {d['torrents']}")
    c.torrents_start(torrent_hashes=one["hash"])
    wait("a start", T, lambda: c.torrents_info(torrent_hashes=one["hash"])[0]["state"]
         in ("stalledUP", "uploading"))
    print("stopped and started ONE")

    c.torrents_set_share_limits(ratio_limit=2.5, seeding_time_limit=-1,
                                inactive_seeding_time_limit=-2, torrent_hashes=one["hash"])
    t = c.torrents_info(torrent_hashes=one["hash"])[0]
    check((t["ratio_limit"], t["seeding_time_limit"], t["inactive_seeding_time_limit"])
          == (2.5, -1, -2), f"share limits {t}")
    d = s.poll()
    check(d["torrents"][one["hash"]].get("ratio_limit") == 2.5, f"limits delta {d}")

    c.torrents_set_location(location="moved", torrent_hashes=one["hash"])
    moved = os.path.join(dl, "moved", os.path.basename(a.one_src))
    wait("the move", T, lambda: c.torrents_info(torrent_hashes=one["hash"])[0]["save_path"]
         == os.path.join(dl, "moved") and os.path.exists(moved))
    check(filecmp.cmp(a.one_src, moved, shallow=False) and not os.path.exists(one_path), "move")
    c.torrents_rename(torrent_hash=one["hash"], new_torrent_name="renamed one")
    d = s.poll()
    check(d["torrents"][one["hash"]].get("name") == "renamed one", f"rename delta {d}")
    check(d["torrents"][one["hash"]].get("save_path") == os.path.join(dl, "moved"), "move delta")
    print("moved and renamed ONE")

    c.torrents_recheck(torrent_hashes=mag["hash"])
    wait("the recheck", T, lambda: (lambda t: t["progress"] == 1.0 and t["state"]
                                    in ("stalledUP", "uploading"))(
        c.torrents_info(torrent_hashes=mag["hash"])[0]))
    c.transfer_set_download_limit(limit=1 << 20)
    check(c.transfer_download_limit() == 1 << 20, "the global download limit")
    c.transfer_set_download_limit(limit=0)
    try:
        c.app_set_preferences(prefs={"dht": True, "max_ratio_enabled": True})
        fail("setPreferences took dht")
    except qbittorrentapi.exceptions.HTTP400Error as e:
        check("dht" in str(e), f"the 400 does not name dht: {e}")
    check(c.app.preferences["max_ratio_enabled"] is False, "a refused change was half applied")
    c.app_set_preferences(prefs={"max_ratio_enabled": False, "alt_dl_limit": 2048})
    check(c.app.preferences["alt_dl_limit"] == 2048, "alt_dl_limit")

    c.torrents_delete(delete_files=True, torrent_hashes=many["hash"])
    wait("the delete", T, lambda: not c.torrents_info(torrent_hashes=many["hash"]))
    check(not os.path.exists(got), "MANY's files are still there")
    d = s.poll()
    check(d.get("torrents_removed") == [many["hash"]], f"the delete's delta {d}")
    s.same_as_info()
    c.auth_log_out()
    print("ALL OK")


if __name__ == "__main__":
    main()
