"""The late anti-affinity check on a move's destination compute.

Nova's own late check (ComputeManager._validate_instance_group_policy)
holds a lock inside one nova-compute process only, and the claim that makes
a move visible to the next check happens after it.  This check runs inside
the patch set's ``move_claim`` hook: under a distributed lock per server
group it counts the members on this host, including both ends of their
in-flight moves, refuses the host with MoveDestinationRefused when the
policy would break, and keeps the lock only until this move is visible to
the next check (published):

* a live migration's destination check: the guard writes the destination
  into the migration record itself (the conductor would write it only after
  every check passed), then releases the lock.  The rest of the check, the
  RPC to the source and the NUMA/PCI claims, runs unlocked; if it fails the
  record gets its old destination back.  Between the two a concurrent check
  of this host counts the move and refuses: conservative, never a violation;
* pre_live_migration: the conductor has written the destination: only the
  check runs under the lock;
* resize/cold migration, evacuation, unshelve: the move becomes visible
  through Nova's claim on this compute (the resize and rebuild claims write
  the migration's destination, the unshelve claim the instance's host), so
  the lock covers that local claim (no RPC).  Writing those records before
  the claim would show Nova's resource tracker an incoming move that has no
  flavor or migration context yet.
"""

import contextlib

from nova import exception
from nova import objects
from nova import plugin_hooks
from oslo_log import log as logging

from nova_migration_guard.anti_affinity import policy
from nova_migration_guard.anti_affinity import settings
from nova_migration_guard import coordination

LOG = logging.getLogger(__name__)

# Rebuild keeps the instance where it is: nothing moves.
_NOT_A_MOVE = (plugin_hooks.MOVE_REBUILD,)


def lock_name(group_uuid):
    return 'server-group.%s' % group_uuid


def host_snapshot(context, group, host, nodename):
    """The group as seen from ``host``: members whose instance.host is this
    host and in-flight moves of members from or to this host."""
    members = frozenset(group.members)
    on_host = members & set(objects.InstanceList.get_uuids_by_host(
        context, host))
    moves = tuple(
        policy.Move(instance_uuid=m.instance_uuid, source=m.source_compute,
                    dest=m.dest_compute, migration_type=m.migration_type,
                    status=m.status, migration_id=m.id)
        for m in objects.MigrationList.get_in_progress_by_host_and_node(
            context, host, nodename)
        if m.instance_uuid in members)
    return policy.Snapshot(
        group_uuid=group.uuid, policy=group.policy,
        max_server_per_host=policy.max_server_per_host(group.rules),
        member_hosts={uuid: host for uuid in on_host}, moves=moves,
        members=members)


def _group_of(context, instance):
    try:
        return objects.InstanceGroup.get_by_instance_uuid(
            context, instance.uuid)
    except exception.InstanceGroupNotFound:
        return None


def guarded_group(context, instance):
    """The instance's group when this guard handles its policy, else None."""
    group = _group_of(context, instance)
    if (group is None or group.policy != policy.ANTI_AFFINITY or
            not settings.handles(group.policy)):
        return None
    return group


def _refusal(context, group, host, nodename, instance, operation):
    """The policy.Refusal to enforce for ``host``, or None.  A refusal is
    logged either way; in audit mode it is only logged."""
    refusal = policy.check_host(
        host_snapshot(context, group, host, nodename), host, instance.uuid)
    if refusal is None:
        return None
    audit = settings.audit()
    LOG.warning('%s %s of instance %s to %s: %s',
                'Audit: would refuse' if audit else 'Refusing', operation,
                instance.uuid, host, refusal, instance=instance)
    return None if audit else refusal


def move_requested(context, instance, operation, host, force):
    """The ``move_requested`` hook (nova-api): a move to a named host that
    already breaks the group gets 409 at once, instead of a 202 and a move
    that fails later (or, forced, a violated policy).  Advisory, so no
    lock: the late check on the destination stays authoritative."""
    group = guarded_group(context, instance)
    if group is None:
        return
    for node in objects.ComputeNodeList.get_all_by_host(context, host):
        refusal = _refusal(context, group, host, node.hypervisor_hostname,
                           instance, operation)
        if refusal is not None:
            raise exception.MoveRequestRefused(
                reason='Cannot move instance %s to host %s: %s'
                % (instance.uuid, host, refusal))


@contextlib.contextmanager
def move_claim(manager, context, instance, operation, migration, nodename):
    """The ``move_claim`` hook of the anti_affinity guard."""
    group = (guarded_group(context, instance)
             if operation not in _NOT_A_MOVE else None)
    if group is None:
        yield
        return
    host = manager.host
    nodename = nodename or manager._get_nodename(instance)
    with contextlib.ExitStack() as held:
        # Waiting too long, or a backend failing closed, refuses the host:
        # the conductor then tries another one, or the move fails cleanly.
        try:
            lock = held.enter_context(
                coordination.get_coordinator().lock(lock_name(group.uuid)))
        except coordination.CoordinationError as exc:
            raise exception.MoveDestinationRefused(host=host, reason=str(exc))
        refusal = _refusal(context, group, host, nodename, instance,
                           operation)
        if refusal is not None:
            raise exception.MoveDestinationRefused(
                host=host, reason=str(refusal))
        # The check counted what the group looked like under the lock; had
        # the lock's TTL run out meanwhile, another destination may have
        # checked the same state and claimed: publish nothing then.
        try:
            lock.check()
        except coordination.CoordinationError as exc:
            LOG.warning('Refusing %s of instance %s to %s: %s', operation,
                        instance.uuid, host, exc, instance=instance)
            raise exception.MoveDestinationRefused(host=host, reason=str(exc))
        undo = _publish_destination(migration, operation, host, nodename)
        if _visible(migration, host, nodename):
            held.close()  # releases the group lock
        try:
            yield
        except BaseException:
            undo()
            raise


def _destination(migration):
    return tuple(getattr(migration, field)
                 if migration.obj_attr_is_set(field) else None
                 for field in ('dest_compute', 'dest_node'))


def _visible(migration, host, nodename):
    """Whether the next check of ``host`` already counts this move: its
    migration record names this host and node as destination
    (host_snapshot reads Nova's in-progress migrations by host and node)."""
    return migration is not None and _destination(migration) == (
        host, nodename)


def _publish_destination(migration, operation, host, nodename):
    """Make a live migration's destination visible to the next check, so
    that the lock can be released before the rest of the check.  The
    conductor writes it only after every check has passed (a requested
    host without its node); until then a second live migration of another
    member would not count this one.  Returns an undo for when the check
    fails."""
    if (operation != plugin_hooks.MOVE_LIVE_MIGRATION_CHECK or
            migration is None or _visible(migration, host, nodename)):
        return lambda: None
    previous = _destination(migration)
    migration.dest_compute, migration.dest_node = host, nodename
    migration.save()

    def restore():
        migration.dest_compute, migration.dest_node = previous
        migration.save()
    return restore
