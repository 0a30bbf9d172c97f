"""The convergence step's notification payload: its fields and version,
and what a step is called in the instance action and the event type."""

from oslo_versionedobjects import fixture
import testtools

from nova_migration_guard.convergence import ladder
from nova_migration_guard.convergence import record

# Changing ConvergenceStepPayload's fields changes its hash: bump VERSION
# (consumers parse it) and update the hash here.
EXPECTED = {'ConvergenceStepPayload': '1.0-ef5a4b6bd761c3b18d82780fdb1b12cd'}


class PayloadVersionTest(testtools.TestCase):

    def test_versions(self):
        checker = fixture.ObjectVersionChecker(
            {'ConvergenceStepPayload': [record.ConvergenceStepPayload]})
        expected, actual = checker.test_hashes(EXPECTED)
        self.assertEqual(expected, actual)


class StepNameTest(testtools.TestCase):

    def test_names(self):
        self.assertEqual('set_downtime_1000ms', record.step_name(
            ladder.Step(ladder.SET_DOWNTIME, 1000, 'r')))
        self.assertEqual('post_copy', record.step_name(
            ladder.Step(ladder.POST_COPY, None, 'r')))
        self.assertEqual('abort', record.step_name(
            ladder.Step(ladder.ABORT, None, 'r')))
