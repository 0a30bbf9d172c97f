"""coordination.Lease (one process per compute identity) against real etcd,
redis and ZooKeeper servers, and file:// locks.

Every test runs once per backend (testscenarios) with its own server
(tests/fixtures/servers.py).  Leases of the test process stand for
services; a holder that must die or freeze is a child process using this
package, killed or stopped by its PID.  Waits are bounded; orderings are
asserted with timestamps taken around the events, never with sleeps.
"""

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import fixtures
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslotest import base
import testscenarios

from nova_migration_guard import conf as mg_conf
from nova_migration_guard import coordination
from nova_migration_guard.lab.embedded import processes
from tests.fixtures import servers

GROUP = 'migration_guard_coordination'
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# Lock TTL in etcd and redis (tooz's lock_timeout URL option), the session
# timeout in ZooKeeper (its timeout URL option): short, so
# that a lease left by a dead or frozen holder expires within the test.  The
# lease is then checked every TTL/3 = 1 s.
LOCK_TTL = 3
# Bound on every wait for something that should happen within the TTL.
WAIT = LOCK_TTL + 25
IDENTITY = 'compute.host1'
LEASE_NAME = coordination.LOCK_PREFIX + 'lease.' + IDENTITY
STANDBY_LOG = 'is held by another process: waiting as a hot standby'

# The holder process: takes the lease, says so, then waits; prints its loss
# and how often on_lost ran (after three more check intervals).
CHILD = '''
import sys, threading, time
from oslo_config import cfg
from nova_migration_guard import conf as mg_conf
from nova_migration_guard import coordination

conf = cfg.ConfigOpts()
mg_conf.register_opts(conf)
conf(args=[], default_config_files=[], default_config_dirs=[])
conf.set_override('backend_url', sys.argv[1], group=%r)
calls = []
lost = threading.Event()

def on_lost(reason):
    calls.append(reason)
    print('LOST ' + reason, flush=True)
    lost.set()

lease = coordination.Coordinator(conf, member_id='holder').lease(
    sys.argv[2], on_lost=on_lost)
lease.acquire(wait=False)
print('ACQUIRED', flush=True)
lost.wait(600)
time.sleep(3)
print('CALLS %%d' %% len(calls), flush=True)
''' % GROUP


class _FileBackend(fixtures.Fixture):
    """file:// locks in a temporary directory (same interface as the
    servers, without a server)."""

    def _setUp(self):
        self.url = 'file://' + self.useFixture(fixtures.TempDir()).path


class IdentityLeaseTest(testscenarios.WithScenarios, base.BaseTestCase):

    scenarios = [
        ('etcd', {'server_cls': servers.EtcdServer, 'ttl': LOCK_TTL}),
        ('redis', {'server_cls': servers.RedisServer, 'ttl': LOCK_TTL}),
        ('zookeeper', {'server_cls': servers.ZooKeeperServer,
                       'ttl': LOCK_TTL}),
        # fcntl locks: no TTL, lost only with the process.
        ('file', {'server_cls': _FileBackend, 'ttl': None}),
    ]

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))
        self.logs = self.useFixture(fixtures.FakeLogger(
            name='nova_migration_guard.coordination', level=logging.INFO))
        self.server = self.useFixture(self.server_cls())
        self.url = (self.server.ttl_url(self.ttl) if self.ttl
                    else self.server.url)

    def needs_ttl(self):
        if not self.ttl:
            self.skipTest('file:// locks have no TTL: they are lost only '
                          'with their process')

    # Helpers.

    def lease(self, member_id, on_lost=None):
        conf = cfg.ConfigOpts()
        mg_conf.register_opts(conf)
        conf(args=[], default_config_files=[], default_config_dirs=[])
        config = self.useFixture(config_fixture.Config(conf))
        config.config(group=GROUP, backend_url=self.url)
        coord = coordination.Coordinator(conf, member_id=member_id)
        lease = coord.lease(IDENTITY, on_lost=on_lost)
        self.addCleanup(lease.release)
        return lease

    def wait_for(self, predicate, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail('%s: not within %s s; logs:\n%s'
                          % (what, timeout, self.logs.output))
            time.sleep(0.05)

    def start_standby(self, lease, held=True):
        """acquire(wait=True) in a thread; returns (thread, result) where
        result gets 'acquired' and 'at' (monotonic) or 'error'.  ``held``:
        return once it found the lease held and waits."""
        result = {}

        def run():
            try:
                result['acquired'] = lease.acquire(wait=True)
                result['at'] = time.monotonic()
            except Exception as exc:
                result['error'] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        if held:
            self.wait_for(lambda: STANDBY_LOG in self.logs.output,
                          'the standby waits')
        return thread, result

    def join(self, thread, result, timeout=WAIT):
        thread.join(timeout)
        self.assertFalse(thread.is_alive(), 'still waiting after %s s; '
                         'logs:\n%s' % (timeout, self.logs.output))
        self.assertNotIn('error', result)
        return result

    def start_holder(self):
        """A child process holding the lease; returns (process, lines)."""
        stderr = open(os.path.join(self.useFixture(fixtures.TempDir()).path,
                                   'holder.log'), 'w+b')
        self.addCleanup(stderr.close)
        env = dict(os.environ, PYTHONPATH=REPO)
        process = subprocess.Popen(
            [sys.executable, '-c', CHILD, self.url, IDENTITY],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
            env=env, cwd=REPO, preexec_fn=processes.die_with_parent)
        self.addCleanup(self._kill, process)
        lines = queue.Queue()

        def read():
            for line in process.stdout:
                lines.put(line.decode('utf-8', 'replace').rstrip('\n'))
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        process.stderr_path = stderr.name
        return process, lines

    def expect(self, process, lines, prefix, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline -
                                             time.monotonic()))
            except queue.Empty:
                line = None
            if line is not None and line.startswith(prefix):
                return line
            if line is None:
                self.fail('the holder did not print %r within %s s; its '
                          'log:\n%s' % (prefix, timeout,
                                        processes.tail(process.stderr_path)))

    @staticmethod
    def _kill(process):
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        process.stdout.close()

    # a. refuse

    def test_second_lease_is_refused_while_held(self):
        holder = self.lease('service-a')
        self.assertTrue(holder.acquire(wait=False))
        self.assertTrue(holder.held)
        other = self.lease('service-b')
        exc = self.assertRaises(coordination.LeaseHeld, other.acquire,
                                wait=False)
        self.assertEqual(LEASE_NAME, exc.lease_name)
        self.assertEqual("Lease %r on %s is held by another process"
                         % (LEASE_NAME, self.url), str(exc))
        self.assertFalse(other.held)
        other.release()  # harmless when not held
        holder.release()
        holder.release()  # idempotent
        self.assertFalse(holder.held)
        with other:
            self.assertTrue(other.held)
            self.assertRaises(coordination.LeaseHeld, holder.acquire)
        self.assertFalse(other.held)

    # b. hot standby

    def test_standby_acquires_only_after_release(self):
        lost = []
        holder = self.lease('service-a', on_lost=lost.append)
        holder.acquire()
        standby = self.lease('service-b', on_lost=lost.append)
        thread, result = self.start_standby(standby)
        self.assertEqual({}, result)
        released_at = time.monotonic()
        holder.release()
        self.join(thread, result)
        self.assertTrue(result['acquired'])
        self.assertTrue(standby.held)
        self.assertGreater(result['at'], released_at)
        self.assertEqual([], lost)

    def test_release_ends_a_standby_wait(self):
        holder = self.lease('service-a')
        holder.acquire()
        standby = self.lease('service-b')
        thread, result = self.start_standby(standby)
        standby.release()  # e.g. the service stops meanwhile
        self.join(thread, result)
        self.assertFalse(result['acquired'])
        self.assertFalse(standby.held)
        self.assertTrue(holder.held)

    # c. the holder is killed

    def test_standby_takes_over_from_a_killed_holder(self):
        process, lines = self.start_holder()
        self.expect(process, lines, 'ACQUIRED')
        standby = self.lease('service-b')
        thread, result = self.start_standby(standby)
        self.assertEqual({}, result)
        killed_at = time.monotonic()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        self.join(thread, result)
        self.assertTrue(result['acquired'])
        self.assertGreater(result['at'], killed_at)
        # Within the TTL (the lease's last renewal was before the kill),
        # plus the standby's poll and a margin for a loaded machine.
        self.assertLess(result['at'] - killed_at, (self.ttl or 0) + 10)

    # d. the lease expires under its holder

    def test_holder_frozen_past_the_ttl_loses_the_lease(self):
        self.needs_ttl()
        process, lines = self.start_holder()
        self.expect(process, lines, 'ACQUIRED')
        standby = self.lease('service-b')
        thread, result = self.start_standby(standby)
        # SIGSTOP freezes its heart and watcher, as a long GC pause, a
        # paused VM or an overloaded host would.
        stopped_at = time.monotonic()
        os.kill(process.pid, signal.SIGSTOP)
        try:
            self.join(thread, result)
        finally:
            os.kill(process.pid, signal.SIGCONT)
        self.assertTrue(result['acquired'])
        self.assertGreater(result['at'], stopped_at)
        # Woken up, the holder learns from the backend that it lost it.
        line = self.expect(process, lines, 'LOST ')
        self.assertIn("Lost lease %r on %s: " % (LEASE_NAME, self.url), line)
        self.assertRegex(line, 'its TTL ran out in the backend|another '
                         'process holds it now')
        self.assertEqual('CALLS 1', self.expect(process, lines, 'CALLS'))
        self.assertTrue(standby.held)

    def test_backend_outage_longer_than_the_ttl_loses_the_lease(self):
        self.needs_ttl()
        lost = []
        lost_event = threading.Event()

        def on_lost(reason):
            lost.append((reason, time.monotonic()))
            lost_event.set()

        holder = self.lease('service-a', on_lost=on_lost)
        holder.acquire()
        outage_at = time.monotonic()
        self.server.stop()
        self.assertTrue(lost_event.wait(WAIT), self.logs.output)
        reason, lost_at = lost[0]
        # Declared before the TTL runs out in the backend (one check
        # interval early), so a standby cannot have started yet.
        self.assertLess(lost_at - outage_at, self.ttl)
        self.assertIn("Lost lease %r on %s: the backend has not confirmed "
                      "it for " % (LEASE_NAME, self.url), reason)
        self.assertIn('and its TTL is %d s' % self.ttl, reason)
        self.assertFalse(holder.held)

        self.server.start()
        # etcd kept the key with its lease (renewed at the restart): it
        # frees after one TTL; redis without persistence lost it.
        standby = self.lease('service-b')
        thread, result = self.start_standby(standby, held=False)
        self.assertTrue(self.join(thread, result)['acquired'])
        self.assertEqual(1, len(lost))
        holder.release()  # after the loss: nothing left to do
        self.assertEqual(1, len(lost))
