"""The lock backend goes down: the guard refuses moves clearly (fail
closed) and leaves nothing stuck in MIGRATING; with proceed_unlocked the
moves go on as in stock Nova.  Real redis, started and stopped by the
test."""

from tests.fixtures import servers
from tests.functional import base


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


class FailClosedTestCase(_BackendDown):
    ON_FAILURE = 'fail_closed'

    def test_moves_refused_while_down_work_again_after(self):
        # With the backend up, a move goes through the lock.
        self.live_migrate(self.vm1)
        self.wait_for_migration(self.vm1)
        self.assertEqual('host3', self.server_host(self.vm1))

        self.redis.stop()
        self.live_migrate(self.vm2)
        record = self.wait_for_migration(self.vm2,
                                         statuses=('error', 'failed'))
        server = self.wait_for_server_state(self.vm2, 'ACTIVE',
                                            task_state=None)
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        self.assertIn(record['status'], ('error', 'failed'))
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
