"""A fake compute driver for nova-compute processes of the real cloud.

Nova's fake.FakeDriver is written for the in-process harness: every process
invents new node UUIDs (uuidsentinel), so a restarted nova-compute no longer
matches its compute node record, and it keeps its guests in the process's
memory only, so the destination of a live migration never learns of the
guest.  This driver keeps the node identity in ``$state_path/compute_id``
(Nova's own local node identity file, as the libvirt driver does) and
registers an incoming guest at the destination when the migration ends.
It is loaded by name through the entry point of patch 0005:
``compute_driver = migration_guard.realcloud.FakeDriver``.

``[realcloud_fake_driver] hypervisor_hostname`` names the hypervisor the
driver stands for (default: ``[DEFAULT] host``, one hypervisor per
compute), so that a compute with another ``host`` can be pointed at an
existing compute's hypervisor, as an HA backup sharing it is.
"""

from nova.compute import power_state
from nova.virt import fake
from nova.virt import node
from oslo_config import cfg

OPTS = [cfg.StrOpt(
    'hypervisor_hostname',
    help='The hypervisor this compute manages (default: [DEFAULT] host). '
         'Set it to another compute\'s host to run a second compute '
         'service against that compute\'s hypervisor (tests only).')]
cfg.CONF.register_opts(OPTS, group='realcloud_fake_driver')


class FakeDriver(fake.MediumFakeDriver):
    """MediumFakeDriver with a stable node identity and guests that arrive
    on the destination of a live migration."""

    def init_host(self, host):
        super().init_host(host)
        self._set_nodes([cfg.CONF.realcloud_fake_driver.hypervisor_hostname
                         or host])

    def get_nodenames_by_uuid(self, refresh=False):
        # The node's UUID as recorded (see get_available_resource), not
        # the fake driver's per-process sentinel, so that Nova's own
        # node identity checks run as with a real driver.
        return {node.get_local_node_uuid(): self.get_available_nodes()[0]}

    def get_available_resource(self, nodename):
        resources = super().get_available_resource(nodename)
        if resources:
            resources['uuid'] = node.get_local_node_uuid()
        return resources

    def post_live_migration_at_destination(self, context, instance,
                                           network_info,
                                           block_migration=False,
                                           block_device_info=None):
        self.instances[instance.uuid] = fake.FakeInstance(
            instance.name, power_state.RUNNING, instance.uuid)

    def post_live_migration_at_source(self, context, instance, network_info):
        self.instances.pop(instance.uuid, None)
