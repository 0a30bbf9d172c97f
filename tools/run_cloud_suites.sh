#!/usr/bin/env bash
# Inside a running real-services cloud (OS_CLOUD and OS_CLIENT_CONFIG_FILE
# set by `python -m nova_migration_guard.lab.realcloud run`): the DevStack
# scenario suite (tests/devstack, through openstacksdk and clouds.yaml),
# then the cross-process suite (tests/realcloud).  One cloud start serves
# both.  With NMG_SUBUNIT set, all results are written there as one stream.
# Arguments (a test filter) go to the tests/realcloud run.
#
# Without arguments tests/realcloud runs in three passes: the guarded
# classes and the host_identity ones (which start their own computes) on
# the cloud as `run --guards anti_affinity` started it, then the rest
# (stock) but the libvirt computes' tests, then those (their guards), so
# that the Nova services restart once per set of guards, not once per
# module.
set -u
export NMG_DEVSTACK_IMAGE=${NMG_DEVSTACK_IMAGE:-realcloud-image}
export NMG_DEVSTACK_FLAVOR=${NMG_DEVSTACK_FLAVOR:-realcloud.small}
# The tox environment's own stestr repository (see run_nova_tests.sh).
stestr=(stestr --repo-url "${VIRTUAL_ENV:-$PWD}")
first='\.Guarded|test_host_identity'
libvirt='test_libvirt_computes'
status=0
[ -n "${NMG_SUBUNIT:-}" ] && : > "$NMG_SUBUNIT"
run() {  # suite, stestr run arguments
    local suite=$1
    shift
    "${stestr[@]}" --test-path "./tests/$suite" run --serial "$@" || status=1
    [ -n "${NMG_SUBUNIT:-}" ] && "${stestr[@]}" last --subunit >> "$NMG_SUBUNIT"
}
run devstack
if [ $# -gt 0 ]; then
    run realcloud "$@"
else
    run realcloud "$first"
    run realcloud --exclude-regex "$first|$libvirt"
    run realcloud "$libvirt"
fi
exit $status
