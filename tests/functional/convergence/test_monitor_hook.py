"""The convergence policy inside Nova's live migration monitor (patch
0011's live_migration_next_action hook point): Nova's real monitor loop of
the guarded driver, asking our hook at each sample.

Stubbed, and why: the guest's job statistics and the monitor's clock
(Nova's fake libvirt cannot migrate; a fake clock lets a deadline of
minutes pass in a few samples, and the test read what was decided, never
how long it took).  Nova's monitor, its data size count (a real sparse
disk file for the block migration), the hook dispatch and the policy are
real.  In tests/functional because the hook point is patch 0011's.
"""

import collections
from unittest import mock

import fixtures
from nova import objects
from nova import plugin_hooks
from nova import test
from nova.tests import fixtures as nova_fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.virt import fake
from nova.virt.libvirt import guest as libvirt_guest
from nova.virt.libvirt import migration as libvirt_migrate
from oslo_utils.fixture import uuidsentinel as uuids

from nova_migration_guard.convergence import in_force
from nova_migration_guard import hooks
from nova_migration_guard.virt.libvirt import convergence
from nova_migration_guard.virt.libvirt import driver as guarded

GIB = 2 ** 30
MIB = 2 ** 20


class _Clock(object):
    """The time module as Nova's monitor uses it: one second per sample
    (get_job_info), no real sleeping."""

    def __init__(self):
        self.now = 1000.0

    def time(self):
        return self.now

    def sleep(self, seconds):
        pass


class MonitorHookTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(nova_fixtures.LibvirtFixture())
        in_force.reset()
        self.addCleanup(in_force.reset)
        self.flags(guards=['convergence'], group='migration_guard')
        self.useFixture(fixtures.MockPatchObject(
            plugin_hooks, 'extensions',
            return_value=[hooks.MigrationGuardHooks()]))
        self.clock = _Clock()
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.driver.time', self.clock))
        self.useFixture(fixtures.MockPatchObject(objects.Migration, 'save'))
        self.useFixture(fixtures.MockPatchObject(objects.Instance, 'save'))
        self.drvr = guarded.GuardedLibvirtDriver(fake.FakeVirtAPI(), False)
        self.instance = objects.Instance(
            uuid=uuids.instance, vm_state='active', system_metadata={},
            flavor=objects.Flavor(memory_mb=256, extra_specs={}))
        self.useFixture(fixtures.MockPatchObject(
            self.drvr, '_get_vpmems', return_value=[]))
        self.migration = objects.Migration(id=1, status='running')
        self.guest = mock.Mock(spec=libvirt_guest.Guest)
        self.guest._domain = mock.Mock()
        self.guest._domain.jobStats.return_value = {}
        self.guest.abort_job.side_effect = self._aborted
        self.job = fakelibvirt.VIR_DOMAIN_JOB_UNBOUNDED
        self.guest.get_job_info.side_effect = self._job_info
        self.steps = []
        self.useFixture(fixtures.MockPatch(
            'nova_migration_guard.convergence.record.record',
            side_effect=lambda ctx, inst, mig, policy, step, *a:
            self.steps.append(step)))

    def _aborted(self):
        self.job = fakelibvirt.VIR_DOMAIN_JOB_CANCELLED

    def _job_info(self):
        # One long pass, still copying: neither converging nor stalled, so
        # that only the deadline can end it.
        self.clock.now += 1
        return libvirt_guest.JobInfo(
            type=self.job, memory_iteration=1, memory_total=256 * MIB,
            memory_remaining=200 * MIB, memory_bps=15 * MIB)

    def use_policy(self, spec):
        self.flags(default_policy=spec.partition(':')[0],
                   custom_policies=[spec],
                   group='migration_guard_convergence')

    def monitor(self, disk_paths=(), block_migration=False):
        self.drvr.active_migrations[self.instance.uuid] = (
            collections.deque())
        convergence.begin(self.instance, 'dest',
                          self.drvr._post_copy_possible(self.instance))
        self.addCleanup(convergence.end, self.instance)
        recover = mock.Mock()
        self.drvr._live_migration_monitor(
            None, self.instance, self.guest, 'dest', mock.Mock(), recover,
            block_migration, objects.LibvirtLiveMigrateData(
                migration=self.migration, block_migration=block_migration),
            mock.Mock(done=mock.Mock(return_value=False)), list(disk_paths))
        return recover

    def ask_hook(self):
        """The plugin's answer at one sample, as Nova's monitor asks it."""
        return hooks.MigrationGuardHooks().live_migration_next_action(
            context=None, instance=self.instance, guest=self.guest,
            migration=self.migration, info=self._job_info(), elapsed=1,
            data_gb=2.0, is_post_copy_enabled=False)

    def test_deadline_counts_the_disk_of_a_block_migration(self):
        # 1 s per GiB: 2 s for the RAM (Nova counts at least 2 GiB), 12 s
        # with a 10 GiB disk.
        self.use_policy('quick:pre-copy-only,seconds_per_gib=1')
        disk = self.useFixture(fixtures.TempDir()).join('disk')
        with open(disk, 'wb') as f:
            f.truncate(10 * GIB)
        recover = self.monitor(disk_paths=[disk], block_migration=True)
        self.assertEqual([(convergence.ladder.ABORT, None)],
                         [(s.action, s.value) for s in self.steps])
        self.assertIn('deadline of 12 s passed', self.steps[0].reason)
        self.guest.abort_job.assert_called_once_with()
        self.assertEqual('cancelled',
                         recover.call_args[1]['migration_status'])

    def test_deadline_of_a_migration_without_disks(self):
        self.use_policy('quick:pre-copy-only,seconds_per_gib=1')
        self.monitor()
        self.assertIn('deadline of 2 s passed', self.steps[0].reason)

    def test_policy_downtime_replaces_nova_s_steps(self):
        self.use_policy('quick:pre-copy-only,seconds_per_gib=1,'
                        'downtime_steps_ms=700')
        self.monitor()
        # The policy's first step, set at the first sample, and no other.
        self.guest.migrate_configure_max_downtime.assert_called_once_with(
            700)

    def test_force_complete_switches_to_the_policy_s_post_copy(self):
        # Nova's own flags do not permit post-copy: the policy added it to
        # this migration's migrate call, and Nova's force-complete must
        # know it.
        self.use_policy('quick:post-copy,seconds_per_gib=1000')
        self.drvr.active_migrations[self.instance.uuid] = (
            collections.deque(['force-complete']))
        self.guest.migrate_start_postcopy.side_effect = self._aborted
        convergence.begin(self.instance, 'dest', True)
        self.addCleanup(convergence.end, self.instance)
        self.drvr._live_migration_monitor(
            None, self.instance, self.guest, 'dest', mock.Mock(),
            mock.Mock(), False, objects.LibvirtLiveMigrateData(
                migration=self.migration, block_migration=False),
            mock.Mock(done=mock.Mock(return_value=False)), [])
        self.guest.migrate_start_postcopy.assert_called_once_with()
        self.guest.pause.assert_not_called()
        self.assertEqual('running (post-copy)', self.migration.status)
        # Only during that monitor.
        self.assertFalse(self.drvr._is_post_copy_enabled(0))

    def test_not_ours_nova_decides(self):
        # A migration the guarded driver did not start under a policy.
        self.assertIsNone(self.ask_hook())

    def test_guard_disabled_nova_decides(self):
        self.flags(guards=[], group='migration_guard')
        convergence.begin(self.instance, 'dest', False)
        self.addCleanup(convergence.end, self.instance)
        self.assertIsNone(self.ask_hook())

    def test_a_failure_of_ours_lets_nova_decide(self):
        convergence.begin(self.instance, 'dest', False)
        self.addCleanup(convergence.end, self.instance)
        with mock.patch.object(convergence.Run, 'next_action',
                               side_effect=ValueError('bug')):
            self.assertIsNone(self.ask_hook())

    def test_answers_are_nova_s_monitor_actions(self):
        convergence.begin(self.instance, 'dest', False)
        self.addCleanup(convergence.end, self.instance)
        answer = self.ask_hook()
        self.assertIsInstance(answer, libvirt_migrate.MonitorAction)
        self.assertEqual(libvirt_migrate.MONITOR_SET_DOWNTIME, answer.name)
        for ours, nova in ((convergence.ladder.WAIT,
                            libvirt_migrate.MONITOR_WAIT),
                           (convergence.ladder.SET_DOWNTIME,
                            libvirt_migrate.MONITOR_SET_DOWNTIME),
                           (convergence.ladder.POST_COPY,
                            libvirt_migrate.MONITOR_POST_COPY),
                           (convergence.ladder.PAUSE,
                            libvirt_migrate.MONITOR_PAUSE),
                           (convergence.ladder.ABORT,
                            libvirt_migrate.MONITOR_ABORT)):
            self.assertEqual(nova, ours)
