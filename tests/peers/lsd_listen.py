#!/usr/bin/env python3
"""Listens for local service discovery announces (BEP 14) for a while, inside a test's own
network namespace, and prints `heard HASH` (lowercase hex) for every info-hash announced.

Usage: lsd_listen.py SECONDS

Prints `listening on 239.192.152.143:6771` once joined to the group.
"""
import socket
import struct
import sys
import time

secs = float(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("0.0.0.0", 6771))
mreq = struct.pack("4s4s", socket.inet_aton("239.192.152.143"), socket.inet_aton("0.0.0.0"))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
print("listening on 239.192.152.143:6771", flush=True)
deadline = time.monotonic() + secs
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        data, _ = s.recvfrom(2048)
    except socket.timeout:
        break
    for line in data.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "infohash":
            print("heard", value.strip().lower(), flush=True)
print("end", flush=True)
