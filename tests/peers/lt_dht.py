#!/usr/bin/env python3
"""A small DHT of libtorrent (python3-libtorrent) sessions on loopback, for interop tests.

Usage:
  lt_dht.py --nodes N --net A [--port P] [--bootstrap IP:PORT]... [--timeout SECS]

Runs N libtorrent sessions in this one process, session i on 127.A.i.1:P (each in a /24 of
its own; P defaults to 6881), DHT on, LSD/UPnP/NAT-PMP off, routing and search IP
restrictions off, rate limits raised. Every session is introduced (add_dht_node) to session 0, to
the one before it and to each --bootstrap node; nothing outside 127.0.0.0/8 is ever contacted. Prints
`node I IP:PORT` for each session, then `ready` once each knows two other nodes (30 s
at most).

Commands, one a line on standard input (answers on standard output):
  seed                  Creates a small torrent, seeds it from session 1 and prints
                        `seeding HEX IP:PORT`.
  get_peers HEX [I]     A DHT get_peers lookup from session I (default: the last one);
                        prints `peers HEX MS ADDR,ADDR,...` (MS: the lookup's time).
  announce HEX [I]      Adds a torrent known by its info-hash alone to session I (default:
                        the last one), which libtorrent then announces on the DHT with
                        its listen port; prints `announced HEX IP:PORT`. (The Python
                        binding cannot call dht_announce: its flags type is not exposed.)
  seed_file PATH        Seeds PATH (a file that exists) from session 1, as a torrent of
                        16 KiB pieces made here; prints `seeding HEX IP:PORT`.
  fetch HEX DIR [I]     Fetches the torrent known by its info-hash alone into DIR from
                        session I (default: the last one): metadata and peers from the DHT;
                        prints `fetched HEX` once every piece is there.
  nodes                 Prints `nodes N1 N2 ...`: each session's routing table size.
  quit                  Exits 0 (so does the end of standard input).
Exits 3 when --timeout (default 300 s) expires.
"""
import argparse
import os
import select
import sys
import tempfile
import time

import libtorrent as lt


def log(*a):
    print("lt_dht:", *a, file=sys.stderr, flush=True)


def out(line):
    print(line, flush=True)


def parse_addr(s):
    host, _, port = s.rpartition(":")
    return (host, int(port))


def make_session(ip, port):
    settings = {
        "listen_interfaces": "%s:%d" % (ip, port),
        "outgoing_interfaces": ip,
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # No routers: libtorrent never puts a router in its routing table, so the nodes are
        # introduced with add_dht_node instead (pinged, then kept like any other node).
        "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_enforce_node_id": False,
        "dht_prefer_verified_node_ids": False,
        "dht_block_ratelimit": 100000,
        "dht_upload_rate_limit": 10_000_000,
        "dht_announce_interval": 30,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": (lt.alert.category_t.error_notification
                       | lt.alert.category_t.status_notification
                       | lt.alert.category_t.dht_notification
                       | lt.alert.category_t.dht_operation_notification),
    }
    return lt.session(settings)


def make_torrent(tmp):
    path = os.path.join(tmp, "lt-dht-seed.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(64 * 1024))
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, 16 * 1024)
    lt.set_piece_hashes(ct, tmp)
    return lt.torrent_info(lt.bencode(ct.generate()))


def wait_alert(ses, kind, pred, deadline):
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, kind) and pred(a):
                return a
            if a.category() & lt.alert.category_t.error_notification:
                log("alert:", type(a).__name__, a.message())
    return None


def table_sizes(sessions, deadline):
    sizes = []
    for ses in sessions:
        ses.post_dht_stats()
        a = wait_alert(ses, lt.dht_stats_alert, lambda a: True,
                       min(deadline, time.monotonic() + 5))
        sizes.append(0 if a is None else sum(b["num_nodes"] for b in a.routing_table))
    return sizes


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--net", type=int, required=True)
    p.add_argument("--port", type=int, default=6881)
    p.add_argument("--bootstrap", action="append", default=[])
    p.add_argument("--timeout", type=float, default=300.0)
    args = p.parse_args()
    for b in args.bootstrap:
        if not b.startswith("127."):
            sys.exit("lt_dht: only loopback bootstrap nodes")
    deadline = time.monotonic() + args.timeout

    ips = ["127.%d.%d.1" % (args.net, i) for i in range(args.nodes)]
    first = "%s:%d" % (ips[0], args.port)
    sessions = []
    for i, ip in enumerate(ips):
        sessions.append(make_session(ip, args.port))
    # Every session is told of session 0, its predecessor and the --bootstrap nodes.
    for i, ses in enumerate(sessions):
        known = ([] if i == 0 else [first, "%s:%d" % (ips[i - 1], args.port)]) + args.bootstrap
        for k in dict.fromkeys(known):
            ses.add_dht_node(parse_addr(k))
    for i, ses in enumerate(sessions):
        out("node %d %s:%d" % (i, ips[i], args.port))
    # Ready once every session knows two others (or all the others, in a smaller DHT).
    want = min(2, len(sessions) - 1 + len(args.bootstrap))
    ready_by = time.monotonic() + 30
    while time.monotonic() < ready_by:
        sizes = table_sizes(sessions, deadline)
        if min(sizes) >= want:
            break
        time.sleep(0.5)
    out("ready")

    tmp = tempfile.mkdtemp(prefix="lt-dht-")
    handles = []
    fetching = []  # (handle, hex) not yet reported complete
    buf = b""
    while time.monotonic() < deadline:
        for ses in sessions:
            for a in ses.pop_alerts():
                if a.category() & lt.alert.category_t.error_notification:
                    log("alert:", type(a).__name__, a.message())
        for h, hexh in list(fetching):
            st = h.status()
            if st.has_metadata and (st.is_seeding or st.is_finished):
                out("fetched %s" % hexh)
                fetching.remove((h, hexh))
        r, _, _ = select.select([sys.stdin], [], [], 0.1)
        if not r:
            continue
        chunk = os.read(sys.stdin.fileno(), 4096)
        if not chunk:
            return 0
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            words = line.decode().split()
            if not words:
                continue
            cmd = words[0]
            if cmd == "quit":
                return 0
            if cmd == "seed":
                ti = make_torrent(tmp)
                atp = lt.add_torrent_params()
                atp.ti = ti
                atp.save_path = tmp
                atp.flags |= lt.torrent_flags.seed_mode
                atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
                handles.append(sessions[1].add_torrent(atp))
                h = str(ti.info_hashes().v1) if hasattr(ti, "info_hashes") else str(ti.info_hash())
                out("seeding %s %s:%d" % (h, ips[1], args.port))
            elif cmd == "seed_file":
                path = words[1]
                fs = lt.file_storage()
                lt.add_files(fs, path)
                ct = lt.create_torrent(fs, 16 * 1024)
                lt.set_piece_hashes(ct, os.path.dirname(path))
                ti = lt.torrent_info(lt.bencode(ct.generate()))
                atp = lt.add_torrent_params()
                atp.ti = ti
                atp.save_path = os.path.dirname(path)
                atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
                handles.append(sessions[1].add_torrent(atp))
                h = str(ti.info_hashes().v1) if hasattr(ti, "info_hashes") else str(ti.info_hash())
                out("seeding %s %s:%d" % (h, ips[1], args.port))
            elif cmd == "fetch":
                h = words[1]
                i = int(words[3]) if len(words) > 3 else len(sessions) - 1
                atp = lt.add_torrent_params()
                atp.info_hash = lt.sha1_hash(bytes.fromhex(h))
                atp.save_path = words[2]
                atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
                handle = sessions[i].add_torrent(atp)
                handles.append(handle)
                fetching.append((handle, h))
            elif cmd == "get_peers":
                h = words[1]
                i = int(words[2]) if len(words) > 2 else len(sessions) - 1
                ses = sessions[i]
                t0 = time.monotonic()
                ses.dht_get_peers(lt.sha1_hash(bytes.fromhex(h)))
                a = wait_alert(ses, lt.dht_get_peers_reply_alert,
                               lambda a: str(a.info_hash) == h, min(deadline, t0 + 60))
                ms = (time.monotonic() - t0) * 1000
                peers = [] if a is None else ["%s:%d" % (ip, port) for ip, port in a.peers()]
                out("peers %s %.1f %s" % (h, ms, ",".join(peers)))
            elif cmd == "announce":
                h = words[1]
                i = int(words[2]) if len(words) > 2 else len(sessions) - 1
                atp = lt.add_torrent_params()
                atp.info_hash = lt.sha1_hash(bytes.fromhex(h))
                atp.save_path = tmp
                atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
                handles.append(sessions[i].add_torrent(atp))
                out("announced %s %s:%d" % (h, ips[i], args.port))
            elif cmd == "nodes":
                out("nodes " + " ".join(str(s) for s in table_sizes(sessions, deadline)))
            else:
                log("unknown command:", cmd)
    log("timeout")
    return 3


if __name__ == "__main__":
    sys.exit(main())
