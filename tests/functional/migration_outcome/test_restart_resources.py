"""A live migration ended by the restart recovery leaves ports, port
bindings, volume attachments, block device mappings, allocations and
guests exactly where Nova's own completion or rollback leaves them.

Each test runs the same live migration twice, of servers with a port
(Nova's Neutron fixture) and a volume (Nova's Cinder fixture): once ended
normally by Nova's monitor, once with the source nova-compute dying mid-way
and restarting (as test_restart.py).  What each left is read back from the
fixtures, Placement and libvirt, with host names replaced by their role
(source, destination), and compared.

Stubbed, and why: the hypervisor (Nova's fake libvirt, see
nova_migration_guard/lab/embedded/libvirt_migration.py), Neutron and Cinder
(Nova's fixtures: the guards never talk to them; Nova's flows do).
"""

import copy
import threading

from nova import context as nova_context
from nova import objects
from testtools.content import text_content

from tests.functional.migration_outcome import base


class RestartRecoveryResourcesTest(base.LateFailureTestCase):

    SERVER_NETWORKS = 'port'

    def setUp(self):
        super().setUp()
        self.volume = self.cinder.SWAP_OLD_VOL
        self.attach_volume()
        self.port = self.neutron.port_1['id']

    def use_a_second_server(self):
        """Another server on the source, with port_2 and another volume;
        the next migration moves it."""
        port = copy.deepcopy(self.neutron.port_2)
        self.neutron._ports[port['id']] = port
        self.server = self._create_server(networks=[{'port': port['id']}],
                                          host=self.src)
        self.port, self.volume = port['id'], self.cinder.SWAP_NEW_VOL
        self.attach_volume()

    # ------------------------------------------------------------ helpers

    def attach_volume(self):
        # Nova's helper that every release since 31.x has (_attach_volume
        # came in 33.x).
        self._attach_volumes(self.server, [self.volume])

    def migrate(self, dies=False, switch_over=True, step='hang',
                recovered_by='source'):
        """One live migration of the server from self.src to self.dest:
        ended by Nova's monitor, or (``dies``) by the source compute's
        death after the switch-over (or before it) and the restart of the
        end ``recovered_by``: the source, or the destination while the
        source is down, the source coming back afterwards."""
        libvirt = self.fail_at(step)
        died = threading.Event()
        self.addCleanup(died.set)
        driver = self.computes[self.src].driver
        monitor = driver._live_migration_monitor
        if dies:
            def dead_monitor(*args, **kwargs):
                died.wait(120)
                raise base.ComputeDied()
            driver._live_migration_monitor = dead_monitor
        try:
            self.start_live_migration()
            if step != 'hang':
                return self.wait_for_end()
            self.assertTrue(libvirt.entered.wait(30))
            self._wait_for_migration_status(self.server, ['running'])
            if switch_over:
                libvirt.switch_over()
            if dies:
                died.set()
                if switch_over:
                    libvirt.release.set()
                if recovered_by == 'destination':
                    self.stop_compute(self.src)
                    self.restart_compute_service(self.dest)
                    self._wait_for_migration_status(self.server,
                                                    ['completed'])
                    self.set_forced_down(self.src, False)
                self.restart_compute_service(self.src)
            else:
                libvirt.release.set()
            return self.wait_for_end()
        finally:
            driver._live_migration_monitor = monitor

    def left(self, server, migration):
        """What the migration left, each host named by its role."""
        role = {self.src: 'source', self.dest: 'destination'}
        rp_role = {self.compute_rp_uuids[host]: name
                   for host, name in role.items()}
        bindings = self.neutron._port_bindings[self.port]
        bdms = objects.BlockDeviceMappingList.get_by_instance_uuid(
            nova_context.get_admin_context(), self.server['id'])
        attachments = self.cinder.volume_to_attachment[self.volume]
        volume_bdm = [bdm for bdm in bdms if bdm.volume_id == self.volume][0]
        seen = {
            'host': role[server['OS-EXT-SRV-ATTR:host']],
            'status': server['status'],
            'task_state': server['OS-EXT-STS:task_state'],
            'migration': migration['status'],
            'port bound to': role.get(
                self.neutron._ports[self.port]['binding:host_id']),
            'port bindings': sorted((role[host], binding['status'])
                                    for host, binding in bindings.items()),
            'volume attachments': len(attachments),
            'bdm attachment is the volume\'s': (volume_bdm.attachment_id in
                                                attachments),
            'allocations': sorted(
                rp_role[rp] for rp in
                self._get_allocations_by_server_uuid(self.server['id'])),
            'guest runs on': [role[host] for host in self.running_on()],
            'domains': sorted(role[host] for host in self.guest_states()),
        }
        self.addDetail('left', text_content(repr(seen)))
        return seen

    # -------------------------------------------------------------- tests

    def test_completion_by_the_source_restart(self):
        normal = self.left(*self.migrate())
        self.assertEqual('destination', normal['host'])
        self.use_a_second_server()
        recovered = self.left(*self.migrate(dies=True))
        self.assertEqual(normal, recovered)

    def test_rollback_by_the_source_restart(self):
        normal = self.left(*self.migrate(step='job-failed'))
        self.assertEqual('source', normal['host'])
        recovered = self.left(*self.migrate(dies=True, switch_over=False))
        self.assertEqual(normal, recovered)

    def test_completion_by_the_destination_then_the_source_restart(self):
        normal = self.left(*self.migrate())
        self.use_a_second_server()
        recovered = self.left(*self.migrate(dies=True,
                                            recovered_by='destination'))
        self.assertEqual(normal, recovered)
