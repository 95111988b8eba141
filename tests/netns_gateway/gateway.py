#!/usr/bin/env python3
"""A home-router test bed made of network namespaces, for port-mapping and NAT tests.

    python3 gateway.py up PREFIX [--pairs 1|2] [--format json|env]
    python3 gateway.py down PREFIX
    python3 gateway.py selftest [--prefix PREFIX] [--pairs 1|2]

Topology (every name starts with PREFIX; the addresses are the same for every PREFIX,
since no two sets of namespaces share a link):

    PREFIXlan1 --- PREFIXrouter1 ---+
    192.168.1.10   192.168.1.1      |
                   45.1.0.2 --------+-- PREFIXwan (45.1.0.1, 45.2.0.1, 45.3.0.1)
                   45.2.0.2 --------+
    PREFIXlan2 --- PREFIXrouter2 ---+
    192.168.2.10   192.168.2.1

Each router masquerades its LAN behind its external (WAN) address with nftables, drops
what the WAN sends it unasked, and runs its own miniupnpd (UPnP IGD, NAT-PMP and PCP) on
its LAN side. The WAN namespace routes between the routers and holds one more address,
45.3.0.1, for "internet" services (a tracker, a seed). Nothing has a route off the
machine: the namespaces are joined only to each other, never to the host's interfaces.

Root only. Python standard library only. README.md beside this file says how a test
uses it.
"""

import argparse
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid

STATE_ROOT = os.environ.get("NETNS_GATEWAY_DIR", "/tmp/netns_gateway")
HTTP_PORT = 5000  # miniupnpd's HTTP (description and SOAP) port on the router's LAN address
NATPMP_PORT = 5351
WAN_HOST_IP = "45.3.0.1"  # an "internet" address inside the WAN namespace
CMD_TIMEOUT = 20  # seconds, for any one command this script runs
READY_TIMEOUT = 10  # seconds for miniupnpd to listen after it starts
PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$")


def pair(i):
    """The names and addresses of NAT pair i (1 or 2): router i and the LAN behind it."""
    return {
        "index": i,
        "router": f"router{i}",
        "lan": f"lan{i}",
        "external_ip": f"45.{i}.0.2",  # router's WAN address = the LAN's public address
        "wan_gateway": f"45.{i}.0.1",  # the WAN namespace's end of the link
        "wan_subnet": f"45.{i}.0.0/24",
        "wan_peer_if": f"r{i}",  # the WAN namespace's interface towards router i
        "lan_subnet": f"192.168.{i}.0/24",
        "gateway": f"192.168.{i}.1",  # router's LAN address
        "lan_ip": f"192.168.{i}.10",
    }


def names(prefix):
    """Every namespace that `up PREFIX` may make, WAN first."""
    return [f"{prefix}wan"] + [f"{prefix}{k}{i}" for i in (1, 2) for k in ("router", "lan")]


def state_dir(prefix):
    return os.path.join(STATE_ROOT, prefix)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Fail(Exception):
    pass


def run(args, timeout=CMD_TIMEOUT, check=True, input=None):
    """Runs a command with a timeout; returns (code, stdout+stderr)."""
    try:
        p = subprocess.run(
            args,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        if check:
            raise Fail(f"timed out after {timeout}s: {' '.join(args)}\n{out}")
        return 124, out
    except FileNotFoundError as e:
        raise Fail(f"{args[0]}: not found ({e}); run install.sh")
    if check and p.returncode != 0:
        raise Fail(f"exit {p.returncode}: {' '.join(args)}\n{p.stdout.strip()}")
    return p.returncode, p.stdout


def nsrun(ns, args, **kw):
    return run(["ip", "netns", "exec", ns] + list(args), **kw)


def existing_netns():
    _, out = run(["ip", "netns", "list"])
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_pids(pids, grace=3.0):
    """SIGTERM each pid, wait up to `grace` seconds, then SIGKILL those left. By pid only."""
    pids = [p for p in pids if p > 1 and p != os.getpid()]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for p in pids:
            reap(p)
        if not any(pid_alive(p) for p in pids):
            return
        time.sleep(0.05)
    for p in pids:
        if pid_alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        for p in pids:
            reap(p)
        time.sleep(0.05)


def nft_ruleset(p):
    """The router's firewall: NAT for its LAN, miniupnpd's three chains hooked in, and
    nothing let in from the WAN that the LAN did not ask for or map."""
    return f"""
table inet filter {{
    chain input {{
        type filter hook input priority 0; policy accept;
        iifname "wan0" ct state established,related accept
        iifname "wan0" icmp type echo-request accept
        iifname "wan0" drop
    }}
    chain forward {{
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        ct state invalid drop
        iifname "lan0" oifname "wan0" accept
        iifname "wan0" oifname "lan0" jump miniupnpd
    }}
    chain miniupnpd {{
    }}
    chain prerouting {{
        type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd
    }}
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd
        oifname "wan0" ip saddr {p['lan_subnet']} masquerade
    }}
    chain prerouting_miniupnpd {{
    }}
    chain postrouting_miniupnpd {{
    }}
}}
"""


def miniupnpd_conf(p, sd, upnp=True, natpmp=True):
    r = p["router"]
    return f"""# miniupnpd for {r}, written by tests/netns_gateway/gateway.py
ext_ifname=wan0
listening_ip=lan0
http_port={HTTP_PORT}
enable_upnp={"yes" if upnp else "no"}
# NAT-PMP; in miniupnpd 2.3.1 this also enables PCP (later versions call it enable_pcp_pmp)
enable_natpmp={"yes" if natpmp else "no"}
ipv6_disable=yes
secure_mode=yes
system_uptime=yes
notify_interval=30
min_lifetime=120
max_lifetime=86400
uuid={uuid.uuid4()}
friendly_name=share test {r}
lease_file={sd}/{r}.leases
# a socket path of our own: a minissdpd of the host must not take our SSDP
minissdpdsocket={sd}/{r}.minissdpd.sock
upnp_table_name=filter
upnp_nat_table_name=filter
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 {p['lan_subnet']} 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
"""


def write_state(prefix, st):
    sd = state_dir(prefix)
    tmp = os.path.join(sd, "state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(st, f, indent=2)
    os.replace(tmp, os.path.join(sd, "state.json"))


def read_state(prefix):
    try:
        with open(os.path.join(state_dir(prefix), "state.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def wait_ready(pid, logfile, timeout=READY_TIMEOUT, upnp=True, natpmp=True):
    """Waits until miniupnpd's log says it listens for HTTP (with UPnP) and NAT-PMP."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        reap(pid)
        try:
            with open(logfile, errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        if (not upnp or re.search(r"HTTP listening on port \d+", text)) \
                and (not natpmp or "Listening for NAT-PMP/PCP" in text):
            return
        if not pid_alive(pid):
            raise Fail(f"miniupnpd (pid {pid}) exited; its log {logfile}:\n{text}")
        time.sleep(0.02)
    raise Fail(f"miniupnpd (pid {pid}) not listening after {timeout}s; its log {logfile}:\n{text}")


def up(prefix, pairs=2, upnp=True, natpmp=True):
    """Builds the namespaces, starts miniupnpd in each router, returns the description."""
    if not PREFIX_RE.match(prefix):
        raise Fail(f"prefix {prefix!r}: use 1-20 of A-Z a-z 0-9 _ - (starting alphanumeric)")
    if os.geteuid() != 0:
        raise Fail("needs root (network namespaces)")
    for tool in ("ip", "nft", "miniupnpd"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise Fail(f"{tool} not installed: run tests/netns_gateway/install.sh")
    taken = existing_netns() & set(names(prefix))
    if taken:
        raise Fail(f"namespaces {sorted(taken)} exist already: `gateway.py down {prefix}` first")
    sd = state_dir(prefix)
    shutil.rmtree(sd, ignore_errors=True)
    os.makedirs(sd, mode=0o755)
    wan = f"{prefix}wan"
    ps = [pair(i) for i in range(1, pairs + 1)]
    st = {
        "prefix": prefix,
        "state_dir": sd,
        "wan": {
            "netns": wan,
            "host_ip": WAN_HOST_IP,
            "addresses": [p["wan_gateway"] for p in ps] + [WAN_HOST_IP],
        },
        "pairs": [],
        "netns": [wan],
    }
    write_state(prefix, st)
    t0 = time.monotonic()
    try:
        run(["ip", "netns", "add", wan])
        nsrun(wan, ["ip", "link", "set", "lo", "up"])
        nsrun(wan, ["ip", "addr", "add", f"{WAN_HOST_IP}/32", "dev", "lo"])
        nsrun(wan, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        for p in ps:
            r, l = prefix + p["router"], prefix + p["lan"]
            for ns in (r, l):
                run(["ip", "netns", "add", ns])
                st["netns"].append(ns)
                write_state(prefix, st)
                nsrun(ns, ["ip", "link", "set", "lo", "up"])
            # veth pairs made inside the namespaces: the host never holds either end
            run(["ip", "-n", r, "link", "add", "wan0", "type", "veth",
                 "peer", "name", p["wan_peer_if"], "netns", wan])
            run(["ip", "-n", r, "link", "add", "lan0", "type", "veth",
                 "peer", "name", "eth0", "netns", l])
            nsrun(wan, ["ip", "addr", "add", f"{p['wan_gateway']}/24", "dev", p["wan_peer_if"]])
            nsrun(wan, ["ip", "link", "set", p["wan_peer_if"], "up"])
            nsrun(r, ["ip", "addr", "add", f"{p['external_ip']}/24", "dev", "wan0"])
            nsrun(r, ["ip", "addr", "add", f"{p['gateway']}/24", "dev", "lan0"])
            nsrun(r, ["ip", "link", "set", "wan0", "up"])
            nsrun(r, ["ip", "link", "set", "lan0", "up"])
            nsrun(r, ["ip", "route", "add", "default", "via", p["wan_gateway"], "dev", "wan0"])
            nsrun(r, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
            nsrun(l, ["ip", "addr", "add", f"{p['lan_ip']}/24", "dev", "eth0"])
            nsrun(l, ["ip", "link", "set", "eth0", "up"])
            nsrun(l, ["ip", "route", "add", "default", "via", p["gateway"], "dev", "eth0"])
            nsrun(r, ["nft", "-f", "-"], input=nft_ruleset(p))
        t_net = time.monotonic() - t0
        for p in ps:
            r = prefix + p["router"]
            conf = os.path.join(sd, f"{p['router']}.conf")
            logf = os.path.join(sd, f"{p['router']}.log")
            pidf = os.path.join(sd, f"{p['router']}.pid")
            with open(conf, "w") as f:
                f.write(miniupnpd_conf(p, sd, upnp, natpmp))
            with open(logf, "wb") as out:
                # -d: stays in the foreground and logs to stderr (our log file); -P: a pid
                # file of its own, since miniupnpd refuses to start while the pid in its
                # pid file (default /var/run/miniupnpd.pid) is alive.
                proc = subprocess.Popen(
                    ["ip", "netns", "exec", r, "miniupnpd", "-d", "-f", conf, "-P", pidf],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                    start_new_session=True, close_fds=True,
                )
            started = time.time()
            p2 = dict(p)
            p2["router_netns"] = r
            p2["lan_netns"] = prefix + p["lan"]
            p2["miniupnpd"] = {
                "pid": proc.pid,  # `ip netns exec` execs miniupnpd in place: same pid
                "started_at": started,
                "config": conf,
                "log": logf,
                "pid_file": pidf,
                "lease_file": os.path.join(sd, f"{p['router']}.leases"),
                "http_port": HTTP_PORT,
                "root_desc_url": f"http://{p['gateway']}:{HTTP_PORT}/rootDesc.xml",
                "natpmp_port": NATPMP_PORT,
            }
            st["pairs"].append(p2)
            write_state(prefix, st)
        for p in st["pairs"]:
            m = p["miniupnpd"]
            wait_ready(m["pid"], m["log"], upnp=upnp, natpmp=natpmp)
            m["ready_after_s"] = round(time.time() - m["started_at"], 3)
        st["setup_s"] = round(time.monotonic() - t0, 3)
        st["network_setup_s"] = round(t_net, 3)
        write_state(prefix, st)
        return st
    except BaseException:
        down(prefix, quiet=True)
        raise


def down(prefix, quiet=False):
    """Stops every process of this set (miniupnpd and whatever runs in its namespaces),
    deletes its namespaces and its state folder. Idempotent."""
    if not PREFIX_RE.match(prefix):
        raise Fail(f"prefix {prefix!r}: use 1-20 of A-Z a-z 0-9 _ - (starting alphanumeric)")
    st = read_state(prefix) or {}
    ours = set(names(prefix))
    present = existing_netns() & ours
    # miniupnpd first, gracefully, so it removes its own rules and leases
    pids = []
    for p in st.get("pairs", []):
        pid = p.get("miniupnpd", {}).get("pid")
        conf = p.get("miniupnpd", {}).get("config", "")
        if pid and pid_alive(pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().decode(errors="replace")
            except OSError:
                cmd = ""
            if conf and conf in cmd:  # the pid is still our miniupnpd, not a reused pid
                pids.append(pid)
    stop_pids(pids)
    # then anything else still inside our namespaces (servers a test left), by pid
    for _ in range(3):
        inside = []
        for ns in present:
            _, out = run(["ip", "netns", "pids", ns], check=False)
            inside += [int(x) for x in out.split() if x.isdigit()]
        if not inside:
            break
        stop_pids(inside)
    for ns in sorted(present):
        code, out = run(["ip", "netns", "delete", ns], check=False)
        if code != 0 and not quiet:
            log(f"down: ip netns delete {ns}: {out.strip()}")
    shutil.rmtree(state_dir(prefix), ignore_errors=True)
    left = existing_netns() & ours
    if left:
        raise Fail(f"down {prefix}: namespaces left: {sorted(left)}")


def env_lines(st):
    """The description as KEY=VALUE lines (for a caller without a JSON parser)."""
    out = [
        f"PREFIX={st['prefix']}",
        f"STATE_DIR={st['state_dir']}",
        f"WAN_NETNS={st['wan']['netns']}",
        f"WAN_HOST_IP={st['wan']['host_ip']}",
    ]
    for p in st["pairs"]:
        i = p["index"]
        m = p["miniupnpd"]
        out += [
            f"ROUTER{i}_NETNS={p['router_netns']}",
            f"ROUTER{i}_EXTERNAL_IP={p['external_ip']}",
            f"ROUTER{i}_LAN_IP={p['gateway']}",
            f"ROUTER{i}_WAN_GATEWAY={p['wan_gateway']}",
            f"LAN{i}_NETNS={p['lan_netns']}",
            f"LAN{i}_IP={p['lan_ip']}",
            f"LAN{i}_GATEWAY={p['gateway']}",
            f"LAN{i}_SUBNET={p['lan_subnet']}",
            f"MINIUPNPD{i}_PID={m['pid']}",
            f"MINIUPNPD{i}_LOG={m['log']}",
            f"MINIUPNPD{i}_CONFIG={m['config']}",
            f"MINIUPNPD{i}_LEASE_FILE={m['lease_file']}",
            f"MINIUPNPD{i}_ROOT_DESC_URL={m['root_desc_url']}",
        ]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# selftest

# A TCP server: binds, says READY, serves one connection: sends "<tag> from <peer ip>".
TCP_SERVER = r"""
import socket, sys
host, port, tag, wait = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(4); s.settimeout(wait)
print("READY", flush=True)
try:
    while True:
        c, a = s.accept()
        c.settimeout(5); c.sendall(f"{tag} from {a[0]}:{a[1]}".encode()); c.close()
        print(f"SERVED {a[0]}:{a[1]}", flush=True)
except socket.timeout:
    pass
"""

# A TCP client: connects with a timeout, prints what it got; exit 0 on data, 1 if not.
TCP_CLIENT = r"""
import socket, sys
host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    c = socket.create_connection((host, port), timeout=wait)
    data = c.recv(4096).decode(errors="replace"); c.close()
    print("GOT " + data); sys.exit(0 if data else 1)
except Exception as e:
    print(f"NOCONN {type(e).__name__}: {e}"); sys.exit(1)
"""

# A UDP echo server: says READY, echoes datagrams, adding the sender's address.
UDP_ECHO = r"""
import socket, sys
host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((host, port)); s.settimeout(wait)
print("READY", flush=True)
try:
    while True:
        d, a = s.recvfrom(2048)
        s.sendto(d + f" echoed, seen from {a[0]}:{a[1]}".encode(), a)
except socket.timeout:
    pass
"""

UDP_CLIENT = r"""
import socket, sys
host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.3)
import time; end = time.monotonic() + wait
while time.monotonic() < end:
    s.sendto(b"ping", (host, port))
    try:
        d, a = s.recvfrom(2048); print("GOT " + d.decode()); sys.exit(0)
    except socket.timeout:
        pass
print("NOREPLY"); sys.exit(1)
"""

# UDP hole punch: bind local port, send to the peer's public address until a datagram
# from it arrives, then send a few more (so the peer hears us too) and report.
UDP_PUNCH = r"""
import socket, sys, time
lport, host, port, wait = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", lport)); s.settimeout(0.1)
print("READY", flush=True)
end = time.monotonic() + wait; got = None
while time.monotonic() < end:
    s.sendto(b"punch from " + sys.argv[5].encode(), (host, port))
    try:
        d, a = s.recvfrom(2048)
        if a == (host, port):
            got = (d.decode(), a)
            break
    except socket.timeout:
        pass
    except OSError:
        pass
if got:
    for _ in range(10):
        s.sendto(b"punch from " + sys.argv[5].encode(), (host, port)); time.sleep(0.05)
    print(f"GOT {got[0]!r} from {got[1][0]}:{got[1][1]}"); sys.exit(0)
print("NOPUNCH"); sys.exit(1)
"""


# A PCP (RFC 6887) MAP request by hand: the router's answer, assigned address and port.
PCP_MAP = r"""
import os, socket, struct, sys
gw, me, port, lifetime = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
v4 = lambda a: b"\0" * 10 + b"\xff\xff" + socket.inet_aton(a)
nonce = os.urandom(12) if lifetime else bytes.fromhex(sys.argv[5])
req = struct.pack("!BBHI", 2, 1, 0, lifetime) + v4(me)
req += nonce + struct.pack("!B3xHH", 6, port, port) + v4("0.0.0.0")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
for _ in range(4):
    s.sendto(req, (gw, 5351))
    try:
        d, a = s.recvfrom(1100); break
    except socket.timeout:
        d = b""
if len(d) < 60:
    print(f"NOANSWER {d!r}"); sys.exit(1)
ver, op, res, life, epoch = struct.unpack("!BBxBII", d[:12])
eport = struct.unpack("!H", d[42:44])[0]; eip = socket.inet_ntoa(d[56:60])
print(f"PCP version {ver} opcode 0x{op:02x} result {res} lifetime {life} external {eip}:{eport} nonce {nonce.hex()}")
sys.exit(0 if ver == 2 and op == 0x81 and res == 0 else 1)
"""

# libtorrent (python3-libtorrent, a real BitTorrent client) maps its port by itself.
LIBTORRENT_MAP = r"""
import sys, time
import libtorrent as lt
s = lt.session({"listen_interfaces": "0.0.0.0:" + sys.argv[1], "enable_upnp": True,
                "enable_natpmp": True, "enable_dht": False, "enable_lsd": False,
                "alert_mask": lt.alert.category_t.port_mapping_notification
                              | lt.alert.category_t.error_notification})
end = time.monotonic() + float(sys.argv[2]); got = set()
while time.monotonic() < end and len(got) < 2:
    s.wait_for_alert(200)
    for a in s.pop_alerts():
        if isinstance(a, (lt.portmap_alert, lt.portmap_error_alert)):
            print(a.message(), flush=True)
        if isinstance(a, lt.portmap_alert):
            got.add(str(a.map_transport).rsplit(".", 1)[-1])
print("MAPPED " + " ".join(sorted(got))); sys.exit(0 if len(got) == 2 else 1)
"""


class Selftest:
    def __init__(self, prefix):
        self.prefix = prefix
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.procs = []
        self.times = {}

    def step(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'}: {name}", flush=True)
        if detail:
            for line in detail.rstrip().splitlines():
                print(f"      {line}", flush=True)
        return ok

    def skip(self, name, why):
        self.skipped += 1
        print(f"SKIP: {name}\n      {why}", flush=True)

    def spawn(self, ns, script, *args, ready_timeout=5.0):
        """Starts a python helper in ns; waits for its READY line. Returns the Popen."""
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", script] + [str(a) for a in args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(p)
        deadline = time.monotonic() + ready_timeout
        line = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([p.stdout], [], [], 0.1)
            if r:
                line = p.stdout.readline()
                if line.strip() == b"READY" or not line:
                    break
        if line.strip() != b"READY":
            raise Fail(f"helper in {ns} did not start: {line!r}")
        return p

    def finish(self, p, timeout=5.0):
        """Output of a helper after it ends (killed by pid after the timeout)."""
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_pids([p.pid])
            out, _ = p.communicate(timeout=5)
        return out.decode(errors="replace")

    def stop_helpers(self):
        stop_pids([p.pid for p in self.procs if p.poll() is None])
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def selftest(prefix, pairs=2):
    t = Selftest(prefix)
    py = sys.executable
    start = time.monotonic()
    print(f"selftest: prefix {prefix!r}, {pairs} NAT pair(s), state in {state_dir(prefix)}")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    down(prefix, quiet=True)  # leftovers of an earlier, killed run with this prefix
    try:
        try:
            st = up(prefix, pairs)
        except Fail as e:
            t.step("up: namespaces, veths, nftables, miniupnpd", False, str(e))
            return t
        p1 = st["pairs"][0]
        m1 = p1["miniupnpd"]
        lan1, r1, wan = p1["lan_netns"], p1["router_netns"], st["wan"]["netns"]
        ext1, ip1, url1 = p1["external_ip"], p1["lan_ip"], m1["root_desc_url"]
        t.step(
            "up: namespaces, veths, nftables, miniupnpd",
            True,
            f"network {st['network_setup_s']}s, all up {st['setup_s']}s; miniupnpd in {r1} "
            f"pid {m1['pid']} listening {m1['ready_after_s']}s after start",
        )
        # time from a fresh miniupnpd's start to a mapping made (description URL given)
        pl = st["pairs"][-1]
        t0 = time.monotonic()
        code, out = nsrun(pl["lan_netns"], ["upnpc", "-u", pl["miniupnpd"]["root_desc_url"], "-a",
                                            pl["lan_ip"], "6999", "6999", "TCP"], check=False)
        dt = time.time() - pl["miniupnpd"]["started_at"]
        t.times["miniupnpd start -> first upnpc -u URL -a done"] = dt
        t.times["that upnpc -a alone"] = time.monotonic() - t0
        ok = code == 0 and "6999 TCP is redirected" in out
        code, out2 = nsrun(pl["lan_netns"], ["upnpc", "-u", pl["miniupnpd"]["root_desc_url"], "-d",
                                             "6999", "TCP"], check=False)
        t.step(f"first upnpc -u URL -a in {pl['lan_netns']} done {dt:.2f}s after its miniupnpd "
               f"started (and removed again)", ok and code == 0,
               "\n".join(l for l in (out + out2).splitlines() if "redirect" in l or "rror" in l))
        code, ident = run(["ip", "netns", "identify", str(m1["pid"])], check=False)
        _, backend = run(["miniupnpd", "--version"], check=False)
        try:
            comm = open(f"/proc/{m1['pid']}/comm").read().strip()
            pidfile = open(m1["pid_file"]).read().strip()
        except OSError as e:
            comm = pidfile = str(e)
        t.step(f"miniupnpd pid {m1['pid']} runs in {r1}",
               ident.strip() == r1 and comm == "miniupnpd" and pidfile == str(m1["pid"]),
               f"ip netns identify -> {ident.strip()!r}; comm {comm!r}; pid file says {pidfile}; "
               f"{backend.strip().splitlines()[-1]}")

        # NAT: LAN -> internet is masqueraded to the router's external address
        srv = t.spawn(wan, TCP_SERVER, WAN_HOST_IP, 7000, "hello-from-wan", 10)
        code, out = nsrun(lan1, [py, "-c", TCP_CLIENT, WAN_HOST_IP, "7000", "5"], check=False)
        t.finish(srv, timeout=0.5)
        t.step(f"NAT: {lan1} ({ip1}) -> wan {WAN_HOST_IP}:7000 is seen from {ext1}",
               code == 0 and f"from {ext1}:" in out, out.strip())

        # UPnP discovery over SSDP multicast on the LAN veth (no -u)
        t0 = time.monotonic()
        code, out = nsrun(lan1, ["upnpc", "-s"], check=False)
        dt = time.monotonic() - t0
        t.times["upnpc -s (SSDP discovery)"] = dt
        t.step(f"upnpc -s in {lan1} finds the IGD by SSDP and external IP {ext1} ({dt:.2f}s)",
               code == 0 and f"ExternalIPAddress = {ext1}" in out and "Found valid IGD" in out,
               "\n".join(l for l in out.splitlines()
                         if re.search(r"IGD|ExternalIP|Connection|desc:|Local LAN", l)))
        with open(m1["log"], errors="replace") as f:
            msearch = [l.strip() for l in f if f"SSDP M-SEARCH from {ip1}" in l]
        t.step(f"miniupnpd in {r1} answered upnpc's multicast M-SEARCH on its LAN veth",
               bool(msearch), "\n".join(msearch[:2]) or "no M-SEARCH in its log")
        # the same with the description URL given (-u): no discovery
        t0 = time.monotonic()
        code, out = nsrun(lan1, ["upnpc", "-u", url1, "-s"], check=False)
        dt = time.monotonic() - t0
        t.times["upnpc -u URL -s"] = dt
        t.step(f"upnpc -u {url1} -s ({dt:.2f}s)",
               code == 0 and f"ExternalIPAddress = {ext1}" in out,
               "\n".join(l for l in out.splitlines() if "ExternalIP" in l))

        # UPnP mappings: TCP and UDP 6881
        t0 = time.monotonic()
        code, out = nsrun(lan1, ["upnpc", "-a", ip1, "6881", "6881", "TCP"], check=False)
        dt = time.monotonic() - t0
        t.times["upnpc -a (with SSDP discovery)"] = dt
        ok = code == 0 and re.search(rf"external {re.escape(ext1)}:6881 TCP is redirected to internal {re.escape(ip1)}:6881", out)
        t.step(f"upnpc -a {ip1} 6881 6881 TCP, with SSDP discovery ({dt:.2f}s)",
               bool(ok), "\n".join(l for l in out.splitlines() if "redirect" in l or "AddPortMapping" in l))
        code, out = nsrun(lan1, ["upnpc", "-u", url1, "-a", ip1, "6881", "6881", "UDP"], check=False)
        t.step(f"upnpc -u URL -a {ip1} 6881 6881 UDP",
               code == 0 and "UDP is redirected" in out,
               "\n".join(l for l in out.splitlines() if "redirect" in l or "AddPortMapping" in l))
        code, out = nsrun(lan1, ["upnpc", "-u", url1, "-l"], check=False)
        listed = [l for l in out.splitlines() if re.match(r"\s*\d+\s+(TCP|UDP)\s", l)]
        t.step("upnpc -l lists both mappings",
               any(f"TCP  6881->{ip1}:6881" in l for l in listed)
               and any(f"UDP  6881->{ip1}:6881" in l for l in listed), "\n".join(listed))

        # NAT-PMP
        code, out = nsrun(lan1, ["natpmpc"], check=False, timeout=15)
        t.step(f"natpmpc (NAT-PMP public address) says {ext1}",
               code == 0 and f"Public IP address : {ext1}" in out,
               "\n".join(l for l in out.splitlines() if "Public IP" in l or "gateway" in l))
        t0 = time.monotonic()
        code, out = nsrun(lan1, ["natpmpc", "-a", "6882", "6882", "tcp", "3600"], check=False, timeout=15)
        dt = time.monotonic() - t0
        t.times["natpmpc -a"] = dt
        t.step(f"natpmpc -a 6882 6882 tcp 3600 ({dt:.2f}s)",
               code == 0 and "Mapped public port 6882 protocol TCP to local port 6882" in out,
               "\n".join(l for l in out.splitlines() if "Mapped" in l or "error" in l.lower()))
        # PCP, by a MAP request made here (no PCP client is packaged)
        code, out = nsrun(lan1, [py, "-c", PCP_MAP, p1["gateway"], ip1, "6883", "600"], check=False)
        m = re.search(r"nonce (\w+)", out)
        pcp_nonce = m.group(1) if m else "00" * 12
        t.step(f"PCP MAP 6883/tcp for 600s answered with success and external {ext1}:6883",
               code == 0 and f"external {ext1}:6883" in out, out.strip())
        _, rules = nsrun(r1, ["nft", "list", "table", "inet", "filter"], check=False)
        dnat = [l.strip() for l in rules.splitlines() if "dnat" in l]
        t.step(f"nftables in {r1} hold miniupnpd's 4 DNAT rules", len(dnat) == 4, "\n".join(dnat))

        # data through the mappings, from the WAN to the router's external address
        for port, how in ((6881, "UPnP"), (6882, "NAT-PMP"), (6883, "PCP")):
            srv = t.spawn(lan1, TCP_SERVER, "0.0.0.0", port, f"hello-through-{how}", 10)
            code, out = nsrun(wan, [py, "-c", TCP_CLIENT, ext1, str(port), "5"], check=False)
            t.finish(srv, timeout=0.5)
            t.step(f"wan -> {ext1}:{port} TCP reaches the listener in {lan1} ({how} mapping)",
                   code == 0 and f"hello-through-{how}" in out, out.strip())
        srv = t.spawn(lan1, UDP_ECHO, "0.0.0.0", 6881, 10)
        code, out = nsrun(wan, [py, "-c", UDP_CLIENT, ext1, "6881", "5"], check=False)
        t.finish(srv, timeout=0.5)
        t.step(f"wan -> {ext1}:6881 UDP reaches the echo in {lan1} and back (UPnP mapping)",
               code == 0 and "echoed" in out, out.strip())

        # removal
        outs = []
        for args in (["upnpc", "-u", url1, "-d", "6881", "TCP"],
                     ["upnpc", "-u", url1, "-d", "6881", "UDP"],
                     ["natpmpc", "-a", "6882", "6882", "tcp", "0"]):
            code, out = nsrun(lan1, args, check=False, timeout=15)
            outs.append(f"{' '.join(args[:1] + args[3:] if args[0] == 'upnpc' else args)}: exit {code}")
        code, out = nsrun(lan1, [py, "-c", PCP_MAP, p1["gateway"], ip1, "6883", "0", pcp_nonce], check=False)
        outs.append(f"PCP MAP 6883 lifetime 0: exit {code}: {out.strip()}")
        code, out = nsrun(lan1, ["upnpc", "-u", url1, "-l"], check=False)
        listed = [l for l in out.splitlines() if re.match(r"\s*\d+\s+(TCP|UDP)\s", l)]
        _, rules = nsrun(r1, ["nft", "list", "table", "inet", "filter"], check=False)
        dnat = [l.strip() for l in rules.splitlines() if "dnat" in l]
        t.step("mappings removed (upnpc -d, natpmpc and PCP lifetime 0): upnpc -l and nftables empty",
               not listed and not dnat,
               "\n".join(outs + [f"upnpc -l entries: {listed}", f"dnat rules left: {dnat}"]))
        srv = t.spawn(lan1, TCP_SERVER, "0.0.0.0", 6881, "should-not-arrive", 5)
        code, out = nsrun(wan, [py, "-c", TCP_CLIENT, ext1, "6881", "2"], check=False)
        t.finish(srv, timeout=0.5)
        t.step(f"wan -> {ext1}:6881 no longer reaches {lan1}", code != 0, out.strip())

        # a real BitTorrent client (libtorrent, Debian's python3-libtorrent) maps its port
        syspy = "/usr/bin/python3"
        if run([syspy, "-c", "import libtorrent"], check=False)[0] != 0:
            t.skip("libtorrent maps its port", f"{syspy} has no libtorrent (python3-libtorrent)")
        else:
            t0 = time.monotonic()
            code, out = nsrun(lan1, [syspy, "-c", LIBTORRENT_MAP, "6885", "15"], check=False, timeout=30)
            dt = time.monotonic() - t0
            t.step(f"libtorrent in {lan1} maps 6885 by both UPnP and NAT-PMP ({dt:.2f}s)",
                   code == 0, out.strip())

        if pairs >= 2:
            p2 = st["pairs"][1]
            lan2, ext2, ip2, url2 = p2["lan_netns"], p2["external_ip"], p2["lan_ip"], p2["miniupnpd"]["root_desc_url"]
            code, out = nsrun(lan2, ["upnpc", "-s"], check=False)
            t.step(f"second NAT: upnpc -s in {lan2} finds router2, external IP {ext2}",
                   code == 0 and f"ExternalIPAddress = {ext2}" in out,
                   "\n".join(l for l in out.splitlines() if "ExternalIP" in l or "Found" in l))
            srv = t.spawn(lan2, TCP_SERVER, "0.0.0.0", 6890, "hello-lan2", 15)
            code, out = nsrun(lan1, [py, "-c", TCP_CLIENT, ip2, "6890", "2"], check=False)
            t.step(f"{lan1} cannot reach {lan2}'s private {ip2}:6890 directly", code != 0, out.strip())
            code, out = nsrun(lan1, [py, "-c", TCP_CLIENT, ext2, "6890", "2"], check=False)
            t.step(f"{lan1} cannot reach {ext2}:6890 without a mapping (router2 drops it)",
                   code != 0, out.strip())
            code, out = nsrun(lan2, ["upnpc", "-u", url2, "-a", ip2, "6890", "6890", "TCP"], check=False)
            code2, out2 = nsrun(lan1, [py, "-c", TCP_CLIENT, ext2, "6890", "5"], check=False)
            t.step(f"with a UPnP mapping on router2, {lan1} -> {ext2}:6890 reaches {lan2}, "
                   f"seen from {ext1} (through both NATs)",
                   code == 0 and code2 == 0 and f"from {ext1}:" in out2, out2.strip())
            nsrun(lan2, ["upnpc", "-u", url2, "-d", "6890", "TCP"], check=False)
            t.finish(srv, timeout=0.5)
            # UDP hole punching: both sides send to the other's public address:port
            a = t.spawn(lan1, UDP_PUNCH, 7001, ext2, 7002, 8, "lan1")
            b = t.spawn(lan2, UDP_PUNCH, 7002, ext1, 7001, 8, "lan2")
            oa, ob = t.finish(a, timeout=10), t.finish(b, timeout=10)
            t.step(f"UDP hole punch {lan1}:7001 <-> {lan2}:7002 through both NATs "
                   f"(source ports preserved)",
                   a.returncode == 0 and b.returncode == 0,
                   f"lan1: {oa.strip()}\nlan2: {ob.strip()}")
    except KeyboardInterrupt as e:
        t.step("selftest interrupted", False, str(e))
    except Fail as e:
        t.step("selftest step raised", False, str(e))
    finally:
        t.stop_helpers()
        pids = [p["miniupnpd"]["pid"] for p in (read_state(prefix) or {}).get("pairs", [])]
        t0 = time.monotonic()
        try:
            down(prefix)
            err = ""
        except Fail as e:
            err = str(e)
        left = existing_netns() & set(names(prefix))
        alive = [p for p in pids if pid_alive(p)]
        t.step(f"down {prefix}: namespaces deleted, miniupnpd stopped ({time.monotonic() - t0:.2f}s)",
               not err and not left and not alive and not os.path.exists(state_dir(prefix)),
               err or f"namespaces left {sorted(left)}, miniupnpd alive {alive}")
    print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in t.times.items()))
    print(f"selftest took {time.monotonic() - start:.1f}s")
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("up", help="make the namespaces and start miniupnpd; prints JSON")
    a.add_argument("prefix")
    a.add_argument("--pairs", type=int, choices=(1, 2), default=2)
    a.add_argument("--format", choices=("json", "env"), default="json")
    a.add_argument("--no-upnp", action="store_true",
                   help="miniupnpd with UPnP off: NAT-PMP and PCP only")
    a.add_argument("--no-natpmp", action="store_true",
                   help="miniupnpd with NAT-PMP and PCP off: UPnP only")
    a = sub.add_parser("down", help="stop and delete everything of PREFIX (idempotent)")
    a.add_argument("prefix")
    a = sub.add_parser("selftest", help="up, prove UPnP/NAT-PMP/NAT, down")
    a.add_argument("--prefix", default=f"ngst{os.getpid() % 100000}-")
    a.add_argument("--pairs", type=int, choices=(1, 2), default=2)
    args = ap.parse_args()
    try:
        if args.cmd == "up":
            st = up(args.prefix, args.pairs, upnp=not args.no_upnp, natpmp=not args.no_natpmp)
            print(json.dumps(st, indent=2) if args.format == "json" else env_lines(st))
            return 0
        if args.cmd == "down":
            down(args.prefix)
            return 0
        t = selftest(args.prefix, args.pairs)
        print(f"{t.passed} passed, {t.failed} failed, {t.skipped} skipped")
        return 0 if t.failed == 0 else 1
    except Fail as e:
        log(f"gateway.py {args.cmd}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
