"""The convergence guard on real QEMU: the guest of
test_nova_driver.DirtyingGuestTest, rewriting 128 MiB at 30 MiB/s, twice
what the migration stream (capped at 15 MiB/s) copies.  Stubbed as in
nova_driver.py: the cloud side of Nova; the migration, the ladder's steps
and the guest are real.

Under stock Nova's settings this guest never converges
(test_nova_driver.DirtyingGuestTest: the passes go on until Nova's
completion timeout aborts the job).  Under the default policy it
converges within its deadline: downtime steps and auto-converge first,
then post-copy.  Which of them finishes depends on how much vCPU time the
machine leaves the guest once QEMU throttles it (the guest's writes are
CPU-bound), so that test asserts the outcome and that the policy acted,
not the rung.  The other policies' last resorts run once each, without
auto-converge so that the rung under test is the only way to finish:
post-copy, pause, abort.
"""

import os
import time

import testtools
from testtools.content import text_content

from nova_migration_guard.convergence import ladder
from nova_migration_guard.convergence import policies
from nova_migration_guard.virt.libvirt import driver as guarded
from tests.real_libvirt import base
from nova_migration_guard.lab.real_libvirt import nova_driver
from tests.real_libvirt import test_nova_driver


#: The heartbeat (one a second from boot) after which a guest is migrated.
SETTLED_HEARTBEAT = 20


class _ConvergenceTest(test_nova_driver.NovaDriverTestCase):

    LIBVIRT_OPTIONS = {
        'live_migration_bandwidth': nova_driver.BANDWIDTH_MIB_S}
    #: The flavor's convergence policy (None: the default policy).
    POLICY = None
    #: [migration_guard_convergence] options.
    CONVERGENCE_OPTIONS = {}

    def setUp(self):
        base.RealLibvirtTestCase.setUp(self)
        self.nova = self.useFixture(nova_driver.NovaLibvirtHosts(
            self.hosts, driver_class=guarded.GuardedLibvirtDriver,
            # With migration_outcome too, as the README configures them: an
            # abort ends as a rollback, not in Nova's G3 error handling.
            guards=('convergence', 'migration_outcome'),
            **self.LIBVIRT_OPTIONS))
        if self.CONVERGENCE_OPTIONS:
            self.nova.conf.config(group='migration_guard_convergence',
                                  **self.CONVERGENCE_OPTIONS)
        self.log = self.useFixture(nova_driver.ConvergenceStepLog())
        self.record_trace_if_asked()

    def trace_extras(self):
        return {'policy': self.POLICY or 'minimal-downtime',
                'probe_dirty_bps': self.log.probe_bps()}

    def migrate_dirty_guest(self, **dirty):
        instance, self.guest_console = self.boot(
            'dirty', memory_mib=256,
            **(dirty or nova_driver.DIRTY_TWICE_THE_CAP))
        # Migrated within seconds of its boot, this TCG guest went silent
        # or crashed 17-19 s after it booted, right after the switch-over
        # (QEMU 7.2, stock and guarded alike; see wait_for_heartbeat_after):
        # a guest settled past that age is what these tests migrate.
        self.wait_for_heartbeat_after(self.guest_console, SETTLED_HEARTBEAT,
                                      timeout=60.0)
        if self.POLICY:
            instance.flavor.extra_specs = {
                'migration_guard:convergence_policy': self.POLICY}
        started = time.monotonic()
        migrating, result = self.migrate_in_background(instance)
        migrating.join(400)
        self.assertFalse(migrating.is_alive(), 'still migrating after 400 s')
        self.addDetail('convergence', text_content(
            '%.0f s, %d passes; steps:\n%s' % (
                time.monotonic() - started,
                self.nova.stats.passes('dirty', since=started),
                '\n'.join(self.log.steps()))))
        self.assertIsNone(result['error'])
        return result

    def assert_completed(self, result):
        self.assertEqual(1, len(result['post'].calls))
        self.assertEqual([], result['recover'].calls)
        self.assert_runs_only_on('dirty', self.hosts.b, self.hosts.a)
        # Running (a paused guest was resumed on the destination).
        self.wait_for_heartbeat_after(self.guest_console,
                                      self.last_heartbeat(self.guest_console))

    def assert_aborted_cleanly(self, result):
        self.assertEqual([], result['post'].calls)
        self.assertEqual(1, len(result['recover'].calls))
        self.assertEqual('cancelled',
                         result['recover'].calls[0][1]['migration_status'])
        self.assert_runs_only_on('dirty', self.hosts.a, self.hosts.b)
        self.wait_for_heartbeat_after(self.guest_console,
                                      self.last_heartbeat(self.guest_console))

    def assert_predicted_last_resort(self, last_resort):
        """The policy's last resort was taken on a prediction, not after
        stalled passes.  A downtime step may come first: the guest's
        dirtying under TCG is noisy, and one pass that starts with less
        than the one before looks like a shrinking dirty set, for which a
        larger downtime is predicted to fit (a step that costs nothing;
        the next pass refutes it)."""
        actions = self.log.actions()
        self.assertEqual(last_resort, actions[-1], actions)
        self.assertEqual([], [a for a in actions[:-1]
                              if a != ladder.SET_DOWNTIME], actions)
        self.assertIn('predicted: no downtime step fits',
                      self.log.steps()[-1])


class DefaultPolicyTest(_ConvergenceTest):

    def test_converges_within_its_deadline(self):
        result = self.migrate_dirty_guest()
        self.assert_completed(result)
        steps = self.log.steps()
        # Before its deadline: no step was forced by it.
        self.assertEqual([], [s for s in steps if 'deadline' in s])
        # And not by luck: the policy acted, through a rung of the ladder
        # or QEMU's CPU throttle (which stock Nova does not start).
        self.assertTrue(
            steps or self.nova.stats.peak_throttle('dirty'),
            'converged without a step and without throttling')
        # Of Nova's data size: 256 MiB of RAM counts as 2 GiB.
        self.addDetail('deadline', text_content('%d s' % ladder.deadline(
            policies.BUILTIN['minimal-downtime'], 2 * 2 ** 30)))


class PostCopyPolicyTest(_ConvergenceTest):
    POLICY = 'post-copy'

    def test_completes_through_post_copy(self):
        self.assert_completed(self.migrate_dirty_guest())
        self.assertIn(ladder.POST_COPY, self.log.actions())


class SuspendWorkloadPolicyTest(_ConvergenceTest):
    """suspend-workload's last resort, the pause (auto-converge off: on a
    machine that leaves the throttled guest little vCPU, the throttle alone
    would finish the migration before the pause is needed)."""

    POLICY = 'batch'
    CONVERGENCE_OPTIONS = {'custom_policies': [
        'batch:suspend-workload,auto_converge=false']}

    def test_completes_with_a_pause(self):
        self.assert_completed(self.migrate_dirty_guest())
        # Predicted from the probe and the second pass: none of the
        # downtime steps fits the guest's dirty set.
        self.assert_predicted_last_resort(ladder.PAUSE)


class CustomPreCopyOnlyPolicyTest(_ConvergenceTest):
    """A custom policy (from nova.conf) on pre-copy-only, without
    auto-converge: nothing may finish the migration but the downtime
    steps, so it is aborted and the guest stays on its source."""

    POLICY = 'never-split'
    CONVERGENCE_OPTIONS = {'custom_policies': [
        'never-split:pre-copy-only,auto_converge=false,'
        'downtime_steps_ms=500/1000']}

    def test_ends_in_a_clean_abort(self):
        self.assert_aborted_cleanly(self.migrate_dirty_guest())
        # Neither downtime step fits; the abort, which fails the
        # migration, waits for a pass to confirm what the probe measured.
        self.assert_predicted_last_resort(ladder.ABORT)


@testtools.skipUnless(os.environ.get('NMG_RECORD_TRACES'),
                      'recorded by tools/record-traces.sh PredictorTraceTest')
class PredictorTraceTest(_ConvergenceTest):
    """Migrations under the default policy recorded as traces for the
    predictor's unit tests (tests/unit/convergence/test_predictor.py
    replays them through the ladder and asserts its decisions): a guest
    whose writes the throttle cannot slow below the stream, and one that
    stops writing early in the first pass.  (A guest the throttle slows
    enough is not recorded yet: under TCG here the vCPU-bound writer's
    rate depends on the machine's load.)  They run only
    while recording (``tools/record-traces.sh PredictorTraceTest``): what
    each guest dirties depends on the machine's CPU, so the decisions are
    asserted on the recordings; the default policy on the real guest runs
    in DefaultPolicyTest."""

    def test_throttle_not_enough(self):
        """The real tier's guest (128 MiB at 30 MiB/s, twice the stream):
        under TCG the throttle slows its capped writes far less than in
        proportion."""
        self.assert_completed(self.migrate_dirty_guest())

    def test_guest_calms_down(self):
        """The same guest stops writing a second or two into the
        migration's first pass (SETTLED_HEARTBEAT + 1 s after its writer
        started, after the heartbeat the migration waits for): the second
        pass starts with less than the working set, the third with
        almost nothing."""
        self.assert_completed(self.migrate_dirty_guest(**dict(
            nova_driver.DIRTY_TWICE_THE_CAP,
            dirty_for=SETTLED_HEARTBEAT + 1)))
