"""Whose hypervisor node is it?

Nova 34 refuses to start a compute whose node (by the UUID in its
compute_id file) is recorded under another ``host``, or whose node has a
changed hypervisor_hostname.  It does not notice a compute that reports a
hypervisor_hostname already recorded under a DIFFERENT host with another
node UUID: an HA backup started with another ``[DEFAULT] host`` against the
same hypervisor (a vCenter cluster, a shared libvirt, ...).  Both services
then manage one hypervisor, each treating the other's instances as foreign
or evacuated, and guests get destroyed.

Pure: the compute nodes are plain values; the caller reads them.
"""

import collections

#: A compute node record: its UUID, hypervisor_hostname and ``host``.
Node = collections.namedtuple('Node', 'uuid hypervisor_hostname host')

#: ``mine`` (uuid, hypervisor_hostname the driver reports) is recorded as
#: ``theirs`` (a Node of another host); ``by`` says which attribute matched.
Conflict = collections.namedtuple('Conflict', 'mine theirs by')


def conflicts(my_host, my_nodes, recorded):
    """The Conflicts between the nodes the driver reports (``my_nodes``:
    {uuid: hypervisor_hostname}) and the ``recorded`` compute nodes (an
    iterable of Node, any host): every recorded node of another host with
    one of my UUIDs or hypervisor_hostnames."""
    found = []
    for node in recorded:
        if node.host == my_host:
            continue
        for uuid, hypervisor_hostname in sorted(my_nodes.items()):
            if node.uuid == uuid:
                found.append(Conflict((uuid, hypervisor_hostname), node,
                                      'uuid'))
            elif node.hypervisor_hostname == hypervisor_hostname:
                found.append(Conflict((uuid, hypervisor_hostname), node,
                                      'hypervisor_hostname'))
    return found


def refusal(my_host, found):
    """The one message a refusing compute logs and raises."""
    first = found[0]
    others = sorted({c.theirs.host for c in found})
    nodes = ', '.join(sorted('%s (%s)' % (c.mine[1], c.mine[0])
                             for c in found))
    return (
        "nova-compute with [DEFAULT] host = %(me)s refuses to start: its "
        "hypervisor node %(nodes)s is already the compute node of host "
        "%(others)s (matched by %(by)s). Two nova-compute services with "
        "different host values would manage one hypervisor, each treating "
        "the other's instances as evacuated or foreign. For active/passive "
        "HA, give both nodes the same [DEFAULT] host (%(first)s) and run "
        "one at a time; to move this hypervisor to host %(me)s for good, "
        "first delete the compute service of %(first)s (openstack compute "
        "service delete)." % {
            'me': my_host, 'nodes': nodes, 'others': ', '.join(others),
            'by': first.by, 'first': first.theirs.host})
