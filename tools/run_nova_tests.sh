#!/usr/bin/env bash
# Nova's own tests on patched Nova (tox -e nova-patched). Failures are rerun
# once, serially: a few of Nova's functional tests are timing-dependent under
# parallel workers (e.g. test_init_host's crash-during-resize test restarts a
# compute from inside its own RPC worker). A test that passes on the rerun is
# reported as FLAKY, never hidden; one that fails again fails the run.
# The combined subunit stream (the rerun's result wins) goes to $NMG_SUBUNIT.
#
# Nova's unit and functional tests run in separate processes, as Nova's own
# tox runs them: on Nova 31.x, nova.tests.unit imported before
# nova.tests.functional (whose import applies eventlet monkey patching) makes
# functional live migration tests time out, on stock Nova as well.
set -uo pipefail
# Each tox environment keeps its own stestr repository (in the env's
# directory): environments that run side by side in tools/run-tests.sh must
# not read each other's "last" run or failures.
stestr=(stestr --repo-url "${VIRTUAL_ENV:-$PWD}")
run=("${stestr[@]}" --test-path ./tests/nova_subset)
modules=${NOVA_TEST_MODULES:-}
other=$(printf '%s\n' $modules | grep -v '^nova\.tests\.\(unit\|functional\)\.')
if [ -n "$other" ]; then
    echo "run_nova_tests.sh: neither a unit nor a functional test of Nova:" $other
    exit 2
fi
tmp=$(mktemp -d)
status=0
for group in unit functional; do
    NOVA_TEST_MODULES=$(printf '%s\n' $modules |
                        grep "^nova\.tests\.$group\." | tr '\n' ' ')
    [ -n "$NOVA_TEST_MODULES" ] || continue
    export NOVA_TEST_MODULES
    echo "=== Nova's $group tests"
    "${run[@]}" run --concurrency 2 "$@"
    rc=$?
    "${stestr[@]}" last --subunit > "$tmp/$group-first" 2>/dev/null
    if [ $rc != 0 ]; then
        "${stestr[@]}" failing --list 2>/dev/null | grep -v '^$' > "$tmp/failing"
        n=$(wc -l < "$tmp/failing")
        if [ "$n" -gt 0 ] && [ "$n" -le 20 ]; then
            echo "=== rerunning $n failing Nova $group test(s) serially"
            "${run[@]}" run --serial --load-list "$tmp/failing"
            rc=$?
            "${stestr[@]}" last --subunit > "$tmp/$group-rerun" 2>/dev/null
            [ $rc = 0 ] && sed 's/^/FLAKY (passed on rerun): /' "$tmp/failing"
        fi
    fi
    [ $rc = 0 ] || status=$rc
done
[ -n "${NMG_SUBUNIT:-}" ] && cat "$tmp"/unit-first "$tmp"/unit-rerun \
    "$tmp"/functional-first "$tmp"/functional-rerun > "$NMG_SUBUNIT" 2>/dev/null
rm -rf "$tmp"
exit $status
