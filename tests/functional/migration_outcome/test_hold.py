"""Which locks are the guard's holds (see base.py for what is stubbed).

A hold refuses, to admins too, every action that could run a second copy
of the guest.  Only a hold the guard itself set may do that: an owner can
lock their own server with any reason (microversion 2.73), including one
that reads like the guard's, and must not stop an operator's live
migration, evacuation or resize (a host drain).
"""

from unittest import mock

from nova import objects
from nova.tests.functional.api import client

from nova_migration_guard.migration_outcome import hold
from tests.functional.migration_outcome import base

LOOK_ALIKE = hold.REASON_PREFIX + 'do not move me'


class HoldTest(base.LateFailureTestCase):

    def setUp(self):
        super().setUp()
        # The server's owner: a non-admin user of the server's project.
        self.owner_api = self.api_fixture.api
        self.owner_api.microversion = '2.73'

    def owner_locks(self, reason):
        self.owner_api.post_server_action(
            self.server['id'], {'lock': {'locked_reason': reason}})
        server = self.admin_api.get_server(self.server['id'])
        self.assertTrue(server['locked'])
        self.assertEqual(reason, server['locked_reason'])

    def instance(self):
        return objects.Instance.get_by_uuid(
            self.ctxt, self.server['id'], expected_attrs=['system_metadata'])

    def guard_holds(self, reason):
        """The guard's hold, as the guarded driver and the restart
        recovery set it."""
        return hold.hold(self.ctxt, self.instance(), reason)

    def assert_live_migration_refused(self, reason):
        error = self.assertRaises(
            client.OpenStackApiException, self.start_live_migration)
        self.assertEqual(409, error.response.status_code)
        self.assertIn('location is uncertain', error.response.text)
        self.assertIn(reason, error.response.text)

    def live_migrate(self):
        """An admin's live migration to dest, which completes."""
        server, migration, _ = self.live_migrate_to_the_end()
        self.assertEqual('completed', migration['status'])
        self.assertEqual(self.dest, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])

    # ------------------------------------------- an owner's look-alike lock

    def test_owner_lock_does_not_refuse_live_migration(self):
        self.owner_locks(LOOK_ALIKE)
        self.live_migrate()

    def test_owner_lock_does_not_refuse_evacuation(self):
        self.owner_locks(LOOK_ALIKE)
        self.stop_compute(self.src)
        self.admin_api.post_server_action(self.server['id'],
                                          {'evacuate': {}})
        server = self._wait_for_server_parameter(
            self.server, {'OS-EXT-SRV-ATTR:host': self.dest,
                          'OS-EXT-STS:task_state': None}, max_retries=50)
        # Since microversion 2.95 an evacuated server arrives stopped.
        self.assertEqual('SHUTOFF', server['status'])
        self.assertTrue(server['locked'])

    def test_owner_lock_does_not_refuse_resize(self):
        flavor = self._create_flavor(memory_mb=1024, vcpu=2)
        with mock.patch('nova.virt.libvirt.driver.LibvirtDriver.'
                        'migrate_disk_and_power_off', return_value='{}'):
            self.owner_locks(LOOK_ALIKE)
            server = self._resize_server(self.server, flavor)
        self.assertEqual(self.dest, server['OS-EXT-SRV-ATTR:host'])
        self._confirm_resize(server)

    # --------------------------------------------------- the guard's hold

    def test_guard_hold_refuses_until_unlocked(self):
        reason = self.guard_holds('test: running on both hosts')
        self.assert_live_migration_refused(reason)
        self.assertEqual(reason, self.instance().system_metadata[
            hold.MARKER_KEY])
        # An operator releases the hold; the owner's lock with the very
        # same reason afterwards is the owner's lock, not a hold.
        self.admin_api.post_server_action(self.server['id'],
                                          {'unlock': None})
        self.owner_locks(reason)
        self.live_migrate()

    def test_operator_relock_after_release_is_no_hold(self):
        self.guard_holds('test: post-copy failed')
        self.admin_api.post_server_action(self.server['id'],
                                          {'unlock': None})
        self.admin_api.post_server_action(
            self.server['id'], {'lock': {'locked_reason': 'maintenance'}})
        self.live_migrate()

    def test_hold_of_an_earlier_release_still_refuses(self):
        """An earlier release marked a hold by its reason only (locked by
        an admin, reason with the prefix): such a hold, set before an
        upgrade, still refuses until an operator unlocks."""
        instance = self.instance()
        instance.locked = True
        instance.locked_by = 'admin'
        instance.system_metadata['locked_reason'] = (
            hold.REASON_PREFIX + 'held before the upgrade')
        instance.save()
        self.assert_live_migration_refused('held before the upgrade')
        self.admin_api.post_server_action(self.server['id'],
                                          {'unlock': None})
        self.live_migrate()
