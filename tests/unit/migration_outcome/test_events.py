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
        switch-over reach Nova; each STOPPED/MIGRATED is dropped."""
        for name in traces.names():
            trace = traces.load(name)
            for event in trace.events:
                if event['event'] not in _TYPES:
                    continue  # MIGRATION_ITERATION, JOB_COMPLETED
                key = (event['event'], event['detail'])
                self.assertIn(key, _DETAILS)
                action = e.interpret((_TYPES[key[0]], _DETAILS[key]))
                if key in (('STARTED', 'BOOTED'), ('RESUMED', 'UNPAUSED'),
                           ('SUSPENDED', 'MIGRATED')):
                    self.assertEqual(e.FORWARD, action, (name, event))
                else:
                    self.assertEqual(e.MIGRATION_STEP, action,
                                     (name, event))
