# Shared by aria2_seed.sh and aria2_fetch.sh, and by transmission_peer.sh
# (sourced, not run).
#
# Gives: WORK (a temporary folder), free_port, spawn (start a child that is
# stopped on exit), info_hash_of, start_tracker, announce_peer, ARIA2_OPTS, the
# cleanup that stops every child (SIGTERM, then SIGKILL after 5 s) when the
# script exits for any reason, including SIGTERM/SIGINT. If the script itself
# is SIGKILLed, a watchdog stops the children within a second (and removes WORK).
# Everything listens on 127.0.0.1 only.

set -u

# WORK_PREFIX (set before sourcing) names the temporary folder.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/${WORK_PREFIX:-share-aria2}.XXXXXX") || exit 4
# opentracker refuses to keep root privileges: started as root it switches to
# "nobody", which must still be able to read the whitelist in WORK.
chmod 755 "$WORK"
CHILDREN=()
WATCHDOG=
ON_EXIT=:  # run by cleanup once the children are stopped, before WORK is removed

log() { echo "$(basename "$0"): $*" >&2; }

cleanup() {
    trap - EXIT TERM INT
    local p i alive
    [ -n "$WATCHDOG" ] && kill -KILL "$WATCHDOG" 2>/dev/null
    for p in "${CHILDREN[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for i in $(seq 50); do
        alive=0
        for p in "${CHILDREN[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${CHILDREN[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    eval "$ON_EXIT"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# A TCP port on 127.0.0.1 that is free right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# spawn LOGFILE CMD ARGS...: starts CMD in the background (stdout+stderr to
# LOGFILE) and records its pid in CHILDREN and in $SPAWNED.
spawn() {
    local out=$1; shift
    "$@" >"$out" 2>&1 </dev/null &
    SPAWNED=$!
    CHILDREN+=("$SPAWNED")
    # (Re)start the watchdog so that it knows every child.
    [ -n "$WATCHDOG" ] && kill -KILL "$WATCHDOG" 2>/dev/null
    (
        trap '' TERM INT
        while kill -0 $$ 2>/dev/null; do sleep 1; done
        kill -TERM "${CHILDREN[@]}" 2>/dev/null
        sleep 2
        kill -KILL "${CHILDREN[@]}" 2>/dev/null
        rm -rf "$WORK"
    ) >/dev/null 2>&1 &
    WATCHDOG=$!
    disown "$WATCHDOG"  # not a job: killing it later prints nothing
}

# info_hash_of TORRENT: the v1 info-hash in lowercase hex.
info_hash_of() {
    aria2c -S "$1" 2>/dev/null | sed -n 's/^Info Hash: *\([0-9a-fA-F]\{40\}\).*/\1/p' | tr 'A-F' 'a-f'
}

# start_tracker INFO_HASH...: runs opentracker (whitelist-only in Debian) on a
# free 127.0.0.1 port, HTTP and UDP, with the INFO_HASHes whitelisted; sets
# TRACKER_URL, TRACKER_PORT and TRACKER_PID. opentracker reads the whitelist
# once at start, so it is written first. Returns non-zero if the tracker does
# not answer within 10 s.
start_tracker() {
    local port i
    port=$(free_port) || return 1
    printf '%s\n' "$@" | tr 'A-F' 'a-f' >"$WORK/whitelist.txt"
    chmod 644 "$WORK/whitelist.txt"
    # rootdir "/": the absolute whitelist path stays valid after opentracker's chroot.
    printf 'listen.tcp 127.0.0.1:%s\nlisten.udp 127.0.0.1:%s\naccess.whitelist %s\ntracker.rootdir /\n' \
        "$port" "$port" "$WORK/whitelist.txt" >"$WORK/opentracker.conf"
    spawn "$WORK/opentracker.log" opentracker -f "$WORK/opentracker.conf"
    TRACKER_PID=$SPAWNED
    TRACKER_PORT=$port
    TRACKER_URL="http://127.0.0.1:$port/announce"
    for i in $(seq 100); do
        kill -0 "$TRACKER_PID" 2>/dev/null || break
        if curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/stats"; then return 0; fi
        sleep 0.1
    done
    log "opentracker did not start: $(cat "$WORK/opentracker.log")"
    return 1
}

# announce_peer INFO_HASH PORT: registers 127.0.0.1:PORT as a seed of the
# torrent, as if that peer had announced itself. opentracker ignores the ip=
# parameter and takes the address from the request's source, which is
# 127.0.0.1 here, so only port= matters. Retries for 5 s (opentracker loads
# its whitelist in a thread of its own), then prints the last refusal.
announce_peer() {
    local hash=$1 port=$2 enc i reply="$WORK/announce.reply"
    enc=$(echo "$hash" | sed 's/../%&/g')
    for i in $(seq 50); do
        : >"$reply"
        curl -s -m 5 -o "$reply" "${TRACKER_URL}?info_hash=$enc&peer_id=-FAKE00-$(printf '%012d' "$port")&port=$port&uploaded=0&downloaded=0&left=0&event=started&compact=1"
        # The reply holds binary (compact peers): grep the file, do not read it into a variable.
        if [ -s "$reply" ] && ! grep -aq "failure reason" "$reply"; then return 0; fi
        sleep 0.1
    done
    log "announce refused: $(tr -cd '[:print:]' <"$reply")"
    return 1
}

# aria2c options common to both roles: BitTorrent over TCP on 127.0.0.1 only,
# no DHT / local peer discovery / peer exchange, trackers only those given
# with --bt-tracker (the torrent's own are dropped), and aria2 quits by itself
# if this script dies.
ARIA2_OPTS=(
    --enable-dht=false --enable-dht6=false --bt-enable-lpd=false
    --enable-peer-exchange=false --disable-ipv6=true --interface=127.0.0.1
    --bt-exclude-tracker='*' --check-integrity=true --bt-seed-unverified=false
    --file-allocation=none --bt-save-metadata=false --auto-save-interval=0
    --console-log-level=notice --summary-interval=1 --enable-color=false
    --bt-tracker-connect-timeout=5 --bt-tracker-timeout=10
    --stop-with-process=$$
)
# More options from the environment (e.g. ARIA2_EXTRA="--bt-require-crypto=true").
# shellcheck disable=SC2206
ARIA2_OPTS+=(${ARIA2_EXTRA:-})
