"""The pure anti-affinity decisions (policy.py), without Nova."""

import dataclasses

import testtools

from nova_migration_guard.anti_affinity import policy

GROUP = 'group-1'


def snapshot(member_hosts, moves=(), policy_name=policy.ANTI_AFFINITY,
             max_per_host=1):
    return policy.Snapshot(
        group_uuid=GROUP, policy=policy_name,
        max_server_per_host=max_per_host, member_hosts=member_hosts,
        moves=tuple(moves))


def move(uuid, source, dest, mig_type='live-migration', mig_id=1):
    return policy.Move(instance_uuid=uuid, source=source, dest=dest,
                       migration_type=mig_type, status='running',
                       migration_id=mig_id)


class OccupancyTestCase(testtools.TestCase):

    def test_members_on_their_hosts(self):
        snap = snapshot({'a': 'host1', 'b': 'host2', 'new': None})
        self.assertEqual({'host1': {'a'}, 'host2': {'b'}},
                         dict(snap.occupancy()))

    def test_move_occupies_source_and_destination(self):
        # a is live-migrating host1 -> host3: until it ends, either is true.
        snap = snapshot({'a': 'host1', 'b': 'host2'},
                        [move('a', 'host1', 'host3')])
        self.assertEqual({'host1': {'a'}, 'host2': {'b'}, 'host3': {'a'}},
                         dict(snap.occupancy()))

    def test_resize_waiting_for_confirmation_holds_both_hosts(self):
        # After finish_resize instance.host is already the destination; the
        # 'finished' migration still holds the source.
        snap = snapshot({'a': 'host3'},
                        [move('a', 'host1', 'host3', 'migration')])
        self.assertEqual({'host1': {'a'}, 'host3': {'a'}},
                         dict(snap.occupancy()))
        self.assertNotIn('finished', policy.FINAL_MIGRATION_STATUSES)

    def test_move_without_destination_yet(self):
        # A cold migration before the destination's claim: dest unknown.
        snap = snapshot({'a': 'host1'},
                        [move('a', 'host1', None, 'migration')])
        self.assertEqual({'host1': {'a'}}, dict(snap.occupancy()))

    def test_moves_of_non_members_are_ignored(self):
        # e.g. a deleted instance's stale migration record
        snap = snapshot({'a': 'host1'}, [move('gone', 'host2', 'host3')])
        self.assertEqual({'host1': {'a'}}, dict(snap.occupancy()))

    def test_exclude_leaves_out_the_instance_and_its_moves(self):
        snap = snapshot({'a': 'host1', 'b': 'host2'},
                        [move('a', 'host1', 'host3'),
                         move('b', 'host2', 'host1', mig_id=2)])
        self.assertEqual({'host1': {'b'}, 'host2': {'b'}},
                         dict(snap.occupancy(exclude='a')))

    def test_moves_touching(self):
        moving = move('a', 'host1', 'host3')
        other = move('b', 'host2', 'host1', mig_id=2)
        snap = snapshot({'a': 'host1', 'b': 'host2'}, [moving, other])
        self.assertEqual([moving, other], snap.moves_touching('host1'))
        self.assertEqual([moving], snap.moves_touching('host3'))
        self.assertEqual([other], snap.moves_touching('host1', exclude='a'))


class CheckHostTestCase(testtools.TestCase):

    def test_destination_of_in_flight_move_is_refused(self):
        snap = snapshot({'a': 'host1', 'b': 'host2'},
                        [move('a', 'host1', 'host3')])
        refusal = policy.check_host(snap, 'host3', 'b')
        self.assertIsNotNone(refusal)
        self.assertEqual(('host3', 'b', ('a',), 1),
                         (refusal.host, refusal.instance_uuid,
                          refusal.occupants, refusal.max_server_per_host))
        self.assertEqual((move('a', 'host1', 'host3'),), refusal.moves)
        # ... and so is the source the move may fall back to
        self.assertIsNotNone(policy.check_host(snap, 'host1', 'b'))

    def test_free_host_passes(self):
        snap = snapshot({'a': 'host1', 'b': 'host2'})
        self.assertIsNone(policy.check_host(snap, 'host3', 'b'))

    def test_own_host_and_own_move_never_count(self):
        # b moves host2 -> host3; re-scheduling b (say after a failure on the
        # destination) may pick either end of its own move.
        snap = snapshot({'a': 'host1', 'b': 'host2'},
                        [move('b', 'host2', 'host3')])
        self.assertIsNone(policy.check_host(snap, 'host2', 'b'))
        self.assertIsNone(policy.check_host(snap, 'host3', 'b'))
        self.assertIsNotNone(policy.check_host(snap, 'host1', 'b'))

    def test_max_server_per_host_1(self):
        snap = snapshot({'a': 'host1', 'c': None}, max_per_host=1)
        self.assertIsNotNone(policy.check_host(snap, 'host1', 'c'))

    def test_max_server_per_host_2(self):
        # One in flight to host3: a second member fits, a third does not.
        snap = snapshot({'a': 'host1', 'b': 'host2', 'c': 'host2'},
                        [move('a', 'host1', 'host3')], max_per_host=2)
        self.assertIsNone(policy.check_host(snap, 'host3', 'b'))
        two = dataclasses.replace(snap, moves=snap.moves + (
            move('b', 'host2', 'host3', mig_id=2),))
        refusal = policy.check_host(two, 'host3', 'c')
        self.assertEqual(('a', 'b'), refusal.occupants)
        self.assertEqual(2, refusal.max_server_per_host)
        self.assertEqual(2, len(refusal.moves))

    def test_soft_anti_affinity_never_refuses(self):
        snap = snapshot({'a': 'host1', 'b': 'host1'},
                        [move('a', 'host1', 'host3')],
                        policy_name=policy.SOFT_ANTI_AFFINITY)
        for host in ('host1', 'host2', 'host3'):
            self.assertIsNone(policy.check_host(snap, host, 'c'))

    def test_refusal_text_names_group_host_occupants_and_moves(self):
        snap = snapshot({'a': 'host1', 'b': 'host3', 'c': None},
                        [move('a', 'host1', 'host3')])
        text = str(policy.check_host(snap, 'host3', 'c'))
        self.assertIn(GROUP, text)
        self.assertIn('host3', text)
        self.assertIn('max_server_per_host=1', text)
        self.assertIn('already has a, b on host host3', text)
        self.assertIn('counting in-flight moves: a host1->host3', text)

    def test_refusal_text_without_moves(self):
        snap = snapshot({'a': 'host1', 'c': None})
        text = str(policy.check_host(snap, 'host1', 'c'))
        self.assertIn('already has a on host host1', text)
        self.assertNotIn('in-flight', text)


class HostOccupancyTestCase(testtools.TestCase):
    """The per-instance view a scheduler asks host after host: ``refuses``
    (a set lookup) must always agree with ``refusal``."""

    HOSTS = ('host1', 'host2', 'host3', 'host4')

    def assert_refused(self, view, expected, placed_on=None):
        """``expected``: the refused hosts; ``placed_on``: host -> uuids
        the request already placed there (its HostState.instances)."""
        placed_on = placed_on or {}
        refused = []
        for host in self.HOSTS:
            placed = dict.fromkeys(placed_on.get(host, ()))
            refusal = view.refusal(host, placed)
            self.assertEqual(refusal is not None, view.refuses(host, placed))
            if refusal is not None:
                refused.append(host)
        self.assertEqual(expected, refused)

    def test_full_hosts_with_max_server_per_host(self):
        snap = snapshot({'a': 'host1', 'b': 'host1', 'c': 'host2', 'n': None},
                        [move('c', 'host2', 'host3')], max_per_host=2)
        view = snap.for_instance('n')
        self.assertEqual(frozenset({'host1'}), view.full)
        self.assert_refused(view, ['host1'])
        # one more member on host3 (c arrives there) fills it
        self.assert_refused(snapshot(
            {'a': 'host1', 'b': 'host1', 'c': 'host2', 'd': 'host3',
             'n': None}, [move('c', 'host2', 'host3')],
            max_per_host=2).for_instance('n'), ['host1', 'host3'])

    def test_instance_excluded(self):
        snap = snapshot({'a': 'host1', 'b': 'host2'},
                        [move('b', 'host2', 'host3')])
        self.assert_refused(snap.for_instance('b'), ['host1'])
        self.assert_refused(snap.for_instance('a'), ['host2', 'host3'])
        self.assertIs(snap.for_instance('a'), snap.for_instance('a'))

    def test_members_placed_by_the_request_count(self):
        # x and y have no host yet: this request placed x on host4.
        snap = snapshot({'a': 'host1', 'x': None, 'y': None, 'n': None})
        view = snap.for_instance('n')
        self.assertEqual(('x', 'y'), view.unplaced)
        self.assert_refused(view, ['host1', 'host4'],
                            placed_on={'host4': ['x', 'other-project-vm']})
        self.assertEqual({'x'}, view.occupants('host4', {'x': None}))
        # the instance itself placed there (a retry) does not count
        self.assert_refused(view, ['host1'], placed_on={'host4': ['n']})

    def test_scheduler_view_never_moves_a_placed_member(self):
        # a has a host in the DB: a stale HostState listing it elsewhere
        # changes nothing.
        view = snapshot({'a': 'host1', 'n': None}).for_instance('n')
        self.assert_refused(view, ['host1'], placed_on={'host2': ['a']})

    def test_placed_member_with_a_move_counts_once(self):
        # x (no host) has a move touching host2 and was placed there by
        # the request: one occupant, not two.
        snap = snapshot({'x': None, 'n': None},
                        [move('x', 'host3', 'host2')], max_per_host=2)
        view = snap.for_instance('n')
        self.assertEqual({'x'}, view.occupants('host2', {'x': None}))
        self.assert_refused(view, [], placed_on={'host2': ['x']})
        refusal = snapshot({'x': None, 'n': None},
                           [move('x', 'host3', 'host2')]).for_instance(
            'n').refusal('host2', {'x': None})
        self.assertEqual((('x',), (move('x', 'host3', 'host2'),)),
                         (refusal.occupants, refusal.moves))

    def test_soft_policy_refuses_nothing_but_counts(self):
        snap = snapshot({'a': 'host1', 'x': None, 'n': None},
                        policy_name=policy.SOFT_ANTI_AFFINITY)
        view = snap.for_instance('n')
        self.assert_refused(view, [], placed_on={'host2': ['x']})
        self.assertEqual(frozenset(), view.full)
        self.assertEqual({'x'}, view.occupants('host2', {'x': None}))


class MembersOnTestCase(testtools.TestCase):

    def test_counts_both_ends_and_excludes_self(self):
        snap = snapshot({'a': 'host1', 'b': 'host2', 'c': None},
                        [move('a', 'host1', 'host3')],
                        policy_name=policy.SOFT_ANTI_AFFINITY)
        self.assertEqual([1, 1, 1, 0],
                         [len(snap.for_instance('c').occupants(h))
                          for h in ('host1', 'host2', 'host3', 'host4')])
        self.assertEqual(0, len(snap.for_instance('a').occupants('host3')))


class MaxServerPerHostTestCase(testtools.TestCase):

    def test_rules(self):
        self.assertEqual(1, policy.max_server_per_host(None))
        self.assertEqual(1, policy.max_server_per_host({}))
        self.assertEqual(2, policy.max_server_per_host(
            {'max_server_per_host': 2}))
        # _rules is a DictOfStringsField: values may arrive as strings
        self.assertEqual(3, policy.max_server_per_host(
            {'max_server_per_host': '3'}))
