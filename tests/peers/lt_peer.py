#!/usr/bin/env python3
"""A libtorrent (python3-libtorrent) peer for interoperability tests, on 127.0.0.1 only.

Usage:
  lt_peer.py seed  TORRENT SAVE_DIR [--peer IP:PORT]... [--timeout SECS] [--out-enc POLICY]
      Serves the content already at SAVE_DIR/NAME. Prints (stdout, flushed)
      `listening on 127.0.0.1:PORT` once listening, then `seeding` once the
      data has been checked and is complete. Runs until SIGTERM/SIGINT (exit 0)
      or until --timeout (default 300) expires (exit 3). Exit 2 if the data on
      disk is incomplete after the check.
  lt_peer.py fetch TORRENT SAVE_DIR --peer IP:PORT [--peer ...] [--timeout SECS] [--out-enc POLICY]
      Downloads into SAVE_DIR (content lands in SAVE_DIR/NAME) from the given
      peers. TORRENT may be a magnet link (the metadata then comes from the
      peers, BEP 9). Prints `listening on ...` too, progress lines to stderr,
      `metadata` once a magnet's metadata is in, and `done` on stdout, exit 0,
      once every piece is verified; exit 1 on timeout (default 120).
  Both modes: --upload-rate BYTES limits the upload; --listen-ip IP listens on
  IP instead of 127.0.0.1 (inside a test's own network namespace); --lsd turns
  local service discovery on (only inside such a namespace); --seed-after
  (fetch) keeps seeding once done, until a signal.
  Exit 4 if the listen socket cannot be opened.

Error alerts (and peer disconnects / connect failures) are printed to stderr.
Only TCP is used (uTP off), and DHT/LSD/UPnP/NAT-PMP are off, so no traffic
leaves 127.0.0.1 except what the given peers cause.
"""
import argparse
import signal
import sys
import time

import libtorrent as lt


def log(*a):
    print("lt_peer:", *a, file=sys.stderr, flush=True)


def out(line):
    print(line, flush=True)


def parse_peer(s):
    host, _, port = s.rpartition(":")
    return (host.strip("[]"), int(port))


ENC_POLICIES = {
    "disabled": int(lt.enc_policy.pe_disabled),  # plaintext only
    "enabled": int(lt.enc_policy.pe_enabled),    # libtorrent's default: try MSE first
    "forced": int(lt.enc_policy.pe_forced),      # MSE only
}


def make_session(out_enc, listen_ip="127.0.0.1", lsd=False, upload_rate=0, force_rc4=False,
                 utp_only=False):
    settings = {
        # Port 0: the OS picks a free port (works in libtorrent 2.0.x);
        # the real one is read back with listen_port().
        "listen_interfaces": ("[%s]:0" if ":" in listen_ip else "%s:0") % listen_ip,
        "outgoing_interfaces": "",
        "enable_dht": False,
        "enable_lsd": lsd,
        "enable_upnp": False,
        "enable_natpmp": False,
        # TCP only, unless --utp-only: then µTP only, both ways.
        "enable_outgoing_utp": utp_only,
        "enable_incoming_utp": utp_only,
        "enable_outgoing_tcp": not utp_only,
        "enable_incoming_tcp": not utp_only,
        # Every test peer is 127.0.0.1, so several connections per IP are normal.
        "allow_multiple_connections_per_ip": True,
        # No rate limits at all, local or not (unless asked).
        "upload_rate_limit": upload_rate,
        "download_rate_limit": 0,
        "rate_limit_ip_overhead": False,
        "ignore_limits_on_local_network": upload_rate == 0,
        # Test peers may listen on any port.
        "no_connect_privileged_ports": False,
        # Do not let queueing / auto-management park the torrent.
        "active_downloads": -1,
        "active_seeds": -1,
        "active_limit": -1,
        "dont_count_slow_torrents": False,
        # Unchoke everyone; reconnect quickly to a peer that dropped us.
        "unchoke_slots_limit": -1,
        "min_reconnect_time": 1,
        "peer_connect_timeout": 5,
        "seeding_outgoing_connections": True,
        # Both sides are seeds at the end of a test: keep the link anyway.
        "close_redundant_connections": False,
        # Protocol encryption (MSE/PE): libtorrent's default opens outgoing
        # connections encrypted (--out-enc changes it) and takes both in;
        # --force-rc4 makes it MSE with RC4 only, both ways.
        "out_enc_policy": int(lt.enc_policy.pe_forced) if force_rc4 else out_enc,
        "in_enc_policy": int(lt.enc_policy.pe_forced if force_rc4 else lt.enc_policy.pe_enabled),
        "allowed_enc_level": int(lt.enc_level.rc4 if force_rc4 else lt.enc_level.both),
        "user_agent": "lt_peer/" + lt.__version__,
        "alert_mask": (lt.alert.category_t.error_notification
                       | lt.alert.category_t.status_notification
                       | lt.alert.category_t.connect_notification
                       | lt.alert.category_t.peer_notification
                       | lt.alert.category_t.storage_notification),
    }
    ses = lt.session(settings)
    return ses


def wait_listening(ses, deadline):
    """Waits for the listen socket; returns its port."""
    while time.monotonic() < deadline:
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_failed_alert):
                log("listen failed:", a.message())
                sys.exit(4)
        if ses.is_listening() and ses.listen_port() > 0:
            return ses.listen_port()
        time.sleep(0.05)
    log("timed out waiting for the listen socket")
    sys.exit(4)


# Alerts worth showing on stderr (errors plus peer connection churn).
SHOWN = tuple(getattr(lt, n) for n in (
    "peer_error_alert", "peer_disconnected_alert", "peer_connect_alert",
    "torrent_error_alert", "file_error_alert", "hash_failed_alert",
    "listen_failed_alert", "peer_ban_alert", "fastresume_rejected_alert",
    "metadata_failed_alert", "incoming_connection_alert",
    "peer_blocked_alert",
) if hasattr(lt, n))


def drain_alerts(ses):
    for a in ses.pop_alerts():
        if isinstance(a, SHOWN) or (a.category() & lt.alert.category_t.error_notification):
            log("alert:", type(a).__name__, a.message())


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["seed", "fetch"])
    p.add_argument("torrent")
    p.add_argument("save_dir")
    p.add_argument("--peer", action="append", default=[], type=parse_peer)
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--out-enc", choices=sorted(ENC_POLICIES), default="enabled",
                   help="encryption policy for outgoing connections (default: libtorrent's own, "
                        "enabled: MSE first)")
    p.add_argument("--utp-only", action="store_true",
                   help="µTP only, in and out (TCP off both ways)")
    p.add_argument("--force-rc4", action="store_true",
                   help="MSE with RC4 only, both ways (in and out pe_forced, level rc4)")
    p.add_argument("--upload-rate", type=int, default=0)
    p.add_argument("--listen-ip", default="127.0.0.1")
    p.add_argument("--lsd", action="store_true")
    p.add_argument("--seed-after", action="store_true")
    args = p.parse_args()
    if args.timeout is None:
        args.timeout = 300.0 if args.mode == "seed" else 120.0
    deadline = time.monotonic() + args.timeout

    stop = {"flag": False}

    def on_signal(signum, _frame):
        stop["flag"] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ses = make_session(ENC_POLICIES[args.out_enc], args.listen_ip, args.lsd,
                       args.upload_rate, args.force_rc4, args.utp_only)
    port = wait_listening(ses, deadline)
    shown = ("[%s]" if ":" in args.listen_ip else "%s") % args.listen_ip
    out("listening on %s:%d" % (shown, port))

    magnet = args.torrent.startswith("magnet:")
    if magnet:
        atp = lt.parse_magnet_uri(args.torrent)
    else:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.save_dir
    # Not auto-managed (so never queued) and not paused.
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    h = ses.add_torrent(atp)
    total = atp.ti.num_pieces() if not magnet else None
    said_done = False

    def connect_all():
        for peer in args.peer:
            try:
                h.connect_peer(peer)
            except Exception as e:  # noqa: BLE001 - report and carry on
                log("connect_peer", peer, "failed:", e)

    connected_once = False
    announced_seeding = False
    last_progress = 0.0
    last_connect = 0.0
    while not stop["flag"]:
        now = time.monotonic()
        if now >= deadline:
            s = h.status()
            log("timeout after %.0fs: state=%s pieces=%d/%d peers=%d"
                % (args.timeout, s.state, s.num_pieces, total, s.num_peers))
            if args.mode == "fetch":
                out("timeout")
                return 1
            return 3
        drain_alerts(ses)
        s = h.status()
        if total is None:
            if s.has_metadata:
                total = h.torrent_file().num_pieces()
                out("metadata")
            else:
                total = -1
        elif total == -1 and s.has_metadata:
            total = h.torrent_file().num_pieces()
            out("metadata")
        checking = s.state in (lt.torrent_status.checking_files,
                               lt.torrent_status.checking_resume_data,
                               lt.torrent_status.queued_for_checking,
                               lt.torrent_status.allocating)
        complete = s.is_seeding or s.num_pieces == total
        if s.errc.value() != 0:
            log("torrent error:", s.errc.message())

        # Connect once checking is over; again every few seconds while
        # there is no peer (a peer may not be listening yet, or may drop us).
        if not checking and args.peer and (
                not connected_once or (s.num_peers == 0 and now - last_connect > 2)):
            connect_all()
            connected_once = True
            last_connect = now

        if args.mode == "seed":
            if not checking and not announced_seeding:
                if not complete:
                    log("data at %s is incomplete: %d/%d pieces"
                        % (args.save_dir, s.num_pieces, total))
                    return 2
                out("seeding")
                announced_seeding = True
        else:
            if not checking and complete and total > 0:
                if not said_done:
                    log("finished: %d/%d pieces, %d bytes downloaded"
                        % (s.num_pieces, total, s.total_payload_download))
                    out("done")
                said_done = True
                if not args.seed_after:
                    return 0
            if now - last_progress >= 1.0:
                log("state=%s progress=%.1f%% pieces=%d/%d peers=%d down=%dB/s"
                    % (s.state, s.progress * 100, s.num_pieces, total,
                       s.num_peers, s.download_payload_rate))
                last_progress = now
        time.sleep(0.1)

    s = h.status()
    log("stopped by signal: uploaded=%d downloaded=%d"
        % (s.total_payload_upload, s.total_payload_download))
    out("uploaded: %d downloaded: %d" % (s.total_payload_upload, s.total_payload_download))
    return 0


if __name__ == "__main__":
    sys.exit(main())
