"""Evacuations and unshelves racing a move of another member of one
anti-affinity group, across processes (the set-up and the per-round record
of test_anti_affinity_race.py: three members on three of the four
computes, the two requests served by whichever conductor and scheduler
processes take them; even rounds start both at once, odd rounds the second
up to 0.6 s later).

Each round makes the free host the only place both moves can go:

* evacuate: the evacuee's nova-compute process is killed (SIGKILL) and its
  service forced down through the API, as an operator does once a host is
  fenced; its host is down, so the evacuee and the other member can only
  go to the free host.  After the round the compute is started again and
  forced up (so every round restarts one compute).
* unshelve: one member is shelved (offloaded), and its former host
  disabled through the API for the round, so the free host is again the
  only one left for the unshelve and for the other member's move.  A
  member whose unshelve was refused is unshelved after the round.

The fake virt driver keeps each guest in the memory of the process that
runs it (lab/realcloud/fake_driver.py), so where a guest runs is where Nova
says it runs; what is asserted comes through Nova's API.
"""

from nova_migration_guard.lab.realcloud import races
from tests.realcloud.test_anti_affinity_race import _MoveRace, ROUNDS


class _EvacuateRace(_MoveRace):
    KINDS = ('cold', 'evacuate')


class _UnshelveRace(_MoveRace):
    # The unshelve second: its way to the scheduler is shorter than a live
    # migration's (which first moves the instance's allocation in
    # placement), so started first it lands before the live migration is
    # scheduled, and no round races.
    KINDS = ('live', 'unshelve')


class _Guarded(object):
    """guards = anti_affinity with the in-flight filter, etcd locks."""

    GUARDS = ('anti_affinity',)

    def test_policy_kept(self):
        self.addCleanup(self.record)
        expected = [races.API_ACCEPTED[kind] for kind in self.KINDS]
        for round_no in range(ROUNDS):
            outcome = self.race_round(round_no)
            self.assertEqual(expected, outcome['api'], outcome)
            self.assertTrue(races.policy_kept(outcome), outcome)
            self.assertNotIn('ERROR', outcome['states'], outcome)
            # A refused move leaves its member as it was: ACTIVE where
            # it was, or shelved.
            self.assertTrue(set(outcome['states']) <= {
                'ACTIVE', 'SHELVED_OFFLOADED'}, outcome)
        refused, crossed, _ = self.summarize()
        self.assertGreater(refused, 0)
        self.assertGreater(crossed, 0)


class _Stock(object):
    """Stock Nova: stop at the first round that violates the policy or
    leaves an instance in ERROR (later rounds would start from it)."""

    GUARDS = ()

    def test_stock(self):
        self.addCleanup(self.record)
        counts = self.race_until_broken()
        self.assert_stock_failure(counts['violated'], counts['error'])


class GuardedEvacuateColdRaceTest(_Guarded, _EvacuateRace):
    pass


class StockEvacuateColdRaceTest(_Stock, _EvacuateRace):
    """The README: an instance in ERROR, the move that lost the race (the
    evacuee or the cold-migrated member: both were seen; ``moves`` in the
    round's record says which)."""

    def assert_stock_failure(self, violated, errors):
        self.assertGreater(errors, 0, 'stock left no instance in ERROR in '
                           '%d rounds' % ROUNDS)


class GuardedUnshelveLiveRaceTest(_Guarded, _UnshelveRace):
    pass


class StockUnshelveLiveRaceTest(_Stock, _UnshelveRace):
    """The README: the policy kept some rounds, then the live migration
    ended in ERROR."""

    def assert_stock_failure(self, violated, errors):
        self.assertGreater(violated + errors, 0,
                           'stock kept the policy and every instance in '
                           '%d rounds' % ROUNDS)
