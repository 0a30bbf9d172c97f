"""A hot standby that is stopped while it waits for its identity lease
does not start: single_writer.take() refuses when acquire() gives up.

Real leases on the file:// backend (a temporary directory); the holder is
a lease of another Coordinator, the standby waits in take() with the
process's own Coordinator, whose stop() (service stop) ends the wait.  The
service is a minimal object with host, start() and stop(): take() uses
nothing else, and the wait happens before Nova's service starts.
"""

import threading

import fixtures
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslotest import base

from nova_migration_guard import conf as mg_conf
from nova_migration_guard import coordination
from nova_migration_guard.host_identity import single_writer


class _Service:
    host = 'host1'
    started = False

    def start(self):
        self.started = True

    def stop(self):
        pass


class StoppedStandbyTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        url = 'file://' + self.useFixture(fixtures.TempDir()).path
        mg_conf.ensure_state_path(cfg.CONF)
        config = self.useFixture(config_fixture.Config(mg_conf.CONF))
        config.config(group='migration_guard_coordination', backend_url=url)
        config.config(group='migration_guard_host_identity',
                      on_duplicate='standby')
        coordination.reset()
        self.addCleanup(coordination.reset)
        self.logs = self.useFixture(fixtures.FakeLogger(
            name='nova_migration_guard', level='INFO'))

    def test_stopped_standby_does_not_start(self):
        holder = coordination.Coordinator(member_id='holder').lease(
            single_writer.lease_name('host1'))
        holder.acquire()
        self.addCleanup(holder.release)
        service = _Service()
        outcome = []

        def standby():
            try:
                outcome.append(single_writer.take(service))
            except single_writer.IdentityInUse as exc:
                outcome.append(exc)

        thread = threading.Thread(target=standby, daemon=True)
        thread.start()
        while 'waiting as a hot standby' not in self.logs.output:
            self.assertTrue(thread.is_alive(), outcome)
            thread.join(0.05)
        coordination.get_coordinator().stop()  # the service stops
        thread.join(30)
        self.assertFalse(thread.is_alive())
        self.assertEqual(1, len(outcome))
        self.assertIsInstance(outcome[0], single_writer.IdentityInUse)
        self.assertIn('nova-compute with [DEFAULT] host = host1 was stopped '
                      'while it waited as a hot standby for its identity '
                      'lease compute.host1: it does not start.',
                      str(outcome[0]))
        self.assertFalse(service.started)
        self.assertTrue(holder.held)
