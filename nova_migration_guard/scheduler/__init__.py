"""Scheduler side of the anti-affinity guard, for stock and patched Nova.

Nova's ServerGroupAntiAffinityFilter and ServerGroupSoftAntiAffinityWeigher
count only ``instance.host`` of the members; the source and destination of a
member's in-flight move are invisible to them, so two concurrent moves of
members pick the same free host.  ``filters.InFlightAntiAffinityFilter`` and
``weighers.InFlightSoftAntiAffinityWeigher`` count them too.  They use no
hook point, only options (the README has the nova.conf lines):

* ``[filter_scheduler] available_filters`` (one class path per line, it is
  a MultiStrOpt): ``nova.scheduler.filters.all_filters`` and
  ``nova_migration_guard.scheduler.filters.InFlightAntiAffinityFilter``;
* ``[filter_scheduler] enabled_filters``: Nova's list, which must keep
  ServerGroupAntiAffinityFilter (Nova rejects anti-affinity groups without
  that name), plus ``InFlightAntiAffinityFilter``;
* ``[filter_scheduler] weight_classes``:
  ``nova.scheduler.weights.all_weighers`` and
  ``nova_migration_guard.scheduler.weighers.InFlightSoftAntiAffinityWeigher``
  (a ListOpt: comma-separated, may continue on indented lines);
* ``[migration_guard] guards`` includes ``anti_affinity``; without it both
  classes step aside and Nova's own filter and weigher decide alone, as
  they do for a policy left out of ``[migration_guard_anti_affinity]
  policies``; ``mode = audit`` only logs what the filter would reject.

This module holds what both share: when they act, and the group snapshot of
one scheduling request, loaded once.
"""

import weakref

from nova import context as nova_context
from oslo_log import log as logging

import nova_migration_guard.conf  # noqa: F401  registers our options
from nova_migration_guard.anti_affinity import occupancy
from nova_migration_guard.anti_affinity import settings

LOG = logging.getLogger(__name__)

# RequestSpec -> (Snapshot, cell uuids that did not answer).  The scheduler
# hands the SAME RequestSpec object to every filter and weigher call of one
# select_destinations (each host, each instance of a multi-create, the
# alternates), and every request arrives over RPC as a new object: so one
# entry is one request, and it goes away with the request.
_SNAPSHOTS = weakref.WeakKeyDictionary()


def group_policy(spec_obj):
    """The request's server group policy, None without a group."""
    group = spec_obj.instance_group if spec_obj.obj_attr_is_set(
        'instance_group') else None
    if group is None or not group.obj_attr_is_set('policy'):
        return None
    return group.policy


def applies(spec_obj, policy_name):
    """Act only when the guard handles ``policy_name`` and the request has
    a group of that policy."""
    return (settings.handles(policy_name) and
            group_policy(spec_obj) == policy_name)


audit = settings.audit


def request_snapshot(spec_obj):
    """(Snapshot, failed cell uuids) of the request's group, loaded from the
    cell DBs on the first call for ``spec_obj`` and reused afterwards."""
    cached = _SNAPSHOTS.get(spec_obj)
    if cached is None:
        # Filters and weighers get no context; an admin one reads every
        # member, whoever owns it (as Nova's ImagePropertiesWeigher does).
        context = nova_context.get_admin_context()
        try:
            cached = (occupancy.load_snapshot(
                context, spec_obj.instance_group), frozenset())
        except occupancy.OccupancyUnavailable as exc:
            LOG.warning('Server group %s: %s; hosts of those cells are '
                        'treated as unknown', exc.partial.group_uuid, exc)
            cached = (exc.partial, exc.cell_uuids)
        _SNAPSHOTS[spec_obj] = cached
    return cached


def request_occupancy(spec_obj, policy_name):
    """None when the guard does not act on the request (see ``applies``);
    else (the group as the instance being placed sees it, a
    ``policy.HostOccupancy``; cell uuids that did not answer).  Both the
    snapshot and its per-instance view are computed once per request (and
    instance of a multi-create): a filter or weigher calls this once per
    request, then asks host after host."""
    if not applies(spec_obj, policy_name):
        return None
    snapshot, failed_cells = request_snapshot(spec_obj)
    return snapshot.for_instance(spec_obj.instance_uuid), failed_cells
