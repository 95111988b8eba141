#!/usr/bin/env python3
"""Drives a Transmission-RPC server (share daemon) with the PyPI `transmission-rpc` client.

Usage: trpc_client.py --port PORT --single ONE.torrent --single-size BYTES
                      --multi MANY.torrent --multi-src DIR --magnet LINK
                      --download-dir DIR [--timeout 120]

Adds ONE.torrent (as a path the client reads and sends as metainfo) and MANY.torrent with
its second file unwanted, and a magnet link, waits until all three are done (the wanted
file of MANY compared byte for byte with its source in DIR), reads torrent-get fields and checks
them against what happened (sizes, status, files, bytes, folder), stops and starts ONE,
and removes MANY with its data. Prints one line per step and `ALL OK` at the end; exits 1
with `FAIL: ...` at the first check that does not hold. Every wait is bounded.
"""
import argparse
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
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    fail(f"timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--single", required=True)
    ap.add_argument("--single-size", type=int, required=True)
    ap.add_argument("--multi", required=True)
    ap.add_argument("--multi-src", required=True)
    ap.add_argument("--magnet", required=True)
    ap.add_argument("--download-dir", required=True)
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    try:
        import transmission_rpc
    except ImportError:
        fail("the PyPI package transmission-rpc is missing: run scripts/install-peers")

    c = transmission_rpc.Client(host="127.0.0.1", port=a.port, timeout=30)
    session = c.get_session()
    print(f"session: rpc-version {c.rpc_version}, download-dir {session.download_dir}")
    check(session.download_dir == a.download_dir,
          f"session download-dir {session.download_dir!r} != {a.download_dir!r}")
    # The harness starts the daemon without the DHT and local discovery (SHARE_NO_DHT=1,
    # SHARE_NO_LSD=1): session-get says so.
    check(session.dht_enabled is False and session.lpd_enabled is False,
          f"dht-enabled {session.dht_enabled}, lpd-enabled {session.lpd_enabled}")

    one = c.add_torrent(open(a.single, "rb"))
    many = c.add_torrent(open(a.multi, "rb").read(), files_unwanted=[1], labels=["tv"])
    print(f"added: {one.id} {one.name}, {many.id} {many.name}")
    mag = c.add_torrent(a.magnet)
    print(f"added the magnet: {mag.id} {mag.hashString}")
    dup = c.add_torrent(open(a.single, "rb"))
    check(dup.id == one.id, "adding the same torrent again gave a new id")

    def both_done():
        ts = {t.id: t for t in c.get_torrents()}
        if len(ts) == 3 and all(t.percent_done == 1.0 for t in ts.values()):
            return ts
        return None

    ts = wait("the three downloads", a.timeout, both_done)
    check(ts[mag.id].name == "mag.bin", f"the magnet's name is {ts[mag.id].name!r}")
    t1, t2 = ts[one.id], ts[many.id]
    print(f"done: {t1.name} {t1.status}, {t2.name} {t2.status}")
    check(t1.total_size == a.single_size, f"totalSize {t1.total_size} != {a.single_size}")
    check(t1.left_until_done == 0, f"leftUntilDone {t1.left_until_done}")
    check(t1.downloaded_ever >= a.single_size,
          f"downloadedEver {t1.downloaded_ever} < {a.single_size}")
    check(t1.downloaded_ever < 2 * a.single_size,
          f"downloadedEver {t1.downloaded_ever} is too large")
    check(t1.is_finished or t1.status in ("seeding", "seed pending"),
          f"status {t1.status}")
    check(t1.download_dir == a.download_dir, f"downloadDir {t1.download_dir!r}")
    check(t1.error == 0 and t1.error_string == "", f"error {t1.error} {t1.error_string!r}")
    check(t1.hashString == one.hashString, "hashString changed")
    check(t1.added_date.timestamp() > 0, "addedDate is empty")

    files = t2.get_files()
    check(len(files) == 2, f"{len(files)} files")
    check(files[0].selected and not files[1].selected,
          f"wanted flags {[f.selected for f in files]}")
    check(files[0].completed == files[0].size,
          f"the wanted file has {files[0].completed} of {files[0].size}")
    check(files[1].completed < files[1].size, "the unwanted file was fetched")
    import os
    got = open(os.path.join(t2.download_dir, files[0].name), "rb").read()
    want = open(os.path.join(a.multi_src, os.path.basename(files[0].name)), "rb").read()
    check(got == want, f"{files[0].name} differs from its source")
    check(t2.size_when_done == files[0].size or t2.size_when_done < t2.total_size,
          f"sizeWhenDone {t2.size_when_done} counts the unwanted file")
    check(list(t2.labels) == ["tv"], f"labels {t2.labels}")
    print(f"files: {[(f.name, f.size, f.completed, f.selected) for f in files]}")

    c.stop_torrent(one.id)
    wait("a stop", a.timeout, lambda: c.get_torrent(one.id).status == "stopped")
    print("stopped")
    c.start_torrent(one.id)
    wait("a start", a.timeout, lambda: c.get_torrent(one.id).status == "seeding")
    print("started")

    c.change_torrent(one.id, upload_limit=100, upload_limited=True, seed_ratio_limit=2.5,
                     seed_ratio_mode=1)
    t1 = c.get_torrent(one.id)
    check(t1.upload_limit == 100 and t1.upload_limited, "the upload limit did not stick")
    check(abs(t1.seed_ratio_limit - 2.5) < 1e-9 and t1.seed_ratio_mode == 1,
          f"seed ratio {t1.seed_ratio_limit} mode {t1.seed_ratio_mode}")

    c.remove_torrent(many.id, delete_data=True)
    wait("a removal", a.timeout,
         lambda: sorted(t.id for t in c.get_torrents()) == sorted([one.id, mag.id]))
    _, removed = c.get_recently_active_torrents()
    check(many.id in removed, f"recently-active does not name the removed torrent: {removed}")
    print("removed")
    stats = c.session_stats()
    check(stats.torrent_count == 2, f"session-stats torrentCount {stats.torrent_count}")
    check(stats.active_torrent_count + stats.paused_torrent_count == stats.torrent_count,
          f"active {stats.active_torrent_count} + paused {stats.paused_torrent_count}")
    print("ALL OK")


if __name__ == "__main__":
    main()
