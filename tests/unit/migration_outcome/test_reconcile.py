"""Outcome of a live migration that ended abnormally, decided from both
hosts' observations (the states are those libvirt reports; the real-libvirt
notes list the event and state sequences of real migrations)."""

import testscenarios
import testtools

from nova_migration_guard.migration_outcome import reconcile as r

RUNNING = r.Side(r.RUNNING, 5)
RUNNING_MIGRATED = r.Side(r.RUNNING, r.RUNNING_MIGRATED)
PAUSED_MIGRATION = r.Side(r.PAUSED, r.PAUSED_MIGRATION)
SHUTOFF_MIGRATED = r.Side(r.SHUTOFF, r.SHUTOFF_MIGRATED)
ABSENT = r.Side(r.ABSENT, None)
UNREACHABLE = r.Side(r.UNREACHABLE, None)
DONE = r.Job(r.JOB_COMPLETED, True)
FAILED = r.Job(r.JOB_FAILED, False)
CANCELLED = r.Job(r.JOB_CANCELLED, None)


class DecideTest(testscenarios.WithScenarios, testtools.TestCase):

    scenarios = [
        # The migrate call raised after the switch-over (G3): completed.
        ('raised after completion', dict(
            source=ABSENT, dest=RUNNING_MIGRATED, job=DONE,
            outcome=r.COMPLETED)),
        ('source still paused after switch-over', dict(
            source=PAUSED_MIGRATION, dest=RUNNING_MIGRATED, job=None,
            outcome=r.COMPLETED)),
        ('source shut off, migrated', dict(
            source=SHUTOFF_MIGRATED, dest=RUNNING_MIGRATED, job=None,
            outcome=r.COMPLETED)),
        ('completed, destination unreachable', dict(
            source=ABSENT, dest=UNREACHABLE, job=DONE,
            outcome=r.COMPLETED)),
        # Failed or cancelled (completion timeout) before the switch-over.
        ('job failed, back on the source', dict(
            source=RUNNING, dest=ABSENT, job=FAILED,
            outcome=r.ROLLED_BACK)),
        ('job cancelled, back on the source', dict(
            source=RUNNING, dest=ABSENT, job=CANCELLED,
            outcome=r.ROLLED_BACK)),
        ('raised before anything started', dict(
            source=RUNNING, dest=ABSENT, job=None, outcome=r.ROLLED_BACK)),
        # Post-copy failure: memory split between the hosts.
        ('post-copy failed on the source', dict(
            source=r.Side(r.PAUSED, r.PAUSED_POSTCOPY_FAILED),
            dest=r.Side(r.PAUSED, r.PAUSED_POSTCOPY), job=FAILED,
            outcome=r.POSTCOPY_FAILED)),
        ('post-copy failed on the destination', dict(
            source=ABSENT,
            dest=r.Side(r.RUNNING, r.RUNNING_POSTCOPY_FAILED), job=None,
            outcome=r.POSTCOPY_FAILED)),
        # Cannot tell: never pick a side.
        ('running on both', dict(
            source=RUNNING, dest=RUNNING_MIGRATED, job=None,
            outcome=r.UNKNOWN)),
        ('running nowhere', dict(
            source=ABSENT, dest=ABSENT, job=None, outcome=r.UNKNOWN)),
        ('completed job but guest on the source', dict(
            source=RUNNING, dest=ABSENT, job=DONE, outcome=r.UNKNOWN)),
        ('source running, incoming copy still paused', dict(
            source=RUNNING, dest=PAUSED_MIGRATION, job=FAILED,
            outcome=r.ROLLED_BACK)),
        ('source running, destination unreachable', dict(
            source=RUNNING, dest=UNREACHABLE, job=FAILED,
            outcome=r.ROLLED_BACK)),
        ('source running, destination paused in post-copy', dict(
            source=RUNNING, dest=r.Side(r.PAUSED, r.PAUSED_POSTCOPY),
            job=FAILED, outcome=r.UNKNOWN)),
        ('source running, destination running a booted guest', dict(
            source=RUNNING, dest=RUNNING, job=None, outcome=r.UNKNOWN)),
        ('source compute died after the switch-over (G4)', dict(
            source=UNREACHABLE, dest=RUNNING_MIGRATED, job=None,
            outcome=r.COMPLETED)),
        ('destination running a booted guest, source unreachable', dict(
            source=UNREACHABLE, dest=RUNNING, job=None, outcome=r.UNKNOWN)),
        ('failed job, source unreachable', dict(
            source=UNREACHABLE, dest=ABSENT, job=FAILED,
            outcome=r.UNKNOWN)),
    ]

    def test_decide(self):
        verdict = r.decide(self.source, self.dest, self.job)
        self.assertEqual(self.outcome, verdict.outcome, verdict.reason)
        # The reason always names both sides.
        self.assertIn('source ', verdict.reason)
        self.assertIn('destination ', verdict.reason)


class RollbackStatusTest(testtools.TestCase):
    """A rolled-back migration is 'cancelled' when the migrate call says
    its job was aborted, whatever Nova's monitor last polled."""

    def test_aborted_job_is_cancelled(self):
        self.assertEqual('cancelled',
                         r.rollback_status(r.ERR_OPERATION_ABORTED))

    def test_other_failures_keep_novas_status(self):
        # VIR_ERR_OPERATION_FAILED, VIR_ERR_OPERATION_TIMEOUT, no libvirt
        # error at all.
        for code in (9, 68, None):
            self.assertIsNone(r.rollback_status(code), code)
