"""Several nova-compute processes that claim one compute identity, on the
real-services cloud.

Every compute here is a real nova-compute process (MariaDB through the
conductors, RabbitMQ, the identity lease in the cloud's etcd); only the
hypervisor is the fake driver (``lab/realcloud/fake_driver.py``), so a guest
lives in the memory of the process that built it: "no guest lost" is
checked through Nova's API (the instance stays ACTIVE on its host, never
deleted, never in ERROR).

What a process did as its compute is read from its own log: every line of
the loggers Nova's compute service writes with while it acts (the manager
and its resource tracker, the service and its heartbeat, the periodic
tasks, placement reports); its write period runs from the first such line
to the last (the functional tests' ``identity_writer.py`` records writes the
same way, with one clock for every process).  A process that only waits as
a hot standby writes none of them.

The pair runs as the cloud's ``compute4`` (that host's configuration and
state_path: an operator's copy, or an active/passive pair), with the cloud's
own compute4 process stopped meanwhile; the processes see a lock TTL of
3 s, a heartbeat and a resource update every second.
"""

import datetime
import os
import random
import re
import time

from testtools import content

from nova_migration_guard.lab.realcloud import processes
from tests.realcloud import base

HOST = 'compute4'
BACKUP = 'compute4-ha'
ROUNDS = 20
MAX_SPREAD = 0.6
# The longest a holder acts as the compute before it is killed.
MAX_RUN = 2.0
LOCK_TTL = 3
HOLDS = 'holds its identity lease compute.%s' % HOST
STANDING_BY = 'waits as a hot standby'
_LINE = re.compile(
    r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \d+ (\w+) (\S+) ')
# The loggers of a nova-compute acting as its compute.
ACTING = ('nova.compute.', 'nova.service', 'nova.servicegroup.',
          'oslo_service.periodic_task', 'nova.scheduler.client.report',
          'oslo.service.backend._threading.loopingcall')


def _read(started):
    with open(started.log, 'rb') as f:
        return f.read().decode('utf-8', 'replace')


def write_period(started):
    """(first, last) time of the lines ``started`` logged as the compute,
    or None when it logged none."""
    times = []
    for line in _read(started).splitlines():
        match = _LINE.match(line)
        if match and match.group(3).startswith(ACTING):
            times.append(datetime.datetime.strptime(
                match.group(1), '%Y-%m-%d %H:%M:%S.%f'))
    return (times[0], times[-1]) if times else None


def overlaps(periods):
    """The pairs of (name, period) whose periods overlap."""
    found = []
    items = [(n, p) for n, p in periods if p]
    for i, (name, (first, last)) in enumerate(items):
        for other, (o_first, o_last) in items[i + 1:]:
            if first <= o_last and o_first <= last:
                found.append((name, other))
    return found


class _SameIdentity(base.RealCloudTestCase):
    """A guest on compute4; the cloud's compute4 process stopped for the
    test and started again after it."""

    GUARDS = None
    #: Guards of the test's compute processes, beside the cloud's.
    COMPUTE_GUARDS = ('host_identity',)

    def setUp(self):
        super().setUp()
        self.guest = self.boot('identity-guest', host=HOST)
        self.serial = 0
        self.started = []
        name = 'nova-compute-%s' % HOST
        own = self.cloud.process(name)
        processes.stop(own)
        self.addCleanup(self._restart_own)

    def _restart_own(self):
        for started in self.started:
            processes.stop(started)
        self.cloud.start_compute(HOST)
        self.wait_for_compute_up(HOST)

    def start_compute(self, host=HOST, **overrides):
        """One more nova-compute process with [DEFAULT] host = ``host``."""
        self.serial += 1
        guards = [g for g in self.cloud.state['guards']
                  if g != 'host_identity'] + list(self.COMPUTE_GUARDS)
        conf = {
            'DEFAULT': {'report_interval': '1',
                        'update_resources_interval': '1',
                        'periodic_fuzzy_delay': '0'},
            'migration_guard': {'guards': ', '.join(guards)},
            'migration_guard_coordination': {
                'backend_url': self.cloud.coordination_url(LOCK_TTL)},
            'migration_guard_host_identity': {'lease_check_interval': '1'},
        }
        for section, values in overrides.items():
            conf.setdefault(section, {}).update(values)
        name = 'nova-compute-%s-%s-%02d' % (
            host, self.id().rsplit('.', 1)[1], self.serial)
        # A log of this test's process only (an earlier run's is replaced).
        if os.path.exists(self.cloud.log(name)):
            os.unlink(self.cloud.log(name))
        started = self.cloud.start_extra_compute(name, host, conf)
        self.started.append(started)
        return started

    def wait_for_log(self, started, text, timeout=120):
        self.wait_until(lambda: text in _read(started), '%s logged %r (%s)'
                        % (started.name, text, started.log), timeout)

    def wait_until(self, predicate, what, timeout=120):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail('not after %d s: %s' % (timeout, what))
            time.sleep(0.2)

    def wait_for_any_log(self, candidates, text, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            found = [s for s in candidates if text in _read(s)]
            if found:
                return found
            if time.monotonic() > deadline:
                self.fail('none of %s logged %r in %d s' % (
                    [s.name for s in candidates], text, timeout))
            time.sleep(0.1)

    def assert_guest_kept(self):
        guest = self.server(self.guest)
        self.assertEqual(('ACTIVE', HOST), (guest.status, guest.compute_host))


class GuardedSameIdentityTest(_SameIdentity):
    """guards = host_identity, on_duplicate = standby on every process."""

    def test_write_periods_never_overlap(self):
        """A chain of takeovers: the holder is killed (SIGKILL) at a random
        moment after it took the lease, and a new process starts at that
        moment (even rounds) or up to 0.6 s later (odd rounds), racing the
        waiting standby for the freed lease; the winner holds, the other
        stands by for the next round."""
        rng = random.Random(time.time_ns())
        standby = {'migration_guard_host_identity': {
            'on_duplicate': 'standby'}}
        rounds = []
        self.addCleanup(lambda: self.addDetail('rounds', content.text_content(
            '\n'.join(str(r) for r in rounds))))
        # Round -1: two processes start at once; one holds.
        waiting = [self.start_compute(**standby),
                   self.start_compute(**standby)]
        holder, = self.wait_for_any_log(waiting, HOLDS)
        waiting.remove(holder)
        for round_no in range(ROUNDS):
            # Half the holders are killed before they act as the compute
            # (in their wait of one TTL or while the manager loads), half
            # while they act.
            if round_no % 4 < 2:
                time.sleep(rng.uniform(0, LOCK_TTL))
            else:
                self.wait_until(lambda: write_period(holder), holder.name)
                time.sleep(rng.uniform(0, MAX_RUN))
            spread = 0.0 if round_no % 2 == 0 else rng.uniform(0, MAX_SPREAD)
            killed_in = ('writing' if write_period(holder)
                         else 'not writing yet')
            status = self.cloud.kill(holder)
            if spread:
                time.sleep(spread)
            waiting.append(self.start_compute(**standby))
            winner, = self.wait_for_any_log(waiting, HOLDS)
            self.assert_guest_kept()
            rounds.append({
                'round': round_no,
                'start': 'spread %.2f s' % spread if spread else 'together',
                'killed': holder.name, 'killed while': killed_in,
                'exit': status,
                'holds': winner.name,
                'winner': ('the standby' if winner is waiting[0]
                           else 'the new process'),
            })
            self.assertEqual(-9, status)
            waiting.remove(winner)
            holder = winner
        # The last holder runs as the compute; a process started with
        # on_duplicate = refuse meanwhile is refused.
        self.wait_for_log(holder, 'Join ServiceGroup membership')
        refused = self.start_compute()
        self.assertEqual(1, self.cloud.exit_status(refused, 120))
        refusal = [line for line in _read(refused).splitlines()
                   if 'refuses to start' in line]
        self.assertEqual(1, len(refusal), refusal)
        self.assertIn('CRITICAL', refusal[0])
        self.assertIn('another nova-compute process runs with this identity',
                      refusal[0])
        processes.stop(*waiting)
        processes.stop(holder)
        periods = [(s.name, write_period(s)) for s in self.started]
        self.addDetail('write periods', content.text_content('\n'.join(
            '%s: %s' % (name, period and '%s .. %s' % period)
            for name, period in periods)))
        self.assertEqual([], overlaps(periods))
        # Only holders wrote (the standbys and the refused process never
        # acted as the compute), and the takeovers include killed writers.
        writers = [name for name, period in periods if period]
        for started in self.started:
            if started.name in writers:
                self.assertIn(HOLDS, _read(started), started.name)
        self.assertGreater(
            sum(1 for r in rounds if r['killed while'] == 'writing'), 0)
        self.assert_guest_kept()
        winners = [r['winner'] for r in rounds]
        self.addDetail('summary', content.text_content(
            'rounds: %d; takeovers won by the standby: %d, by the new '
            'process: %d; overlapping write periods: 0; processes that '
            'wrote: %d of %d' % (len(rounds), winners.count('the standby'),
                                 winners.count('the new process'),
                                 len(writers), len(self.started))))


class StockSameIdentityTest(_SameIdentity):
    """Stock Nova (no host_identity guard): the README says it runs both
    managers at once."""

    COMPUTE_GUARDS = ()

    def test_both_processes_write(self):
        pair = [self.start_compute(), self.start_compute()]
        for started in pair:
            self.wait_for_log(started, 'Join ServiceGroup membership')
        # Both report and run their periodic tasks: a few heartbeats more.
        time.sleep(3)
        self.assert_guest_kept()
        processes.stop(*pair)
        periods = [(s.name, write_period(s)) for s in pair]
        self.addDetail('write periods', content.text_content(str(periods)))
        self.assertEqual([(pair[0].name, pair[1].name)], overlaps(periods))


class _HABackup(_SameIdentity):
    """An HA backup: a nova-compute with another ``host`` (compute4-ha)
    whose driver reports compute4's hypervisor (its own state_path, so its
    own node UUID, as a second machine has), started while the cloud's
    compute4 runs."""

    def setUp(self):
        base.RealCloudTestCase.setUp(self)
        self.serial = 0
        self.started = []
        self.addCleanup(self._delete_backup_service)

    def _delete_backup_service(self):
        # Asked while the backup still runs: Nova's API asks a compute
        # whose service looks up for its uptime, and the stopped backup's
        # would time out (HTTP 500).
        hypervisors = self.hypervisors()
        for started in self.started:
            processes.stop(started)
        for hypervisor in hypervisors:
            if hypervisor['service']['host'] != BACKUP:
                continue
            # Placement refused the backup's node a resource provider (its
            # name is compute4's), and Nova 34's service delete then fails
            # with HTTP 500 (no such provider): give it one to delete.
            if not self.conn.placement.find_resource_provider(
                    hypervisor['id']):
                self.conn.placement.create_resource_provider(
                    id=hypervisor['id'], name='%s-%s' % (BACKUP,
                                                         hypervisor['id']))
        for service in self.conn.compute.services():
            if service.host == BACKUP:
                self.conn.compute.delete_service(service)

    def start_backup(self):
        return self.start_compute(BACKUP, realcloud_fake_driver={
            'hypervisor_hostname': HOST})

    def hypervisors(self):
        resp = self.conn.compute.get('/os-hypervisors/detail',
                                     microversion='2.53')
        resp.raise_for_status()
        return resp.json()['hypervisors']

    def hypervisor_hosts(self):
        """(hypervisor_hostname, service host) of compute4's hypervisor."""
        return sorted((hv['hypervisor_hostname'], hv['service']['host'])
                      for hv in self.hypervisors()
                      if hv['hypervisor_hostname'] == HOST)


class GuardedHABackupTest(_HABackup):

    def test_backup_with_another_host_refused(self):
        backup = self.start_backup()
        status = self.cloud.exit_status(backup, 180)
        # The guard's line; Nova's launcher then repeats the exception as
        # its "Unhandled error".
        refusal = [line for line in _read(backup).splitlines()
                   if 'refuses to start' in line and
                   ' nova_migration_guard.' in line]
        self.addDetail('refusal', content.text_content(
            'exit status %s\n%s' % (status, '\n'.join(refusal))))
        self.assertNotIn(status, (0, None))
        self.assertEqual(1, len(refusal), refusal)
        self.assertIn('CRITICAL', refusal[0])
        for part in ('host = %s refuses to start' % BACKUP,
                     'compute node of host %s' % HOST,
                     'matched by hypervisor_hostname',
                     'same [DEFAULT] host (%s)' % HOST):
            self.assertIn(part, refusal[0])
        self.assertEqual([(HOST, HOST)], self.hypervisor_hosts())


class StockHABackupTest(_HABackup):
    """The README: stock Nova 34 starts such an HA backup and registers a
    second compute node for the hypervisor."""

    COMPUTE_GUARDS = ()

    def test_backup_with_another_host_starts(self):
        backup = self.start_backup()
        self.wait_for_log(backup, 'Join ServiceGroup membership', 180)
        deadline = time.monotonic() + 60
        while len(self.hypervisor_hosts()) < 2:
            self.assertLess(time.monotonic(), deadline,
                            self.hypervisor_hosts())
            time.sleep(1)
        self.assertEqual([(HOST, HOST), (HOST, BACKUP)],
                         self.hypervisor_hosts())
        self.assertIsNone(self.cloud.exit_status(backup))
