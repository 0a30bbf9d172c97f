#!/usr/bin/env bash
# Record traces of real live migrations into tests/traces/libvirt (events
# of both daemons and the job-stats samples of Nova's monitor), for the
# unit tests of decision logic.  Runs the real libvirt tier's Nova-driver
# tests (needs root; installs libvirt/QEMU if missing) through tox.
#   tools/record-traces.sh [test filter, default: test_nova_driver]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-real-libvirt.sh
TOX=${TOX:-tox}
[ -x .venv-tox/bin/tox ] && TOX=.venv-tox/bin/tox
NMG_RECORD_TRACES=$(pwd)/tests/traces/libvirt $TOX -e real-libvirt -- \
    "${1:-test_nova_driver}"
ls -l tests/traces/libvirt
