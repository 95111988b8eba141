#!/usr/bin/env python3
"""An HTTP server for web seed tests, serving ROOT on 127.0.0.1, that misbehaves on demand.

    web_server.py ROOT [--mode MODE] [--to URL] [--busy N] [--retry-after S]
                       [--missing REL] [--corrupt REL:OFFSET:LEN] [--bind IP]

Modes:
  ranges      answers `Range` with 206 and `Content-Range` (HTTP/1.1, keep-alive)
  no-ranges   ignores `Range` and sends the whole file with 200, as http.server does
  redirect    answers every GET with 302 to the same path under --to
  busy        answers the first --busy requests with 429 and `Retry-After: S`, then as ranges
Any mode: --missing REL answers 404 for that file; --corrupt REL:OFFSET:LEN serves those
bytes of that file inverted.

Prints `listening on 127.0.0.1:PORT` once it serves; on stderr one line per request:
`GET <path> <range> -> <status>`. Runs until killed.
"""
import argparse
import http.server
import os
import sys
import threading
import urllib.parse

args = None
lock = threading.Lock()
served = {"n": 0}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def note(self, status, rng):
        sys.stderr.write(f"GET {self.path} {rng or '-'} -> {status}\n")
        sys.stderr.flush()

    def answer(self, status, headers=(), body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self):
        rng = self.headers.get("Range")
        rel = urllib.parse.unquote(self.path.split("?")[0]).lstrip("/")
        with lock:
            served["n"] += 1
            n = served["n"]
        if args.mode == "redirect":
            self.note(302, rng)
            return self.answer(302, [("Location", args.to.rstrip("/") + self.path)])
        if args.mode == "busy" and n <= args.busy:
            self.note(429, rng)
            return self.answer(429, [("Retry-After", str(args.retry_after))])
        if args.missing and rel == args.missing:
            self.note(404, rng)
            return self.answer(404)
        path = os.path.realpath(os.path.join(args.root, rel))
        if not path.startswith(os.path.realpath(args.root) + os.sep) or not os.path.isfile(path):
            self.note(404, rng)
            return self.answer(404)
        size = os.path.getsize(path)
        if args.mode == "no-ranges" or not rng:
            # The whole file, as a server that knows nothing of ranges sends it.
            self.note(200, rng)
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            try:
                with open(path, "rb") as f:
                    while True:
                        chunk = f.read(1 << 16)
                        if not chunk:
                            break
                        self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        first, last = rng.removeprefix("bytes=").split("-")
        first, last = int(first), min(int(last), size - 1)
        with open(path, "rb") as f:
            f.seek(first)
            body = bytearray(f.read(last - first + 1))
        if args.corrupt:
            c_rel, c_off, c_len = args.corrupt.rsplit(":", 2)
            if c_rel == rel:
                for i in range(int(c_off), int(c_off) + int(c_len)):
                    if first <= i <= last:
                        body[i - first] ^= 0xFF
        self.note(206, rng)
        self.answer(206, [("Content-Range", f"bytes {first}-{last}/{size}")], bytes(body))


def main():
    global args
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--mode", default="ranges",
                    choices=["ranges", "no-ranges", "redirect", "busy"])
    ap.add_argument("--to")
    ap.add_argument("--busy", type=int, default=3)
    ap.add_argument("--retry-after", type=int, default=1)
    ap.add_argument("--missing")
    ap.add_argument("--corrupt")
    ap.add_argument("--bind", default="127.0.0.1",
                    help="the address to serve on (another only inside a test's namespace)")
    args = ap.parse_args()
    server = http.server.ThreadingHTTPServer((args.bind, 0), Handler)
    server.daemon_threads = True
    print(f"listening on {args.bind}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
