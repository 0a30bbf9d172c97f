#!/usr/bin/env bash
# Inside a running real-services cloud (OS_CLOUD and OS_CLIENT_CONFIG_FILE
# set by `python -m nova_migration_guard.realcloud run`): the DevStack
# scenario suite (tests/devstack, through openstacksdk and clouds.yaml),
# then the cross-process suite (tests/realcloud).  One cloud start serves
# both.  With NMG_SUBUNIT set, both results are written there as one stream.
# Arguments (a test filter) go to the tests/realcloud run.
set -u
export NMG_DEVSTACK_IMAGE=${NMG_DEVSTACK_IMAGE:-realcloud-image}
export NMG_DEVSTACK_FLAVOR=${NMG_DEVSTACK_FLAVOR:-realcloud.small}
# The tox environment's own stestr repository (see run_nova_tests.sh).
stestr=(stestr --repo-url "${VIRTUAL_ENV:-$PWD}")
status=0
[ -n "${NMG_SUBUNIT:-}" ] && : > "$NMG_SUBUNIT"
for suite in devstack realcloud; do
    args=()
    [ "$suite" = realcloud ] && args=("$@")
    "${stestr[@]}" --test-path "./tests/$suite" run --serial "${args[@]}" || status=1
    [ -n "${NMG_SUBUNIT:-}" ] && "${stestr[@]}" last --subunit >> "$NMG_SUBUNIT"
done
exit $status
