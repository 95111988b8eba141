#!/bin/bash
# Downloads a torrent with aria2c from a given peer on 127.0.0.1 (e.g. a
# running `share seed`), for interoperability tests.
#
# Usage: aria2_fetch.sh TORRENT OUT_DIR 127.0.0.1:PORT [--timeout SECS]
#        aria2_fetch.sh TORRENT OUT_DIR TRACKER_URL [--timeout SECS]
#
# TORRENT may be a magnet link with a hex info-hash: aria2 then fetches the metadata from
# the peers (BEP 9).
#
# With a TRACKER_URL (http://...) aria2 announces there and takes its peers from it; no
# opentracker of the script's own is started.
#
# The content lands in OUT_DIR/NAME. Prints `done` (stdout) and exits 0 once
# aria2 has downloaded and verified everything; exit 1 if aria2 failed or the
# timeout (default 120 s) expired, 4 on a setup failure. The last 30 lines
# (env ARIA2_LOG_LINES) of aria2's log go to stderr at the end.
#
# aria2 (with DHT, LPD and PEX off) only dials peers that a tracker gives it,
# so the script runs an opentracker on a free 127.0.0.1 port with the
# torrent's info-hash in its whitelist (Debian's build is whitelist-only),
# announces the peer there with curl as a seed (opentracker ignores ip= and
# takes the request's source address, 127.0.0.1, so only port= matters), and
# gives aria2 that tracker instead of the torrent's own. Both processes are
# stopped when the script ends (SIGTERM/SIGINT included).

. "$(dirname "$0")/aria2_common.sh"

USAGE="usage: aria2_fetch.sh TORRENT OUT_DIR 127.0.0.1:PORT [--timeout SECS]"
TORRENT=${1:?$USAGE}
OUT=${2:?$USAGE}
PEER=${3:?$USAGE}
shift 3
TIMEOUT=120
while [ $# -gt 0 ]; do
    case $1 in
        --timeout) TIMEOUT=${2:?--timeout needs SECS}; shift 2 ;;
        *) log "unknown argument: $1"; exit 4 ;;
    esac
done
case $PEER in
    127.0.0.1:[0-9]*) ;;
    http://127.0.0.1:*) TRACKER_URL=$PEER ;;
    *) log "the peer must be 127.0.0.1:PORT or http://127.0.0.1:PORT/announce"; exit 4 ;;
esac
DEADLINE=$((SECONDS + TIMEOUT))

case $TORRENT in
    magnet:*) HASH=$(echo "$TORRENT" | sed -n 's/.*xt=urn:btih:\([0-9a-fA-F]\{40\}\).*/\1/p' | tr 'A-F' 'a-f') ;;
    *) HASH=$(info_hash_of "$TORRENT") ;;
esac
[ -n "$HASH" ] || { log "cannot read $TORRENT"; exit 4; }
if [ -z "${TRACKER_URL:-}" ]; then
    start_tracker "$HASH" || exit 4
    announce_peer "$HASH" "${PEER#127.0.0.1:}" || exit 4
fi

mkdir -p "$OUT"
PORT=$(free_port) || exit 4
LOG="$WORK/aria2.log"
ON_EXIT='tail -n "${ARIA2_LOG_LINES:-30}" "$LOG" >&2'
# --seed-time=0: quit as soon as the download is complete (exit status 0).
spawn "$LOG" aria2c "${ARIA2_OPTS[@]}" \
    --bt-tracker="$TRACKER_URL" --bt-tracker-interval=5 \
    --listen-port="$PORT" --seed-time=0 \
    --bt-stop-timeout="$TIMEOUT" \
    -d "$OUT" "$TORRENT"
ARIA2=$SPAWNED

while kill -0 "$ARIA2" 2>/dev/null; do
    if [ $SECONDS -ge $DEADLINE ]; then
        log "timeout after ${TIMEOUT}s"
        echo "timeout"
        exit 1
    fi
    sleep 0.2
done
wait "$ARIA2"
rc=$?
if [ $rc -ne 0 ]; then
    log "aria2c failed (exit status $rc)"
    exit 1
fi
echo "done"
exit 0
