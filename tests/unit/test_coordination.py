"""Unit tests of nova_migration_guard.coordination.

They use tooz's file:// backend (real locks between threads and between
coordinators of one process) and loopback ports that nothing listens on for
an unreachable backend.  The real etcd, redis and ZooKeeper are exercised
by tests/functional/test_coordination_backends.py.
"""

import importlib.metadata
import logging
import os
import socket
import threading
import time

import fixtures
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslotest import base
from tooz import coordination as tooz_coordination
from tooz.drivers import file as tooz_file

from nova_migration_guard import conf as mg_conf
from nova_migration_guard import coordination
from nova_migration_guard import validation
from nova_migration_guard.coordination import backend

GROUP = 'migration_guard_coordination'
LOGGER = 'nova_migration_guard.coordination'


def closed_port():
    """A loopback port that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def make_conf(testcase, **overrides):
    """A private ConfigOpts with our options (the global CONF stays
    untouched), overrides in [migration_guard_coordination]."""
    conf = cfg.ConfigOpts()
    mg_conf.register_opts(conf)
    conf(args=[], default_config_files=[], default_config_dirs=[])
    fixture = testcase.useFixture(config_fixture.Config(conf))
    fixture.config(group=GROUP, **overrides)
    return conf


def wait_for(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError('condition still false after %s s'
                                 % timeout)
        time.sleep(0.01)


class CoordinationTestCase(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.lock_dir = self.useFixture(fixtures.TempDir()).path
        self.file_url = 'file://' + self.lock_dir
        self.addCleanup(coordination.reset)
        self.logs = self.useFixture(
            fixtures.FakeLogger(name=LOGGER, level=logging.WARNING))

    def coordinator(self, member_id, **overrides):
        overrides.setdefault('backend_url', self.file_url)
        conf = make_conf(self, **overrides)
        coord = coordination.Coordinator(conf, member_id=member_id)
        self.addCleanup(coord.stop)
        return coord

    def in_thread(self, func):
        """Start func in a thread; the test waits for it at cleanup."""
        thread = threading.Thread(target=func, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 30)
        return thread


class TestValidateBackendUrl(CoordinationTestCase):

    def schemes(self):
        # Independently of the module: what tooz registers.
        return sorted({ep.name for ep in importlib.metadata.entry_points(
            group='tooz.backends')})

    def message(self, url):
        conf = make_conf(self, backend_url=url)
        exc = self.assertRaises(mg_conf.ConfigurationError,
                                coordination.validate_backend_url, conf)
        text = str(exc)
        self.assertNotIn('\n', text)
        return text

    def test_accepted_schemes_come_from_tooz_entry_points(self):
        schemes = coordination.backend_schemes()
        self.assertEqual(self.schemes(), schemes)
        for scheme in ('file', 'etcd3+http', 'etcd3+https', 'redis',
                       'zookeeper', 'kazoo', 'memcached'):
            self.assertIn(scheme, schemes)

    def test_good_urls(self):
        for url in (self.file_url,
                    'etcd3+http://127.0.0.1:2379',
                    'etcd3+https://etcd.example.org:2379?ca_cert=/x.pem',
                    'etcd3+http://',  # tooz defaults to localhost:2379
                    'redis://127.0.0.1:6379',
                    'redis://user:pw@redis.example.org:6379?db=2',
                    'redis://127.0.0.1:26379?sentinel=mymaster',
                    'zookeeper://127.0.0.1:2181',
                    'zookeeper://zk1:2181?timeout=30',
                    'kazoo://zk1:2181?hosts=zk2:2181&timeout=5'):
            conf = make_conf(self, backend_url=url)
            self.assertIsNone(coordination.validate_backend_url(conf), url)

    def test_default_url_under_state_path(self):
        # Without nova.conf loaded, [DEFAULT] state_path is registered on
        # the fly (with Nova's own option) so that the default resolves.
        conf = make_conf(self)
        self.assertNotIn('state_path', conf)
        coordination.validate_backend_url(conf)
        self.assertIn('state_path', conf)
        conf.set_override('state_path', self.lock_dir)
        coordination.validate_backend_url(conf)
        self.assertEqual(
            'file://%s/migration_guard/locks' % self.lock_dir,
            conf[GROUP].backend_url)

    def test_unknown_scheme_exact_message(self):
        self.assertEqual(
            "nova-migration-guard: invalid value for "
            "[migration_guard_coordination] backend_url: 'foo://bar:1' "
            "(unknown scheme 'foo'); accepted schemes are "
            + ', '.join(self.schemes()),
            self.message('foo://bar:1'))

    def test_malformed_urls(self):
        for url, reason in (
                ('', '(empty URL)'),
                ('127.0.0.1:6379', '(not a URL of the form SCHEME://...)'),
                ('redis://127.0.0.1:port', '(malformed URL: Port could '
                                           'not be cast to integer'),
                ('etcd3+http://[::1', '(malformed URL: Invalid IPv6 URL)'),
                ('file://relative/dir', '(a file URL needs an absolute '
                                        'directory: file:///PATH)'),
                ('redis://', '(a redis URL needs a host'),
                (' redis://127.0.0.1:6379', '(leading or trailing spaces)')):
            text = self.message(url)
            self.assertTrue(text.startswith(
                'nova-migration-guard: invalid value for '
                '[migration_guard_coordination] backend_url: %r %s'
                % (url, reason)), text)
            self.assertTrue(text.endswith(
                '; accepted schemes are ' + ', '.join(self.schemes())),
                text)

    def test_password_is_masked(self):
        text = self.message('redis://admin:s3cret@127.0.0.1:bad')
        self.assertNotIn('s3cret', text)
        self.assertIn("'redis://admin:***@127.0.0.1:bad'", text)
        text = self.message('redis://admin:s3cret@[::1')
        self.assertNotIn('s3cret', text)
        self.assertIn("'redis://***' (malformed URL", text)
        text = self.message('rediss://h:6379?sentinel_password=s3cret')
        self.assertNotIn('s3cret', text)
        self.assertIn("unknown scheme 'rediss'", text)

    def test_scheme_whose_client_library_is_missing(self):
        def no_kazoo(ep):
            raise ModuleNotFoundError("No module named 'kazoo'")

        self.useFixture(fixtures.MonkeyPatch(
            'importlib.metadata.EntryPoint.load', no_kazoo))
        self.assertIn(
            "'zookeeper://zk:2181' (the tooz driver for 'zookeeper' cannot "
            "be loaded: No module named 'kazoo'); accepted schemes are ",
            self.message('zookeeper://zk:2181'))

    def test_zookeeper_lock_ttl_is_the_session_timeout(self):
        # lock_timeout would be ignored: the lease and its fence would not
        # get the TTL the operator asked for.
        self.assertEqual(
            "nova-migration-guard: invalid value for "
            "[migration_guard_coordination] backend_url: "
            "'zookeeper://zk:2181?lock_timeout=30' (zookeeper does not read "
            "lock_timeout: its locks live as long as their session, set the "
            "session timeout with the timeout option instead "
            "(timeout=SECONDS, an integer >= 1; 10 by default)); accepted "
            "schemes are " + ', '.join(self.schemes()),
            self.message('zookeeper://zk:2181?lock_timeout=30'))
        # tooz reads it with int(): anything else fails at the first lock.
        for value in ('2.5', '0', 'ten'):
            url = 'kazoo://zk:2181?timeout=%s' % value
            self.assertIn(
                "%r (the zookeeper timeout option (the session timeout, "
                "which is the TTL of its locks) must be an integer number "
                "of seconds >= 1, not %r); accepted schemes are "
                % (url, value), self.message(url))

    def test_unknown_interpolation(self):
        self.assertIn("backend_url: '(unreadable)' (no such option "
                      "stat_path in group [DEFAULT]); accepted schemes are ",
                      self.message('file://$stat_path/locks'))

    def test_conf_validate_calls_it(self):
        conf = make_conf(self, backend_url='foo://bar')
        exc = self.assertRaises(mg_conf.ConfigurationError,
                                validation.validate, conf)
        self.assertIn("backend_url: 'foo://bar' (unknown scheme 'foo')",
                      str(exc))


class TestMachineLocalProblem(base.BaseTestCase):
    """The warning at compute start when a file:// backend cannot lock
    between the machines the computes run on."""

    problem = staticmethod(backend.machine_local_problem)

    def test_file_url_and_other_machines(self):
        message = self.problem(
            'file:///var/lib/nova/migration_guard/locks',
            {'host2 (192.0.2.2)', 'host3 (192.0.2.3)'})
        self.assertIn('[migration_guard_coordination] backend_url is '
                      'file:///var/lib/nova/migration_guard/locks', message)
        self.assertIn('(host2 (192.0.2.2), host3 (192.0.2.3))', message)
        for url in ('etcd3+http://ETCD_HOST:2379', 'redis://REDIS_HOST:6379',
                    'zookeeper://ZK_HOST:2181'):
            self.assertIn(url, message)
        self.assertEqual(1, len(message.splitlines()))

    def test_many_machines_are_counted_not_listed(self):
        others = {'host%02d (192.0.2.%d)' % (i, i) for i in range(10)}
        message = self.problem('file:///locks', others)
        self.assertIn('host00 (192.0.2.0), host01 (192.0.2.1), '
                      'host02 (192.0.2.2) and 7 more)', message)

    def test_no_problem(self):
        self.assertIsNone(self.problem('file:///locks', set()))
        for url in ('etcd3+http://etcd:2379', 'redis://:secret@redis:6379',
                    'zookeeper://zk:2181'):
            self.assertIsNone(self.problem(url, {'host2 (192.0.2.2)'}))


class TestFileBackendLocks(CoordinationTestCase):

    def test_member_id_names_host_binary_and_pid(self):
        coord = coordination.Coordinator(make_conf(self))
        host, binary, pid = coord.member_id.rsplit(':', 2)
        self.assertTrue(host)
        self.assertTrue(binary)
        self.assertEqual(str(os.getpid()), pid)

    def test_lock_prefix_and_file_backend_path(self):
        coord = self.coordinator('svc-a')
        with coord.lock('group-1') as held:
            self.assertTrue(os.path.exists(
                os.path.join(self.lock_dir, 'migration-guard.group-1')))
            # A file lock cannot expire: still ours.
            self.assertEqual('migration-guard.group-1', held.name)
            held.check()

    def test_default_backend_under_state_path(self):
        conf = make_conf(self)
        coord = coordination.Coordinator(conf, member_id='svc-a')
        self.addCleanup(coord.stop)
        conf.set_override('state_path', self.lock_dir)
        with coord.lock('group-1'):
            pass
        self.assertTrue(os.path.exists(os.path.join(
            self.lock_dir, 'migration_guard', 'locks',
            'migration-guard.group-1')))

    def test_mutual_exclusion_between_two_coordinators(self):
        a = self.coordinator('svc-a')
        b = self.coordinator('svc-b')
        with a.lock('group-1'):
            start = time.monotonic()
            exc = self.assertRaises(coordination.LockTimeout,
                                    b.lock('group-1', timeout=0.5).__enter__)
            self.assertGreaterEqual(time.monotonic() - start, 0.5)
            self.assertEqual(
                "Timed out after 0.5 seconds waiting for lock "
                "'migration-guard.group-1', held by another service",
                str(exc))
            # Another name is another lock.
            with b.lock('group-2', timeout=0.5):
                pass
        with b.lock('group-1', timeout=0.5):
            pass

    def test_acquire_timeout_option_is_the_default_wait(self):
        a = self.coordinator('svc-a')
        b = self.coordinator('svc-b', acquire_timeout=1)
        with a.lock('group-1'):
            start = time.monotonic()
            exc = self.assertRaises(coordination.LockTimeout,
                                    b.lock('group-1').__enter__)
            self.assertGreaterEqual(time.monotonic() - start, 1)
            self.assertEqual(1, exc.timeout)
            self.assertEqual('migration-guard.group-1', exc.lock_name)

    def test_waiter_gets_the_lock_when_the_holder_releases(self):
        a = self.coordinator('svc-a')
        b = self.coordinator('svc-b')
        trying = threading.Event()
        events = []

        def waiter():
            trying.set()
            with b.lock('group-1', timeout=20):
                events.append(('b acquired', time.monotonic()))

        with a.lock('group-1'):
            thread = self.in_thread(waiter)
            self.assertTrue(trying.wait(10))
            time.sleep(0.5)
            self.assertEqual([], events)
            events.append(('a releases', time.monotonic()))
        thread.join(20)
        self.assertEqual(['a releases', 'b acquired'],
                         [name for name, _ in events])
        self.assertLessEqual(events[0][1], events[1][1])

    def test_threads_of_two_coordinators_never_overlap(self):
        coords = [self.coordinator('svc-a'), self.coordinator('svc-b')]
        state = {'counter': 0, 'inside': 0, 'overlaps': 0}
        per_thread = 50
        errors = []

        def worker(coord):
            try:
                for _ in range(per_thread):
                    with coord.lock('counter', timeout=20):
                        state['inside'] += 1
                        if state['inside'] != 1:
                            state['overlaps'] += 1
                        value = state['counter']
                        time.sleep(0.0005)  # let the others run
                        state['counter'] = value + 1
                        state['inside'] -= 1
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(coord,))
                   for coord in coords for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(50)
        self.assertEqual([], errors)
        self.assertEqual(0, state['overlaps'])
        self.assertEqual(len(threads) * per_thread, state['counter'])

    def test_exception_in_block_propagates_and_releases(self):
        a = self.coordinator('svc-a')
        b = self.coordinator('svc-b')

        def guarded():
            with a.lock('group-1'):
                raise KeyError('boom')

        self.assertRaises(KeyError, guarded)
        with b.lock('group-1', timeout=0.5):
            pass

    def test_lock_timeout_raised_also_under_proceed_unlocked(self):
        # The policy is about an unreachable backend, not a busy lock.
        a = self.coordinator('svc-a')
        b = self.coordinator('svc-b', on_backend_failure='proceed_unlocked')
        with a.lock('group-1'):
            self.assertRaises(coordination.LockTimeout,
                              b.lock('group-1', timeout=0.2).__enter__)

    def test_release_failure_is_logged_not_raised_and_reconnects(self):
        coord = self.coordinator('svc-a')
        with coord.lock('group-0'):
            first_driver = coord._session.driver
        self.assertIsNotNone(first_driver)

        real_release = tooz_file.FileLock.release
        calls = []

        def broken_release(lock):
            calls.append(lock.name)
            real_release(lock)  # the file lock itself is freed
            raise tooz_coordination.ToozConnectionError('backend went away')

        self.useFixture(fixtures.MonkeyPatch(
            'tooz.drivers.file.FileLock.release', broken_release))
        ran = []
        with coord.lock('group-1'):
            ran.append(True)
        self.assertEqual([True], ran)
        self.assertEqual(1, len(calls))
        self.assertIn("Could not release lock 'migration-guard.group-1' on "
                      "%s (ToozConnectionError: backend went away): it may "
                      "stay held until its lease/TTL" % self.file_url,
                      self.logs.output)
        self.useFixture(fixtures.MonkeyPatch(
            'tooz.drivers.file.FileLock.release', real_release))
        # The next lock() uses a new tooz coordinator.
        with coord.lock('group-1', timeout=1):
            self.assertIsNot(first_driver, coord._session.driver)
        # The retired one is stopped in the background.
        wait_for(lambda: not first_driver.is_started)

    def test_stop_then_lock_again(self):
        coord = self.coordinator('svc-a')
        with coord.lock('group-1'):
            driver = coord._session.driver
        coord.stop()
        self.assertFalse(driver.is_started)
        with coord.lock('group-1', timeout=1):
            pass

    def test_changed_backend_url_takes_effect_on_next_lock(self):
        """A coordinator never keeps locking through a backend it is no
        longer configured for (which may be gone, as after a test stopped
        its redis); a lock held through the old one still releases."""
        coord = self.coordinator('svc-a')
        other_dir = self.useFixture(fixtures.TempDir()).path
        with coord.lock('held-across'):
            old_driver = coord._session.driver
            coord._conf.set_override('backend_url', 'file://' + other_dir,
                                     group=GROUP)
            with coord.lock('group-1', timeout=1):
                self.assertTrue(os.path.exists(os.path.join(
                    other_dir, 'migration-guard.group-1')))
                self.assertFalse(os.path.exists(os.path.join(
                    self.lock_dir, 'migration-guard.group-1')))
            self.assertTrue(old_driver.is_started)   # still holding through it
        # Released through the old coordinator, which then stops.
        wait_for(lambda: not old_driver.is_started)
        with self.coordinator('svc-b').lock('held-across', timeout=0.5):
            pass

    def test_get_coordinator_is_one_per_process(self):
        conf = make_conf(self, backend_url=self.file_url)
        seen = []
        threads = [threading.Thread(
            target=lambda: seen.append(coordination.get_coordinator(conf)))
            for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        self.assertEqual(8, len(seen))
        self.assertEqual(1, len({id(c) for c in seen}))
        with seen[0].lock('group-1'):
            pass
        coordination.reset()
        self.assertIsNot(seen[0], coordination.get_coordinator(conf))


class TestUnreachableBackend(CoordinationTestCase):

    def assert_one_line(self, text):
        self.assertNotIn('\n', text)

    def test_fail_closed_etcd_refused(self):
        url = 'etcd3+http://127.0.0.1:%d' % closed_port()
        coord = self.coordinator('svc-a', backend_url=url)
        ran = []
        start = time.monotonic()
        exc = self.assertRaises(coordination.CoordinationUnavailable,
                                coord.lock('group-1', timeout=1).__enter__)
        self.assertLess(time.monotonic() - start, 3)
        self.assertEqual([], ran)
        text = str(exc)
        self.assert_one_line(text)
        self.assertTrue(text.startswith(
            "Cannot take lock 'migration-guard.group-1': the coordination "
            "backend %s is unavailable (" % url), text)
        # "Connection refused", or "ECONNREFUSED" under eventlet.
        self.assertRegex(text,
                         r'\[Errno 111\] (Connection refused|ECONNREFUSED)')
        self.assertEqual(url, exc.backend_url)
        # Still refused on the next call: no state is left half-started.
        self.assertRaises(coordination.CoordinationUnavailable,
                          coord.lock('group-1', timeout=1).__enter__)

    def test_fail_closed_redis_refused_is_bounded(self):
        # tooz + redis-py retry a refused connection for about 60 s; the
        # guard gives up after the lock's timeout (at least 2 s).
        url = 'redis://user:s3cret@127.0.0.1:%d' % closed_port()
        coord = self.coordinator('svc-a', backend_url=url)
        start = time.monotonic()
        exc = self.assertRaises(coordination.CoordinationUnavailable,
                                coord.lock('group-1', timeout=1).__enter__)
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 2)
        self.assertLess(elapsed, 4)
        text = str(exc)
        self.assert_one_line(text)
        self.assertNotIn('s3cret', text)
        self.assertIn("Cannot take lock 'migration-guard.group-1': the "
                      "coordination backend redis://user:***@127.0.0.1:",
                      text)
        self.assertIn('no answer within 2 seconds', text)

    def test_proceed_unlocked_runs_the_block_and_warns(self):
        url = 'etcd3+http://127.0.0.1:%d' % closed_port()
        coord = self.coordinator('svc-a', backend_url=url,
                                 on_backend_failure='proceed_unlocked')
        ran = []
        with coord.lock('group-1', timeout=1):
            ran.append(True)
        self.assertEqual([True], ran)
        self.assertIn(
            "Running without lock 'migration-guard.group-1': the "
            "coordination backend %s is unavailable (" % url,
            self.logs.output)
        self.assertIn('on_backend_failure is proceed_unlocked',
                      self.logs.output)

    def test_proceed_unlocked_block_exception_propagates(self):
        url = 'etcd3+http://127.0.0.1:%d' % closed_port()
        coord = self.coordinator('svc-a', backend_url=url,
                                 on_backend_failure='proceed_unlocked')

        def guarded():
            with coord.lock('group-1', timeout=1):
                raise KeyError('boom')

        exc = self.assertRaises(KeyError, guarded)
        self.assertIsNone(exc.__context__)
