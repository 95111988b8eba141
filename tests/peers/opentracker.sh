#!/bin/bash
# Runs Debian's opentracker on 127.0.0.1, HTTP and UDP on one free port, for tests.
#
# Usage: opentracker.sh INFO_HASH [INFO_HASH...]
#
# Debian's build is whitelist-only: the given info-hashes (40 hex digits) are written to its
# whitelist before it starts. Prints `listening on 127.0.0.1:PORT` once it answers, then runs
# until SIGTERM/SIGINT; opentracker is stopped with the script (a watchdog covers SIGKILL).

WORK_PREFIX=share-opentracker
. "$(dirname "$0")/aria2_common.sh"

[ $# -ge 1 ] || { log "usage: opentracker.sh INFO_HASH [INFO_HASH...]"; exit 4; }
port=$(free_port) || exit 4
printf '%s\n' "$@" | tr 'A-F' 'a-f' >"$WORK/whitelist.txt"
chmod 644 "$WORK/whitelist.txt"
cat >"$WORK/opentracker.conf" <<CONF
listen.tcp 127.0.0.1:$port
listen.udp 127.0.0.1:$port
access.whitelist $WORK/whitelist.txt
tracker.rootdir /
CONF
spawn "$WORK/opentracker.log" opentracker -f "$WORK/opentracker.conf"
pid=$SPAWNED
for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { log "opentracker exited: $(cat "$WORK/opentracker.log")"; exit 4; }
    if curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/stats"; then
        # The whitelist is loaded by a thread of its own: give it a moment.
        sleep 0.5
        echo "listening on 127.0.0.1:$port"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
        log "opentracker exited: $(cat "$WORK/opentracker.log")"
        exit 1
    fi
    sleep 0.1
done
log "opentracker did not answer: $(cat "$WORK/opentracker.log")"
exit 4
