"""The embedded cloud works as a user sees it through the REST API."""

from nova.virt import fake
from oslo_config import cfg

from tests.functional import base

CONF = cfg.CONF


class TestEmbeddedCloud(base.EmbeddedCloudTestCase):

    def _assert_moved(self, server, source, status='ACTIVE'):
        """The server settled in ``status`` with no task on a new host."""
        server = self.wait_for_server_state(server, status, task_state=None)
        self.assertNotEqual(source, server['OS-EXT-SRV-ATTR:host'])
        return server

    def test_computes_are_up(self):
        hosts = ['host%d' % i for i in range(1, self.NUMBER_OF_COMPUTES + 1)]
        self.assertGreaterEqual(len(hosts), 3)

        services = self.admin_api.get_services(binary='nova-compute')
        self.assertEqual(hosts, sorted(s['host'] for s in services))
        for service in services:
            self.assertEqual(('up', 'enabled'),
                             (service['state'], service['status']))

        hypervisors = self.admin_api.api_get(
            '/os-hypervisors/detail').body['hypervisors']
        self.assertEqual(hosts, sorted(
            h['service']['host'] for h in hypervisors))
        for hypervisor in hypervisors:
            self.assertEqual(('up', 'enabled'),
                             (hypervisor['state'], hypervisor['status']))

    def test_live_migration_to_scheduler_chosen_host(self):
        server = self.boot_server()
        source = self.server_host(server)

        response = self.live_migrate(server)
        self.assertEqual(202, response.status)

        migration = self.wait_for_migration(server, ('completed',))
        server = self._assert_moved(server, source)
        self.assertEqual('live-migration', migration['migration_type'])
        self.assertEqual(source, migration['source_compute'])
        self.assertEqual(server['OS-EXT-SRV-ATTR:host'],
                         migration['dest_compute'])

    def test_live_migration_to_named_host(self):
        server = self.boot_server(host='host1')

        # Forced (microversion <= 2.67): the scheduler is bypassed.
        self.live_migrate(server, host='host3', force=True)
        self.wait_for_migration(server, ('completed',))
        server = self._assert_moved(server, 'host1')
        self.assertEqual('host3', server['OS-EXT-SRV-ATTR:host'])

        # Named but not forced (2.68+): the scheduler validates the host.
        self.live_migrate(server, host='host2')
        self.wait_for_migration(server, ('completed',))
        server = self._assert_moved(server, 'host3')
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])

    def test_concurrent_live_migrations_overlap(self):
        servers = [self.boot_server(host='host1'),
                   self.boot_server(host='host2')]

        for _round in range(3):
            sources = [self.server_host(s) for s in servers]
            responses = self.run_concurrently(
                *[lambda s=s: self.live_migrate(s) for s in servers])
            for response in responses:
                self.assertEqual(202, getattr(response, 'status', response))
            # The two API requests themselves overlapped in time...
            starts, ends = zip(*self.concurrent_spans)
            self.assertLess(max(starts), min(ends))

            # ...and one GET /os-migrations shows both migrations in the
            # driver's 5 s live-migration phase at once.
            self.wait_until_moving_together(servers, 'running')

            for server, source in zip(servers, sources):
                self.wait_for_migration(server, ('completed',))
                self._assert_moved(server, source)

    def test_cold_migration_and_confirm(self):
        server = self.boot_server()
        source = self.server_host(server)

        self.assertEqual(202, self.cold_migrate(server).status)
        server = self.wait_for_server_state(server, 'VERIFY_RESIZE')
        migration = self.wait_for_migration(server, ('finished',))
        self.assertEqual('migration', migration['migration_type'])
        self.assertNotEqual(source, server['OS-EXT-SRV-ATTR:host'])

        self._confirm_resize(server)
        self.wait_for_migration(server, ('confirmed',))
        self._assert_moved(server, source)

    def test_evacuate_from_stopped_compute(self):
        server = self.boot_server(host='host1')
        self.stop_compute('host1')

        self.assertEqual(200, self.evacuate(server).status)
        self.wait_for_migration(server, ('done',))
        # Since microversion 2.95 an evacuated server arrives stopped.
        self._assert_moved(server, 'host1', status='SHUTOFF')

    def test_anti_affinity_group_members_on_distinct_hosts(self):
        group = self.create_anti_affinity_group('spread')
        servers = self.boot_servers_in_group(group, 3)

        self.assertEqual({'host1', 'host2', 'host3'},
                         {self.server_host(s) for s in servers})
        group = self.api.get_server_group(group['id'])
        self.assertEqual('anti-affinity', group['policy'])
        self.assertEqual(sorted(s['id'] for s in servers),
                         sorted(group['members']))


class TestEmbeddedCloudSettings(base.EmbeddedCloudTestCase):
    """The class attributes reach the services they configure."""

    NUMBER_OF_COMPUTES = 2
    COMPUTE_DRIVER = fake.MediumFakeDriver     # a class: injected directly
    EXTRA_FILTERS = ('nova.scheduler.filters.affinity_filter.SameHostFilter',)
    GUARDS = ('anti_affinity',)

    def test_settings(self):
        self.assertEqual(['host1', 'host2'], sorted(self.computes))
        for host in self.computes:
            self.assertIsInstance(self.compute(host).manager.driver,
                                  fake.MediumFakeDriver)
        filters = [type(f).__name__ for f in
                   self.scheduler.manager.host_manager.enabled_filters]
        self.assertIn('SameHostFilter', filters)
        self.assertIn('ServerGroupAntiAffinityFilter', filters)
        self.assertEqual(['anti_affinity'],
                         CONF.migration_guard.guards)
        self.assertTrue(CONF.migration_guard_coordination.backend_url
                        .startswith('file://'))
