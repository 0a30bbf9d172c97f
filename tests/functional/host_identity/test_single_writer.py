"""Two nova-compute services with one identity (``[DEFAULT] host``), on
the embedded cloud (Nova's fake virt driver; the lease on the embedded
file:// backend, the same code as on etcd and redis, whose expiry and
takeover tests/functional/test_identity_lease.py runs on the real
servers).

Both services run their periodic tasks every second; every run is
recorded per manager, and the tests count the runs of one manager that
fell while the other was live: 0 guarded, many under stock Nova 34, which
runs both managers at once.
"""

import logging
import threading
import time

import fixtures
from nova.compute import manager as compute_manager
from testtools.content import text_content

from nova_migration_guard.host_identity import single_writer
from tests.fixtures import servers
from tests.functional import base


class _SameIdentity(base.EmbeddedCloudTestCase):
    GUARDS = ('host_identity',)
    NUMBER_OF_COMPUTES = 0

    def setUp(self):
        super().setUp()
        self.runs = []      # (manager id, start, end)
        real = compute_manager.ComputeManager.periodic_tasks

        def periodic_tasks(manager, context, raise_on_error=False):
            start = time.monotonic()
            try:
                return real(manager, context, raise_on_error)
            finally:
                self.runs.append((id(manager), start, time.monotonic()))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.compute.manager.ComputeManager.periodic_tasks',
            periodic_tasks))

    def start_host1(self):
        return self.start_service('compute', host='host1',
                                  periodic_enable=True,
                                  periodic_fuzzy_delay=0,
                                  periodic_interval_max=1)

    def runs_of(self, service):
        return [r for r in self.runs if r[0] == id(service.manager)]

    def wait_for_runs(self, service, count, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.runs_of(service)) < count:
            self.assertLess(time.monotonic(), deadline,
                            'periodic tasks did not run')
            time.sleep(0.2)

    def overlapping_runs(self):
        """Periodic runs of one manager that started while another manager
        with the same identity was live (between its first run's start and
        its last run's end)."""
        spans = {}
        for manager, start, end in self.runs:
            first, last = spans.get(manager, (start, end))
            spans[manager] = (min(first, start), max(last, end))
        return [run for run in self.runs for other, (first, last)
                in spans.items()
                if other != run[0] and first <= run[1] <= last]


class GuardedSameIdentityTest(_SameIdentity):

    def test_second_process_refused(self):
        first = self.start_host1()
        error = self.assertRaises(single_writer.IdentityInUse,
                                  self.start_host1)
        self.assertIn('[DEFAULT] host = host1 refuses to start', str(error))
        self.assertIn('compute.host1', str(error))
        # Exit status 1, and the refusal logged once (not again with the
        # exception being handled).
        self.assertEqual(1, error.code)
        self.assertEqual(1, self.stdlog.logger.output.count(str(error)))
        self.wait_for_runs(first, 2)

    def test_standby_runs_only_after_the_holder_stops(self):
        self.flags(on_duplicate='standby',
                   group='migration_guard_host_identity')
        first = self.start_host1()
        started = []
        standby = threading.Thread(
            target=lambda: started.append(self.start_host1()), daemon=True)
        standby.start()
        self.wait_for_runs(first, 3)
        # Still standing by while the first one runs.
        self.assertEqual([], started)
        stopped_at = time.monotonic()
        first.stop()
        standby.join(60)
        self.assertEqual(1, len(started))
        second = started[0]
        self.wait_for_runs(second, 3)
        self.assertEqual([], self.overlapping_runs())
        self.assertGreater(min(r[1] for r in self.runs_of(second)),
                           stopped_at)


class StockSameIdentityTest(_SameIdentity):
    GUARDS = ()

    def test_standby_runs_only_after_the_holder_stops(self):
        first = self.start_host1()
        second = self.start_host1()
        self.wait_for_runs(first, 3)
        self.wait_for_runs(second, 3)
        # Both managers run as host1 at once.
        overlapping = self.overlapping_runs()
        self.addDetail('overlapping runs', text_content(
            '%d of %d periodic runs' % (len(overlapping), len(self.runs))))
        self.assertGreater(len(overlapping), 2)


class LeaseLostUnlockedTest(_SameIdentity):
    """``on_backend_failure = proceed_unlocked`` at run time: the lease on
    a real redis (TTL 3 s); redis goes away for longer than the TTL, so the
    compute can no longer prove it is the only host1: it says so and keeps
    running, then takes its lease again once redis is back.  (Under
    ``fail_closed`` the process ends: test_fencing.py shows that with
    separate processes, since here it would end the test runner.)"""

    def setUp(self):
        super().setUp()
        self.redis = self.useFixture(servers.RedisServer())
        self.flags(backend_url=self.redis.url + '?lock_timeout=3',
                   on_backend_failure='proceed_unlocked',
                   group='migration_guard_coordination')
        self.logs = self.useFixture(fixtures.FakeLogger(
            name='nova_migration_guard.host_identity', level=logging.INFO))

    def wait_for_log(self, text):
        deadline = time.monotonic() + 60
        while text not in self.logs.output:
            self.assertLess(time.monotonic(), deadline, self.logs.output)
            time.sleep(0.2)

    def test_compute_runs_on_and_takes_its_lease_again(self):
        compute = self.start_host1()
        self.wait_for_runs(compute, 2)
        self.redis.stop()
        self.wait_for_log('it keeps running WITHOUT that guarantee')
        # Still working during the outage.
        self.wait_for_runs(compute, len(self.runs_of(compute)) + 2)
        self.redis.start()
        self.wait_for_log('holds its identity lease compute.host1 on '
                          '%s?lock_timeout=3 again' % self.redis.url)
        # Guarded again: a second host1 is refused.
        error = self.assertRaises(single_writer.IdentityInUse,
                                  self.start_host1)
        self.assertIn('another nova-compute process runs with this '
                      'identity', str(error))


class BackendDownAtStartTest(_SameIdentity):
    """The backend is unreachable when nova-compute starts."""

    def setUp(self):
        super().setUp()
        redis = self.useFixture(servers.RedisServer())
        self.flags(backend_url=redis.url + '?lock_timeout=3',
                   group='migration_guard_coordination')
        redis.stop()

    def test_refused_with_a_clear_error(self):
        error = self.assertRaises(single_writer.IdentityInUse,
                                  self.start_host1)
        self.assertIn('[DEFAULT] host = host1 refuses to start: it cannot '
                      'make sure that no other process', str(error))
        self.assertIn('on_backend_failure = proceed_unlocked', str(error))

    def test_proceed_unlocked_starts(self):
        self.flags(on_backend_failure='proceed_unlocked',
                   group='migration_guard_coordination')
        self.wait_for_runs(self.start_host1(), 2)
