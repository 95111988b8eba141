#!/usr/bin/env python3
"""Benchmark: a web-seed-only download of one file from nginx on loopback.

Run by hand (not a test):  python3 bench/webseed.py [--size-mib 1024] [--runs 3]

nginx (one process, no rate limit) serves a file; each run downloads it with
  - share fetch of a torrent whose `url-list` is that nginx (no peers at all),
  - aria2c -x4 -s4 of the same URL over plain HTTP (four connections),
  - libtorrent (python3-libtorrent) fetching the same torrent from the same web seed,
and prints wall time, MiB/s, CPU seconds and peak RSS of each (GNU time), as ranges over
the runs. The page cache is dropped before each run when possible (root); the file itself
is read once first, so nginx serves it from memory.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from common import LT_PEER, SHARE, build, free_port, make_data, measure


def drop_caches():
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
    except OSError:
        pass


def start_nginx(d, root):
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  sendfile on;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
""")
    p = subprocess.Popen(["nginx", "-p", d, "-e", f"{d}/error.log", "-c", conf])
    import socket
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, f"http://127.0.0.1:{port}/"
        except OSError:
            time.sleep(0.05)
    p.kill()
    sys.exit("nginx did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for tool in ("nginx", "aria2c"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (scripts/install-peers installs it)")
    build()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        www = os.path.join(d, "www")
        os.makedirs(www)
        data = os.path.join(www, "data.bin")
        make_data(data, args.size_mib)
        nginx, url = start_nginx(d, www)
        try:
            torrent = os.path.join(d, "t.torrent")
            subprocess.run([SHARE, "create", data, "-q", "--web-seed", url, "-o", torrent],
                           check=True, stdout=subprocess.DEVNULL)
            dst = os.path.join(d, "dst")
            tools = [
                ("share fetch (web seed)",
                 [SHARE, "fetch", torrent, "-o", dst, "--listen", "127.0.0.1:0", "-q"]),
                ("aria2c -x4 -s4 (HTTP)",
                 ["aria2c", "-x4", "-s4", "-q", "--allow-overwrite=true",
                  "--file-allocation=none", "-d", dst, url + "data.bin"]),
                ("libtorrent (web seed)",
                 [*LT_PEER, "fetch", torrent, dst, "--timeout", "900"]),
            ]
            results = {name: [] for name, _ in tools}
            for _ in range(args.runs):
                for name, cmd in tools:
                    shutil.rmtree(dst, ignore_errors=True)
                    os.makedirs(dst)
                    drop_caches()
                    subprocess.run(["cat", data], stdout=subprocess.DEVNULL)
                    wall, cpu, rss, code, err = measure(cmd)
                    if code != 0:
                        sys.exit(f"{name} failed: {err[-2000:]}")
                    if subprocess.run(["cmp", "-s", data, os.path.join(dst, "data.bin")]).returncode:
                        sys.exit(f"{name}: the download differs")
                    results[name].append((wall, cpu, rss))
        finally:
            nginx.send_signal(signal.SIGTERM)
            nginx.wait(timeout=20)
    mib = args.size_mib

    def rng(vals, fmt):
        lo, hi = min(vals), max(vals)
        return (fmt % lo) if fmt % lo == fmt % hi else f"{fmt % lo}-{fmt % hi}"
    print(f"\n{mib} MiB from nginx on loopback, {os.cpu_count()} cores, {args.runs} runs (range)\n")
    print(f"| {'client':<24} | {'MiB/s':>11} | {'CPU s':>9} | {'peak RSS MiB':>12} |")
    print(f"|{'-' * 26}|{'-' * 13}|{'-' * 11}|{'-' * 14}|")
    for name, _ in tools:
        r = results[name]
        print(f"| {name:<24} | {rng([mib / x[0] for x in r], '%.0f'):>11} | "
              f"{rng([x[1] for x in r], '%.1f'):>9} | {rng([x[2] for x in r], '%.0f'):>12} |")


if __name__ == "__main__":
    main()
