#!/usr/bin/env python3
"""Prints where libtorrent (python3-libtorrent) stores each file of a .torrent.

Usage: lt_paths.py TORRENT
Prints one JSON list, in torrent order, of {"path", "size", "pad"}: `path` is relative
to the save folder (it starts with the torrent's name for a multi-file torrent), after
libtorrent's own sanitizing and renaming of duplicates.
"""
import json
import sys

import libtorrent as lt

fs = lt.torrent_info(sys.argv[1]).files()
print(json.dumps([
    {
        "path": fs.file_path(i),
        "size": fs.file_size(i),
        "pad": bool(fs.file_flags(i) & lt.file_storage.flag_pad_file),
    }
    for i in range(fs.num_files())
]))
