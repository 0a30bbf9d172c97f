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
RUNNING_POSTCOPY = r.Side(r.RUNNING, r.RUNNING_POSTCOPY)
PAUSED_POSTCOPY = r.Side(r.PAUSED, r.PAUSED_POSTCOPY)
PAUSED_USER = r.Side(r.PAUSED, 1)
SHUTOFF_CRASHED = r.Side(r.SHUTOFF, 3)
# libvirt's virDomainPausedReason, but MIGRATION, POSTCOPY and
# POSTCOPY_FAILED: a guest paused for a reason of its own.
OWN_PAUSE_REASONS = {
    'unknown': 0, 'user': 1, 'save': 3, 'dump': 4, 'ioerror': 5,
    'watchdog': 6, 'from snapshot': 7, 'shutting down': 8, 'snapshot': 9,
    'crashed': 10, 'starting up': 11, 'api error': 14}


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
            job=FAILED, outcome=r.IN_FLIGHT)),
        ('source running, destination running in post-copy', dict(
            source=RUNNING, dest=RUNNING_POSTCOPY, job=None,
            outcome=r.UNKNOWN)),
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
        # Post-copy still pulls memory from the source (libvirt: source
        # PAUSED/POSTCOPY, destination RUNNING/POSTCOPY): not over, in
        # whatever state the other side is seen.
        ('post-copy running', dict(
            source=PAUSED_POSTCOPY, dest=RUNNING_POSTCOPY, job=None,
            outcome=r.IN_FLIGHT)),
        ('post-copy running, the migrate call already failed', dict(
            source=PAUSED_POSTCOPY, dest=RUNNING_POSTCOPY, job=FAILED,
            outcome=r.IN_FLIGHT)),
        ('post-copy running, destination paused (by the user)', dict(
            source=PAUSED_POSTCOPY, dest=PAUSED_POSTCOPY, job=None,
            outcome=r.IN_FLIGHT)),
        ('post-copy running, destination unreachable', dict(
            source=PAUSED_POSTCOPY, dest=UNREACHABLE, job=None,
            outcome=r.IN_FLIGHT)),
        ('post-copy running, source unreachable', dict(
            source=UNREACHABLE, dest=RUNNING_POSTCOPY, job=None,
            outcome=r.IN_FLIGHT)),
        ('post-copy ending, the source gone, destination not yet '
         'finished', dict(
             source=ABSENT, dest=RUNNING_POSTCOPY, job=DONE,
             outcome=r.IN_FLIGHT)),
        # The source's migration job still runs (Nova's abort refused or
        # not yet effective).
        ('job still runs, copying', dict(
            source=RUNNING, dest=PAUSED_MIGRATION, job=None, job_active=True,
            outcome=r.IN_FLIGHT)),
        ('job still runs, switching over', dict(
            source=PAUSED_MIGRATION, dest=PAUSED_MIGRATION, job=None,
            job_active=True, outcome=r.IN_FLIGHT)),
        ('job still runs, destination resumed', dict(
            source=PAUSED_MIGRATION, dest=RUNNING_MIGRATED, job=None,
            job_active=True, outcome=r.IN_FLIGHT)),
        # A guest paused by the user before (or during) the migration,
        # which stays paused: libvirt keeps reason USER on the source, and
        # hands it over paused (PAUSED/USER on the destination).
        ('paused guest, migration refused or aborted', dict(
            source=PAUSED_USER, dest=ABSENT, job=None,
            outcome=r.ROLLED_BACK)),
        ('paused guest, migration failed, incoming copy left', dict(
            source=PAUSED_USER, dest=PAUSED_MIGRATION, job=CANCELLED,
            outcome=r.ROLLED_BACK)),
        ('paused guest, destination unreachable', dict(
            # A paused guest's switch-over leaves the source paused as it
            # was: the destination may hold the handed-over copy.
            source=PAUSED_USER, dest=UNREACHABLE, job=None,
            outcome=r.UNKNOWN)),
        ('paused guest, a paused copy on both hosts', dict(
            source=PAUSED_USER, dest=PAUSED_USER, job=None,
            outcome=r.UNKNOWN)),
        ('paused on the source, running on the destination', dict(
            source=PAUSED_USER, dest=RUNNING_MIGRATED, job=None,
            outcome=r.UNKNOWN)),
        ('paused on the source, job completed, running on the '
         'destination', dict(
             source=PAUSED_USER, dest=RUNNING_MIGRATED, job=DONE,
             outcome=r.COMPLETED)),
        ('paused on the source, yet the job completed', dict(
            source=PAUSED_USER, dest=ABSENT, job=DONE, outcome=r.UNKNOWN)),
        ('paused guest migrated', dict(
            source=ABSENT, dest=PAUSED_USER, job=None,
            outcome=r.COMPLETED)),
        ('paused guest migrated, source defined', dict(
            source=SHUTOFF_MIGRATED, dest=PAUSED_USER, job=None,
            outcome=r.COMPLETED)),
        ('paused guest migrated, destination unreachable', dict(
            source=ABSENT, dest=UNREACHABLE, job=DONE,
            outcome=r.COMPLETED)),
        # The source paused for the switch-over, and the job ended.
        ('switch-over failed, source left paused', dict(
            source=PAUSED_MIGRATION, dest=ABSENT, job=None,
            outcome=r.ROLLED_BACK)),
        ('switch-over failed, incoming copy left paused', dict(
            source=PAUSED_MIGRATION, dest=PAUSED_MIGRATION, job=FAILED,
            outcome=r.ROLLED_BACK)),
        ('source paused for the switch-over, destination unreachable', dict(
            # libvirt's confirm step may have failed after the
            # destination resumed the guest.
            source=PAUSED_MIGRATION, dest=UNREACHABLE, job=None,
            outcome=r.UNKNOWN)),
        ('source paused for the switch-over, nothing on the destination '
         'but the job completed', dict(
             source=PAUSED_MIGRATION, dest=ABSENT, job=DONE,
             outcome=r.UNKNOWN)),
        # The source's guest stopped on its own during the migration.
        ('QEMU died on the source', dict(
            source=SHUTOFF_CRASHED, dest=ABSENT, job=None,
            outcome=r.ROLLED_BACK)),
        ('guest crashed on the source', dict(
            source=r.Side(r.CRASHED, 1), dest=ABSENT, job=None,
            outcome=r.ROLLED_BACK)),
        ('guest shutting down on the source', dict(
            source=r.Side(r.SHUTDOWN, 1), dest=PAUSED_MIGRATION, job=FAILED,
            outcome=r.ROLLED_BACK)),
        ('source shut off by the migration, nothing on the destination',
         dict(source=SHUTOFF_MIGRATED, dest=ABSENT, job=None,
              outcome=r.UNKNOWN)),
        ('incoming copy never handed over, source gone', dict(
            source=ABSENT, dest=PAUSED_MIGRATION, job=None,
            outcome=r.UNKNOWN)),
        ('destination shut off, source paused by the user', dict(
            source=PAUSED_USER, dest=r.Side(r.SHUTOFF, 3), job=None,
            outcome=r.UNKNOWN)),
    ]

    job_active = False

    def test_decide(self):
        verdict = r.decide(self.source, self.dest, self.job,
                           job_active=self.job_active)
        self.assertEqual(self.outcome, verdict.outcome, verdict.reason)
        # The reason always names both sides.
        self.assertIn('source ', verdict.reason)
        self.assertIn('destination ', verdict.reason)


class OwnPauseReasonsTest(testtools.TestCase):
    """A guest paused on its source for any reason of its own stays
    there paused when its migration ends without a switch-over."""

    def test_rolled_back_paused(self):
        for name, reason in OWN_PAUSE_REASONS.items():
            for dest in (ABSENT, PAUSED_MIGRATION):
                verdict = r.decide(r.Side(r.PAUSED, reason), dest, None)
                self.assertEqual(r.ROLLED_BACK, verdict.outcome, name)


_STATES = ([r.Side(state, reason) for state in range(1, 8)
            for reason in range(15)] + [ABSENT, UNREACHABLE])
_JOBS = (None, DONE, r.Job(r.JOB_COMPLETED, None), FAILED, CANCELLED)


class StateSpaceTest(testtools.TestCase):
    """Every (source, destination, job, job still running) libvirt can
    report (each virDomainState with every reason number libvirt has for
    any state, absent, unreachable): invariants of the decision."""

    def verdicts(self):
        for source in _STATES:
            for dest in _STATES:
                for job in _JOBS:
                    for active in (False, True):
                        yield (source, dest, job, active,
                               r.decide(source, dest, job, active))

    def test_invariants(self):
        for source, dest, job, active, verdict in self.verdicts():
            case = (source, dest, job, active, verdict)
            sides = {tuple(source), tuple(dest)}
            if sides & r._POSTCOPY_FAILED:
                self.assertEqual(r.POSTCOPY_FAILED, verdict.outcome, case)
                continue
            if verdict.outcome in (r.COMPLETED, r.ROLLED_BACK):
                # Nothing is finished or rolled back while libvirt still
                # migrates (the job runs, post-copy pulls memory).
                self.assertFalse(active, case)
                self.assertFalse(sides & r._POSTCOPY_RUNNING, case)
            if verdict.outcome == r.COMPLETED:
                self.assertNotIn(source.state, r._ACTIVE, case)
            if verdict.outcome == r.ROLLED_BACK:
                # The destination never ran the guest (or the source's
                # vCPUs run, so it could not have).
                self.assertNotIn(dest.state, r._ACTIVE, case)
                self.assertTrue(
                    dest.state in (r.ABSENT, r.SHUTOFF, r.UNREACHABLE) or
                    tuple(dest) in ((r.PAUSED, r.PAUSED_MIGRATION),
                                    (r.PAUSED, r.PAUSED_STARTING_UP)), case)
                if dest.state in (r.SHUTOFF, r.UNREACHABLE):
                    self.assertIn(source.state, r._ACTIVE, case)
            if (source.state in r._ACTIVE and dest.state in r._ACTIVE):
                self.assertEqual(r.UNKNOWN, verdict.outcome, case)
            self.assertIn('source ', verdict.reason)
            self.assertIn('destination ', verdict.reason)


class WaitedTooLongTest(testtools.TestCase):

    def test_in_flight_becomes_unknown(self):
        verdict = r.waited_too_long(
            r.decide(PAUSED_POSTCOPY, RUNNING_POSTCOPY), 600)
        self.assertEqual(r.UNKNOWN, verdict.outcome)
        self.assertIn('still in flight after 600 s', verdict.reason)
        self.assertIn('post-copy still runs', verdict.reason)

    def test_other_verdicts_are_kept(self):
        verdict = r.decide(RUNNING, ABSENT)
        self.assertIs(verdict, r.waited_too_long(verdict, 600))


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
