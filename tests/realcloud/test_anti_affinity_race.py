"""Concurrent moves of one anti-affinity group, across processes.

Three members of a hard anti-affinity group on three of the four computes:
a moving member's only possible destination is the free host, so when two
members move at once (live or cold migrations, scheduler-chosen), only one
of them may land there.  The two requests
go through nova-api (gunicorn), are served by whichever of the two
nova-conductor and two nova-scheduler processes takes them from RabbitMQ,
and are checked by the destination nova-compute; the guard's lock lives in
a real etcd.  Each round records which processes served each request (by
its request id in their logs), so the test shows the races crossed
processes.  Even rounds start both moves at once, odd rounds start the
second after a random delay of up to 0.6 s.  The rounds are
``nova_migration_guard.lab.realcloud.races.MoveRace``, which
``nova-migration-guard demo --cloud real`` runs too; here they run 20
times per scenario and the test asserts each one.
"""

from testtools import content

from nova_migration_guard.lab.realcloud import races
from tests.realcloud import base

ROUNDS = 20


class _MoveRace(base.RealCloudTestCase, races.MoveRace):
    """races.MoveRace as a test: the group is booted in setUp, each
    round's record and the summary are the test's details."""

    def setUp(self):
        super().setUp()
        self.start_race()

    def record(self):
        self.addDetail('rounds', content.text_content('\n'.join(
            str(r) for r in self.rounds)))

    def summarize(self):
        """Add the 'summary' detail; returns (rounds with a refused move,
        rounds served by two conductors, requests served per process)."""
        counts = self.counts()
        _, served = self.crossed()
        self.addDetail('summary', content.text_content(
            'rounds with a refused move: %d of %d; requests served by two '
            'different conductors: %d rounds; counts: %s; served by: %s'
            % (counts['refused'], ROUNDS, counts['crossed'], counts,
               dict(self.processes()))))
        return counts['refused'], counts['crossed'], served

    def race_until_broken(self):
        """Stock Nova: race until a round violates the policy or leaves an
        instance in ERROR (later rounds would start from the broken state),
        at most ROUNDS rounds; add the 'summary' detail and return the
        counts (races.MoveRace.counts)."""
        for round_no in range(ROUNDS):
            outcome = self.race_round(round_no)
            if (not races.policy_kept(outcome) or
                    'ERROR' in outcome['states']):
                break
        counts = self.counts()
        self.addDetail('summary', content.text_content(
            'rounds: %d of %d; policy violated: %d; an instance in ERROR: '
            '%d; counts: %s; served by: %s'
            % (counts['rounds'], ROUNDS, counts['violated'], counts['error'],
               counts, dict(self.processes()))))
        return counts


class GuardedLiveMigrationRaceTest(_MoveRace):
    """guards = anti_affinity with the in-flight filter, etcd locks; the
    subclasses race other kinds of moves."""

    GUARDS = ('anti_affinity',)

    def test_concurrent_moves_keep_policy(self):
        self.addCleanup(self.record)
        for round_no in range(ROUNDS):
            outcome = self.race_round(round_no)
            self.assertEqual([202, 202], outcome['api'], outcome)
            # The policy holds and no instance is in ERROR or busy.
            self.assertEqual(3, len(set(outcome['hosts'])), outcome)
            self.assertEqual(['ACTIVE'] * 3, outcome['states'], outcome)
            self.assertTrue(set(outcome['migrations']) <= {
                'completed', 'confirmed', 'error', 'failed'}, outcome)
        refused, crossed, served = self.summarize()
        # The rounds raced (some move was refused), and across processes.
        self.assertGreater(refused, 0)
        self.assertGreater(crossed, 0)
        for host in self.cloud.conductors + self.cloud.schedulers:
            self.assertGreater(served[host], 0, dict(served))


class StockLiveMigrationRaceTest(_MoveRace):
    """Stock Nova (plugin installed, no guard): the README says concurrent
    live migrations keep the policy, but both moves fail in many rounds
    (each refused by the other's late check)."""

    GUARDS = ()

    def test_concurrent_live_migrations_stock(self):
        self.addCleanup(self.record)
        both_failed = errors = 0
        for round_no in range(ROUNDS):
            outcome = self.race_round(round_no)
            if 'ERROR' in outcome['states']:
                errors += 1
                break   # stock leaves it there; later rounds would differ
            if 'completed' not in outcome['migrations']:
                both_failed += 1
        crossed, _ = self.crossed()
        self.addDetail('summary', content.text_content(
            'rounds: %d; both moves failed: %d; an instance in ERROR: %d; '
            'crossed conductors: %d; counts: %s; served by: %s'
            % (len(self.rounds), both_failed, errors, crossed, self.counts(),
               dict(self.processes()))))
        self.assertGreater(both_failed + errors, 0,
                           'stock never failed both moves nor left ERROR')


class GuardedColdMigrationRaceTest(GuardedLiveMigrationRaceTest):
    KINDS = ('cold', 'cold')


class GuardedLiveAndColdMigrationRaceTest(GuardedLiveMigrationRaceTest):
    KINDS = ('live', 'cold')


class StockColdMigrationRaceTest(_MoveRace):
    """Stock Nova: the README says concurrent cold migrations both land on
    the free host (the policy is violated), or one of them ends in ERROR
    (the demo's stock row)."""

    GUARDS = ()
    KINDS = ('cold', 'cold')

    def test_concurrent_cold_migrations_stock(self):
        self.addCleanup(self.record)
        counts = self.race_until_broken()
        self.assertGreater(counts['violated'] + counts['error'], 0,
                           'stock kept the policy and every instance in '
                           '%d rounds' % ROUNDS)
