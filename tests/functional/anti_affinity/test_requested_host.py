"""Moves to a named host that breaks the group: 409 naming the group, the
instance untouched (and, stock, what Nova did instead)."""

from testtools import content

from tests.functional import base


class _RequestedHost(base.EmbeddedCloudTestCase):
    NUMBER_OF_COMPUTES = 3

    def setUp(self):
        super().setUp()
        self.group = self.create_anti_affinity_group('named-host')
        self.vm1 = self.boot_server(group=self.group, name='vm1',
                                    host='host1')
        self.vm2 = self.boot_server(group=self.group, name='vm2',
                                    host='host2')


class GuardedRequestedHostTestCase(_RequestedHost):
    GUARDS = ('anti_affinity',)

    def _assert_refused(self, response):
        self.assertEqual(409, response.status, response.body)
        message = response.body['conflictingRequest']['message']
        self.assertIn(self.group['id'], message)
        self.assertIn('host2', message)
        server = self.admin_api.get_server(self.vm1['id'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([], self.migrations(self.vm1))

    def test_forced_live_migration_onto_member_host(self):
        self._assert_refused(self.live_migrate(
            self.vm1, host='host2', force=True, expected=None))

    def test_live_migration_to_member_host(self):
        self._assert_refused(self.live_migrate(
            self.vm1, host='host2', expected=None))

    def test_cold_migration_to_member_host(self):
        self._assert_refused(self.cold_migrate(
            self.vm1, host='host2', expected=None))

    def test_free_host_accepted(self):
        self.live_migrate(self.vm1, host='host3', force=True)
        self.wait_for_migration(self.vm1)
        self.assertEqual('host3', self.server_host(self.vm1))

    def test_in_flight_destination_counts(self):
        """host3 is the destination of vm2's live migration, still running
        (the fake driver holds it for up to 5 s): vm2's instance.host is
        still host2, yet a forced move of vm1 to host3 is refused."""
        self.live_migrate(self.vm2, host='host3', force=True)
        self.wait_for_migration(self.vm2, statuses=('running',))
        response = self.live_migrate(self.vm1, host='host3', force=True,
                                     expected=None)
        self.assertEqual(409, response.status)
        self.assertIn('in-flight moves', response.body[
            'conflictingRequest']['message'])
        self.assertEqual('host2', self.server_host(self.vm2))
        self.wait_for_migration(self.vm2)
        self.assertEqual('host3', self.server_host(self.vm2))
        self.assertEqual('host1', self.server_host(self.vm1))


class StockRequestedHostTestCase(_RequestedHost):
    """Stock Nova accepts the forced move (202), and its late check on the
    destination fails it there: vm1 in ERROR, migration ``error`` (the
    demo's forced-host-live-migration row in README.rst)."""

    def test_forced_live_migration_onto_member_host(self):
        response = self.live_migrate(self.vm1, host='host2', force=True,
                                     expected=None)
        self.assertEqual(202, response.status)
        record = self.wait_for_migration(
            self.vm1, statuses=('completed', 'error', 'failed'))
        server = self.wait_until_settled(self.vm1)
        self.addDetail('stock outcome', content.text_content(
            'migration %s, vm1 %s on %s' % (
                record['status'], server['status'],
                server['OS-EXT-SRV-ATTR:host'])))
        self.assertEqual('error', record['status'])
        self.assertEqual('ERROR', server['status'])
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assertNotIn('Refusing', self.stdlog.logger.output)


class AuditModeTestCase(_RequestedHost):
    """mode = audit: the guard only logs what it would refuse."""
    GUARDS = ('anti_affinity',)

    def test_forced_move_logged_not_refused(self):
        self.flags(mode='audit', group='migration_guard_anti_affinity')
        response = self.live_migrate(self.vm1, host='host2', force=True,
                                     expected=None)
        self.assertEqual(202, response.status)
        self.wait_for_migration(self.vm1,
                                statuses=('completed', 'error', 'failed'))
        log = self.stdlog.logger.output
        self.assertIn('Audit: would refuse live_migration of instance %s '
                      'to host2' % self.vm1['id'], log)
        self.assertIn(self.group['id'], log)
        self.assertNotIn('Refusing', log)
