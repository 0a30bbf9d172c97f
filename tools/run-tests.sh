#!/usr/bin/env bash
# Run every test tier as CI does, on a fresh Debian 12 machine (as root):
# installs the apt packages and a tox virtualenv it needs, runs the tox
# environments (each under `timeout`), and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
TOP=$(pwd)
OUT=$TOP/.tox/results
mkdir -p "$OUT"
rm -f "$OUT"/*.subunit "$OUT"/*.log "$OUT"/*.rc "$OUT"/*.report

step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

# --- system packages: etcd, redis and ZooKeeper servers for the
# coordination tests, GNU patch for the patch command, MariaDB and RabbitMQ
# for the real-services cloud (tox -e realcloud). policy-rc.d keeps apt from
# starting the packaged services: the tests start their own on loopback.
APT_PKGS="etcd-server redis-server zookeeperd patch mariadb-server rabbitmq-server"
missing=$(for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
    step "apt-get install $missing"
    if [ "$(id -u)" != 0 ]; then
        echo "need root to install: $missing" >&2; exit 1
    fi
    # One that is already there (Docker images ship one) stays as it is.
    own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d; own_policy=1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    rc=$?; [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
    [ $rc = 0 ] || { echo "apt-get install failed" >&2; exit 1; }
fi

# --- libvirtd and QEMU for the real hypervisor tier (tests/real_libvirt)
step "libvirt and QEMU for the real hypervisor tier"
bash tools/install-real-libvirt.sh || exit 1

# --- tox in its own virtualenv
if [ ! -x .venv-tox/bin/tox ]; then
    step "virtualenv with tox"
    python3 -m venv .venv-tox && .venv-tox/bin/pip install -q -U pip 'tox>=4' || exit 1
fi
TOX=$TOP/.venv-tox/bin/tox

# Installing the envs is separate from running them so that each test run
# gets its own time limit.
step "tox environments (nova 34.0.0, placement 16.0.0, test deps)"
timeout 1500 $TOX -e unit,functional,nova-patched,real-libvirt,realcloud --notest || exit 1

# The nova 21.x series (XenAPI) must apply to the nova 21.2.4 sdist through
# the package's patch command; the unit tests run the patched Nova 21 code.
step "nova 21.2.4 sdist with the 21.x series (tools/check-nova21-series.sh)"
NMG_NOVA21_TREE=$(NMG_PYTHON=$TOP/.tox/unit/bin/python \
                  timeout 600 tools/check-nova21-series.sh) || exit 1
export NMG_NOVA21_TREE

run_env() {  # name, time limit (s): full output in $OUT/<name>.log
    local env=$1 limit=$2
    step "tox -e $env (full output: $OUT/$env.log)"
    NMG_SUBUNIT="$OUT/$env.subunit" timeout "$limit" $TOX -e "$env" > "$OUT/$env.log" 2>&1
    local rc=$?
    echo $rc > "$OUT/$env.rc"   # read by the summary
    [ $rc = 124 ] && echo "tox -e $env: timed out after ${limit}s"
    # Envs that rerun failures write the combined stream themselves.
    [ -s "$OUT/$env.subunit" ] || \
        "$TOP/.tox/$env/bin/stestr" --repo-url "$TOP/.tox/$env" last --subunit > "$OUT/$env.subunit" 2>/dev/null
    grep '^FLAKY' "$OUT/$env.log"
    grep -E '^(=+|Totals| - (Passed|Failed|Skipped)|Sum of execute time)' "$OUT/$env.log" | tail -n 8
    if [ $rc != 0 ]; then
        echo "--- tox -e $env failed (exit $rc): failing tests, then the log's end"
        "$TOP/.tox/$env/bin/stestr" --repo-url "$TOP/.tox/$env" failing 2>/dev/null | tail -n 300
        tail -n 40 "$OUT/$env.log"
    fi
    return $rc
}

status=0
run_env unit 600 || status=1
run_env functional 1500 || status=1
# Side by side: Nova's own tests mostly compute, the real-services cloud
# (realcloud: the DevStack scenario suite and tests/realcloud against one
# cloud it starts) mostly waits on its services. Its report follows.
run_env realcloud 1800 > "$OUT/realcloud.report" 2>&1 &
realcloud_pid=$!
run_env nova-patched 1800 || status=1
wait $realcloud_pid || status=1
cat "$OUT/realcloud.report"
run_env real-libvirt 1500 || status=1

step "summary"
.tox/unit/bin/python tools/subunit_summary.py \
    unit="$OUT/unit.subunit" functional="$OUT/functional.subunit" \
    nova-patched="$OUT/nova-patched.subunit" \
    real-libvirt="$OUT/real-libvirt.subunit" \
    realcloud="$OUT/realcloud.subunit" || status=1
exit $status
