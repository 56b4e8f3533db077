#!/bin/sh
# Install dockline: system packages, a venv with its dependencies, and a
# CNI_PATH directory whose executables are dockline's plugins.
#
#   ./install.sh [CNI_BIN_DIR]      default: <repo>/.build/cni-bin
#
# Environment: DOCKLINE_VENV (default <repo>/.venv), DOCKLINE_NO_APT=1 to
# skip Debian packages, DOCKLINE_EXTRAS=test to add the test tools,
# DOCKLINE_ZYGOTE=0 for executables that never start or use a warm zygote.
set -eu
REPO=$(cd "$(dirname "$0")" && pwd)
VENV=${DOCKLINE_VENV:-$REPO/.venv}
CNI_BIN=${1:-$REPO/.build/cni-bin}
PACKAGES="iproute2 iptables nftables conntrack python3-venv containernetworking-plugins etcd-server"

if [ "${DOCKLINE_NO_APT:-}" != 1 ]; then
    missing=""
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "install.sh: installing Debian packages:$missing"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
fi

if [ ! -x "$VENV/bin/python3" ]; then
    # Debian's own interpreter when there is one: it starts ~0.5 ms faster
    # than a locally built one, and every plugin call pays that.
    base=python3
    if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        base=/usr/bin/python3
    fi
    "$base" -m venv "$VENV"
fi
extras=${DOCKLINE_EXTRAS:+[$DOCKLINE_EXTRAS]}
"$VENV/bin/pip" install -q --disable-pip-version-check -e "$REPO$extras"

# The executables: one launcher per plugin type (see dockline.cli.installer:
# the real interpreter binary with -I -S, exactly dockline's code and its
# dependencies on sys.path), then the code compiled once.
ZYGOTE_FLAG=""
[ "${DOCKLINE_ZYGOTE:-1}" = 0 ] && ZYGOTE_FLAG=--no-zygote
"$VENV/bin/dockline" install --json $ZYGOTE_FLAG "$CNI_BIN" >/dev/null
echo "install.sh: dockline plugins in $CNI_BIN (use it as CNI_PATH)"
