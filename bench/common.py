"""Helpers shared by the benchmark scripts (run by hand)."""
import os
import re
import subprocess
import sys
import time

# Benchmarks run on loopback: every share they start promises that nothing leaves the machine
# (no DHT bootstrap from public nodes, no local service discovery multicast).
os.environ.setdefault("SHARE_LOOPBACK_ONLY", "1")
os.environ.setdefault("SHARE_NO_DHT", "1")
os.environ.setdefault("SHARE_NO_LSD", "1")
os.environ.setdefault("SHARE_NO_PORT_MAPPING", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARE = os.environ.get("SHARE_BIN", os.path.join(ROOT, "target/release/share"))
LT_PEER = ["/usr/bin/python3", os.path.join(ROOT, "tests/peers/lt_peer.py")]
TICK = os.sysconf("SC_CLK_TCK")


def build():
    if "SHARE_BIN" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)


def cpu_of(pid):
    """User plus system CPU seconds of a running process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start_listening(cmd, ready=None, timeout=300):
    """Starts `cmd` and waits for its `listening on ADDR` line, then (if given) for a line
    holding `ready`. Returns (process, ADDR)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    addr = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        m = re.match(r"listening on (\S+)", line)
        if m:
            addr = m.group(1)
            if ready is None:
                return p, addr
        elif ready and ready in line:
            return p, addr
    p.kill()
    sys.exit(f"{' '.join(cmd[:3])} did not get ready")


def make_data(path, size_mib):
    """A file of `size_mib` MiB whose pieces all differ."""
    with open(path, "wb") as f:
        chunk = os.urandom(1 << 20)
        for i in range(size_mib):
            f.write(chunk[i % 256:] + chunk[: i % 256])


def measure(cmd, **popen):
    """Runs `cmd` to completion under GNU time; returns (wall s, CPU s, peak RSS MiB, exit
    code, stderr). GNU time is used because wait4() from Python would report at least the
    forked interpreter's own memory as the child's peak."""
    import tempfile as _tf
    if not os.path.exists("/usr/bin/time"):
        sys.exit("bench needs GNU time: apt-get install -y time")
    with _tf.NamedTemporaryFile("r") as out:
        start = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-q", "-f", "%U %S %M", "-o", out.name, *cmd],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)
        wall = time.monotonic() - start
        fields = out.read().split()
    user, system, rss_kib = (float(fields[0]), float(fields[1]), float(fields[2])) \
        if len(fields) >= 3 else (0.0, 0.0, 0.0)
    return wall, user + system, rss_kib / 1024, p.returncode, p.stderr.decode(errors="replace")


def stop(p, timeout=30):
    """SIGTERM, wait (SIGKILL after `timeout` s); returns what it printed on stdout, if piped."""
    import signal as _signal
    p.send_signal(_signal.SIGTERM)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return out or ""


# ---------------------------------------------------------------- watched processes

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NOBODY = "127.0.0.1:9"  # a DHT bootstrap node for the first node: nobody listens there


def free_port():
    """A port number free on 127.0.0.1 for TCP and UDP just now (nobody listens on it)."""
    import socket as _socket
    with _socket.socket() as t, _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM) as u:
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u.bind(("127.0.0.1", port))
        return port


class Watched:
    """A process whose output is read by threads, line by line, each line kept with its
    arrival time (time.monotonic()). With `tty`, standard error is a pseudo-terminal, so that
    share draws its progress bar: every redraw becomes a line (escape codes removed). With
    `log`, every line also goes to that file, with its time since the start."""

    def __init__(self, cmd, env=None, tty=False, log=None, stdin=False, cwd=None):
        import threading
        self.cmd = cmd
        self.lines = []  # (t, "out" | "err", text)
        self.cond = threading.Condition()
        self.t0 = time.monotonic()
        self.log = open(log, "w") if log else None
        master = slave = None
        if tty:
            import fcntl
            import pty
            import struct
            import termios
            master, slave = pty.openpty()
            # Wide enough that the bar's peer counts are never cut off.
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 400, 0, 0))
            env = dict(env or os.environ, TERM="xterm")
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                  stderr=slave if tty else subprocess.PIPE,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  env=env, cwd=cwd)
        self.pid = self.p.pid
        if tty:
            os.close(slave)
            err = master
        else:
            err = self.p.stderr.fileno()
        self.threads = [threading.Thread(target=self._read, args=(fd, name), daemon=True)
                        for fd, name in ((self.p.stdout.fileno(), "out"), (err, "err"))]
        self._master = master
        for t in self.threads:
            t.start()

    def _read(self, fd, name):
        buf = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the pseudo-terminal's other side closed
                chunk = b""
            now = time.monotonic()
            if chunk:
                buf += chunk
            parts = re.split(rb"[\r\n]", buf)
            buf = parts.pop() if chunk else b""
            texts = [ANSI.sub("", x.decode(errors="replace")).strip() for x in parts]
            texts = [x for x in texts if x]
            if texts:
                with self.cond:
                    for x in texts:
                        self.lines.append((now, name, x))
                        if self.log:
                            self.log.write(f"{now - self.t0:9.3f} {name} {x}\n")
                    self.cond.notify_all()
            if not chunk:
                with self.cond:
                    self.cond.notify_all()
                return

    def send(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def find(self, pred, stream=None, last=False):
        """The first (or last) (t, text) whose text satisfies pred, or None."""
        with self.cond:
            seq = reversed(self.lines) if last else self.lines
            for t, s, x in seq:
                if (stream is None or s == stream) and pred(x):
                    return t, x
        return None

    def wait(self, pred, timeout, stream=None, since=0):
        """Waits for a line satisfying pred (a string: a prefix), among the lines from index
        `since` on (len(self.lines) before a command: its answer); returns (t, text) or None
        when the timeout passes or the process has ended without one."""
        if isinstance(pred, str):
            prefix = pred
            pred = lambda x: x.startswith(prefix)
        deadline = time.monotonic() + timeout
        seen = since
        with self.cond:
            while True:
                for t, s, x in self.lines[seen:]:
                    if (stream is None or s == stream) and pred(x):
                        return t, x
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None
                                 and not any(t.is_alive() for t in self.threads)):
                    return None
                self.cond.wait(min(left, 0.2))

    def addr(self, timeout=60):
        """The `listening on ADDR` address."""
        r = self.wait("listening on ", timeout, stream="out")
        if r is None:
            raise RuntimeError(f"{' '.join(self.cmd[:2])} printed no `listening on` line: "
                               + self.tail())
        return r[1].split()[2]

    def tail(self, n=15):
        with self.cond:
            return " | ".join(x for _, _, x in self.lines[-n:])

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=None, timeout=15):
        """Ends the process (SIGTERM, or `sig`; SIGKILL after `timeout` s) and its readers."""
        import signal as _signal
        if self.p.poll() is None:
            try:
                self.p.send_signal(sig or _signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        for t in self.threads:
            t.join(5)
        if self._master is not None:
            try:
                os.close(self._master)
            except OSError:
                pass
            self._master = None
        if self.log:
            self.log.close()
            self.log = None
        return self.p.returncode


UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
BAR = re.compile(r"(\w+) \[[^\]]*\] ([\d.]+) (\w+)/([\d.]+) (\w+) \S+ \S+ (\d+) peers"
                 r"(?: \(([^)]*)\))?")


def parse_bar(text):
    """share's progress bar line -> {phase, done, total, peers, sources {name: n}} or None."""
    m = BAR.search(text)
    if not m:
        return None
    src = {}
    for part in (m.group(7) or "").split(", "):
        if part:
            name, _, n = part.rpartition(" ")
            src[name] = int(n)
    return {"phase": m.group(1), "done": float(m.group(2)) * UNITS.get(m.group(3), 1),
            "total": float(m.group(4)) * UNITS.get(m.group(5), 1), "peers": int(m.group(6)),
            "sources": src}
