#!/usr/bin/env bash
# The main job: boot the embedded cloud (Nova's own API, conductor,
# scheduler, placement and fake computes in one process, on patched Nova)
# and run each seed scenario with the plugin disabled and enabled.
# Extra arguments go to `nova-migration-guard demo` (e.g. --json; --real
# adds the real hypervisor scenario and installs what it needs; --cloud
# real runs the anti-affinity races on the real-services cloud instead,
# and installs MariaDB, RabbitMQ, etcd and the realcloud environment):
# stdout carries only its table (or JSON), progress goes to stderr.
set -uo pipefail
cd "$(dirname "$0")/.."
ENV_NAME=demo
APT_PKGS=patch
prev=
for arg in "$@"; do
    if [ "$arg" = --cloud=real ] || { [ "$prev" = --cloud ] && [ "$arg" = real ]; }; then
        # The real-services cloud: MariaDB, RabbitMQ and etcd from Debian,
        # Keystone, placement, Glance and Nova from PyPI (tox -e realcloud).
        ENV_NAME=realcloud
        APT_PKGS="patch mariadb-server rabbitmq-server etcd-server"
    fi
    prev=$arg
done
bash tools/install-apt.sh $APT_PKGS >&2 || exit 1
# The realcloud environment builds libvirt-python (its libvirt computes),
# which needs libvirt's headers and a C toolchain.
if [ "$ENV_NAME" = realcloud ]; then
    bash tools/install-real-libvirt.sh >&2 || exit 1
fi
if [ ! -x .venv-tox/bin/tox ]; then
    echo "creating .venv-tox with tox ..." >&2
    python3 -m venv .venv-tox && .venv-tox/bin/pip install -q -U pip 'tox>=4' >&2 || exit 1
fi
echo "preparing the $ENV_NAME environment (nova 34.0.0 and its test harness; ~1 min the first time, ~4 min for realcloud) ..." >&2
.venv-tox/bin/tox -q -e $ENV_NAME --notest >&2 || exit 1
ENV=.tox/$ENV_NAME/bin
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
