"""The lock backend goes down: the guard refuses moves clearly (fail
closed) and leaves nothing stuck in MIGRATING; with proceed_unlocked the
moves go on as in stock Nova.  The lock expires while held: the move is
refused.  Real redis, started and stopped by the test."""

import fixtures

from nova_migration_guard.anti_affinity import late_check
from nova_migration_guard import conf as mg_conf
from nova_migration_guard import coordination
from tests.fixtures import servers
from tests.functional import base

#: tooz's lock TTL (seconds) in the lost-lock test: short, so that it runs
#: out within the test once the holder's heartbeats stop.
LOCK_TTL = 3


class _BackendDown(base.EmbeddedCloudTestCase):
    GUARDS = ('anti_affinity',)
    COMPUTE_DRIVER = 'fake.MediumFakeDriver'
    TRACK_INSTANCE_CHANGES = False
    ON_FAILURE = None

    def setUp(self):
        self.redis = servers.RedisServer()
        super().setUp()
        self.useFixture(self.redis)
        self.flags(backend_url=self.redis.url, acquire_timeout=2,
                   on_backend_failure=self.ON_FAILURE,
                   group='migration_guard_coordination')
        group = self.create_anti_affinity_group('backend-down')
        self.vm1 = self.boot_server(group=group, name='vm1', host='host1')
        self.vm2 = self.boot_server(group=group, name='vm2', host='host2')

    def assert_live_migration_refused(self, server, source):
        """Live-migrate ``server``: refused, it stays ACTIVE on its
        ``source``, no task, the migration failed."""
        self.live_migrate(server)
        self.wait_for_migration(server, statuses=('error', 'failed'))
        server = self.wait_for_server_state(server, 'ACTIVE',
                                            task_state=None)
        self.assertEqual(source, server['OS-EXT-SRV-ATTR:host'])


class FailClosedTestCase(_BackendDown):
    ON_FAILURE = 'fail_closed'

    def test_moves_refused_while_down_work_again_after(self):
        # With the backend up, a move goes through the lock.
        self.live_migrate(self.vm1)
        self.wait_for_migration(self.vm1)
        self.assertEqual('host3', self.server_host(self.vm1))

        self.redis.stop()
        self.assert_live_migration_refused(self.vm2, 'host2')
        self.assertIn('coordination backend', self.stdlog.logger.output)
        self.assertIn('is unavailable', self.stdlog.logger.output)

        self.redis.start()
        self.live_migrate(self.vm2)
        self.wait_for_migration(self.vm2)
        self.assertEqual('host1', self.server_host(self.vm2))


class ProceedUnlockedTestCase(_BackendDown):
    ON_FAILURE = 'proceed_unlocked'

    def test_moves_go_on_without_the_lock(self):
        self.redis.stop()
        self.live_migrate(self.vm1)
        self.wait_for_migration(self.vm1)
        server = self.wait_for_server_state(self.vm1, 'ACTIVE',
                                            task_state=None)
        self.assertEqual('host3', server['OS-EXT-SRV-ATTR:host'])
        self.assertIn('Running without lock', self.stdlog.logger.output)


class LockLostTestCase(_BackendDown):
    """The destination's lock runs out of TTL while it checks (its
    heartbeats stopped, as in a stalled nova-compute) and another service
    takes it meanwhile: the destination refuses the move rather than
    publish a claim decided under a lock it no longer holds."""
    ON_FAILURE = 'fail_closed'

    def test_move_refused_when_the_lock_was_lost(self):
        self.flags(backend_url='%s?lock_timeout=%d' % (self.redis.url,
                                                       LOCK_TTL),
                   group='migration_guard_coordination')
        other = coordination.Coordinator(mg_conf.CONF,
                                         member_id='another-service')
        self.addCleanup(other.stop)
        real_refusal = late_check._refusal

        def refusal_after_losing_the_lock(context, group, *args):
            coordination.get_coordinator()._session.driver.heart.stop()
            with other.lock(late_check.lock_name(group.uuid),
                            timeout=LOCK_TTL + 7):
                pass
            return real_refusal(context, group, *args)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_migration_guard.anti_affinity.late_check._refusal',
            refusal_after_losing_the_lock))

        self.assert_live_migration_refused(self.vm1, 'host1')
        self.assertIn("Refusing live_migration_check of instance %s to host3: "
                      "Lost lock 'migration-guard.server-group."
                      % self.vm1['id'], self.stdlog.logger.output)
