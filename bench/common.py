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
