#!/usr/bin/env python3
"""Hostile BitTorrent peers for the hostile-load tests and bench/hostile.py, on 127.0.0.0/8 only.

Usage:
  hostile.py MODE --hash HEX --pieces N [--piece-length BYTES] [--target IP:PORT]
             [--count N] [--rate N] [--timeout SECS]

Peer modes (listen on 127.0.0.1, print `listening on 127.0.0.1:PORT`, serve one connection
from the peer under test, print `dropped after S s` when it closes us, and exit):
  unrequested  claims every piece, unchokes, then sends piece messages nobody asked for
  requests     says it is interested and sends 100,000 requests
  haves        sends a bitfield, 100,000 haves, then bitfields over and over
  extended     sends extension messages as fast as it can (handshakes, unknown ids)
  slow         claims every piece, unchokes, and answers requests one byte a second

Listener modes (against --target, from source addresses 127.0.0.2 and up, so that the peer
under test still takes connections from 127.0.0.1; print `started` and run until SIGTERM,
then print counts):
  slowloris    keeps --count connections open, sending a byte of a handshake every 5 s,
               and opens a new one whenever one is closed
  churn        opens and drops --rate connections a second (half send garbage first)
"""
import argparse
import os
import random
import select
import signal
import socket
import struct
import sys
import time


def handshake(info_hash, peer_id=b"-HX0000-hostile00000"):
    reserved = bytearray(8)
    reserved[5] |= 0x10  # extension protocol
    reserved[7] |= 0x04  # fast extension
    return bytes([19]) + b"BitTorrent protocol" + bytes(reserved) + info_hash + peer_id


def msg(mid, payload=b""):
    return struct.pack(">IB", 1 + len(payload), mid) + payload


def bitfield_all(pieces):
    n = (pieces + 7) // 8
    b = bytearray(b"\xff" * n)
    spare = n * 8 - pieces
    if spare:
        b[-1] = (0xff << spare) & 0xff
    return msg(5, bytes(b))


def serve_one(args, body):
    """Listens, takes one connection, exchanges handshakes and runs `body(sock)`."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    print("listening on 127.0.0.1:%d" % ls.getsockname()[1], flush=True)
    ls.settimeout(args.timeout)
    # The peer under test dials encrypted first; a plaintext peer drops that connection and
    # takes the plaintext one that follows.
    s = None
    for _ in range(10):
        try:
            c, _ = ls.accept()
        except socket.timeout:
            break
        c.settimeout(args.timeout)
        hs = b""
        try:
            while len(hs) < 68:
                chunk = c.recv(68 - len(hs))
                if not chunk:
                    break
                hs += chunk
        except OSError:
            pass
        if hs[:20] == b"\x13BitTorrent protocol":
            s = c
            break
        c.close()
    if s is None:
        print("nobody came", flush=True)
        return 1
    start = time.monotonic()
    sent = 0
    try:
        s.sendall(handshake(args.hash))
        sent = body(s)
    except (ConnectionError, OSError, socket.timeout):
        pass
    print("dropped after %.1f s" % (time.monotonic() - start), flush=True)
    print("sent %d" % (sent or 0), flush=True)
    return 0


def drain(s):
    """Reads whatever the other side sent (non-blocking); raises when it closed."""
    while True:
        r, _, _ = select.select([s], [], [], 0)
        if not r:
            return
        data = s.recv(65536)
        if not data:
            raise ConnectionError


def until_closed(s, deadline):
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], 0.5)
        if r and not s.recv(65536):
            return


def unrequested(args):
    def body(s):
        s.sendall(bitfield_all(args.pieces) + msg(1))
        block = b"\xaa" * 16384
        sent = 0
        deadline = time.monotonic() + args.timeout
        i = 0
        while time.monotonic() < deadline:
            index = i % args.pieces
            payload = struct.pack(">II", index, 0) + block
            s.sendall(msg(7, payload))
            sent += len(block)
            i += 1
            drain(s)
        return sent
    return serve_one(args, body)


def requests(args):
    def body(s):
        s.sendall(msg(2))
        out = bytearray()
        for n in range(100_000):
            index = n % args.pieces
            out += msg(6, struct.pack(">III", index, 0, 16384))
        s.sendall(bytes(out))
        until_closed(s, time.monotonic() + args.timeout)
        return 100_000
    return serve_one(args, body)


def haves(args):
    def body(s):
        s.sendall(bitfield_all(args.pieces // 2 or 1))
        out = bytearray()
        for n in range(100_000):
            out += msg(4, struct.pack(">I", random.randrange(args.pieces)))
        s.sendall(bytes(out))
        bf = bitfield_all(args.pieces)
        deadline = time.monotonic() + args.timeout
        sent = 100_000
        while time.monotonic() < deadline:
            s.sendall(bf * 100)
            sent += 100
            drain(s)
        return sent
    return serve_one(args, body)


def extended(args):
    def body(s):
        hs = b"d1:md6:ut_pexi2e11:ut_metadatai1ee1:pi1e4:reqqi10ee"
        batch = bytearray()
        for n in range(1000):
            if n % 3 == 0:
                batch += msg(20, bytes([0]) + hs)
            elif n % 3 == 1:
                batch += msg(20, bytes([77]) + b"junk" * 8)
            else:
                batch += msg(20, bytes([2]) + b"d5:added0:e")
        sent = 0
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            s.sendall(bytes(batch))
            sent += 1000
            drain(s)
        return sent
    return serve_one(args, body)


def slow(args):
    def body(s):
        s.sendall(bitfield_all(args.pieces) + msg(1))
        buf = b""
        pending = []
        sent = 0
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], 1.0)
            if r:
                data = s.recv(65536)
                if not data:
                    return sent
                buf += data
                while len(buf) >= 4:
                    (n,) = struct.unpack(">I", buf[:4])
                    if len(buf) < 4 + n:
                        break
                    body_, buf = buf[4:4 + n], buf[4 + n:]
                    if n == 13 and body_[0] == 6:
                        pending.append(body_[1:])
            if pending:
                # One byte of the first requested block's message, then wait a second.
                index, begin, length = struct.unpack(">III", pending[0])
                head = struct.pack(">IBII", 9 + length, 7, index, begin)
                s.sendall(head[:1] if sent == 0 else b"\x00")
                sent += 1
        return sent
    return serve_one(args, body)


STOP = {"flag": False}


def on_term(_sig, _frame):
    STOP["flag"] = True


def source_ip(n):
    return "127.0.%d.%d" % (n // 250, 2 + n % 250)


def connect_from(n, target, timeout=2.0):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((source_ip(n), 0))
    s.settimeout(timeout)
    s.connect(target)
    return s


def slowloris(args):
    host, port = args.target.rsplit(":", 1)
    target = (host, int(port))
    conns = {}
    opened = closed = 0
    print("started", flush=True)
    next_byte = time.monotonic()
    partial = handshake(args.hash)
    while not STOP["flag"]:
        for n in range(args.count):
            if n not in conns:
                try:
                    conns[n] = [connect_from(n, target), 0]
                    conns[n][0].setblocking(False)
                    opened += 1
                except OSError:
                    pass
        if time.monotonic() >= next_byte:
            next_byte = time.monotonic() + 5
            for n, c in list(conns.items()):
                try:
                    c[0].send(partial[c[1]:c[1] + 1])
                    c[1] = (c[1] + 1) % 60  # never the whole handshake
                except OSError:
                    c[0].close()
                    del conns[n]
                    closed += 1
        socks = [c[0] for c in conns.values()]
        if socks:
            r, _, _ = select.select(socks, [], [], 0.2)
            for s in r:
                try:
                    if s.recv(4096):
                        continue
                except OSError:
                    pass
                for n, c in list(conns.items()):
                    if c[0] is s:
                        s.close()
                        del conns[n]
                        closed += 1
        else:
            time.sleep(0.2)
    print("opened %d closed-by-peer %d" % (opened, closed), flush=True)
    return 0


def churn(args):
    host, port = args.target.rsplit(":", 1)
    target = (host, int(port))
    print("started", flush=True)
    made = failed = 0
    n = 0
    start = time.monotonic()
    while not STOP["flag"]:
        due = int((time.monotonic() - start) * args.rate)
        while made + failed < due and not STOP["flag"]:
            try:
                s = connect_from(n % 2000, target, timeout=1.0)
                if n % 2:
                    s.send(os.urandom(68))
                s.close()
                made += 1
            except OSError:
                failed += 1
            n += 1
        time.sleep(0.005)
    print("made %d failed %d in %.1f s" % (made, failed, time.monotonic() - start), flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["unrequested", "requests", "haves", "extended", "slow",
                                     "slowloris", "churn"])
    p.add_argument("--hash", required=True)
    p.add_argument("--pieces", type=int, default=1)
    p.add_argument("--target")
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--rate", type=int, default=500)
    p.add_argument("--timeout", type=float, default=120)
    args = p.parse_args()
    args.hash = bytes.fromhex(args.hash)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    return globals()[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
