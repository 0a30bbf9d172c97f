#!/usr/bin/env bash
# Install the Debian packages given as arguments that are missing (as
# root), without starting their packaged services: policy-rc.d keeps apt
# from starting them, the tests and the real-services cloud start their own
# on loopback.  Used by tools/run-tests.sh, tools/demo.sh and
# tools/install-real-libvirt.sh.
#   tools/install-apt.sh [--no-install-recommends] PACKAGE...
set -uo pipefail
options=()
if [ "${1:-}" = --no-install-recommends ]; then
    options=(--no-install-recommends)
    shift
fi
missing=$(for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
[ -z "$missing" ] && exit 0
echo "apt-get install" $missing >&2
if [ "$(id -u)" != 0 ]; then
    echo "need root to install:" $missing >&2; exit 1
fi
# One that is already there (Docker images ship one) stays as it is.
own_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d; own_policy=1
fi
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "${options[@]}" $missing >/dev/null
rc=$?; [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
[ $rc = 0 ] || { echo "apt-get install failed (exit $rc)" >&2; exit 1; }
