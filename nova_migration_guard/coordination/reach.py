"""Whether the lock backend reaches every compute: at compute start, warn
when ``[migration_guard_coordination] backend_url`` is a ``file://``
directory (the default) while computes run on other machines.

"Another machine" is a compute node whose ``host_ip`` differs from this
compute's ``my_ip``: several nova-compute services on one machine (an
all-in-one cloud, the embedded test cloud) do share file locks.
"""

from nova import conf as nova_conf
from nova import objects
from oslo_log import log as logging

from nova_migration_guard import conf as mg_conf
from nova_migration_guard.coordination import backend

LOG = logging.getLogger(__name__)

#: Compute nodes read at start: enough to see a second machine without
#: reading every node of a large cloud.
NODES_READ = 200


def other_machines(context, host, my_ip):
    """'host (ip)' of computes, among the first NODES_READ nodes, that run
    on another machine than ``my_ip``."""
    nodes = objects.ComputeNodeList.get_by_pagination(context,
                                                      limit=NODES_READ)
    return {'%s (%s)' % (node.host, node.host_ip) for node in nodes
            if node.host != host and node.host_ip is not None and
            str(node.host_ip) != str(my_ip)}


def warn_if_machine_local(manager, context, conf=mg_conf.CONF):
    url = conf[backend.GROUP].backend_url
    if not backend.machine_local(url):
        return
    problem = backend.machine_local_problem(url, other_machines(
        context, manager.host, nova_conf.CONF.my_ip))
    if problem:
        LOG.warning('nova-migration-guard: %s', problem)
