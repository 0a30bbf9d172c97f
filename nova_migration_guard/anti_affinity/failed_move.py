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

The group refused it when Nova's scheduler, asked the same question
without the group, places the instance, and only on hosts the group
occupies (counting in-flight moves and the moves that ended since the
evacuation was requested: the scheduler saw those while they held their
hosts, and Nova's ServerGroupAntiAffinityFilter counts a member it has just
placed).  Asking the scheduler, not counting computes, is what makes this
right in a cloud whose hosts differ: a compute of another hypervisor type,
outside the flavor's aggregate or without the image's traits is free of the
group but was never a candidate.  When the scheduler finds no host without
the group either (capacity, or anything else), or places it on a host free
of the group (the cloud changed in between), Nova's ERROR stays.
"""

from nova.compute import vm_states
from nova.compute import utils as compute_utils
from nova import exception
from nova import objects
from nova import plugin_hooks
from nova.scheduler.client import query
from oslo_log import log as logging
import oslo_messaging as messaging
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


def placed_without_group(context, instance, migration):
    """The hosts Nova's scheduler gives this evacuation when its server
    group does not count: its chosen host and alternates, [] when it finds
    none, None when it could not be asked.

    The request is the instance's RequestSpec as the conductor prepares an
    evacuation (its own host ignored, the requested host if one was named:
    the API records it in the migration's dest_compute, its cell), without
    the group.  No instance uuid is passed, so the scheduler queries
    placement and runs its filters and weighers but claims nothing (Nova's
    own path for a rebuild's host check).  Like that check, it leaves the
    chosen host's usage counted in that scheduler's cache until the host
    next reports.  The conductor's resource requests of ports and
    accelerators are not in the stored RequestSpec; without them the
    question is easier, never harder, to answer yes to, and the hosts
    found are checked against the group anyway.
    """
    try:
        spec = objects.RequestSpec.get_by_instance_uuid(
            context, instance.uuid)
        cell = objects.InstanceMapping.get_by_instance_uuid(
            context, instance.uuid).cell_mapping
    except (exception.RequestSpecNotFound,
            exception.InstanceMappingNotFound) as exc:
        LOG.warning('Cannot ask the scheduler about evacuation of %s '
                    'without its server group: %s', instance.uuid, exc,
                    instance=instance)
        return None
    spec.instance_group = None
    spec.ignore_hosts = [instance.host]
    spec.reset_forced_destinations()
    requested = migration.dest_compute if migration.obj_attr_is_set(
        'dest_compute') else None
    spec.requested_destination = objects.Destination(cell=cell)
    if requested:
        spec.requested_destination.host = requested
    spec.ensure_project_and_user_id(instance)
    try:
        selections = query.SchedulerQueryClient().select_destinations(
            context, spec, None, return_objects=True, return_alternates=True)
    except exception.NoValidHost:
        return []
    except (messaging.MessagingException, exception.NovaException) as exc:
        LOG.warning('Cannot ask the scheduler about evacuation of %s '
                    'without its server group: %s', instance.uuid, exc,
                    instance=instance)
        return None
    return sorted({selection.service_host for selection in selections[0]})


def _keep_refused_evacuation(context, instance, migration, snapshot):
    """When the group refused the evacuation (see the module docstring),
    give the instance back the states the evacuation started from; returns
    what was done (for the fault), or None when Nova's outcome stays."""
    vm_state = instance.vm_state
    if vm_state == vm_states.ERROR:
        return None
    placed = placed_without_group(context, instance, migration)
    free = sorted(h for h in placed or ()
                  if policy.check_host(snapshot, h, instance.uuid) is None)
    if not placed or free:
        LOG.info('Evacuation of %s found no host, not because of server '
                 'group %s: without the group the scheduler places it on '
                 '%s, free of the group %s', instance.uuid,
                 snapshot.group_uuid,
                 'no host' if placed == [] else placed or 'unknown hosts',
                 free, instance=instance)
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
