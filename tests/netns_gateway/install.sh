#!/bin/sh
# Installs what tests/netns_gateway/gateway.py needs, idempotently, and makes sure
# the Debian miniupnpd package's own service is not running on the host: the harness
# starts its own miniupnpd inside each router namespace, with its own config file.
# Run as root. Safe to run again: apt-get skips what is installed.
set -eu

# miniupnpd-nftables: the nftables build (the one the harness sets up chains for);
# python3-libtorrent: only for the selftest's libtorrent step (skipped without it).
PACKAGES="miniupnpd miniupnpd-nftables miniupnpc natpmpc nftables iproute2 python3 python3-libtorrent"

if [ "$(id -u)" != 0 ]; then
    echo "install.sh: needs root (apt-get)" >&2
    exit 1
fi

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

if [ -n "$missing" ]; then
    # miniupnpd's debconf questions: never start it at boot, no interface of the host.
    printf '%s\n' \
        "miniupnpd miniupnpd/start_daemon boolean false" \
        "miniupnpd miniupnpd/force_igd_desc_v1 boolean false" \
        "miniupnpd miniupnpd/ip6script boolean false" \
        "miniupnpd miniupnpd/listen string " \
        "miniupnpd miniupnpd/iface string " | debconf-set-selections
    export DEBIAN_FRONTEND=noninteractive
    # An apt-get update only when the lists are missing or the install fails on them.
    apt-get install -y -q --no-install-recommends $missing \
        || { apt-get update -q && apt-get install -y -q --no-install-recommends $missing; }
fi

# The host service must not run. With start_daemon=false the package installs it
# disabled and does not start it; make sure of both. Never call the package's init
# script or its *tables helper here: their "stop" deletes nftables tables of the host.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    if systemctl is-active --quiet miniupnpd 2>/dev/null; then
        echo "install.sh: the host's miniupnpd service is active: stopping it"
        systemctl stop miniupnpd || true
    fi
    systemctl disable miniupnpd >/dev/null 2>&1 || true
    echo "install.sh: systemctl is-active miniupnpd: $(systemctl is-active miniupnpd 2>/dev/null || true)"
else
    command -v update-rc.d >/dev/null 2>&1 && update-rc.d miniupnpd disable >/dev/null 2>&1 || true
    # No systemd: a host instance would have the package's pid file. Stop that pid only.
    for pf in /run/miniupnpd.pid /var/run/miniupnpd.pid; do
        if [ -s "$pf" ] && start-stop-daemon --status --pidfile "$pf" --exec /usr/sbin/miniupnpd; then
            echo "install.sh: the host's miniupnpd ($pf) runs: stopping it"
            start-stop-daemon --stop --quiet --retry 5 --pidfile "$pf" --exec /usr/sbin/miniupnpd || true
        fi
    done
fi
echo "install.sh: ok ($PACKAGES)"
