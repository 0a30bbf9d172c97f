"""nova_migration_guard.coordination against real etcd, redis and ZooKeeper
servers.

Every test runs once per backend (testscenarios) and starts its own server
(tests/fixtures/servers.py), so an outage in one test cannot leak into
another.  Two Coordinator instances with different member ids stand for
two services.
"""

import logging
import threading
import time

import fixtures
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslotest import base
import testscenarios

from nova_migration_guard import conf as mg_conf
from nova_migration_guard import coordination
from tests.fixtures import servers

GROUP = 'migration_guard_coordination'

# Lock lease/TTL in the backend (tooz's lock_timeout URL option, 30 s by
# default; ZooKeeper's session timeout, its timeout option, 10 s).  Short,
# so that a lock orphaned by an outage expires within the test; tooz's heart
# renews held locks every TTL/2 (kazoo pings a ZooKeeper session every
# third of it).
LOCK_TTL = 3


class CoordinationBackendTest(testscenarios.WithScenarios,
                              base.BaseTestCase):

    scenarios = [
        # etcd3gw polls a held lock once a second (no watch), so contention
        # is slow there: fewer increments keep the test short.
        ('etcd', {'server_cls': servers.EtcdServer, 'increments': 10}),
        ('redis', {'server_cls': servers.RedisServer, 'increments': 40}),
        ('zookeeper', {'server_cls': servers.ZooKeeperServer,
                       'increments': 40}),
    ]

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.logs = self.useFixture(fixtures.FakeLogger(
            name='nova_migration_guard.coordination', level=logging.WARNING))
        self.server = self.useFixture(self.server_cls())
        self.url = self.server.ttl_url(LOCK_TTL)

    def coordinator(self, member_id, **overrides):
        conf = cfg.ConfigOpts()
        mg_conf.register_opts(conf)
        conf(args=[], default_config_files=[], default_config_dirs=[])
        config = self.useFixture(config_fixture.Config(conf))
        config.config(group=GROUP, backend_url=self.url, **overrides)
        coord = coordination.Coordinator(conf, member_id=member_id)
        self.addCleanup(coord.stop)
        return coord

    def stop_renewals(self, coord):
        """The backend stops hearing from ``coord``'s tooz coordinator, as
        from a stalled process: etcd and redis no longer get its lock's
        lease/TTL renewed by tooz's heart.  A ZooKeeper session is kept
        alive by kazoo's connection thread, which the test cannot stall in
        this process: the server ends the session as it does after the
        session timeout without a word from the client (stubbed: the
        silence; real: the server's expiry and what follows)."""
        driver = coord._session.driver
        if isinstance(self.server, servers.ZooKeeperServer):
            self.server.expire_session(driver._coord)
        else:
            driver.heart.stop()

    def run_threads(self, targets):
        threads = [threading.Thread(target=target) for target in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(50)
            self.assertFalse(thread.is_alive())

    def test_mutual_exclusion_between_services(self):
        services = [self.coordinator('service-a'),
                    self.coordinator('service-b')]
        state = {'counter': 0, 'inside': 0, 'overlaps': 0}
        errors = []

        def worker(coord):
            try:
                for _ in range(self.increments):
                    with coord.lock('counter', timeout=40):
                        state['inside'] += 1
                        if state['inside'] != 1:
                            state['overlaps'] += 1
                        # Non-atomic read-modify-write, with a pause that
                        # lets any other thread in if the lock fails.
                        value = state['counter']
                        time.sleep(0.002)
                        state['counter'] = value + 1
                        state['inside'] -= 1
            except Exception as exc:
                errors.append(exc)

        # Two threads in each service.
        self.run_threads([lambda c=coord: worker(c)
                          for coord in services for _ in range(2)])
        self.assertEqual([], errors)
        self.assertEqual(0, state['overlaps'])
        self.assertEqual(4 * self.increments, state['counter'])

    def test_held_lock_blocks_other_service_until_released(self):
        a = self.coordinator('service-a')
        b = self.coordinator('service-b')
        events = []
        trying = threading.Event()

        def service_b():
            trying.set()
            with b.lock('group-1', timeout=20):
                events.append(('b acquired', time.monotonic()))

        with a.lock('group-1'):
            # Busy lock: B times out.
            start = time.monotonic()
            exc = self.assertRaises(coordination.LockTimeout,
                                    b.lock('group-1', timeout=1).__enter__)
            # redis-py gives up one poll (0.1 s) before the deadline.
            self.assertGreaterEqual(time.monotonic() - start, 0.85)
            self.assertIn("lock 'migration-guard.group-1'", str(exc))
            # Another name is another lock.
            with b.lock('group-2', timeout=1):
                pass
            thread = threading.Thread(target=service_b)
            thread.start()
            self.assertTrue(trying.wait(10))
            time.sleep(1.5)  # B keeps waiting meanwhile
            self.assertEqual([], events)
            events.append(('a releases', time.monotonic()))
        thread.join(25)
        self.assertEqual(['a releases', 'b acquired'],
                         [name for name, _ in events])
        self.assertLessEqual(events[0][1], events[1][1])

    def _lose_backend_while_a_holds_a_lock(self):
        """Service A holds 'group-1' when the server dies; returns (a, b)
        with B connected before the outage."""
        a = self.coordinator('service-a')
        b = self.coordinator('service-b')
        with b.lock('warm-up', timeout=2):
            pass
        ran = []
        with a.lock('group-1', timeout=2):
            self.server.stop()
            ran.append(True)
        # The with block ended without raising; the failure was logged.
        self.assertEqual([True], ran)
        self.assertIn(
            "Could not release lock 'migration-guard.group-1' on %s (" %
            self.url, self.logs.output)
        self.assertIn('it may stay held until its lease/TTL (%d s) expires'
                      % LOCK_TTL, self.logs.output)
        return a, b

    def test_backend_stopped_mid_lock(self):
        a, b = self._lose_backend_while_a_holds_a_lock()

        # fail_closed (default): the guarded work must not run.
        ran = []

        def guarded(coord):
            with coord.lock('group-2', timeout=1):
                ran.append(coord.member_id)

        exc = self.assertRaises(coordination.CoordinationUnavailable,
                                guarded, b)
        self.assertNotIn('\n', str(exc))
        self.assertIn("Cannot take lock 'migration-guard.group-2': the "
                      "coordination backend %s is unavailable (" % self.url,
                      str(exc))
        self.assertEqual([], ran)

        # proceed_unlocked: it runs, with a warning.
        c = self.coordinator('service-c',
                             on_backend_failure='proceed_unlocked')
        guarded(c)
        self.assertEqual(['service-c'], ran)
        self.assertIn("Running without lock 'migration-guard.group-2'",
                      self.logs.output)

    def test_locks_work_again_after_backend_restart(self):
        a, b = self._lose_backend_while_a_holds_a_lock()
        self.assertRaises(coordination.CoordinationUnavailable,
                          b.lock('group-2', timeout=1).__enter__)
        self.server.start()

        # Both services reconnect on their next lock().
        with b.lock('group-2', timeout=5):
            self.assertRaises(coordination.LockTimeout,
                              a.lock('group-2', timeout=1).__enter__)
        with a.lock('group-2', timeout=5):
            pass

        # The lock A could not release is free again after its TTL at the
        # latest (redis without persistence lost it in the restart; etcd
        # kept it with its lease).  Plain tooz would keep renewing it from
        # A's heartbeat for ever; the retired coordinator must not.
        start = time.monotonic()
        with b.lock('group-1', timeout=LOCK_TTL + 7):
            pass
        self.assertLess(time.monotonic() - start, LOCK_TTL + 7)

    def test_lock_lost_while_held(self):
        """A's heartbeats stop while it holds the lock (a stalled process,
        or A cut off from the backend): the TTL runs out, B takes the lock,
        and A's check() says so before A acts on what it decided."""
        a = self.coordinator('service-a')
        b = self.coordinator('service-b')
        with a.lock('group-1', timeout=2) as held:
            held.check()
            self.stop_renewals(a)
            with b.lock('group-1', timeout=LOCK_TTL + 7) as b_held:
                exc = self.assertRaises(coordination.LockLost, held.check)
                b_held.check()
            self.assertEqual(
                "Lost lock 'migration-guard.group-1' on %s while holding it: "
                "its lease/TTL expired (heartbeats missed), another service "
                "may hold it now" % self.url, str(exc))
            # Still lost once B has released it.
            self.assertRaises(coordination.LockLost, held.check)
        self.assertIn("Lock 'migration-guard.group-1' had already expired",
                      self.logs.output)

    def test_ownership_unknown_while_backend_down(self):
        fail_closed = self.coordinator('service-a')
        with fail_closed.lock('group-1', timeout=2) as held:
            self.server.stop()
            exc = self.assertRaises(coordination.CoordinationUnavailable,
                                    held.check)
            self.assertIn("Cannot take lock 'migration-guard.group-1': the "
                          "coordination backend %s is unavailable ("
                          % self.url, str(exc))
        self.server.start()
        proceed = self.coordinator('service-b',
                                   on_backend_failure='proceed_unlocked')
        with proceed.lock('group-1', timeout=LOCK_TTL + 7) as held:
            self.server.stop()
            held.check()
        self.assertIn("Going on without knowing whether lock "
                      "'migration-guard.group-1' is still held",
                      self.logs.output)
