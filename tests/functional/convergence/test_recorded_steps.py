"""The convergence guard's steps on Nova's in-process cloud: what a user
and an operator see of a live migration that does not converge.

Stubbed, and why (nova_migration_guard/lab/embedded/libvirt_migration.py): the
hypervisor.  Nova's fake libvirt cannot migrate, so the ``stalling`` step
runs a job whose statistics repeat what real QEMU reported for a guest
dirtying memory faster than the copy (every pass starts with as much to
send) until the job is aborted.  Nova's API, conductor, scheduler,
placement, both computes, the guarded driver and its monitor are real.
The ladder itself runs on real QEMU in tests/real_libvirt/test_convergence.
"""

from nova.tests.fixtures import libvirt as fakelibvirt
from testtools.content import text_content

from nova_migration_guard.convergence import record
from nova_migration_guard.lab.embedded.libvirt_migration import MigrationCloud

# No downtime step: 120 MiB at 15 MiB/s fits none of 500, 1000 and 2000
# ms, and the predictor knows it from the first passes.
STEPS = [record.EVENT_PREFIX + 'abort']


class StalledMigrationTest(MigrationCloud):

    GUARDS = ('migration_outcome', 'convergence')

    def test_steps_are_recorded_and_notified(self):
        # The operator's default: never post-copy, so the ladder ends in
        # an abort (the fake cannot run post-copy).
        self.flags(default_policy='pre-copy-only',
                   group='migration_guard_convergence')
        libvirt = self.fail_at('stalling')
        self.start_live_migration()
        # The fake has no dirty-rate probe: from its passes alone (120 MiB
        # every 8 s: a lower bound of 15 MiB/s) a 10 % throttle looks
        # enough; the abort comes once the passes stalled over the
        # throttle's ramp (2 passes) and the policy's 3.
        server, migration = self.wait_for_end()
        self.addDetail('outcome', text_content(
            self.outcome(server, migration)))

        # The policy's flags and auto-converge parameters reached
        # libvirt with the migrate call.
        self.assertTrue(libvirt.flags & fakelibvirt.VIR_MIGRATE_AUTO_CONVERGE)
        self.assertEqual(20, libvirt.params['auto_converge.initial'])
        self.assertEqual(10, libvirt.params['auto_converge.increment'])

        # Aborted and rolled back: the guest keeps running on its source.
        self.assertEqual('cancelled', migration['status'])
        self.assertEqual(self.src, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual([self.src], self.running_on())

        # The steps, in order, with the live-migration action.
        ours = self.live_migration_events(record.EVENT_PREFIX)
        self.assertEqual(STEPS, [e['event'] for e in ours])
        self.assertEqual(['Error'], [e['result'] for e in ours])
        self.assertEqual({self.src}, {e['host'] for e in ours})
        # The abort says why, with its numbers (details: admins, 2.84).
        self.assertIn('stalled over 5 passes although predicted throttle',
                      ours[-1]['details'])
        self.assertIn('120.0 MiB to send at 15.0 MiB/s', ours[-1]['details'])

        # And as versioned notifications.
        sent = [n for n in self.notifier.versioned_notifications
                if n['event_type'].startswith(record.NOTIFICATION_PREFIX)]
        self.assertEqual(['migration_guard.convergence.abort'],
                         [n['event_type'] for n in sent])
        self.assertEqual('nova_migration_guard',
                         sent[-1]['payload']['nova_object.namespace'])
        body = sent[-1]['payload']['nova_object.data']
        self.assertEqual(
            (self.server['id'], migration['uuid'], 'pre-copy-only',
             'abort', 120 * 2 ** 20, 15 * 2 ** 20),
            (body['instance_uuid'], body['migration_uuid'], body['policy'],
             body['action'], body['memory_remaining_bytes'],
             body['bandwidth_bps']))
        self.assertIsNone(body['value'])
