"""The destroy brake: a compute that comes back after its instances were
evacuated (stubbed: the hypervisors, Nova's fake libvirt; Nova's real
node-identity checks run).

``host1`` runs two servers and dies; both are evacuated to ``host2``;
then host1 restarts, and Nova's evacuation cleanup wants to destroy its
two local guests.  Stock Nova 34 destroys them: right when the records
are right, and also when a record is stale (the instance is back on
host1), which destroys a guest Nova says runs there.  Guarded: a cleanup
that would destroy more than ``max_destroy_share`` of the local guests, or
any guest whose record is inconsistent, is refused and host1 does not
start; nothing is destroyed.
"""

from nova import context as nova_context
from nova import exception
from nova import objects
from nova.tests.fixtures import libvirt as fakelibvirt
from testtools.content import text_content

from nova_migration_guard.lab.embedded import libvirt_cloud


class _EvacuatedHost(libvirt_cloud.LibvirtCloudTestCase):
    GUARDS = ('host_identity',)
    STUB_COMPUTE_ID = False

    def setUp(self):
        super().setUp()
        self.start_compute('host1')
        self.servers = [self._create_server(networks='none')
                        for _ in range(2)]
        self.host1 = self.computes['host1'].driver._host.get_connection()
        self.start_compute('host2')
        self.stop_compute('host1')
        for server in self.servers:
            self._evacuate_server(server, expected_host='host2')
        self.assertEqual(2, len(self.guests_on_host1()))

    def guests_on_host1(self):
        return sorted(dom.UUIDString() for dom in self.host1.listAllDomains(
            fakelibvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))

    def make_record_stale(self):
        """The first server is back on host1 in the database, while its
        evacuation record still says it left (a restored database, a
        hand-edited record)."""
        ctxt = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(ctxt, self.servers[0]['id'])
        node = objects.ComputeNode.get_first_node_by_host_for_old_compat(
            ctxt, 'host1')
        instance.host = 'host1'
        instance.node = node.hypervisor_hostname
        instance.compute_id = node.id
        instance.save()
        return instance.uuid

    def restart_host1(self):
        return self.restart_compute_service('host1')


class GuardedDestroyBrakeTest(_EvacuatedHost):

    def assert_refused(self, *parts):
        error = self.assertRaises(exception.EvacuatedInstancesCleanupRefused,
                                  self.restart_host1)
        for part in parts:
            self.assertIn(part, str(error))
        self.assertEqual(2, len(self.guests_on_host1()))

    def test_mass_destroy_is_refused(self):
        self.assert_refused('2 of the 2 local guests would be destroyed',
                            'max_destroy_share = 0.5')

    def test_runs_when_the_share_is_allowed(self):
        self.flags(max_destroy_share=1.0,
                   group='migration_guard_host_identity')
        self.restart_host1()
        self.assertEqual([], self.guests_on_host1())

    def test_audit_logs_and_destroys(self):
        self.flags(destroy_brake='audit',
                   group='migration_guard_host_identity')
        self.restart_host1()
        self.assertEqual([], self.guests_on_host1())
        self.assertIn('audit only', self.stdlog.logger.output)

    def test_stale_record_is_refused_whatever_the_share(self):
        self.flags(max_destroy_share=1.0,
                   group='migration_guard_host_identity')
        uuid = self.make_record_stale()
        self.assert_refused('instance %s is on this host (host1)' % uuid)


class StockDestroyBrakeTest(_EvacuatedHost):
    GUARDED = False

    def test_mass_destroy_is_refused(self):
        # Right here: both records are right.
        self.restart_host1()
        self.assertEqual([], self.guests_on_host1())

    def test_stale_record_is_refused_whatever_the_share(self):
        uuid = self.make_record_stale()
        self.restart_host1()
        # The guest of an instance Nova places on host1 is destroyed.
        self.assertNotIn(uuid, self.guests_on_host1())
        server = self.api.get_server(uuid)
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.addDetail('status after', text_content(server['status']))
