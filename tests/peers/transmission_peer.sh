#!/bin/bash
# A Transmission 3.00 peer (transmission-daemon, driven by transmission-remote)
# on 127.0.0.1, for interoperability tests.
#
# Usage:
#   transmission_peer.sh seed  TORRENT DIR [--timeout SECS]
#       Serves the content already at DIR/NAME. Prints (stdout)
#       `listening on 127.0.0.1:PORT` (Transmission's peer port) once the port
#       is open and the torrent added, then `seeding` once Transmission has
#       verified the data and seeds 100%: start the other peer after `seeding`
#       (Transmission refuses peers while it is still verifying). Runs until
#       SIGTERM/SIGINT (exit 143/130) or --timeout (default 300; exit 3).
#       Exit 2 if the data in DIR is incomplete.
#   transmission_peer.sh fetch TORRENT DIR [--timeout SECS]
#       Downloads into DIR (the content lands in DIR/NAME). Prints
#       `listening on 127.0.0.1:PORT` once Transmission accepts incoming
#       connections for the torrent, then `done` and exits 0 once the download
#       is complete: "Percent Done: 100%", which Transmission reports only when
#       every piece has passed its SHA-1 check. Transmission 3.00 does not
#       create zero-length files (transmission#417): the script creates the
#       torrent's missing empty files before `done`. On the timeout (default 120 s)
#       it prints `timeout` and exits 1; exit 1 too if Transmission stops the
#       torrent with an error.
#   Exit 4 on a setup failure (unreadable torrent, daemon does not start,
#   peer port does not open).
# Progress lines, and at the end the last 30 lines (env TRANSMISSION_LOG_LINES)
# of the daemon's log, go to stderr. Env TRANSMISSION_MESSAGE_LEVEL=3 makes
# the daemon log at debug level (default 2, info).
#
# Transmission never dials the peer itself here: it drops every 127.x address
# (from trackers, PEX and resume files alike: libtransmission's isMartianAddr),
# and neither transmission-remote nor the 3.00 RPC can add a peer by address.
# So the other side must connect to Transmission (`share seed/fetch --peer
# 127.0.0.1:PORT`). Incoming connections from 127.0.0.1 are accepted.
#
# Other Transmission 3.00 behaviour to expect (measured here):
# - it unchokes a new peer (seed) or becomes interested in it (fetch) only at
#   its next rechoke, every 10 s, and batches that Interested message for up
#   to 2 s more: a few MB take 13-17 s, mostly that wait.
# - it keys peers by IP address, not IP:port: use one 127.0.0.1 peer per
#   instance. While one 127.0.0.1 peer is connected, or once one has become a
#   seed while Transmission seeds, it closes further 127.0.0.1 connections
#   during the handshake.
# - with a tracker, make sure the tracker is up (opentracker: its whitelist
#   loaded, see announce_peer in aria2_common.sh) before starting this script:
#   if Transmission's first announce fails, it retries only 20 s or more later.
#
# The daemon runs in the foreground with its own configuration folder in a
# temporary folder: peer port and RPC port are free 127.0.0.1 ports, both
# bound to 127.0.0.1 (IPv6 to ::1), no DHT/LPD/PEX/uTP/port forwarding, no RPC
# authentication (RPC whitelist 127.0.0.1), "encryption": $TRANSMISSION_ENCRYPTION or 0
# (2: require encryption; 0: prefer
# plaintext: plaintext handshakes are accepted, share has no MSE), no speed,
# ratio or idle limits, no queueing. The torrent's own trackers stay: if
# nothing answers there, the announces just fail. Both the daemon and the
# temporary folder go away when the script ends, also on SIGTERM/SIGINT; after
# a SIGKILL a watchdog stops the daemon within about a second (see
# aria2_common.sh, whose helpers this script uses).

WORK_PREFIX=share-transmission
. "$(dirname "$0")/aria2_common.sh"

USAGE="usage: transmission_peer.sh seed|fetch TORRENT DIR [--timeout SECS]"
MODE=${1:-}
case $MODE in
    seed) TIMEOUT=300 ;;
    fetch) TIMEOUT=120 ;;
    *) log "$USAGE"; exit 4 ;;
esac
TORRENT=${2:-}
DIR=${3:-}
[ -n "$TORRENT" ] && [ -n "$DIR" ] || { log "$USAGE"; exit 4; }
shift 3
while [ $# -gt 0 ]; do
    case $1 in
        --timeout) TIMEOUT=${2:?--timeout needs SECS}; shift 2 ;;
        *) log "unknown argument: $1"; exit 4 ;;
    esac
done
DEADLINE=$((SECONDS + TIMEOUT))

for tool in transmission-daemon transmission-remote transmission-show ss; do
    command -v "$tool" >/dev/null || { log "$tool is not installed"; exit 4; }
done
[ -r "$TORRENT" ] || { log "cannot read $TORRENT"; exit 4; }
HASH=$(transmission-show "$TORRENT" 2>/dev/null |
    sed -n 's/^ *Hash: *\([0-9a-fA-F]\{40\}\).*/\1/p' | head -n 1 | tr 'A-F' 'a-f')
[ -n "$HASH" ] || { log "cannot read $TORRENT"; exit 4; }
if [ "$MODE" = fetch ]; then
    mkdir -p "$DIR" || exit 4
fi
[ -d "$DIR" ] || { log "no folder $DIR"; exit 4; }
DIR=$(cd "$DIR" && pwd) || exit 4  # the daemon wants an absolute path

PORT=$(free_port) || exit 4
RPC_PORT=$(free_port) || exit 4
[ "$RPC_PORT" != "$PORT" ] || RPC_PORT=$(free_port) || exit 4
RPC="127.0.0.1:$RPC_PORT"
CONFIG="$WORK/config"
mkdir -p "$CONFIG" || exit 4
cat >"$CONFIG/settings.json" <<EOF
{
    "alt-speed-enabled": false,
    "alt-speed-time-enabled": false,
    "bind-address-ipv4": "127.0.0.1",
    "bind-address-ipv6": "::1",
    "blocklist-enabled": false,
    "dht-enabled": false,
    "download-dir": "$DIR",
    "download-queue-enabled": false,
    "encryption": ${TRANSMISSION_ENCRYPTION:-0},
    "idle-seeding-limit-enabled": false,
    "incomplete-dir": "$DIR",
    "incomplete-dir-enabled": false,
    "lpd-enabled": false,
    "message-level": ${TRANSMISSION_MESSAGE_LEVEL:-2},
    "peer-port": $PORT,
    "peer-port-random-on-start": false,
    "pex-enabled": false,
    "port-forwarding-enabled": false,
    "preallocation": 0,
    "queue-stalled-enabled": false,
    "ratio-limit-enabled": false,
    "rename-partial-files": false,
    "rpc-authentication-required": false,
    "rpc-bind-address": "127.0.0.1",
    "rpc-enabled": true,
    "rpc-host-whitelist-enabled": false,
    "rpc-port": $RPC_PORT,
    "rpc-whitelist": "127.0.0.1",
    "rpc-whitelist-enabled": true,
    "scrape-paused-torrents-enabled": false,
    "script-torrent-done-enabled": false,
    "seed-queue-enabled": false,
    "speed-limit-down-enabled": false,
    "speed-limit-up-enabled": false,
    "start-added-torrents": true,
    "trash-original-torrent-files": false,
    "utp-enabled": false,
    "watch-dir-enabled": false
}
EOF

LOG="$WORK/transmission.log"
spawn "$LOG" transmission-daemon -f -g "$CONFIG"
DAEMON=$SPAWNED
ON_EXIT='tail -n "${TRANSMISSION_LOG_LINES:-30}" "$LOG" >&2'

# remote ARGS...: transmission-remote against our daemon, at most 10 s.
remote() { timeout 10 transmission-remote "$RPC" "$@" 2>&1; }

alive() { kill -0 "$DAEMON" 2>/dev/null || { log "transmission-daemon exited"; exit 4; }; }

# What the daemon says about the torrent, to stderr (for failures).
report() {
    log "torrent: $(remote -t "$HASH" -i | grep -E '^ *(State|Percent Done|Have|Error|Peers):' | sed 's/^ *//' | paste -sd ';' -)"
    log "peers: $(remote -t "$HASH" -ip | sed 1d | paste -sd ';' -)"
}

# poll: sets STATE, PERCENT (e.g. "100%") and ERROR from `-i`.
poll() {
    local info
    info=$(remote -t "$HASH" -i)
    STATE=$(sed -n 's/^ *State: *//p' <<<"$info" | head -n 1)
    PERCENT=$(sed -n 's/^ *Percent Done: *//p' <<<"$info" | head -n 1)
    ERROR=$(sed -n 's/^ *Error: *//p' <<<"$info" | head -n 1)
}

# The RPC server answers (within 30 s).
limit=$((SECONDS + 30))
until remote -si >/dev/null; do
    alive
    [ $SECONDS -lt $limit ] && [ $SECONDS -lt $DEADLINE ] || {
        log "transmission-daemon's RPC on $RPC does not answer"; exit 4; }
    sleep 0.2
done

out=$(remote -a "$(cd "$(dirname "$TORRENT")" && pwd)/$(basename "$TORRENT")" -w "$DIR")
grep -q success <<<"$out" || { log "adding $TORRENT failed: $out"; exit 4; }

# The peer port is open (within 15 s).
limit=$((SECONDS + 15))
until ss -Hltn "( sport = :$PORT )" | grep -q "127.0.0.1:$PORT"; do
    alive
    [ $SECONDS -lt $limit ] && [ $SECONDS -lt $DEADLINE ] || {
        log "Transmission does not listen on 127.0.0.1:$PORT"; exit 4; }
    sleep 0.1
done

# Transmission's states (transmission-remote): Will Verify, Verifying, Queued,
# Stopped, Finished, and for a running torrent Idle (no transfer), Downloading,
# Seeding, Up & Down. A new torrent is verified first, then started.
if [ "$MODE" = seed ]; then
    echo "listening on 127.0.0.1:$PORT"
    while :; do
        alive
        [ $SECONDS -lt $DEADLINE ] || { log "timed out waiting for Transmission to seed"; report; exit 3; }
        poll
        case $STATE in
            Idle|Seeding|Downloading|"Up & Down")
                [ "$PERCENT" = 100% ] && break
                log "the data in $DIR is incomplete (Percent Done: $PERCENT)"; exit 2 ;;
            Stopped|Finished)
                log "Transmission stopped the torrent: ${ERROR:-no error given}"; report; exit 4 ;;
        esac
        sleep 0.2
    done
    echo "seeding"
    while [ $SECONDS -lt $DEADLINE ]; do
        alive
        sleep 0.2
    done
    log "timeout after ${TIMEOUT}s"
    exit 3
fi

# fetch: listening once the torrent runs (verified what is there, started).
listening=0
next_progress=0
while :; do
    alive
    if [ $SECONDS -ge $DEADLINE ]; then
        log "timeout after ${TIMEOUT}s"
        report
        echo "timeout"
        exit 1
    fi
    poll
    case $STATE in
        Idle|Seeding|Downloading|"Up & Down")
            if [ $listening = 0 ]; then
                echo "listening on 127.0.0.1:$PORT"
                listening=1
            fi
            [ "$PERCENT" = 100% ] && break ;;
        Stopped|Finished)
            log "Transmission stopped the torrent: ${ERROR:-no error given}"
            report
            exit 1 ;;
    esac
    if [ $SECONDS -ge $next_progress ]; then
        log "state: ${STATE:-?}, done: ${PERCENT:-?}"
        next_progress=$((SECONDS + 5))
    fi
    sleep 0.2
done
log "state: $STATE, done: $PERCENT"
# Transmission 3.00 never creates zero-length files (transmission#417, fixed in
# 4.1): create the torrent's empty files that are missing, so that DIR/NAME
# matches the torrent. Only paths that stay inside DIR/NAME are touched.
python3 - "$TORRENT" "$DIR" <<'EOF' || { log "cannot create the empty files"; exit 1; }
import os, sys

def decode(b, i=0):
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c in (b"l", b"d"):
        items, i = [], i + 1
        while b[i:i + 1] != b"e":
            v, i = decode(b, i)
            items.append(v)
        return (items if c == b"l" else dict(zip(items[::2], items[1::2]))), i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n

info = decode(open(sys.argv[1], "rb").read())[0][b"info"]
if info[b"name"] in (b"", b".", b"..") or b"/" in info[b"name"]:
    sys.exit(0)
root = os.path.join(os.fsencode(sys.argv[2]), info[b"name"])
for f in info.get(b"files", []):
    parts = f[b"path"]
    if f[b"length"] != 0 or not parts or any(p in (b"", b".", b"..") or b"/" in p for p in parts):
        continue
    path = os.path.join(root, *parts)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()
        print("transmission_peer.sh: created the empty file", os.fsdecode(path), file=sys.stderr)
EOF
echo "done"
exit 0
