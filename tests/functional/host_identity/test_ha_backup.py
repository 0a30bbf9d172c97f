"""The seed scenario: an HA backup nova-compute configured with another
``[DEFAULT] host`` takes over the same hypervisor
(../seeds/4-compute-host-identity-ha-deletes-instances).

Stubbed: the hypervisor (Nova's fake libvirt).  The backup is a second
compute service on the SAME fake libvirt connection (one hypervisor, two
managers) with its own compute_id, as a second machine has; Nova's real
node-identity checks run (STUB_COMPUTE_ID off).

Stock Nova 34 (StockHABackupTest): the backup, installed while the
hypervisor was empty, starts and registers a second compute node for the
hypervisor; placement refuses it a resource provider (the name is
taken), so after the failover the evacuation of the primary's instances
to it fails and puts running guests in ERROR.  (In Nova 34 placement's
unique provider names stop the seed's mass destroy on this path; the
destroy brake covers the evacuation cleanup itself.)  Guarded: the
backup refuses to start, naming both hosts, the node and the fix; no
guest is destroyed or put in ERROR.
"""

from nova import exception
from testtools.content import text_content
from nova.tests.fixtures import libvirt as fakelibvirt

from nova_migration_guard.lab.embedded import libvirt_cloud


class _HABackup(libvirt_cloud.LibvirtCloudTestCase):
    GUARDS = ('host_identity',)
    STUB_COMPUTE_ID = False
    primary, backup = 'primary', 'backup'

    def start_backup(self, restart=False):
        """(Re)start the backup service on the primary's hypervisor."""
        try:
            if restart:
                self.restart_compute_service(self.backup)
            else:
                self.start_compute(self.backup, connection=self.hypervisor)
        except IndexError:
            # Nova's helper looks for a resource provider named after the
            # backup; there is none: placement keeps one provider per
            # hypervisor name, the primary's.  The service runs.
            self.compute_rp_uuids[self.backup] = None

    def setUp(self):
        super().setUp()
        self.start_compute(self.primary)
        self.hypervisor = self.computes[self.primary].driver._host.\
            get_connection()

    def guests(self):
        """UUIDs of the guests running on the hypervisor."""
        return sorted(
            dom.UUIDString() for dom in self.hypervisor.listAllDomains(
                fakelibvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))

    def hypervisor_hosts(self):
        """(hypervisor_hostname, service host) of every compute node."""
        return sorted(
            (hv['hypervisor_hostname'], hv['service']['host'])
            for hv in self.admin_api.api_get(
                '/os-hypervisors/detail').body['hypervisors'])

    def boot_two(self):
        servers = [self._create_server(networks='none') for _ in range(2)]
        self.assertEqual(2, len(self.guests()))
        return servers

    def fail_over(self):
        """The primary's node dies; its service is seen down."""
        self.stop_compute(self.primary)


class GuardedHABackupTest(_HABackup):

    def assert_backup_refused(self):
        error = self.assertRaises(exception.InvalidConfiguration,
                                  self.start_backup)
        message = str(error)
        for part in ("host = backup refuses to start",
                     "compute node of host primary",
                     "matched by hypervisor_hostname",
                     "same [DEFAULT] host (primary)"):
            self.assertIn(part, message)
        self.computes.pop(self.backup, None)
        # No compute node was created for it.
        self.assertEqual([(self.primary, self.primary)],
                         self.hypervisor_hosts())

    def test_backup_with_another_host_refuses_to_start(self):
        # Installed beside the primary: refused at once, with our message.
        self.assert_backup_refused()
        servers = self.boot_two()
        # Failover: refused again (now that the hypervisor has guests and
        # the backup never registered a node, Nova's own new-host check
        # speaks first), and nothing was destroyed.
        self.fail_over()
        error = self.assertRaises(exception.InvalidConfiguration,
                                  self.start_backup)
        self.addDetail('failover refusal', text_content(str(error)))
        self.computes.pop(self.backup, None)
        self.assertEqual(sorted(s['id'] for s in servers), self.guests())
        for server in servers:
            server = self.api.get_server(server['id'])
            self.assertEqual('ACTIVE', server['status'])
            self.assertEqual(self.primary, server['OS-EXT-SRV-ATTR:host'])


class StockHABackupTest(_HABackup):
    GUARDED = False

    def test_backup_with_another_host_refuses_to_start(self):
        # Installed beside the primary while the hypervisor is empty: it
        # starts and registers a second compute node for the same
        # hypervisor (placement refuses it a resource provider: the name
        # is the primary's).
        self.start_backup()
        self.assertEqual([(self.primary, self.backup),
                          (self.primary, self.primary)],
                         self.hypervisor_hosts())
        self.stop_compute(self.backup)
        servers = self.boot_two()
        # Failover: the backup starts again, and takes the hypervisor.
        self.fail_over()
        self.set_forced_down(self.backup, False)
        self.start_backup(restart=True)
        # The operator evacuates the primary's instances to it: with no
        # resource provider it cannot take them, and the evacuation puts
        # guests that run fine in ERROR.
        for server in servers:
            self.admin_api.post_server_action(server['id'],
                                              {'evacuate': {}})
            self._wait_for_migration_status(server, ['error'])
        self.assertEqual(sorted(s['id'] for s in servers), self.guests())
        for server in servers:
            server = self._wait_for_state_change(server, 'ERROR')
            self.assertEqual(self.primary, server['OS-EXT-SRV-ATTR:host'])
