"""A nova-compute that dies while libvirt finishes a live migration
(G4), then restarts (see base.py for what is stubbed).

The source's nova-compute "dies" mid-migration: its migration monitor is
replaced by one that never sees the end (as if the process were gone),
while the fake libvirt completes the switch-over, as the real libvirtd
does without nova-compute.  Then a compute service restarts, through
Nova's own restart of the test harness (a new ComputeManager on the same
hypervisor).

Stock Nova 34 (the Stock* twins): the source's restart resets the task
state and keeps ``host`` on the source; finding the source's domain shut
off it soon stops the instance, and a user's start runs a second copy
while the first still runs on the destination.  A destination restart
leaves the instance MIGRATING on the source for good.
"""

import threading
import time

import fixtures
from nova.compute import manager as manager_module
from nova import context as nova_context
from nova import objects
from nova.virt import event as virtevent
from testtools.content import text_content

from nova_migration_guard.migration_outcome import recovery
from tests.functional.migration_outcome import base

RUNNING = base.fakelibvirt.VIR_DOMAIN_RUNNING
PAUSED = base.fakelibvirt.VIR_DOMAIN_PAUSED


class _RestartScenarios(object):

    def setUp(self):
        super().setUp()
        self.libvirt = self.fail_at('hang')
        died = threading.Event()
        self.addCleanup(died.set)
        driver = self.computes[self.src].driver
        # The source nova-compute dies: its monitor never sees the end.

        def dead_monitor(*args, **kwargs):
            died.wait(120)
            raise base.ComputeDied()
        driver._live_migration_monitor = dead_monitor
        self.start_live_migration()
        self.assertTrue(self.libvirt.entered.wait(30))
        self._wait_for_migration_status(self.server, ['running'])
        self.died = died

    def source_dies_after_switch_over(self, undefine_source):
        self.libvirt.switch_over(undefine_source=undefine_source)
        self.died.set()
        self.libvirt.release.set()

    def source_dies_mid_copy(self):
        self.died.set()

    def assert_allocations_only_on(self, host):
        allocations = self._get_allocations_by_server_uuid(self.server['id'])
        self.assertEqual([self.compute_rp_uuids[host]], list(allocations))

    def sync_power_states(self, host):
        """Nova's _sync_power_states periodic task on ``host``, run in the
        test's thread: each instance of the host, queried and synced."""
        manager = self.computes[host].manager
        ctxt = nova_context.get_admin_context()
        for instance in objects.InstanceList.get_by_host(ctxt, host):
            manager._query_driver_power_state_and_sync(ctxt, instance)

    def server_and_migration(self, statuses=('running', 'completed',
                                             'error', 'failed')):
        migration = self._wait_for_migration_status(self.server,
                                                    list(statuses))
        server = self.api.get_server(self.server['id'])
        self.addDetail('outcome', text_content(
            self.outcome(server, migration)))
        return server, migration


class GuardedRestartTest(_RestartScenarios, base.LateFailureTestCase):

    def test_source_restart(self):
        self.source_dies_after_switch_over(undefine_source=False)
        self.restart_compute_service(self.src)
        self.sync_power_states(self.src)
        server, migration = self.server_and_migration()
        self.assertEqual('completed', migration['status'])
        self.assertEqual(self.dest, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        self.assertEqual(1, server['OS-EXT-STS:power_state'])
        self.assertEqual([self.dest], self.running_on())

    def test_source_restart_while_the_job_runs(self):
        self.source_dies_mid_copy()
        self.restart_compute_service(self.src)
        server, migration = self.server_and_migration()
        # The job was aborted and the move rolled back, resources too.
        self.assertTrue(self.libvirt.aborted.is_set())
        self.assertEqual('failed', migration['status'])
        self.assertEqual(self.src, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        self.assertEqual([self.src], self.running_on())
        self.assert_allocations_only_on(self.src)

    def test_destination_restart_with_the_source_down(self):
        self.source_dies_after_switch_over(undefine_source=True)
        self.stop_compute(self.src)
        self.restart_compute_service(self.dest)
        server, migration = self.server_and_migration(['completed'])
        self.assert_allocations_only_on(self.dest)
        self.assertEqual(self.dest, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        self.assertEqual([self.dest], self.running_on())

    def test_both_ends_restart_and_only_one_recovers(self):
        # The destination restarts while the source is down and starts to
        # complete the move; the source comes back before it is done and
        # finds the migration still under way.  Without one lock per
        # migration both ends completed it: the destination's
        # post-migration step ran twice.
        self.source_dies_after_switch_over(undefine_source=True)
        self.stop_compute(self.src)
        calls, first_entered, release = [], threading.Event(), (
            threading.Event())
        post_at_dest = manager_module.ComputeManager.\
            post_live_migration_at_destination

        def counted_post(manager, *args, **kwargs):
            calls.append(manager.host)
            if len(calls) == 1:
                first_entered.set()
                release.wait(60)
            return post_at_dest(manager, *args, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.compute.manager.ComputeManager.'
            'post_live_migration_at_destination', counted_post))
        self.restart_compute_service(self.dest)
        self.assertTrue(first_entered.wait(30))
        # The source restarts while the destination's step is under way;
        # the step ends one second after the source's recovery began
        # (with the lock, the source waits for it).
        source_recovering = threading.Event()
        recover = recovery._recover_locked

        def watched_recover(*args, **kwargs):
            source_recovering.set()
            return recover(*args, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_migration_guard.migration_outcome.recovery.'
            '_recover_locked', watched_recover))
        threading.Timer(0, lambda: (source_recovering.wait(30),
                                    time.sleep(1), release.set())).start()
        self.addCleanup(release.set)
        self.set_forced_down(self.src, False)
        self.restart_compute_service(self.src)
        release.set()
        server, migration = self.server_and_migration(['completed'])
        self.assertEqual([self.dest], calls)
        self.assert_allocations_only_on(self.dest)
        self.assertEqual(self.dest, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        self.assertEqual([self.dest], self.running_on())

    def source_dies_during_post_copy(self):
        self.libvirt.start_post_copy()
        self.died.set()

    def test_source_restart_during_post_copy(self):
        """libvirt refuses to abort a post-copy job, and it ends by
        itself meanwhile: the verdict waits for it (here the switch-over
        completes once the restart's abort was refused), then completes
        the move.  Nothing was torn down while post-copy ran."""
        self.source_dies_during_post_copy()

        def post_copy_ends():
            if self.libvirt.abort_refused.wait(60):
                self.libvirt.switch_over()
                self.libvirt.release.set()
        ending = threading.Thread(target=post_copy_ends, daemon=True)
        ending.start()
        self.restart_compute_service(self.src)
        ending.join(60)
        server, migration = self.server_and_migration(['completed'])
        self.assertEqual(self.dest, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertFalse(server['locked'])
        self.assertEqual([self.dest], self.running_on())

    def test_source_restart_during_post_copy_that_lasts(self):
        """Post-copy still runs when in_flight_timeout passes: the
        instance is held, and both halves are left as they are."""
        self.flags(in_flight_timeout=1,
                   group='migration_guard_migration_outcome')
        self.source_dies_during_post_copy()
        halves = self.guest_states()
        self.restart_compute_service(self.src)
        server, migration = self.server_and_migration(['error'])
        server = self._wait_for_state_change(self.server, 'ERROR')
        self.assertTrue(server['locked'])
        self.assertIn('still in flight after 1 s', server['locked_reason'])
        self.assertIn('post-copy still runs', server['locked_reason'])
        self.assertEqual(self.src, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(halves, self.guest_states())
        self.assertEqual({
            self.src: (PAUSED, base.reconcile.PAUSED_POSTCOPY),
            self.dest: (RUNNING, base.reconcile.RUNNING_POSTCOPY)}, halves)

    def test_destination_restart_during_post_copy_with_the_source_down(self):
        """The destination finishes a move whose source compute is down
        only once libvirt has: while post-copy still pulls memory from the
        source, and past in_flight_timeout, the instance is held."""
        self.flags(in_flight_timeout=1,
                   group='migration_guard_migration_outcome')
        self.source_dies_during_post_copy()
        halves = self.guest_states()
        self.stop_compute(self.src)
        self.restart_compute_service(self.dest)
        server = self._wait_for_state_change(self.server, 'ERROR')
        migration = self._wait_for_migration_status(self.server, ['error'])
        self.addDetail('outcome', text_content(
            self.outcome(server, migration)))
        self.assertTrue(server['locked'])
        self.assertIn('post-copy still runs', server['locked_reason'])
        self.assertEqual(self.src, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(halves, self.guest_states())

    def test_failed_incoming_copy_after_a_destination_restart(self):
        """The restarted destination knows the live migration coming in
        from its record: its incoming copy's STOPPED/FAILED (libvirt's
        event when that copy is dropped, as when a QEMU dies) is not
        passed to the compute manager as a power-off.  Stubbed: the event
        is handed to the driver as Nova's libvirt Host would."""
        self.restart_compute_service(self.dest)
        handled = []
        manager = self.computes[self.dest].manager
        real = manager.handle_lifecycle_event
        manager.handle_lifecycle_event = lambda event: (
            handled.append(event), real(event))
        self.computes[self.dest].driver.emit_event(virtevent.LifecycleEvent(
            self.server['id'], virtevent.EVENT_LIFECYCLE_STOPPED,
            detail=(5, 5)))  # VIR_DOMAIN_EVENT_STOPPED, _STOPPED_FAILED
        self.assertEqual([], handled)

    def test_destination_restart_with_the_source_up(self):
        # The source's compute is up: its own monitor (or restart) ends
        # the migration, so the destination does not step in.
        self.source_dies_after_switch_over(undefine_source=True)
        self.restart_compute_service(self.dest)
        server, migration = self.server_and_migration()
        self.assertEqual('running', migration['status'])
        self.assertEqual('migrating', server['OS-EXT-STS:task_state'])


class GuardedRestartOnAMigrationNetworkTest(_RestartScenarios,
                                            base.LateFailureTestCase):
    """The destination's ``[libvirt] live_migration_inbound_addr`` names
    a migration network, the only one on which libvirt listens.  The
    restarted source must ask the destination's libvirt where Nova's
    driver sent the guest (the flight record's ``target_connect_addr``),
    not at the destination's host name, which it cannot reach: asked
    there, it cannot tell where the guest runs and holds the instance."""

    DEST_INBOUND_ADDRESS = 'dest.migration.example'

    def test_source_restart(self):
        self.source_dies_after_switch_over(undefine_source=False)
        self.restart_compute_service(self.src)
        server, migration = self.server_and_migration()
        self.assertEqual('completed', migration['status'])
        self.assertEqual(self.dest, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertFalse(server['locked'])
        self.assertEqual([self.dest], self.running_on())


class StockRestartTest(_RestartScenarios, base.LateFailureTestCase):
    GUARDED = False

    def test_source_restart(self):
        self.source_dies_after_switch_over(undefine_source=False)
        self.restart_compute_service(self.src)
        self.sync_power_states(self.src)
        server = self._wait_for_state_change(self.server, 'SHUTOFF')
        migration = self._wait_for_migration_status(self.server, ['error'])
        self.addDetail('outcome', text_content(
            self.outcome(server, migration)))
        # Nova believes the guest is off, on the source; it runs on the
        # destination.
        self.assertEqual(self.src, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([self.dest], self.running_on())
        # The user starts it: a second copy.
        self.api.post_server_action(self.server['id'], {'os-start': None})
        self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertEqual([self.dest, self.src], self.running_on())

    def test_source_restart_while_the_job_runs(self):
        self.source_dies_mid_copy()
        self.restart_compute_service(self.src)
        server, migration = self.server_and_migration()
        # Nova aborts the job and resets the task state; the migration is
        # 'error' and the instance keeps its allocation on the
        # destination, where it does not run.
        self.assertTrue(self.libvirt.aborted.is_set())
        self.assertEqual('error', migration['status'])
        self.assertEqual(self.src, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual([self.src], self.running_on())
        allocations = self._get_allocations_by_server_uuid(self.server['id'])
        self.assertEqual([self.compute_rp_uuids[self.dest]],
                         list(allocations))

    def test_destination_restart_with_the_source_down(self):
        self.source_dies_after_switch_over(undefine_source=True)
        self.stop_compute(self.src)
        self.restart_compute_service(self.dest)
        server, migration = self.server_and_migration()
        # Stuck: MIGRATING on the source, which is down, for good.
        self.assertEqual('running', migration['status'])
        self.assertEqual(self.src, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('migrating', server['OS-EXT-STS:task_state'])
        self.assertEqual([self.dest], self.running_on())
