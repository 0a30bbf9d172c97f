"""Lifecycle events by their libvirt detail; the pairs are those real
daemons emit (tests/traces/libvirt: e.g. A STOPPED/MIGRATED after the
switch-over, B STARTED/MIGRATED and RESUMED/MIGRATED)."""

import testtools

from nova_migration_guard.migration_outcome import events as e
from tests import traces

# libvirt event type names as the traces record them.
_TYPES = {'STARTED': e.STARTED, 'SUSPENDED': e.SUSPENDED,
          'RESUMED': e.RESUMED, 'STOPPED': e.STOPPED}
_DETAILS = {('STARTED', 'MIGRATED'): e.STARTED_MIGRATED,
            ('STARTED', 'BOOTED'): 0,
            ('RESUMED', 'MIGRATED'): e.RESUMED_MIGRATED,
            ('RESUMED', 'UNPAUSED'): 0,
            ('SUSPENDED', 'MIGRATED'): 1,
            # VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY: the source paused for a
            # switch to post-copy (Nova's host turns it into its
            # POSTCOPY_STARTED event).
            ('SUSPENDED', 'POSTCOPY'): 7,
            ('RESUMED', 'POSTCOPY'): e.RESUMED_POSTCOPY,
            ('STOPPED', 'MIGRATED'): e.STOPPED_MIGRATED,
            ('STOPPED', 'FAILED'): e.STOPPED_FAILED}


class InterpretTest(testtools.TestCase):

    def test_a_migrated_guest_leaving_is_not_a_power_off(self):
        self.assertEqual(e.MIGRATION_STEP,
                         e.interpret((e.STOPPED, e.STOPPED_MIGRATED)))

    def test_a_real_shutdown_is_forwarded(self):
        self.assertEqual(e.FORWARD, e.interpret((e.STOPPED, 0)))  # SHUTDOWN
        self.assertEqual(e.FORWARD, e.interpret((e.STOPPED, 1)))  # DESTROYED

    def test_postcopy_failures(self):
        self.assertEqual(e.POSTCOPY_FAILED, e.interpret(
            (e.SUSPENDED, e.SUSPENDED_POSTCOPY_FAILED)))
        self.assertEqual(e.POSTCOPY_FAILED, e.interpret(
            (e.RESUMED, e.RESUMED_POSTCOPY_FAILED)))

    def test_no_detail_is_forwarded(self):
        self.assertEqual(e.FORWARD, e.interpret(None))

    def test_recorded_migrations(self):
        """Of every lifecycle event both daemons sent during the recorded
        migrations, only the boot and the source's pause for the
        switch-over (pre-copy or post-copy) reach Nova; each
        STOPPED/MIGRATED, the destination's RESUMED/POSTCOPY, and the
        STOPPED/FAILED of a failed incoming copy, are dropped."""
        for name in traces.names():
            trace = traces.load(name)
            incoming = {}
            for event in trace.events:
                if event['event'] not in _TYPES:
                    continue  # MIGRATION_ITERATION, JOB_COMPLETED
                key = (event['event'], event['detail'])
                self.assertIn(key, _DETAILS)
                detail = (_TYPES[key[0]], _DETAILS[key])
                where = (event['host'], event['domain'])
                was = incoming.get(where, False)
                incoming[where] = e.still_incoming(detail, was)
                action = e.interpret(detail, incoming=was)
                if key in (('STARTED', 'BOOTED'), ('RESUMED', 'UNPAUSED'),
                           ('SUSPENDED', 'MIGRATED'),
                           ('SUSPENDED', 'POSTCOPY')):
                    self.assertEqual(e.FORWARD, action, (name, event))
                else:
                    self.assertEqual(e.MIGRATION_STEP, action,
                                     (name, event))


STARTED_BOOTED = (e.STARTED, 0)
STARTED_MIGRATED = (e.STARTED, e.STARTED_MIGRATED)
RESUMED_MIGRATED = (e.RESUMED, e.RESUMED_MIGRATED)
RESUMED_POSTCOPY = (e.RESUMED, e.RESUMED_POSTCOPY)
RESUMED_UNPAUSED = (e.RESUMED, 0)
SUSPENDED_PAUSED = (e.SUSPENDED, 0)
STOPPED_FAILED = (e.STOPPED, e.STOPPED_FAILED)


class StoppedFailedTest(testtools.TestCase):
    """STOPPED/FAILED: a failed incoming migration's copy (dropped), or a
    QEMU that died (a crash, an OOM kill: forwarded as stock Nova does).
    Each case is the sequence of one domain's events on one host, what
    the driver knew before the first (``incoming``), and the action the
    last event gets."""

    def last_action(self, sequence, incoming=False):
        for detail in sequence:
            action = e.interpret(detail, incoming=incoming)
            incoming = e.still_incoming(detail, incoming)
        return action

    def test_a_crash_is_forwarded(self):
        self.assertEqual(e.FORWARD, e.interpret(STOPPED_FAILED))
        self.assertEqual(e.FORWARD, self.last_action(
            [STARTED_BOOTED, STOPPED_FAILED]))

    def test_a_paused_guest_that_crashes_is_forwarded(self):
        self.assertEqual(e.FORWARD, self.last_action(
            [STARTED_BOOTED, SUSPENDED_PAUSED, RESUMED_UNPAUSED,
             STOPPED_FAILED]))

    def test_a_failed_incoming_migration_is_dropped(self):
        self.assertEqual(e.MIGRATION_STEP, self.last_action(
            [STARTED_MIGRATED, STOPPED_FAILED]))

    def test_announced_by_nova_before_libvirt_started_it(self):
        # pre_live_migration (or the restart recovery) said so.
        self.assertEqual(e.MIGRATION_STEP, self.last_action(
            [STOPPED_FAILED], incoming=True))

    def test_a_guest_that_arrived_and_then_crashed_is_forwarded(self):
        for handed_over in (RESUMED_MIGRATED, RESUMED_POSTCOPY):
            self.assertEqual(e.FORWARD, self.last_action(
                [STARTED_MIGRATED, handed_over, STOPPED_FAILED]),
                handed_over)

    def test_a_boot_ends_a_stale_incoming_migration(self):
        # Nova announced a migration that never started here (refused),
        # then the instance came by another way (cold migration,
        # evacuation) and crashed.
        self.assertEqual(e.FORWARD, self.last_action(
            [STARTED_BOOTED, STOPPED_FAILED], incoming=True))

    def test_a_second_failure_after_the_first_is_forwarded(self):
        # The failed incoming copy ended the migration: a later
        # STOPPED/FAILED is another thing.
        self.assertEqual(e.FORWARD, self.last_action(
            [STARTED_MIGRATED, STOPPED_FAILED, STOPPED_FAILED]))

    def test_other_events_keep_what_is_known(self):
        for detail in (SUSPENDED_PAUSED, RESUMED_UNPAUSED, None,
                       (e.SUSPENDED, 1)):
            for known in (False, True):
                self.assertEqual(known, e.still_incoming(detail, known),
                                 detail)
