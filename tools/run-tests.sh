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
# for the real-services cloud (tox -e realcloud), installed without
# starting their packaged services.
step "system packages"
bash tools/install-apt.sh etcd-server redis-server zookeeperd patch \
    mariadb-server rabbitmq-server || exit 1

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

# The release lines before 34 get the CI subset (tox -e release-smoke: the
# plugin's unit tests, the series' own Nova tests, one functional scenario
# per guard); their full tiers run outside CI (README, "Nova releases").
# Their environments install in the background while the 34 tiers run.
OLDER_RELEASES="33 32 31"
step "tox -e release-smoke for Nova $OLDER_RELEASES: installing in the background ($OUT/install-older.log)"
(for release in $OLDER_RELEASES; do
     NMG_NOVA_RELEASE=$release timeout 900 $TOX -e release-smoke --notest || exit 1
 done) > "$OUT/install-older.log" 2>&1 &
install_older_pid=$!

run_env() {  # tox env, time limit (s)[, Nova release line]: full output
    # in $OUT/<env><release>.log; the env's directory is .tox/<env><release>.
    local env=$1 limit=$2 release=${3:-}
    local name=$env$release
    step "tox -e $env${release:+ on Nova $release} (full output: $OUT/$name.log)"
    local -a release_env=()
    [ -n "$release" ] && release_env=(env NMG_NOVA_RELEASE="$release")
    NMG_SUBUNIT="$OUT/$name.subunit" timeout "$limit" "${release_env[@]}" \
        $TOX -e "$env" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo $rc > "$OUT/$name.rc"   # read by the summary
    [ $rc = 124 ] && echo "tox -e $env: timed out after ${limit}s"
    # Envs that rerun failures or run several test paths write the
    # combined stream themselves.
    [ -s "$OUT/$name.subunit" ] || \
        "$TOP/.tox/$name/bin/stestr" --repo-url "$TOP/.tox/$name" last --subunit > "$OUT/$name.subunit" 2>/dev/null
    grep '^FLAKY' "$OUT/$name.log"
    grep -E '^(=+|Totals| - (Passed|Failed|Skipped)|Sum of execute time)' "$OUT/$name.log" | tail -n 8
    if [ $rc != 0 ]; then
        echo "--- tox -e $env${release:+ on Nova $release} failed (exit $rc): failing tests, then the log's end"
        # (release-smoke keeps one stestr repository per test path)
        for repo in "$TOP/.tox/$name" "$TOP/.tox/$name"/stestr-*; do
            [ -d "$repo/.stestr" ] && "$TOP/.tox/$name/bin/stestr" --repo-url "$repo" failing 2>/dev/null | tail -n 300
        done
        tail -n 40 "$OUT/$name.log"
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
# The older release lines while the cloud's suites still run.
if wait $install_older_pid; then
    for release in $OLDER_RELEASES; do
        run_env release-smoke 600 "$release" || status=1
    done
else
    echo "installing the release-smoke environments failed:"
    tail -n 40 "$OUT/install-older.log"; status=1
fi
wait $realcloud_pid || status=1
cat "$OUT/realcloud.report"
run_env real-libvirt 1500 || status=1

step "the real-services cloud's scenarios (stock and guarded: counts, and the processes with their PIDs that served the requests)"
.tox/unit/bin/python tools/subunit_summary.py --detail summary \
    "$OUT/realcloud.subunit"

step "summary"
.tox/unit/bin/python tools/subunit_summary.py \
    unit="$OUT/unit.subunit" functional="$OUT/functional.subunit" \
    nova-patched="$OUT/nova-patched.subunit" \
    real-libvirt="$OUT/real-libvirt.subunit" \
    realcloud="$OUT/realcloud.subunit" \
    $(for r in $OLDER_RELEASES; do
          echo "release-smoke$r=$OUT/release-smoke$r.subunit"; done) || status=1
exit $status
