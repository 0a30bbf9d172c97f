"""An evacuation racing another move of a member of its group, with the
scheduler filter enabled, as a new user would set it up.

Three members of a hard anti-affinity group on host1..host3, host4 free.
Each round one member is evacuated (its host forced down) while another
member moves too (cold or live migration, or a second evacuation): host4 is
the one host both can go to.  Even rounds start both moves together (each
held after its scheduling until the other is scheduled too); odd rounds
spread the two API calls over a fraction of a second at random offsets
(the seed is in the test's ``outcomes`` detail), so either move may be
scheduled, checked or claimed while the other is at any step.

Whichever layer refuses the evacuation (our filter, Nova's
ServerGroupAntiAffinityFilter, either late check, the claim), it must not
end in ERROR: the instance keeps its state on its down host, no task, the
migration ends ``error`` (refused by the scheduler) or ``failed`` (refused
on the destination), and a fault names the group.

Stubbed: Nova's fake virt driver, made to take a live-migrated guest off
its source as libvirt does (GuestLeavesSourceDriver says why).
"""

import collections
import random
import time

from nova.virt import fake

from nova_migration_guard.lab.embedded import cloud as cloud_mod
from tests.functional.anti_affinity import test_late_check

ROUNDS = 20
#: Spread rounds start each move after a random delay up to this many
#: seconds: the window in which a move is scheduled, checked and claimed on
#: the embedded cloud.
SPREAD_SECONDS = 0.6
FILTER = 'nova_migration_guard.scheduler.filters.InFlightAntiAffinityFilter'
REFUSED_STATUSES = ('error', 'failed')


class GuestLeavesSourceDriver(fake.MediumFakeDriver):
    """Nova's fake driver keeps a live-migrated guest on its source too;
    libvirt does not (the domain moves).  Left there, it makes a later
    evacuation to that host fail with InstanceExists, in ERROR: an artifact
    of the fake, not the race under test.  This one takes it off the source
    as the migration completes."""

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration=False,
                       migrate_data=None):
        self.destroy(context, instance, None)
        post_method(context, instance, dest, block_migration, migrate_data)


class _EvacuateMixedRace(test_late_check._MoveRace):

    NUMBER_OF_COMPUTES = 4
    COMPUTE_DRIVER = GuestLeavesSourceDriver
    EXTRA_FILTERS = (FILTER,)

    def setUp(self):
        super().setUp()
        # {server id: faults naming the group before its evacuation}
        self._group_faults_before = {}

    def _start_move(self, server, kind):
        if kind == 'evacuate':
            self._group_faults_before[server['id']] = self.group_faults(
                server)
            return self.evacuate(server, expected=None)
        return super()._start_move(server, kind)

    def _settle(self, server, kind):
        if kind == 'evacuate':
            record = self.wait_for_migration(
                server, statuses=cloud_mod.FINAL_MIGRATION_STATUSES,
                timeout=60)
            if record['status'] == 'error' and self.GUARDS:
                # Found no host: the guard's hook runs after Nova's ERROR.
                self.wait_for_group_fault(
                    server, self._group_faults_before[server['id']])
            self.wait_until_settled(server)
            return record
        return self.settle_move(server)

    def _spread(self, rng, moves):
        """Run ``moves`` in threads, a random one at once and the others
        after random delays; no hold at scheduling.  Returns their API
        answers and the delays."""
        self._round_barrier = None
        delays = [0.0] + [rng.uniform(0, SPREAD_SECONDS)
                          for _ in moves[1:]]
        rng.shuffle(delays)

        def delayed(move, delay):
            time.sleep(delay)
            return move()
        return self.run_concurrently(
            *[lambda m=m, d=d: delayed(m, d)
              for m, d in zip(moves, delays)]), delays

    def _rounds(self, partner_kind, rounds=ROUNDS):
        """Per round: the evacuee and its partner (``partner_kind``) race
        for host4's place; yields (round_no, before, pairs, outcome) where
        ``pairs`` is [(server now, its move's record)] of both racers."""
        self.group = group = self.create_anti_affinity_group('evac-mixed')
        servers = [self.boot_server(group=group, name='vm%d' % i,
                                    host='host%d' % i) for i in (1, 2, 3)]
        seed = random.randrange(2 ** 32)
        rng = random.Random(seed)
        tally = collections.Counter({'seed %d' % seed: 1})
        for round_no in range(rounds):
            evacuee = servers[round_no % 3]
            partner = servers[(round_no + 1) % 3]
            racers = [(evacuee, 'evacuate'), (partner, partner_kind)]
            before = {s['id']: self.admin_api.get_server(s['id'])
                      for s in servers}
            down = [before[s['id']]['OS-EXT-SRV-ATTR:host']
                    for s, kind in racers if kind == 'evacuate']
            for host in down:
                self.stop_compute(host)
            moves = [lambda s=s, k=k: self._start_move(s, k)
                     for s, k in racers]
            if round_no % 2:
                answers, delays = self._spread(rng, moves)
                start = 'spread %s' % ', '.join('%.3f' % d for d in delays)
            else:
                answers, start = self.start_race(*moves), 'together'
            records = [self._settle(s, k) for s, k in racers]
            for host in down:
                self.bring_back_compute(host)
            fresh = [self.admin_api.get_server(s['id']) for s in servers]
            outcome = self._round_outcome(answers, records, fresh, tally)
            outcome['start'] = start
            by_id = {s['id']: s for s in fresh}
            pairs = [(by_id[s['id']], r) for (s, _), r in zip(racers, records)]
            for (server, record), (_, kind) in zip(pairs, racers):
                tally['%s %s, server %s' % (kind, record['status'],
                                            server['status'])] += 1
            yield round_no, before, pairs, outcome
            if outcome['error'] or outcome['violated']:
                break
            # Evacuated servers end SHUTOFF (2.95): start them, so that
            # every round starts from ACTIVE members.
            for server in fresh:
                if server['status'] == 'SHUTOFF':
                    self._start_server(server)
        self._record_tally(tally)


class GuardedEvacuateMixedRaceTestCase(_EvacuateMixedRace):
    GUARDS = ('anti_affinity',)

    def _assert_rounds(self, partner_kind):
        api = sorted([200, 200 if partner_kind == 'evacuate' else 202])
        for round_no, before, pairs, outcome in self._rounds(partner_kind):
            where = 'evacuate/%s round %d: %s' % (partner_kind, round_no,
                                                  outcome)
            self.assertEqual([], outcome['error'], where)
            self.assertFalse(outcome['violated'], where)
            self.assertEqual(api, outcome['api'], where)
            for server, record in pairs:
                self.assertIsNone(server['OS-EXT-STS:task_state'], where)
                if record['status'] not in REFUSED_STATUSES:
                    continue
                # Refused: where it was, as it was, told why.
                was = before[server['id']]
                self.assertEqual(was['OS-EXT-SRV-ATTR:host'],
                                 server['OS-EXT-SRV-ATTR:host'], where)
                self.assertEqual(was['status'], server['status'], where)
                self.assertIn(self.group['id'], self._latest_fault(server),
                              where)

    def test_evacuation_racing_cold_migration(self):
        self._assert_rounds('cold')

    def test_evacuation_racing_live_migration(self):
        self._assert_rounds('live')

    def test_evacuation_racing_evacuation(self):
        self._assert_rounds('evacuate')


class StockEvacuateMixedRaceTestCase(_EvacuateMixedRace):
    """The same race with the plugin disabled: records what stock Nova does
    (test detail 'outcomes'); a stock round ends at its first ERROR."""

    def test_evacuation_racing_cold_migration_stock(self):
        self.assertTrue(list(self._rounds('cold')))
        self.assertNotIn('Refusing', self.stdlog.logger.output)
