"""Say why a move of a group member found no host (conductor side).

When the conductor gives up on a live or cold migration because no host
passed (NoValidHost, MaxRetriesExceeded) or the last one was refused, Nova's
fault only says "No valid host was found".  The ``move_failed`` hook adds a
fault naming the server group and the hosts its members occupy, counting
in-flight moves, so an operator sees at once that the policy, not capacity,
stopped the move.
"""

from nova.compute import utils as compute_utils
from nova import exception
from oslo_log import log as logging

from nova_migration_guard.anti_affinity import late_check
from nova_migration_guard.anti_affinity import occupancy

LOG = logging.getLogger(__name__)

# MaxRetriesExceeded is a NoValidHost; MoveDestinationRefused a
# MigrationPreCheckError.
_NO_HOST = (exception.NoValidHost, exception.MigrationPreCheckError)


def describe(snapshot, instance_uuid):
    occupied = snapshot.occupancy(exclude=instance_uuid)
    moving = {m.instance_uuid: m for m in snapshot.moves
              if m.instance_uuid != instance_uuid}
    hosts = []
    for host in sorted(occupied):
        members = []
        for uuid in sorted(occupied[host]):
            move = moving.get(uuid)
            members.append('%s (moving %s->%s)' % (uuid, move.source,
                                                   move.dest)
                           if move else uuid)
        hosts.append('%s: %s' % (host, ', '.join(members)))
    return ('server group %s (anti-affinity, max_server_per_host=%d) '
            'occupies %s, counting in-flight moves'
            % (snapshot.group_uuid, snapshot.max_server_per_host,
               '; '.join(hosts) or 'no host'))


def move_failed(context, instance, migration, operation, error):
    if not isinstance(error, _NO_HOST):
        return
    group = late_check.guarded_group(context, instance)
    if group is None:
        return
    try:
        snapshot = occupancy.load_snapshot(context, group)
    except occupancy.OccupancyUnavailable as exc:
        snapshot = exc.partial
    reason = '%s of instance %s found no host: %s (%s)' % (
        operation, instance.uuid, describe(snapshot, instance.uuid), error)
    LOG.warning('%s', reason, instance=instance)
    compute_utils.add_instance_fault_from_exc(
        context, instance, exception.NoValidHost(reason=reason))
