"""A live migration whose source guest was paused to finish it, then did
not finish, under the convergence guard: the guest must run again on its
source, ACTIVE, as Nova leaves it after its own force-complete.

Stubbed, and why (nova_migration_guard/lab/embedded/libvirt_migration.py): the
hypervisor.  Nova's fake libvirt cannot migrate, so the migrate call runs
a job whose statistics repeat what real QEMU reported for a guest that
dirties memory faster than the copy; ``stalling-paused-fails`` fails the
job once the source guest is paused (the connection broke), ``stalling``
goes on until the job is aborted (a paused guest whose copy still makes no
progress).  Nova's API, conductor, scheduler, placement, both computes,
the guarded driver and Nova's migration monitor are real.
"""

import time

from testtools.content import text_content

from nova_migration_guard.convergence import record
from nova_migration_guard.lab.embedded.libvirt_migration import MigrationCloud

#: suspend-workload without auto-converge and with one downtime step: the
#: first stalled stretch goes to the pause.
PAUSE_AT_ONCE = 'batch:suspend-workload,auto_converge=false,' \
                'downtime_steps_ms=500'


class _PausedMigrationTest(MigrationCloud):

    GUARDS = ('migration_outcome', 'convergence')

    def use_policy(self, spec):
        self.flags(default_policy=spec.partition(':')[0],
                   custom_policies=[spec],
                   group='migration_guard_convergence')

    def wait_until_running(self):
        for _ in range(240):
            migrations = [m for m in self.api.get_migrations()
                          if m['instance_uuid'] == self.server['id']]
            if migrations and migrations[0]['status'] == 'running':
                return migrations[0]
            time.sleep(0.25)
        self.fail('the live migration did not start running')

    def end(self):
        server, migration = self.wait_for_end()
        self.addDetail('outcome', text_content(
            self.outcome(server, migration)))
        return server, migration

    def assert_runs_again_on_its_source(self, server):
        self.assertEqual(self.src, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        # Running, not left paused: Nova's on-failure unpause ran.
        self.assertEqual([self.src], self.wait_for_guests_on([self.src]))
        self.assertEqual([self.src], self.running_on())

    def steps(self):
        return [e['event'][len(record.EVENT_PREFIX):] for e in
                self.live_migration_events(record.EVENT_PREFIX)]


class ForceCompleteThenFailureTest(_PausedMigrationTest):

    def test_guest_is_resumed_on_its_source(self):
        # pre-copy-only (no post-copy: force-complete pauses the guest),
        # patient enough that the ladder itself takes no step.
        self.use_policy('patient:pre-copy-only,stall_passes=1000')
        self.fail_at('stalling-paused-fails')
        self.start_live_migration()
        migration = self.wait_until_running()
        self.api.microversion = '2.22'
        self.api.force_complete_migration(self.server['id'],
                                          migration['id'])
        server, migration = self.end()
        self.assertIn(migration['status'], ('error', 'failed'))
        self.assert_runs_again_on_its_source(server)
        self.assertEqual([], self.steps())


class PauseThenFailureTest(_PausedMigrationTest):

    def test_guest_is_resumed_on_its_source(self):
        self.use_policy(PAUSE_AT_ONCE)
        self.fail_at('stalling-paused-fails')
        self.start_live_migration()
        server, migration = self.end()
        self.assertIn(migration['status'], ('error', 'failed'))
        self.assert_runs_again_on_its_source(server)
        self.assertEqual(['pause'], self.steps())


class PauseThenDeadlineTest(_PausedMigrationTest):

    def test_aborted_and_resumed_on_its_source(self):
        # A deadline of 2 s (1 s per GiB of Nova's data size, at least 2
        # GiB); the paused guest's copy makes no more progress.
        self.use_policy(PAUSE_AT_ONCE + ',seconds_per_gib=1')
        self.fail_at('stalling')
        self.start_live_migration()
        server, migration = self.end()
        self.assertEqual('cancelled', migration['status'])
        self.assert_runs_again_on_its_source(server)
        self.assertEqual(['pause', 'abort'], self.steps())
