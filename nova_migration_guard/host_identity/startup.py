"""The identity check at nova-compute start (``init_host`` hook, after
Nova's own node checks and before any instance is touched)."""

from nova import exception
from nova import objects
from oslo_log import log as logging

from nova_migration_guard.host_identity import ownership

LOG = logging.getLogger(__name__)


def check_identity(manager, context):
    """Raise InvalidConfiguration (the service does not start) when a node
    the virt driver reports belongs to another host's compute node."""
    if 'ironic' in type(manager.driver).__module__:
        # Ironic hands nodes between computes by design (Nova skips its
        # rename check for it too).
        return
    try:
        my_nodes = manager.driver.get_nodenames_by_uuid()
    except exception.VirtDriverNotReady:
        return
    recorded = {cn.uuid: cn for cn in objects.ComputeNodeList.
                get_all_by_uuids(context, list(my_nodes))}
    for hypervisor_hostname in set(my_nodes.values()):
        for cn in objects.ComputeNodeList.get_by_hypervisor(
                context, hypervisor_hostname):
            recorded[cn.uuid] = cn
    found = ownership.conflicts(manager.host, my_nodes, [
        ownership.Node(cn.uuid, cn.hypervisor_hostname, cn.host)
        for cn in recorded.values()])
    if found:
        message = ownership.refusal(manager.host, found)
        LOG.critical('%s', message)
        raise exception.InvalidConfiguration(message)
    LOG.info('Host identity verified: %s owns its hypervisor nodes %s',
             manager.host, ', '.join(sorted(my_nodes.values())))
