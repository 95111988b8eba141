#!/usr/bin/env python3
"""Prints what libtorrent (python3-libtorrent) reads from a .torrent, as JSON."""
import json
import sys

import libtorrent as lt

ti = lt.torrent_info(sys.argv[1])
fs = ti.files()
v2 = None
try:
    hashes = ti.info_hashes()
    ih = str(hashes.v1) if hashes.has_v1() else None
    v2 = str(hashes.v2) if hashes.has_v2() else None
except AttributeError:  # libtorrent 1.x
    ih = str(ti.info_hash())
files = []
for i in range(fs.num_files()):
    if fs.file_flags(i) & lt.file_storage.flag_pad_file:
        continue
    path = fs.file_path(i).split("/")
    if ti.num_files() > 1 or len(path) > 1:
        path = path[1:]
    files.append({"path": "/".join(path), "length": fs.file_size(i)})
print(json.dumps({
    "info_hash": ih,
    "info_hash_v2": v2,
    "name": ti.name(),
    "piece_count": ti.num_pieces(),
    "piece_length": ti.piece_length(),
    "total_size": ti.total_size(),
    "files": files,
}))
