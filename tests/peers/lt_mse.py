#!/usr/bin/env python3
"""A libtorrent peer that speaks MSE/PE only, for encryption interop tests, on 127.0.0.1 only.

Usage:
  lt_mse.py [--enc-level rc4|both] [--prefer-plaintext] [--peer IP:PORT] [--timeout SECS]
      Makes a small torrent in a temporary folder and seeds it with
      in_enc_policy = out_enc_policy = pe_forced (no plaintext connection either
      way) and allowed_enc_level as given (default rc4). As the responder it
      selects RC4 when offered, or plaintext with --prefer-plaintext
      (libtorrent's own default). Prints on stdout,
      flushed:
        `listening on 127.0.0.1:PORT`  (once the torrent is checked and seeding)
        `info-hash HEX`
        `established METHOD CLIENT` for each peer whose BitTorrent handshake
            completed over MSE (METHOD is rc4 or plaintext, CLIENT as
            libtorrent names the peer); one line per peer.
      With --peer it dials that address (again every 2 s while it has no peer).
      Runs until SIGTERM/SIGINT (exit 0) or --timeout (default 60, exit 3).

DHT, LSD, UPnP, NAT-PMP and uTP are off: no traffic leaves 127.0.0.1 except to
the given peer.
"""
import argparse
import os
import signal
import sys
import tempfile
import time

import libtorrent as lt

from lt_peer import out, parse_peer  # the same folder


def log(*a):
    print("lt_mse:", *a, file=sys.stderr, flush=True)


# LT_MSE_DEBUG=1 logs libtorrent's per-peer protocol log on stderr.
DEBUG = os.environ.get("LT_MSE_DEBUG") == "1"

LEVELS = {"rc4": int(lt.enc_level.rc4), "both": int(lt.enc_level.both)}


def make_torrent(folder):
    path = os.path.join(folder, "mse.bin")
    with open(path, "wb") as f:
        f.write(bytes((i * 31) % 256 for i in range(64 * 1024 + 7)))
    fs = lt.file_storage()
    lt.add_files(fs, path)
    # v1 only: a hybrid torrent would make libtorrent name it by the v2 hash as well.
    t = lt.create_torrent(fs, 16 * 1024, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(t, folder)
    return lt.torrent_info(lt.bencode(t.generate()))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--enc-level", choices=sorted(LEVELS), default="rc4")
    p.add_argument("--prefer-plaintext", action="store_true")
    p.add_argument("--peer", type=parse_peer)
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()
    deadline = time.monotonic() + args.timeout

    stop = {"flag": False}

    def on_signal(signum, _frame):
        stop["flag"] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "no_connect_privileged_ports": False,
        "min_reconnect_time": 1,
        "out_enc_policy": int(lt.enc_policy.pe_forced),
        "in_enc_policy": int(lt.enc_policy.pe_forced),
        "allowed_enc_level": LEVELS[args.enc_level],
        "prefer_rc4": not args.prefer_plaintext,
        "alert_mask": (lt.alert.category_t.error_notification
                       | lt.alert.category_t.connect_notification
                       | lt.alert.category_t.peer_notification
                       | (lt.alert.category_t.peer_log_notification if DEBUG else 0)),
    })
    while not (ses.is_listening() and ses.listen_port() > 0):
        if time.monotonic() >= deadline:
            log("no listen socket")
            return 4
        time.sleep(0.05)

    with tempfile.TemporaryDirectory() as folder:
        ti = make_torrent(folder)
        atp = lt.add_torrent_params()
        atp.ti = ti
        atp.save_path = folder
        atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        h = ses.add_torrent(atp)
        # Until its data is checked, libtorrent refuses peers ("torrent is not ready").
        while not h.status().is_seeding:
            if time.monotonic() >= deadline:
                log("the torrent never became a seed")
                return 2
            time.sleep(0.02)
        out("listening on 127.0.0.1:%d" % ses.listen_port())
        out("info-hash %s" % str(ti.info_hash()))

        seen = set()
        last_dial = 0.0
        while not stop["flag"]:
            now = time.monotonic()
            if now >= deadline:
                log("timeout")
                return 3
            for a in ses.pop_alerts():
                if DEBUG or a.category() & (lt.alert.category_t.error_notification
                                            | lt.alert.category_t.peer_notification):
                    log("alert:", type(a).__name__, a.message())
            peers = h.get_peer_info()
            if args.peer and not peers and now - last_dial > 2:
                h.connect_peer(args.peer)
                last_dial = now
            for pi in peers:
                key = (pi.ip, pi.pid.to_bytes())
                if pi.flags & lt.peer_info.handshake or key in seen:
                    continue
                if pi.flags & lt.peer_info.rc4_encrypted:
                    method = "rc4"
                elif pi.flags & lt.peer_info.plaintext_encrypted:
                    method = "plaintext"
                else:
                    method = "none"
                seen.add(key)
                client = pi.client
                if isinstance(client, bytes):
                    client = client.decode("utf-8", "replace")
                out("established %s %s" % (method, client or "?"))
            time.sleep(0.05)
        for a in ses.pop_alerts():
            if DEBUG or a.category() & lt.alert.category_t.error_notification:
                log("alert:", type(a).__name__, a.message())
    return 0


if __name__ == "__main__":
    sys.exit(main())
