"""One writer per compute identity across OS processes, on real etcd,
redis and ZooKeeper servers: a process that can no longer prove it holds
its identity lease stops writing before another process takes over.

Each writer is its own OS process (identity_writer.py: the real
``single_writer.take()`` with a minimal service object standing in for
nova-compute, whose task in progress keeps writing through a graceful stop
as Nova 34's does).  Every writer appends ``PID MONOTONIC`` to one shared
record, O_APPEND; the tests assert, on that record, that the processes'
write periods never overlap: in the order of the writes each process writes
in one run, and each run starts after the previous one's last write.

Every test runs once per backend (testscenarios) with its own server
(tests/fixtures/servers.py), stopped and restarted by its PID for the
outage.  Waits are bounded waits for events; no timing is asserted.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time

import fixtures
from oslotest import base
import testscenarios

from nova_migration_guard.lab.embedded import processes
from tests.fixtures import servers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
# The backend's lock TTL (tooz's lock_timeout, ZooKeeper's session
# timeout): short, so that a takeover happens within a round.  The lease is
# checked every TTL/3 = 1 s.
LOCK_TTL = 3
# Bound on every wait for an event.
WAIT = 45
# Rounds: a takeover costs about two TTLs (the key's expiry, then the new
# holder's wait) and a process start; keep each backend's run under ~90 s.
FREEZE_ROUNDS = 5
OUTAGE_ROUNDS = 2
FORGET_ROUNDS = 2
LEASE_NAME = 'migration-guard.lease.compute.host1'
STANDBY_WAITS = 'is held by another process: waiting as a hot standby'
FENCED = 'fences itself'


class _Writer:
    """One identity_writer process."""

    def __init__(self, test, name, on_backend_failure):
        self.name = name
        self.log_path = os.path.join(test.tmp, '%s.log' % name)
        self.holding = threading.Event()
        with open(self.log_path, 'wb') as log:
            self.process = subprocess.Popen(
                [sys.executable, '-m',
                 'tests.functional.host_identity.identity_writer',
                 test.url, test.record, 'standby', on_backend_failure],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                preexec_fn=processes.die_with_parent)
        self.pid = self.process.pid
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            if line.startswith(b'HOLDING'):
                self.holding.set()

    @property
    def running(self):
        return self.process.poll() is None

    def log(self):
        with open(self.log_path, 'rb') as log:
            return log.read().decode('utf-8', 'replace')

    def kill(self):
        if self.running:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(30)
        self.process.stdout.close()


class FencingTest(testscenarios.WithScenarios, base.BaseTestCase):

    scenarios = [
        ('etcd', {'server_cls': servers.EtcdServer}),
        ('redis', {'server_cls': servers.RedisServer}),
        ('zookeeper', {'server_cls': servers.ZooKeeperServer}),
    ]

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(150, gentle=True))
        self.server = self.useFixture(self.server_cls())
        self.url = self.server.ttl_url(LOCK_TTL)
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.record = os.path.join(self.tmp, 'record')
        self.writers = []
        # A fixed seed per scenario: spread freezes, reproducible runs.
        self.random = random.Random(self.id())

    # Helpers.

    def start_writer(self, on_backend_failure='fail_closed'):
        writer = _Writer(self, 'writer-%d' % (len(self.writers) + 1),
                         on_backend_failure)
        self.writers.append(writer)
        self.addCleanup(writer.kill)
        return writer

    def writes(self):
        """[(pid, monotonic)] in the order of the writes."""
        try:
            with open(self.record, 'rb') as record:
                lines = record.read().splitlines()
        except FileNotFoundError:
            return []
        return [(int(pid), float(at)) for pid, at in
                (line.split() for line in lines)]

    def wait_for(self, predicate, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail('%s: not within %s s\n%s' % (
                    what, timeout, self.describe()))
            time.sleep(0.05)

    def writing(self, writer):
        return any(pid == writer.pid for pid, _ in self.writes())

    def start_standby(self):
        writer = self.start_writer()
        self.wait_for(lambda: STANDBY_WAITS in writer.log(),
                      '%s waits as a standby' % writer.name)
        return writer

    def start_holder(self, on_backend_failure='fail_closed'):
        writer = self.start_writer(on_backend_failure)
        self.wait_for(lambda: self.writing(writer),
                      '%s writes' % writer.name)
        return writer

    def runs(self):
        """The record as runs of one writer: [[pid, first, last]]."""
        runs = []
        for pid, at in self.writes():
            if runs and runs[-1][0] == pid:
                runs[-1][2] = at
            else:
                runs.append([pid, at, at])
        return runs

    def describe(self):
        names = {w.pid: w.name for w in self.writers}
        runs = ', '.join('%s %.3f-%.3f' % (names.get(pid, pid), first, last)
                         for pid, first, last in self.runs())
        logs = '\n'.join('--- %s (pid %d, %s):\n%s' % (
            w.name, w.pid, 'running' if w.running else
            'exit %s' % w.process.returncode, w.log()[-3000:])
            for w in self.writers)
        return 'write runs: %s\n%s' % (runs, logs)

    def overlapping(self):
        """Why the write periods of two writers overlap, or None."""
        seen = set()
        previous = None
        for pid, first, last in self.runs():
            if pid in seen:
                return 'pid %d wrote again after another writer' % pid
            if previous is not None and first <= previous[2]:
                return 'pid %d wrote at %.3f, before pid %d last did' % (
                    pid, first, previous[0])
            seen.add(pid)
            previous = (pid, first, last)
        return None

    def assert_one_writer_at_a_time(self):
        problem = self.overlapping()
        if problem:
            self.fail('%s\n%s' % (problem, self.describe()))

    def assert_fenced(self, writer):
        """The old holder is gone, and has not written since the new
        holder's first write (the record says so)."""
        self.wait_for(lambda: not writer.running or self.overlapping(),
                      '%s ends' % writer.name)
        self.assert_one_writer_at_a_time()
        self.assertFalse(writer.running, self.describe())

    def fenced_holder_rounds(self, rounds, disturb):
        """``rounds`` times: a standby waits, ``disturb()`` strikes at a
        random point of the holder's renewal cycle, the standby takes over
        and writes, and the holder has fenced itself (its CRITICAL line),
        never writing after the standby began."""
        holder = self.start_holder()
        for _ in range(rounds):
            standby = self.start_standby()
            time.sleep(self.random.uniform(0, LOCK_TTL / 3.0))
            disturb()
            self.wait_for(lambda: self.writing(standby),
                          'the standby %s writes' % standby.name)
            self.assert_fenced(holder)
            self.assertIn(FENCED, holder.log())
            holder = standby
        self.assert_one_writer_at_a_time()

    # Tests.

    def test_frozen_holder_never_writes_after_a_standby_took_over(self):
        """SIGSTOP freezes the holder (a long GC pause, an overloaded or
        paused host), the standby takes over once the key expired, then
        SIGCONT wakes the holder, at once or later: it must not write
        again.  The freeze falls anywhere in the renewal cycle."""
        holder = self.start_holder()
        for _ in range(FREEZE_ROUNDS):
            standby = self.start_standby()
            time.sleep(self.random.uniform(0, LOCK_TTL / 3.0))
            os.kill(holder.pid, signal.SIGSTOP)
            try:
                self.wait_for(lambda: self.writing(standby),
                              'the standby %s writes' % standby.name)
                time.sleep(self.random.choice((0, 0, 1.5)))
            finally:
                if holder.running:
                    os.kill(holder.pid, signal.SIGCONT)
            self.assert_fenced(holder)
            holder = standby
        self.assert_one_writer_at_a_time()

    def test_backend_outage_longer_than_the_ttl(self):
        """The backend server is killed for longer than the TTL, then
        restarted: under fail_closed the holder fences itself (it cannot
        prove it holds its lease), and the standby writes only after it."""
        def outage():
            self.server.stop()
            # Longer than the TTL.
            time.sleep(LOCK_TTL + 2)
            self.server.start()
        self.fenced_holder_rounds(OUTAGE_ROUNDS, outage)

    def test_backend_forgets_the_lease_early(self):
        """The backend loses the holder's key before its TTL: the standby
        takes the lease at once, while the holder still believes it holds
        it.  The holder learns it at its next renewal and ends; the new
        holder waits one TTL after taking the lease before it writes."""
        self.fenced_holder_rounds(
            FORGET_ROUNDS, lambda: self.server.forget_lock(LEASE_NAME))
