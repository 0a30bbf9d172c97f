"""How long the late check holds its server-group lock during a live
migration, on the embedded cloud.

A live migration's destination check calls the source compute over RPC
(``check_can_live_migrate_source``) and claims NUMA/PCI resources.  The
guard publishes the move (the migration record names this destination)
under the group lock and releases the lock before all that, so a slow or
hung source never makes the other members of the group wait, while the
published move still counts for every check that follows.  Here the
source check of one member is held on an event to stand in for a slow
source: nothing is stubbed, the event only delays Nova's own method.
"""

import threading

import fixtures
from nova.compute import manager as compute_manager
from nova import exception

from tests.functional import base

HOLD_SECONDS = 90


class LiveMigrationLockScopeTestCase(base.EmbeddedCloudTestCase):

    COMPUTE_DRIVER = 'fake.MediumFakeDriver'
    NUMBER_OF_COMPUTES = 4
    GUARDS = ('anti_affinity',)
    TRACK_INSTANCE_CHANGES = False

    def setUp(self):
        super().setUp()
        self.held_uuid = None
        self.source_check_entered = threading.Event()
        self.release_source_check = threading.Event()
        self.addCleanup(self.release_source_check.set)
        self.source_check_error = None
        real = compute_manager.ComputeManager.check_can_live_migrate_source

        def check_can_live_migrate_source(manager, ctxt, instance,
                                          *args, **kwargs):
            if instance.uuid == self.held_uuid:
                self.source_check_entered.set()
                self.release_source_check.wait(HOLD_SECONDS)
                if self.source_check_error is not None:
                    raise self.source_check_error
            return real(manager, ctxt, instance, *args, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.compute.manager.ComputeManager.'
            'check_can_live_migrate_source', check_can_live_migrate_source))

        group = self.create_anti_affinity_group('lock-scope')
        self.first, self.second = self.boot_servers_in_group(group, 2)
        self.free_hosts = sorted(
            {'host%d' % i for i in range(1, self.NUMBER_OF_COMPUTES + 1)} -
            {self.server_host(self.first), self.server_host(self.second)})

    def _hold_source_check_of(self, server, dest):
        """Live-migrate ``server`` to ``dest`` and wait until its
        destination check is waiting on the source."""
        self.held_uuid = server['id']
        self.live_migrate(server, host=dest)
        self.assertTrue(self.source_check_entered.wait(30),
                        'the source check of %s never started'
                        % server['id'])

    def test_other_member_moves_while_a_source_check_waits(self):
        origin = self.server_host(self.first)
        self._hold_source_check_of(self.first, self.free_hosts[0])

        # Before: the second member's destination check waited for the
        # group lock that the first one held across its source RPC.
        self.live_migrate(self.second, host=self.free_hosts[1])
        self.wait_for_migration(self.second, timeout=30)
        self.assertEqual(self.free_hosts[1], self.server_host(self.second))
        # ... while the first one still waits on its source.
        self.assertEqual(origin, self.server_host(self.first))
        self.assertFalse(self.release_source_check.is_set())

        self.release_source_check.set()
        self.wait_for_migration(self.first, timeout=30)
        self.assertEqual(self.free_hosts[0], self.server_host(self.first))
        self.assertEqual('ACTIVE', self.wait_until_settled(self.first)[
            'status'])

    def test_published_move_counts_until_its_check_fails(self):
        origin = self.server_host(self.first)
        dest = self.free_hosts[0]
        self._hold_source_check_of(self.first, dest)

        # The first member's move is published: a second member asked to
        # the same host is refused at once (nova-api's check counts it).
        answer = self.live_migrate(self.second, host=dest, expected=(409,))
        self.assertIn(self.first['id'], str(answer.body))

        # The source refuses the first move: its destination is withdrawn
        # and it stays where it was, ACTIVE, with no task.
        self.source_check_error = exception.MigrationPreCheckError(
            reason='source refused by the test')
        self.release_source_check.set()
        self.wait_for_migration(self.first, statuses=('error',), timeout=30)
        server = self.wait_until_settled(self.first)
        self.assertEqual(('ACTIVE', None, origin),
                         (server['status'], server['OS-EXT-STS:task_state'],
                          server['OS-EXT-SRV-ATTR:host']))

        # Withdrawn: the host is free for the second member now.
        self.live_migrate(self.second, host=dest)
        self.wait_for_migration(self.second, timeout=30)
        self.assertEqual(dest, self.server_host(self.second))
