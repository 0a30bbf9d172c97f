"""InFlightAntiAffinityFilter: hard anti-affinity that counts in-flight moves.

It runs beside Nova's ServerGroupAntiAffinityFilter (Nova insists on that
name being enabled for anti-affinity groups), with the same rules
(``max_server_per_host``, 1 by default) but a member occupies its host AND
both ends of each of its in-flight moves (``policy.Snapshot.occupancy``).
"""

from nova.scheduler import filters
from oslo_log import log as logging

from nova_migration_guard.anti_affinity import policy
from nova_migration_guard import scheduler

LOG = logging.getLogger(__name__)


class InFlightAntiAffinityFilter(filters.BaseHostFilter):
    """Reject hosts that members occupy, counting in-flight moves."""

    # As Nova's group filters: a rebuild keeps its host, nothing to decide
    # (BaseHostFilter._filter_one passes every host then).
    RUN_ON_REBUILD = False
    # Run for every instance of a multi-create: each one adds a member.
    # The DB is read once per request anyway (scheduler.request_snapshot).
    run_filter_once_per_request = False

    def host_passes(self, host_state, spec_obj):
        if not scheduler.applies(spec_obj, policy.ANTI_AFFINITY):
            return True
        snapshot, failed_cells = scheduler.request_snapshot(spec_obj)
        if host_state.cell_uuid in failed_cells:
            # Its cell did not answer: whether members occupy the host is
            # unknown, and a move refused now can be retried.
            LOG.debug('Group anti-affinity (in-flight): group %s, instance '
                      '%s: %s host %s, its cell did not answer',
                      snapshot.group_uuid, spec_obj.instance_uuid,
                      'audit: would reject' if scheduler.audit()
                      else 'rejecting', host_state.host)
            return scheduler.audit()
        snapshot = scheduler.with_request_placements(snapshot, host_state)
        # The instance itself is excluded (Snapshot.occupancy(exclude=)):
        # its own host and its own in-flight move never count against it.
        refusal = policy.check_host(
            snapshot, host_state.host, spec_obj.instance_uuid)
        if refusal is None:
            return True
        audit = scheduler.audit()
        # Rejecting is routine filtering (debug, as Nova's filters log);
        # in audit mode the would-be rejection is the point (info).
        LOG.log(logging.INFO if audit else logging.DEBUG,
                'Group anti-affinity (in-flight): group %(group)s, '
                'instance %(instance)s: %(verb)s host %(host)s: %(refusal)s; '
                'in-flight moves that counted: %(moves)s',
                {'group': refusal.group_uuid,
                 'instance': spec_obj.instance_uuid,
                 'verb': 'audit: would reject' if audit else 'rejecting',
                 'host': host_state.host, 'refusal': refusal,
                 'moves': list(refusal.moves)})
        return audit
