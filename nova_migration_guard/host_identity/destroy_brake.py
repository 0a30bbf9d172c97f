"""The destroy brake: before nova-compute destroys, at start, the local
guests of instances evacuated from its host (Nova's
``_destroy_evacuated_instances``, through patch 0009's hook), each is
checked against its evacuation record and the instance's current host.

The whole cleanup is refused, and the service does not start, when a
record is inconsistent or when more than ``max_destroy_share`` of the
local guests would go: a human then looks before anything irreversible
happens.  ``destroy_brake = audit`` only logs what it would refuse.

``problems`` is pure; ``check`` reads the records and acts.
"""

import collections

from nova import exception
from nova import objects
from oslo_log import log as logging

from nova_migration_guard import conf as mg_conf

LOG = logging.getLogger(__name__)

ENFORCE = 'enforce'
AUDIT = 'audit'

#: A local guest Nova would destroy: its instance's current ``host``, the
#: hypervisor names of that host's compute nodes, and the evacuation
#: record's destination and status.
Doomed = collections.namedtuple(
    'Doomed', 'uuid host host_hypervisors dest_compute status')


def problems(my_host, my_hypervisors, doomed, local_count, max_share):
    """Why the cleanup must not run (empty: it may)."""
    found = []
    for guest in doomed:
        if guest.host == my_host:
            found.append('instance %s is on this host (%s) although its '
                         'evacuation record (%s, to %s) says it left'
                         % (guest.uuid, my_host, guest.status,
                            guest.dest_compute))
        elif set(guest.host_hypervisors) & set(my_hypervisors):
            found.append('instance %s now runs on host %s, whose hypervisor '
                         '%s is also this host\'s: the local guest is that '
                         'instance' % (guest.uuid, guest.host, ', '.join(
                             sorted(set(guest.host_hypervisors) &
                                    set(my_hypervisors)))))
    share = float(len(doomed)) / max(local_count, 1)
    if doomed and share > max_share:
        found.append('%d of the %d local guests would be destroyed (%.0f%%, '
                     'more than [migration_guard_host_identity] '
                     'max_destroy_share = %s)' % (len(doomed), local_count,
                                                  share * 100, max_share))
    return found


def check(manager, context, evacuations, local_instances, instances):
    conf = mg_conf.CONF.migration_guard_host_identity
    # One query per host: evacuated instances usually share a few hosts.
    hypervisors = {}
    for host in {instance.host for instance in instances} | {manager.host}:
        hypervisors[host] = _hypervisors(context, host)
    doomed = [Doomed(instance.uuid, instance.host,
                     hypervisors[instance.host],
                     evacuations[instance.uuid].dest_compute,
                     evacuations[instance.uuid].status)
              for instance in instances]
    my_hypervisors = set(hypervisors[manager.host])
    my_hypervisors |= set(manager.driver.get_available_nodes())
    found = problems(manager.host, my_hypervisors, doomed,
                     len(local_instances), conf.max_destroy_share)
    names = ', '.join(sorted(guest.uuid for guest in doomed)) or 'none'
    if not found:
        LOG.info('Destroy brake: the %d evacuated guests to destroy check '
                 'out against their records: %s', len(doomed), names)
        return
    reason = ('%s. Guests Nova would destroy: %s. Check them; to let the '
              'cleanup run, raise [migration_guard_host_identity] '
              'max_destroy_share or set destroy_brake = audit for this '
              'start.' % ('; '.join(found), names))
    if conf.destroy_brake == AUDIT:
        LOG.warning('Destroy brake (audit only, destroying anyway): %s',
                    reason)
        return
    LOG.critical('Destroy brake: refusing to destroy evacuated guests, '
                 'nova-compute does not start: %s', reason)
    raise exception.EvacuatedInstancesCleanupRefused(reason=reason)


def _hypervisors(context, host):
    """The hypervisor names of ``host``'s compute nodes."""
    if not host:
        return set()
    try:
        nodes = objects.ComputeNodeList.get_all_by_host(context, host)
    except exception.ComputeHostNotFound:
        return set()
    return {cn.hypervisor_hostname for cn in nodes}
