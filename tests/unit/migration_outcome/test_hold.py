"""Which of the lock states Nova's API and the guard can leave an instance
in are the guard's holds (the functional tests in
tests/functional/migration_outcome/test_hold.py reach them through the
API)."""

import testscenarios
import testtools

from nova import objects

from nova_migration_guard.migration_outcome import hold

OURS = hold.REASON_PREFIX + 'post-copy failed'
OTHER = hold.REASON_PREFIX + 'another hold'
OWN_WORDS = 'maintenance'


class HeldReasonTest(testscenarios.WithScenarios, testtools.TestCase):

    scenarios = [
        ('unlocked', dict(locked=False, by=None, reason=None, marker=None,
                          held=None)),
        # Nova's unlock pops locked_reason and keeps the marker.
        ('released, stale marker', dict(locked=False, by=None, reason=None,
                                        marker=OURS, held=None)),
        ('the guard holds', dict(locked=True, by='admin', reason=OURS,
                                 marker=OURS, held=OURS)),
        # An owner's lock (microversion 2.73) that reads like ours.
        ('owner look-alike', dict(locked=True, by='owner', reason=OURS,
                                  marker=None, held=None)),
        ('owner look-alike after a release', dict(
            locked=True, by='owner', reason=OURS, marker=OURS, held=None)),
        ('admin lock after a release', dict(
            locked=True, by='admin', reason=OWN_WORDS, marker=OURS,
            held=None)),
        ('admin look-alike after a release', dict(
            locked=True, by='admin', reason=OTHER, marker=OURS, held=None)),
        ('admin lock without reason after a release', dict(
            locked=True, by='admin', reason=None, marker=OURS, held=None)),
        ('admin lock, no marker', dict(locked=True, by='admin',
                                       reason=OWN_WORDS, marker=None,
                                       held=None)),
        # A hold set by a release before the marker: prefix, admin.
        ('hold of an earlier release', dict(
            locked=True, by='admin', reason=OURS, marker=None, held=OURS)),
        ('owner lock without reason', dict(locked=True, by='owner',
                                           reason=None, marker=None,
                                           held=None)),
    ]

    def test_held_reason(self):
        objects.register_all()
        sysmeta = {}
        if self.reason is not None:
            sysmeta['locked_reason'] = self.reason
        if self.marker is not None:
            sysmeta[hold.MARKER_KEY] = self.marker
        instance = objects.Instance(locked=self.locked, locked_by=self.by,
                                    system_metadata=sysmeta)
        self.assertEqual(self.held, hold.held_reason(instance))
