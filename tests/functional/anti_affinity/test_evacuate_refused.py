"""An evacuation the scheduler finds no host for, one state at a time.

Three members of a hard anti-affinity group on host1..host3, host4 free,
the scheduler filter enabled.  host1 is forced down and its member A
evacuated.  Nova sets an evacuation that finds no host to ERROR (conductor
rebuild_instance); the guard (move_failed, patch 0010) gives the instance
back its states only when the group refused it: Nova's scheduler, asked
again without the group, places it, and only on hosts the group occupies:

* B's cold migration to host4 waits for confirmation (in flight: B holds
  host2 and host4; only our filter sees it): without the group the
  scheduler places A on host2..host4, all the group's: A keeps its state;
* the same, A stopped before: A stays SHUTOFF;
* the same in a cloud with a fifth host of another hypervisor type, free
  of the group, that the image excludes (ImagePropertiesFilter): A keeps
  its state (it stayed in ERROR while the guard counted every up compute);
* host4 down too, nothing in flight: host2 and host3 are left, both
  members' (both filters refuse them): A keeps its state; in audit mode
  ERROR stays, and the log says what enforce would have done;
* host4 free of the group but full (its VCPUs reserved in placement):
  without the group A would go to host2 or host3, so the group is what
  stopped it: A keeps its state;
* every host full: without the group the scheduler finds no host either;
  capacity, not the group, stopped A: ERROR stays, as stock;
* the scheduler does not answer the question without the group, or places
  A on a host free of the group (the cloud changed in between): ERROR
  stays.
"""

from unittest import mock

import fixtures
from nova import context as nova_context
from nova import objects
from nova.tests.functional import integrated_helpers
import oslo_messaging as messaging

from nova_migration_guard.anti_affinity import failed_move
from tests.functional.anti_affinity import test_late_check

FILTER = 'nova_migration_guard.scheduler.filters.InFlightAntiAffinityFilter'


def _state(server):
    """What a user sees: status, task, host."""
    return (server['status'], server['OS-EXT-STS:task_state'],
            server['OS-EXT-SRV-ATTR:host'])


class EvacuationFindsNoHostTestCase(test_late_check._MoveRace,
                                    integrated_helpers.PlacementHelperMixin):
    GUARDS = ('anti_affinity',)
    NUMBER_OF_COMPUTES = 4
    EXTRA_FILTERS = (FILTER,)

    def setUp(self):
        super().setUp()
        self._before_members_boot()
        self.group = self.create_anti_affinity_group('evacuate-no-host')
        self.a, self.b, self.c = [
            self.boot_server(group=self.group, name='vm%d' % i,
                             host='host%d' % i) for i in (1, 2, 3)]

    def _before_members_boot(self):
        pass

    def _hold_b_moving_to_host4(self):
        self.cold_migrate(self.b)
        self.wait_for_migration(self.b, statuses=('finished',))
        self.wait_for_server_state(self.b, 'VERIFY_RESIZE', task_state=None)

    def _fill(self, host):
        """Leave ``host`` no VCPU to give (placement inventory)."""
        # The compute node's id is its resource provider's uuid.
        rp_uuid = self.admin_api.api_get(
            'os-hypervisors?hypervisor_hostname_pattern=%s' % host
        ).body['hypervisors'][0]['id']
        generation = self.placement.get(
            '/resource_providers/%s' % rp_uuid).body['generation']
        inventories = self._get_provider_inventory(rp_uuid)
        inventories['VCPU']['reserved'] = inventories['VCPU']['total']
        # reserved == total needs placement 1.26
        answer = self.placement.put(
            '/resource_providers/%s/inventories' % rp_uuid,
            {'resource_provider_generation': generation,
             'inventories': inventories}, version='1.26')
        self.assertEqual(200, answer.status, answer.body)

    def _evacuate_a(self):
        faults = self.group_faults(self.a)
        self.stop_compute('host1')
        self.evacuate(self.a)
        record = self.wait_for_migration(self.a, statuses=('error',))
        self.wait_for_group_fault(self.a, faults)
        return record, self.wait_until_settled(self.a)

    def test_refused_by_the_group_keeps_state(self):
        self._hold_b_moving_to_host4()
        record, a = self._evacuate_a()
        self.assertEqual('error', record['status'])
        self.assertEqual(('ACTIVE', None, 'host1'), _state(a))
        # A fault message keeps 255 characters: the outcome and the group
        # come first; the log has where every member is.
        fault = self._latest_fault(self.a)
        self.assertTrue(fault.startswith(
            'No valid host was found. the instance stays active on host1: '
            'evacuate of instance %s found no host: server group %s'
            % (self.a['id'], self.group['id'])), fault)
        self.assertIn('host2: %s (moving host2->host4); host3: %s; '
                      'host4: %s (moving host2->host4)'
                      % (self.b['id'], self.c['id'], self.b['id']),
                      self.stdlog.logger.output)

    def test_refused_by_the_group_keeps_stopped(self):
        self._stop_server(self.a)
        self._hold_b_moving_to_host4()
        record, a = self._evacuate_a()
        self.assertEqual(('SHUTOFF', None, 'host1'), _state(a))

    def test_full_free_host_keeps_state(self):
        self._fill('host4')
        record, a = self._evacuate_a()
        self.assertEqual(('ACTIVE', None, 'host1'), _state(a))
        self.assertIn(self.group['id'], self._latest_fault(self.a))

    def test_no_room_anywhere_stays_error(self):
        for host in ('host2', 'host3', 'host4'):
            self._fill(host)
        record, a = self._evacuate_a()
        self.assertEqual(('ERROR', None, 'host1'), _state(a))
        # Still told where the group is.
        self.assertIn(self.group['id'], self._latest_fault(self.a))
        self.assertIn('not because of server group %s: without the group '
                      'the scheduler places it on no host' % self.group['id'],
                      self.stdlog.logger.output)

    def test_only_members_hosts_left_keeps_state(self):
        self.stop_compute('host4')
        record, a = self._evacuate_a()
        self.assertEqual(('ACTIVE', None, 'host1'), _state(a))
        self.assertIn(self.group['id'], self._latest_fault(self.a))

    def test_audit_mode_leaves_error(self):
        self.flags(mode='audit', group='migration_guard_anti_affinity')
        self.stop_compute('host4')
        record, a = self._evacuate_a()
        self.assertEqual('ERROR', a['status'])
        self.assertIn('Audit: would keep instance %s active on host1'
                      % self.a['id'], self.stdlog.logger.output)

    def test_scheduler_not_answering_stays_error(self):
        """The question without the group gets no answer (the scheduler's
        RPC times out): whether the group refused is unknown, so Nova's
        ERROR stays."""
        def no_answer(*args, **kwargs):
            raise messaging.MessagingTimeout('no scheduler answered')
        client = mock.Mock()
        client.return_value.select_destinations.side_effect = no_answer
        self.useFixture(fixtures.MockPatchObject(
            failed_move.query, 'SchedulerQueryClient', client))
        self._hold_b_moving_to_host4()
        record, a = self._evacuate_a()
        self.assertEqual(('ERROR', None, 'host1'), _state(a))
        self.assertIn('Cannot ask the scheduler about evacuation of %s '
                      'without its server group: no scheduler answered'
                      % self.a['id'], self.stdlog.logger.output)
        self.assertIn('places it on unknown hosts', self.stdlog.logger.output)

    def test_placed_on_a_host_free_of_the_group_stays_error(self):
        """Without the group the scheduler places it on a host the group
        does not occupy (the cloud changed between the two questions):
        the group is not what stopped it, Nova's ERROR stays."""
        self.useFixture(fixtures.MockPatchObject(
            failed_move, 'placed_without_group',
            return_value=['host2', 'host9']))
        self._hold_b_moving_to_host4()
        record, a = self._evacuate_a()
        self.assertEqual(('ERROR', None, 'host1'), _state(a))
        self.assertIn("free of the group ['host9']",
                      self.stdlog.logger.output)

    def test_placed_without_group(self):
        ctxt = nova_context.get_admin_context()
        self.stop_compute('host1')
        instance = objects.Instance.get_by_uuid(ctxt, self.a['id'])

        def placed(dest_compute):
            return failed_move.placed_without_group(
                ctxt, instance, objects.Migration(dest_compute=dest_compute))
        # Nova's max_attempts (3): the chosen host and two alternates.
        self.assertEqual(['host2', 'host3', 'host4'], placed(None))
        self.assertEqual(['host3'], placed('host3'))
        service = self.admin_api.get_services(
            host='host4', binary='nova-compute')[0]
        self.admin_api.api_put('/os-services/%s' % service['id'],
                               {'status': 'disabled'})
        self.stop_compute('host3')
        self.assertEqual(['host2'], placed(None))
        self.assertEqual([], placed('host3'))
        # Nothing claimed: A's allocation is still only on host1.
        self.assertEqual(
            ['host1'], sorted(self._allocation_hosts(self.a)))

    def _allocation_hosts(self, server):
        hosts = []
        for rp_uuid in self.placement.get(
                '/allocations/%s' % server['id']).body['allocations']:
            hosts.append(self.placement.get(
                '/resource_providers/%s' % rp_uuid).body['name'])
        return hosts


class _ImageProperty(fixtures.Fixture):
    """Give the fake Glance's image1, which the members boot from, an image
    property."""

    def __init__(self, test, name, value):
        super().__init__()
        self.test, self.name, self.value = test, name, value

    def _setUp(self):
        image = self.test.glance.images[self.test.glance.image1['id']]
        image['properties'][self.name] = self.value
        self.addCleanup(image['properties'].pop, self.name)


class HostOfAnotherHypervisorTypeTestCase(EvacuationFindsNoHostTestCase):
    """The cloud of EvacuationFindsNoHostTestCase with a fifth host whose
    hypervisor type the members' image excludes (``img_hv_type=fake``, the
    fifth host reports qemu only): ImagePropertiesFilter never lets an
    evacuation of theirs go there.  The fifth host is free of the group."""

    def setUp(self):
        super().setUp()
        # The members' hosts are taken (boot_server pins them); now the
        # fifth host.
        compute = self._start_compute('host5')
        fake_resources = compute.manager.driver.get_available_resource

        def qemu_only(nodename):
            resources = fake_resources(nodename)
            resources['supported_instances'] = [('x86_64', 'qemu', 'hvm')]
            return resources
        compute.manager.driver.get_available_resource = qemu_only
        compute.manager.update_available_resource(
            nova_context.get_admin_context())

    def _before_members_boot(self):
        # Their RequestSpec keeps the image as it was at boot.
        self.useFixture(_ImageProperty(self, 'img_hv_type', 'fake'))

    def test_refused_by_the_group_keeps_state(self):
        super().test_refused_by_the_group_keeps_state()
        self.assertNotIn('not because of server group',
                         self.stdlog.logger.output)

    def test_placed_without_group(self):
        super().test_placed_without_group()
        ctxt = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(ctxt, self.a['id'])
        self.assertEqual([], failed_move.placed_without_group(
            ctxt, instance, objects.Migration(dest_compute='host5')))
