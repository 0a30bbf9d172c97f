"""What the real cloud's races count and call broken, from round records
(realcloud.races, demo.real_cloud); the races themselves run in
tests/realcloud and ``demo --cloud real``."""

import testtools

from nova_migration_guard.demo import real_cloud
from nova_migration_guard.lab.realcloud import races


def outcome(hosts=('compute1', 'compute2', 'compute3'), states=('ACTIVE',) * 3,
            api=(202, 202), migrations=('completed', 'error'),
            conductors=('conductor1', 'conductor2'), served_by=('?', '?')):
    return {'hosts': sorted(hosts), 'states': sorted(states),
            'api': list(api), 'migrations': sorted(migrations),
            'conductors': list(conductors),
            'schedulers': ['scheduler1', 'scheduler2'],
            'served_by': list(served_by)}


class _Rounds(races.MoveRace):
    def __init__(self, rounds):
        self.rounds = rounds


class RoundTestCase(testtools.TestCase):

    def test_policy_kept_ignores_shelved_members(self):
        self.assertTrue(races.policy_kept(outcome(
            hosts=('compute1', 'compute2', '-'))))
        self.assertFalse(races.policy_kept(outcome(
            hosts=('compute1', 'compute4', 'compute4'))))

    def test_broken_names_what_a_user_sees_first(self):
        self.assertIsNone(real_cloud.broken(outcome()))
        self.assertEqual('policy violated', real_cloud.broken(outcome(
            hosts=('compute1', 'compute4', 'compute4'),
            states=('ACTIVE', 'ACTIVE', 'ERROR'))))
        self.assertEqual('an instance in ERROR', real_cloud.broken(outcome(
            states=('ACTIVE', 'ACTIVE', 'ERROR'))))
        self.assertEqual('HTTP [202, 500]', real_cloud.broken(outcome(
            api=(202, 500))))
        # A request that never answered (its thread timed out) is no 5xx.
        self.assertIsNone(real_cloud.broken(outcome(api=(202, None))))

    def test_counts(self):
        race = _Rounds([
            outcome(),
            outcome(migrations=('completed', 'confirmed'),
                    conductors=('conductor1', 'conductor1')),
            outcome(hosts=('compute1', 'compute4', 'compute4'),
                    migrations=('completed', 'unshelved'),
                    conductors=('conductor2', '?')),
            outcome(states=('ACTIVE', 'ERROR', 'ACTIVE'), api=(202, 503)),
        ])
        self.assertEqual({'rounds': 4, 'violated': 1, 'error': 1,
                          'http_5xx': 1, 'refused': 2, 'crossed': 2},
                         race.counts())
        crossed, served = race.crossed()
        self.assertEqual(2, crossed)
        self.assertEqual(4, served['conductor1'])

    def test_processes(self):
        race = _Rounds([
            outcome(served_by=('nova-conductor-conductor1 pid 11, '
                               'nova-scheduler-scheduler2 pid 22', '?')),
            outcome(served_by=('nova-conductor-conductor1 pid 11',
                               'nova-conductor-conductor2 pid 12')),
        ])
        self.assertEqual({'nova-conductor-conductor1 pid 11': 2,
                          'nova-scheduler-scheduler2 pid 22': 1,
                          'nova-conductor-conductor2 pid 12': 1},
                         dict(race.processes()))

    def test_summary(self):
        counts = {'rounds': 2, 'violated': 1, 'error': 0, 'http_5xx': 0,
                  'refused': 0, 'crossed': 1,
                  'first_broken': 'round 2: policy violated'}
        self.assertEqual(
            'round 2: policy violated; 2 rounds: 1 violated, 0 ERROR, 0 5xx, '
            '0 refused, 1 crossed',
            real_cloud.summary(counts, real_cloud.STOCK))
        self.assertTrue(real_cloud.summary(
            counts, real_cloud.GUARDED).startswith('2 rounds: '))
        self.assertEqual('could not run: ScenarioFailed: timeout',
                         real_cloud.summary(
                             {'could_not_run': 'ScenarioFailed: timeout'},
                             real_cloud.STOCK))
