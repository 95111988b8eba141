#!/bin/bash
# Seeds a torrent with aria2c on 127.0.0.1, for interoperability tests.
#
# Usage: aria2_seed.sh TORRENT DIR [--peer 127.0.0.1:PORT]... [--timeout SECS]
#        aria2_seed.sh TORRENT DIR --tracker http://127.0.0.1:PORT/announce [--timeout SECS]
#
# With --tracker, aria2 announces to that tracker (and dials the peers it lists); no
# opentracker of the script's own is started.
#
# Serves the content already at DIR/NAME (aria2 verifies it first). Prints
# `listening on 127.0.0.1:PORT` (aria2's BitTorrent port, stdout) once aria2
# has verified the data and is seeding; connect to it with `share fetch --peer`.
# Runs until SIGTERM/SIGINT (exit 143/130) or --timeout (default 300; exit 3).
# Exit 2 if the data is incomplete, 4 on a setup failure. The last 30 lines
# (env ARIA2_LOG_LINES) of aria2's log go to stderr when the script ends.
# Stop it with SIGTERM (not SIGKILL) so that it cleans up; after a SIGKILL its
# children still stop within about a second.
#
# Incoming connections need no tracker: aria2 accepts any peer that dials it.
# aria2 only *dials* peers it got from a tracker (with DHT, LPD and PEX off),
# so each --peer starts an opentracker on 127.0.0.1 (see aria2_common.sh),
# registers the peer there, and points aria2 at it; aria2 then connects out
# to it as well (the peer must be 127.0.0.1: opentracker ignores ip=).

. "$(dirname "$0")/aria2_common.sh"

TORRENT=${1:?usage: aria2_seed.sh TORRENT DIR [--peer 127.0.0.1:PORT]... [--timeout SECS]}
DIR=${2:?usage: aria2_seed.sh TORRENT DIR [--peer 127.0.0.1:PORT]... [--timeout SECS]}
shift 2
TIMEOUT=300
PEERS=()
while [ $# -gt 0 ]; do
    case $1 in
        --peer) PEERS+=("${2:?--peer needs IP:PORT}"); shift 2 ;;
        --tracker) TRACKER_URL=${2:?--tracker needs a URL}; shift 2 ;;
        --timeout) TIMEOUT=${2:?--timeout needs SECS}; shift 2 ;;
        *) log "unknown argument: $1"; exit 4 ;;
    esac
done
DEADLINE=$((SECONDS + TIMEOUT))

HASH=$(info_hash_of "$TORRENT")
[ -n "$HASH" ] || { log "cannot read $TORRENT"; exit 4; }

EXTRA=()
if [ -n "${TRACKER_URL:-}" ]; then
    EXTRA=(--bt-tracker="$TRACKER_URL" --bt-tracker-interval=5)
elif [ ${#PEERS[@]} -gt 0 ]; then
    start_tracker "$HASH" || exit 4
    for peer in "${PEERS[@]}"; do
        case $peer in 127.0.0.1:*) ;; *) log "--peer must be 127.0.0.1:PORT"; exit 4 ;; esac
        announce_peer "$HASH" "${peer#127.0.0.1:}" || exit 4
    done
    EXTRA=(--bt-tracker="$TRACKER_URL" --bt-tracker-interval=5)
fi

# aria2 runs this hook once the torrent is complete (here: right after the
# check, if the data is all there); its marker file means "seeding".
printf '#!/bin/sh\ntouch "%s/complete"\n' "$WORK" >"$WORK/hook.sh"
chmod +x "$WORK/hook.sh"

PORT=$(free_port) || exit 4
LOG="$WORK/aria2.log"
# --seed-ratio=0.0 without --seed-time: seed until stopped.
spawn "$LOG" aria2c "${ARIA2_OPTS[@]}" "${EXTRA[@]}" \
    --listen-port="$PORT" --seed-ratio=0.0 \
    --on-bt-download-complete="$WORK/hook.sh" \
    -d "$DIR" "$TORRENT"
ARIA2=$SPAWNED
ON_EXIT='tail -n "${ARIA2_LOG_LINES:-30}" "$LOG" >&2'

# Ready = listening + verified complete.
ready=0
while [ $SECONDS -lt $DEADLINE ]; do
    kill -0 "$ARIA2" 2>/dev/null || { log "aria2c exited early"; exit 4; }
    if grep -q "listening on TCP port $PORT" "$LOG" && [ -e "$WORK/complete" ]; then
        ready=1; break
    fi
    # A progress summary like "[#a1b2c3 1.4MiB/1.4MiB(97%) ...]" means aria2 is downloading.
    if grep -Eq 'Checksum error detected|\([0-9]+%\)' "$LOG"; then
        log "the data in $DIR is incomplete"; exit 2
    fi
    sleep 0.1
done
[ $ready = 1 ] || { log "timed out waiting for aria2c to seed"; exit 3; }
echo "listening on 127.0.0.1:$PORT"
echo "seeding"

while [ $SECONDS -lt $DEADLINE ]; do
    kill -0 "$ARIA2" 2>/dev/null || { log "aria2c exited"; exit 4; }
    sleep 0.2
done
log "timeout after ${TIMEOUT}s"
exit 3
