"""Whose hypervisor node is it: the cross-host identity decision."""

import testtools

from nova_migration_guard.host_identity import ownership as o

MINE = {'u-1': 'hv1'}


class ConflictsTest(testtools.TestCase):

    def test_my_own_node_is_no_conflict(self):
        self.assertEqual([], o.conflicts(
            'host1', MINE, [o.Node('u-1', 'hv1', 'host1')]))

    def test_same_hypervisor_hostname_under_another_host(self):
        # The HA backup with another host value and its own compute_id.
        theirs = o.Node('u-2', 'hv1', 'host1')
        found = o.conflicts('backup', {'u-9': 'hv1'}, [theirs])
        self.assertEqual([o.Conflict(('u-9', 'hv1'), theirs,
                                     'hypervisor_hostname')], found)

    def test_same_uuid_under_another_host(self):
        theirs = o.Node('u-1', 'hv-old', 'host1')
        found = o.conflicts('backup', MINE, [theirs])
        self.assertEqual('uuid', found[0].by)

    def test_other_hypervisors_are_no_conflict(self):
        self.assertEqual([], o.conflicts(
            'host1', MINE, [o.Node('u-2', 'hv10', 'host2'),
                            o.Node('u-3', 'hv', 'host3')]))

    def test_refusal_names_hosts_node_and_fix(self):
        found = o.conflicts('backup', {'u-9': 'hv1'},
                            [o.Node('u-2', 'hv1', 'host1')])
        message = o.refusal('backup', found)
        for part in ('[DEFAULT] host = backup refuses to start',
                     'hv1 (u-9)', 'compute node of host host1',
                     'same [DEFAULT] host (host1)',
                     'openstack compute service delete'):
            self.assertIn(part, message)
