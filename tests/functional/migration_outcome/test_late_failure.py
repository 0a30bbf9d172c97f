"""A live migration that fails late, at each step libvirt can fail, with
the guarded driver and with stock Nova (see base.py for what is
stubbed).  Every test asserts where the guest runs, and that the
instance's host, status and the migration status agree with it.  The
guarded driver ends each the same on every release.

Stock Nova (recorded by the Stock* twins) differs by release
(nova_compat.migrate_error_raised()).  From 32.2 on, the driver re-raises
the migrate call's error (G3), so every one of these ends in ERROR, even
the migration that completed.  On 31.x (and 32.0, 32.1) the error is
dropped: the instance is left ACTIVE where Nova's monitor ended the
migration, even after a post-copy failure (neither half runs) or with a
copy running on both hosts.
"""

import time

from nova.tests.functional.api import client
from testtools.content import text_content

from nova_migration_guard import nova_compat
from tests.functional.migration_outcome import base

RUNNING = base.fakelibvirt.VIR_DOMAIN_RUNNING
PAUSED = base.fakelibvirt.VIR_DOMAIN_PAUSED


class _Scenarios(object):

    def migrate_failing_at(self, step):
        libvirt = self.fail_at(step)
        self.start_live_migration()
        server, migration = self.wait_for_end()
        self.assertEqual(1, libvirt.calls)
        self.addDetail('outcome', text_content(
            self.outcome(server, migration)))
        return server, migration

    def abort_by_the_completion_timeout(self, step):
        self.flags(live_migration_completion_timeout=1,
                   live_migration_timeout_action='abort', group='libvirt')
        return self.migrate_failing_at(step)

    def assert_active_on(self, server, host):
        self.assertEqual(host, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        self.assertEqual(1, server['OS-EXT-STS:power_state'])
        self.assertEqual([host], self.running_on())
        self.assertEqual([host], list(self.guest_states()))

    def assert_held(self, server, migration, reason, guests):
        # ERROR, and the fault recorded right after it.
        server = self._wait_for_state_change(self.server, 'ERROR')
        self.assertEqual('error', migration['status'])
        self.assertTrue(server['locked'])
        self.assertIn('nova-migration-guard', server['locked_reason'])
        self.assertIn(reason, server['fault']['message'])
        # Nothing was torn down on either host.
        self.assertEqual(guests, self.guest_states())
        # Nobody, not even an admin, can start a second copy.
        for action in ({'reboot': {'type': 'HARD'}},
                       {'rebuild': {'imageRef': server['image']['id']}}):
            error = self.assertRaises(
                client.OpenStackApiException,
                self.admin_api.post_server_action, self.server['id'], action)
            self.assertEqual(409, error.response.status_code)
            self.assertIn('location is uncertain', error.response.text)
            self.assertIn(reason, error.response.text)
        self.assertEqual(guests, self.guest_states())


class GuardedLateFailureTest(_Scenarios, base.LateFailureTestCase):

    def test_refused_before_the_job_started(self):
        server, migration = self.migrate_failing_at('refused')
        self.assert_active_on(server, self.src)
        self.assertEqual('failed', migration['status'])

    def test_job_failed(self):
        server, migration = self.migrate_failing_at('job-failed')
        self.assert_active_on(server, self.src)
        self.assertEqual('failed', migration['status'])

    def test_cancelled_by_the_completion_timeout(self):
        server, migration = self.abort_by_the_completion_timeout(
            'wait-abort')
        self.assert_active_on(server, self.src)
        self.assertEqual('cancelled', migration['status'])

    def test_cancelled_unseen_by_the_monitor(self):
        # Nova's monitor polls after libvirt's job left CANCELLED: it
        # calls the migration failed, the migrate call's error says
        # aborted.
        server, migration = self.abort_by_the_completion_timeout(
            'wait-abort-unseen')
        self.assert_active_on(server, self.src)
        self.assertEqual('cancelled', migration['status'])

    def test_raised_after_the_migration_completed(self):
        server, migration = self.migrate_failing_at('completed-then-raise')
        self.assert_active_on(server, self.dest)
        self.assertEqual('completed', migration['status'])

    def test_postcopy_failed(self):
        server, migration = self.migrate_failing_at('postcopy-failed')
        paused = (PAUSED, base.reconcile.PAUSED_POSTCOPY_FAILED)
        self.assert_held(server, migration, 'post-copy',
                         {self.src: paused, self.dest: paused})

    def test_running_on_both_hosts(self):
        server, migration = self.migrate_failing_at('both-running')
        self.assert_held(server, migration, 'running on both hosts', {
            self.src: (RUNNING, 0),
            self.dest: (RUNNING, base.reconcile.RUNNING_MIGRATED)})
        # An operator who has checked both hosts releases the hold.
        self.admin_api.post_server_action(self.server['id'],
                                          {'unlock': None})
        self.admin_api.post_server_action(self.server['id'],
                                          {'reboot': {'type': 'HARD'}})


class StockLateFailureTest(_Scenarios, base.LateFailureTestCase):
    """What stock Nova does with the same failures (plugin disabled)."""
    GUARDED = False

    def assert_stock_error(self, server, migration, host, dropped):
        """ERROR on ``host`` where stock re-raises the migrate call's
        error; where it drops it, as Nova's monitor ended the migration:
        ACTIVE on ``host``, the migration ``dropped``."""
        if not nova_compat.migrate_error_raised():
            self.assertEqual(host, server['OS-EXT-SRV-ATTR:host'])
            self.assertEqual('ACTIVE', server['status'])
            self.assertEqual(dropped, migration['status'])
            self.assertFalse(server['locked'])
            return
        server = self.wait_for_error_without_fault()
        self.assertEqual(host, server['OS-EXT-SRV-ATTR:host'])
        # After a completed migration the record is 'completed' for a
        # moment before Nova's error handling makes it 'error'.
        self._wait_for_migration_status(self.server, ['error'])
        self.assertFalse(server['locked'])

    def wait_for_error_without_fault(self, timeout=60):
        # No fault: Nova runs the migration outside the method that would
        # record one (Nova's _wait_for_state_change waits for one).
        deadline = time.monotonic() + timeout
        server = self.api.get_server(self.server['id'])
        while server['status'] != 'ERROR' and time.monotonic() < deadline:
            time.sleep(0.25)
            server = self.api.get_server(self.server['id'])
        self.assertEqual('ERROR', server['status'])
        return server

    def test_refused_before_the_job_started(self):
        server, migration = self.migrate_failing_at('refused')
        self.assert_stock_error(server, migration, self.src, 'failed')
        self.assertEqual([self.src], self.running_on())

    def test_job_failed(self):
        server, migration = self.migrate_failing_at('job-failed')
        self.assert_stock_error(server, migration, self.src, 'failed')
        self.assertEqual([self.src], self.running_on())

    def test_cancelled_by_the_completion_timeout(self):
        server, migration = self.abort_by_the_completion_timeout(
            'wait-abort')
        self.assert_stock_error(server, migration, self.src,
                                'cancelled')
        self.assertEqual([self.src], self.running_on())

    def test_cancelled_unseen_by_the_monitor(self):
        server, migration = self.abort_by_the_completion_timeout(
            'wait-abort-unseen')
        self.assert_stock_error(server, migration, self.src, 'failed')
        self.assertEqual([self.src], self.running_on())

    def test_raised_after_the_migration_completed(self):
        server, migration = self.migrate_failing_at('completed-then-raise')
        # A guest that runs fine on the destination, in ERROR (where the
        # error is dropped: ACTIVE there, as it should be).
        self.assert_stock_error(server, migration, self.dest, 'completed')
        self.assertEqual([self.dest], self.running_on())

    def assert_second_copy_can_start(self):
        """Nothing stops a hard reboot, which starts the source's copy."""
        self.admin_api.post_server_action(self.server['id'],
                                          {'reboot': {'type': 'HARD'}})
        self._wait_for_server_parameter(
            self.server, {'OS-EXT-STS:task_state': None}, max_retries=50)

    def test_postcopy_failed(self):
        server, migration = self.migrate_failing_at('postcopy-failed')
        # Where the error is dropped, ACTIVE although neither half runs.
        self.assert_stock_error(server, migration, self.src, 'failed')
        # Both halves of the guest are kept (shared storage: no cleanup on
        # the destination), and the source's half can be started again.
        self.assertEqual([self.dest, self.src],
                         self.wait_for_guests_on([self.dest, self.src]))
        self.assert_second_copy_can_start()
        self.assertIn(self.src, self.running_on())

    def test_running_on_both_hosts(self):
        server, migration = self.migrate_failing_at('both-running')
        self.assert_stock_error(server, migration, self.src, 'failed')
        self.assert_second_copy_can_start()
        # Two running copies of one guest.
        self.assertEqual([self.dest, self.src], self.running_on())


class GuardedPausedLateFailureTest(_Scenarios, base.LateFailureTestCase):
    """A paused instance, whose live migration Nova allows, failing or
    aborted before the switch-over.  libvirt leaves the guest paused on
    its source (reason user, as real QEMU shows in tests/real_libvirt's
    GuardedPausedGuestAbortTest; the fake keeps no reason, so the test
    sets it).  Nova's own rollback applies: PAUSED on the source, no task
    state, the migration failed or cancelled, nothing held."""

    def setUp(self):
        super().setUp()
        self.api.post_server_action(self.server['id'], {'pause': None})
        self._wait_for_state_change(self.server, 'PAUSED')
        domain = self.computes[self.src].driver._host.get_connection(
        ).lookupByUUIDString(self.server['id'])
        self.paused_by_the_user = (PAUSED, 1)  # VIR_DOMAIN_PAUSED_USER
        base.set_state(domain, *self.paused_by_the_user)

    def assert_paused_on_source(self, server):
        self.assertEqual(self.src, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('PAUSED', server['status'])
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        self.assertEqual(3, server['OS-EXT-STS:power_state'])  # PAUSED
        self.assertFalse(server['locked'])
        self.assertEqual({self.src: self.paused_by_the_user},
                         self.guest_states())

    def test_refused_before_the_job_started(self):
        server, migration = self.migrate_failing_at('refused')
        self.assert_paused_on_source(server)
        self.assertEqual('failed', migration['status'])

    def test_job_failed(self):
        server, migration = self.migrate_failing_at('job-failed')
        self.assert_paused_on_source(server)
        self.assertEqual('failed', migration['status'])

    def test_cancelled_by_the_completion_timeout(self):
        server, migration = self.abort_by_the_completion_timeout(
            'wait-abort')
        self.assert_paused_on_source(server)
        self.assertEqual('cancelled', migration['status'])
