#!/usr/bin/env python3
"""Makes a .torrent of a folder with libtorrent (python3-libtorrent) defaults: a hybrid
v1+v2 torrent, which pads every file that does not end on a piece boundary (BEP 47).

Usage: lt_create.py FOLDER OUT [--piece-length BYTES] [--format hybrid|v2|v1]
"""
import argparse
import os

import libtorrent as lt

p = argparse.ArgumentParser()
p.add_argument("folder")
p.add_argument("out")
p.add_argument("--piece-length", type=int, default=16384)
p.add_argument("--format", choices=["hybrid", "v2", "v1"], default="hybrid")
args = p.parse_args()
flags = {"hybrid": 0, "v2": lt.create_torrent.v2_only, "v1": lt.create_torrent.v1_only}[args.format]

folder = os.path.abspath(args.folder)
fs = lt.file_storage()
lt.add_files(fs, folder)
t = lt.create_torrent(fs, args.piece_length, flags)
lt.set_piece_hashes(t, os.path.dirname(folder))
with open(args.out, "wb") as f:
    f.write(lt.bencode(t.generate()))
