#!/usr/bin/env bash
# The main job: boot the embedded cloud (Nova's own API, conductor,
# scheduler, placement and fake computes in one process, on patched Nova)
# and run each seed scenario with the plugin disabled and enabled.
# Extra arguments go to `nova-migration-guard demo` (e.g. --json; --real
# adds the real hypervisor scenario and installs what it needs): stdout
# carries only its table (or JSON), progress goes to stderr.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v patch >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "install GNU patch first" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patch >/dev/null
fi
if [ ! -x .venv-tox/bin/tox ]; then
    echo "creating .venv-tox with tox ..." >&2
    python3 -m venv .venv-tox && .venv-tox/bin/pip install -q -U pip 'tox>=4' >&2 || exit 1
fi
echo "preparing the demo environment (nova 34.0.0 and its test harness; ~1 min the first time) ..." >&2
.venv-tox/bin/tox -q -e demo --notest >&2 || exit 1
ENV=.tox/demo/bin
for arg in "$@"; do
    if [ "$arg" = --real ]; then
        # The real hypervisor scenario: libvirtd, QEMU and libvirt-python.
        bash tools/install-real-libvirt.sh >&2 || exit 1
        "$ENV/python" -c 'import libvirt' 2>/dev/null ||
            "$ENV/python" -m pip install -q -c upper-constraints.txt \
                libvirt-python==12.8.0 >&2 || exit 1
    fi
done
"$ENV/python" tools/link_nova_etc.py >&2 || exit 1
"$ENV/nova-migration-guard" patches apply >&2 || exit 1
exec "$ENV/nova-migration-guard" demo "$@"
