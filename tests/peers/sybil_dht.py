#!/usr/bin/env python3
"""A Sybil flood on the DHT, on loopback only: hundreds of fake DHT nodes (many ids from a few
addresses) that answer every query with themselves and with bogus peers.

Usage: sybil_dht.py --ips 127.66.0.2,127.66.1.2 --per-ip 100 --poke IP:PORT [--poke ...]
                    [--bogus-net 127.77] [--timeout SECS]

Each fake node binds a UDP socket on one of --ips. At start, and every 10 s, each pings the
--poke nodes (to get into their routing tables). It answers:
  ping           with its id
  find_node      with its id and 8 other fake nodes, with ids right next to the target
  get_peers      the same, plus a token and 50 bogus peers on --bogus-net (nothing listens)
  announce_peer  with its id
Prints `started N` once bound, and at the end (SIGTERM or --timeout) `queries Q bogus B`.
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


def enc(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, str):
        return enc(v.encode())
    if isinstance(v, list):
        return b"l" + b"".join(enc(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(enc(k) + enc(x) for k, x in items) + b"e"
    raise TypeError(type(v))


def dec(b, i=0):
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c == b"l":
        out, i = [], i + 1
        while b[i:i + 1] != b"e":
            x, i = dec(b, i)
            out.append(x)
        return out, i + 1
    if c == b"d":
        out, i = {}, i + 1
        while b[i:i + 1] != b"e":
            k, i = dec(b, i)
            x, i = dec(b, i)
            out[k] = x
        return out, i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n


def near(target):
    t = bytearray(target)
    t[19] ^= random.randrange(1, 256)
    t[18] ^= random.randrange(0, 4)
    return bytes(t)


STOP = {"flag": False}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ips", required=True)
    p.add_argument("--per-ip", type=int, default=100)
    p.add_argument("--poke", action="append", default=[])
    p.add_argument("--bogus-net", default="127.77")
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    ips = args.ips.split(",")
    for ip in ips + [a.rsplit(":", 1)[0] for a in args.poke]:
        if not ip.startswith("127."):
            sys.exit("sybil_dht: loopback only")
    signal.signal(signal.SIGTERM, lambda *_: STOP.update(flag=True))
    socks = []
    for ip in ips:
        for _ in range(args.per_ip):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((ip, 0))
            s.setblocking(False)
            socks.append((s, os.urandom(20)))
    addrs = [s.getsockname() for s, _ in socks]
    pokes = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in args.poke]
    print("started %d" % len(socks), flush=True)
    bogus_a, bogus_b = (int(x) for x in args.bogus_net.split("."))
    queries = bogus = 0
    deadline = time.monotonic() + args.timeout
    next_poke = 0.0
    by_fd = {s.fileno(): (s, nid) for s, nid in socks}
    while not STOP["flag"] and time.monotonic() < deadline:
        if time.monotonic() >= next_poke:
            next_poke = time.monotonic() + 10
            for s, nid in socks:
                for to in pokes:
                    q = {"t": b"pk", "y": "q", "q": "ping", "a": {"id": nid}}
                    try:
                        s.sendto(enc(q), to)
                    except OSError:
                        pass
        r, _, _ = select.select(list(by_fd), [], [], 0.5)
        for fd in r:
            s, nid = by_fd[fd]
            try:
                data, frm = s.recvfrom(4096)
            except OSError:
                continue
            try:
                msg, _ = dec(data)
            except (ValueError, IndexError):
                continue
            if not isinstance(msg, dict) or msg.get(b"y") != b"q":
                continue
            queries += 1
            a = msg.get(b"a", {})
            target = a.get(b"target") or a.get(b"info_hash") or nid
            reply = {b"id": near(target) if len(target) == 20 else nid}
            method = msg.get(b"q")
            if method in (b"find_node", b"get_peers"):
                nodes = b""
                for other in random.sample(addrs, min(8, len(addrs))):
                    nodes += near(target) + socket.inet_aton(other[0]) + struct.pack(">H", other[1])
                reply[b"nodes"] = nodes
            if method == b"get_peers":
                reply[b"token"] = b"sybiltok"
                values = []
                for _ in range(50):
                    ip = "%d.%d.%d.%d" % (bogus_a, bogus_b, random.randrange(256), random.randrange(1, 255))
                    values.append(socket.inet_aton(ip) + struct.pack(">H", random.randrange(1024, 65535)))
                reply[b"values"] = values
                bogus += 50
            out = {b"t": msg.get(b"t", b""), b"y": b"r", b"r": reply}
            try:
                s.sendto(enc(out), frm)
            except OSError:
                pass
    print("queries %d bogus %d" % (queries, bogus), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
