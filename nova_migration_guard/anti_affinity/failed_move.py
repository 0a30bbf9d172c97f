"""Say why a move of a group member found no host (conductor side), and
keep a refused evacuation out of ERROR.

When the conductor gives up on a live or cold migration or an evacuation
because no host passed (NoValidHost, MaxRetriesExceeded) or the last one was
refused, Nova's fault only says "No valid host was found".  The
``move_failed`` hook adds a fault naming the server group and the hosts its
members occupy, counting in-flight moves, so an operator sees at once that
the policy, not capacity, stopped the move.

A live or cold migration that found no host keeps its vm_state in Nova.  An
evacuation does not: Nova sets the instance to ERROR (conductor
rebuild_instance, patch 0010 calls the hook after that).  When the group
refused it, the instance is as healthy as before the request, so it gets
back the vm_state it had, with no task, on its (down) host: the same outcome
as an evacuation the destination's late check refused (patch 0007).

The group refused it when every host the evacuation could use (up and
enabled computes of the instance's cell, except its own host; only the named
one if a host was requested) is occupied by other members, counting their
in-flight moves and the moves that ended since the evacuation was requested:
the scheduler saw those while they held their hosts, and Nova's
ServerGroupAntiAffinityFilter counts a member it has just placed.  When any
such host is free of the group, capacity or something else stopped the
evacuation and Nova's ERROR stays.
"""

from nova.compute import vm_states
from nova.compute import utils as compute_utils
from nova import exception
from nova import objects
from nova import plugin_hooks
from nova import servicegroup
from oslo_log import log as logging
from oslo_utils import timeutils

from nova_migration_guard.anti_affinity import late_check
from nova_migration_guard.anti_affinity import occupancy
from nova_migration_guard.anti_affinity import policy
from nova_migration_guard.anti_affinity import settings

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
            members.append(_describe_member(uuid, moving.get(uuid)))
        hosts.append('%s: %s' % (host, ', '.join(members)))
    return ('server group %s (anti-affinity, max_server_per_host=%d) '
            'occupies %s, counting in-flight moves'
            % (snapshot.group_uuid, snapshot.max_server_per_host,
               '; '.join(hosts) or 'no host'))


def _describe_member(uuid, move):
    if move is None:
        return uuid
    if move.status in policy.FINAL_MIGRATION_STATUSES:
        # Counted for an evacuation: it held both hosts after the request.
        return '%s (moved %s->%s, %s)' % (
            uuid, move.source, move.dest, move.status)
    return '%s (moving %s->%s)' % (uuid, move.source, move.dest)


def move_failed(context, instance, migration, operation, error):
    if not isinstance(error, _NO_HOST):
        return
    group = late_check.guarded_group(context, instance)
    if group is None:
        return
    evacuation = (operation == plugin_hooks.MOVE_EVACUATE and
                  migration is not None)
    since = (timeutils.normalize_time(migration.created_at)
             if evacuation and migration.obj_attr_is_set('created_at') and
             migration.created_at else None)
    complete = True
    try:
        snapshot = occupancy.load_snapshot(context, group, ended_since=since)
    except occupancy.OccupancyUnavailable as exc:
        snapshot, complete = exc.partial, False
    reason = '%s of instance %s found no host: %s (%s)' % (
        operation, instance.uuid, describe(snapshot, instance.uuid), error)
    if evacuation and complete:
        kept = _keep_refused_evacuation(context, instance, migration,
                                        snapshot)
        if kept:
            # First: a fault message keeps only its first 255 characters.
            reason = '%s: %s' % (kept, reason)
    LOG.warning('%s', reason, instance=instance)
    compute_utils.add_instance_fault_from_exc(
        context, instance, exception.NoValidHost(reason=reason))


def usable_hosts(context, instance, migration):
    """The hosts the scheduler could have given the evacuation: computes of
    the instance's cell that are up and enabled, except its own host, and
    only the requested host if one was named (the API records it in the
    migration's dest_compute)."""
    group_api = servicegroup.API()
    hosts = {service.host for service in objects.ServiceList.get_by_binary(
        context, 'nova-compute')
        if not service.disabled and group_api.service_is_up(service)}
    hosts.discard(instance.host)
    requested = migration.dest_compute if migration.obj_attr_is_set(
        'dest_compute') else None
    if requested:
        hosts &= {requested}
    return hosts


def _keep_refused_evacuation(context, instance, migration, snapshot):
    """When the group refused every usable host, give the instance back the
    states the evacuation started from; returns what was done (for the
    fault), or None when Nova's outcome stays."""
    hosts = usable_hosts(context, instance, migration)
    free = sorted(h for h in hosts
                  if policy.check_host(snapshot, h, instance.uuid) is None)
    if not hosts or free:
        LOG.info('Evacuation of %s found no host, not because of server '
                 'group %s: usable hosts %s, free of the group %s',
                 instance.uuid, snapshot.group_uuid, sorted(hosts) or 'none',
                 free, instance=instance)
        return None
    vm_state = instance.vm_state
    if vm_state == vm_states.ERROR:
        return None
    if settings.audit():
        LOG.warning('Audit: would keep instance %s %s on %s (evacuation '
                    'refused by server group %s)', instance.uuid, vm_state,
                    instance.host, snapshot.group_uuid, instance=instance)
        return None
    fresh = objects.Instance.get_by_uuid(context, instance.uuid)
    fresh.vm_state = vm_state
    fresh.task_state = None
    try:
        # Only Nova's ERROR from this failure: anything done since stays.
        fresh.save(expected_vm_state=[vm_states.ERROR],
                   expected_task_state=[None])
    except (exception.InstanceUpdateConflict,
            exception.InstanceNotFound) as exc:
        LOG.warning('Could not keep instance %s %s after its evacuation was '
                    'refused: %s', instance.uuid, vm_state, exc,
                    instance=instance)
        return None
    return 'the instance stays %s on %s' % (vm_state, instance.host)
