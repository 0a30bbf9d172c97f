"""The destroy brake's decision over evacuation records."""

import testtools

from nova_migration_guard.host_identity import destroy_brake as b


def _doomed(uuid, host='host2', hypervisors=('hv2',), dest='host2'):
    return b.Doomed(uuid, host, hypervisors, dest, 'done')


class ProblemsTest(testtools.TestCase):

    def problems(self, doomed, local_count, max_share=0.5):
        return b.problems('host1', {'hv1'}, doomed, local_count, max_share)

    def test_consistent_records_within_the_share(self):
        self.assertEqual([], self.problems([_doomed('a')], 4))

    def test_share_above_the_limit(self):
        found = self.problems([_doomed('a'), _doomed('b')], 3)
        self.assertEqual(1, len(found))
        self.assertIn('2 of the 3 local guests', found[0])
        self.assertIn('67%', found[0])

    def test_share_at_the_limit_is_allowed(self):
        self.assertEqual([], self.problems([_doomed('a'), _doomed('b')], 4))

    def test_instance_back_on_this_host(self):
        found = self.problems([_doomed('a', host='host1')], 10)
        self.assertIn('instance a is on this host (host1)', found[0])

    def test_instance_on_a_host_sharing_this_hypervisor(self):
        # The seed: the evacuated instance runs on this very hypervisor
        # under another host value.
        found = self.problems([_doomed('a', host='backup',
                                       hypervisors=('hv1',))], 10)
        self.assertIn("whose hypervisor hv1 is also this host's", found[0])

    def test_nothing_to_destroy(self):
        self.assertEqual([], self.problems([], 0))
