#!/usr/bin/env bash
# tox -e devstack: the scenario tests of tests/devstack, through openstacksdk,
# against
#  - the cloud named by OS_CLOUD (a real DevStack: OS_CLOUD=devstack-admin);
#  - else, with NMG_DEVSTACK_EMBEDDED=1, the embedded cloud served on a
#    loopback port;
#  - else (what CI does) the real-services cloud (nova_migration_guard.
#    realcloud) with the anti_affinity guard, started before the tests and
#    stopped after them.
# --serial: the scenarios share the cloud's computes (and the audit reads the
# whole cloud), so they run one after another.
set -u
tests=(stestr --repo-url "${VIRTUAL_ENV:-$PWD}" --test-path ./tests/devstack run --serial "$@")
if [ -n "${OS_CLOUD:-}" ] || [ "${NMG_DEVSTACK_EMBEDDED:-0}" = 1 ]; then
    exec "${tests[@]}"
fi
export NMG_DEVSTACK_IMAGE=${NMG_DEVSTACK_IMAGE:-realcloud-image}
export NMG_DEVSTACK_FLAVOR=${NMG_DEVSTACK_FLAVOR:-realcloud.small}
exec python -m nova_migration_guard.lab.realcloud run --guards anti_affinity \
    --state-dir "${NMG_REALCLOUD_STATE_DIR:?}" \
    --base-port "${NMG_REALCLOUD_BASE_PORT:-47100}" -- "${tests[@]}"
