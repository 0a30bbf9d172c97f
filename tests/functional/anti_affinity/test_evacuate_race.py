"""Concurrent evacuations of two group members onto the one free host: the
late check (scheduler filter not enabled) refuses one every round, which
keeps its state on its down host (patch 0007), instead of ERROR."""

import collections

from nova_migration_guard.lab.embedded import cloud as cloud_mod
from tests.functional.anti_affinity import test_late_check

ROUNDS = 20


class _EvacuateRace(test_late_check._MoveRace):

    def _evacuate_rounds(self):
        self.group = self.create_anti_affinity_group('evacuate-race')
        servers = [self.boot_server(group=self.group, name='vm%d' % i)
                   for i in (1, 2)]
        tally = collections.Counter()
        for round_no in range(ROUNDS):
            before = {s['id']: self.server_host(s) for s in servers}
            sources = sorted(set(before.values()))
            for host in sources:
                self.stop_compute(host)
            answers = self.start_race(
                *[lambda s=s: self.evacuate(s, expected=None)
                  for s in servers])
            records = [self.wait_for_migration(
                s, statuses=cloud_mod.FINAL_MIGRATION_STATUSES, timeout=60)
                for s in servers]
            fresh = [self.wait_until_settled(s) for s in servers]
            for host in sources:
                self.bring_back_compute(host)
            fresh = [self.admin_api.get_server(s['id']) for s in servers]
            outcome = self._round_outcome(answers, records, fresh, tally)
            yield round_no, before, records, fresh, outcome
            if outcome['error'] or outcome['violated']:
                break
        self._record_tally(tally)


class GuardedEvacuateRaceTestCase(_EvacuateRace):
    GUARDS = ('anti_affinity',)

    def test_concurrent_evacuations_keep_policy(self):
        seen = 0
        for round_no, before, records, fresh, outcome in (
                self._evacuate_rounds()):
            where = 'round %d: %s' % (round_no, outcome)
            self.assertFalse(outcome['violated'], where)
            self.assertEqual([], outcome['error'], where)
            self.assertEqual([200, 200], outcome['api'], where)
            for server, record in zip(fresh, records):
                if record['status'] == 'failed':
                    # Refused: still where it was, state kept.
                    self.assertEqual(before[server['id']],
                                     server['OS-EXT-SRV-ATTR:host'], where)
                    self.assertEqual('ACTIVE', server['status'], where)
            refusals = self.stdlog.logger.output.count('Refusing evacuate')
            self.assertGreaterEqual(refusals - seen, 1, where)
            seen = refusals


class StockEvacuateRaceTestCase(_EvacuateRace):
    """Stock Nova: both evacuations fail and an instance goes to ERROR (or
    the policy is violated) in at least one round (README.rst's table)."""

    def test_concurrent_evacuations_stock(self):
        self.assert_stock_failure(
            (outcome for _, _, _, _, outcome in self._evacuate_rounds()),
            ('error', 'violated'))
