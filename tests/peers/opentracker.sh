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
start_tracker "$@" || exit 4
# The whitelist is loaded by a thread of its own: give it a moment.
sleep 0.5
echo "listening on 127.0.0.1:$TRACKER_PORT"
while kill -0 "$TRACKER_PID" 2>/dev/null; do sleep 0.5; done
log "opentracker exited: $(cat "$WORK/opentracker.log")"
exit 1
