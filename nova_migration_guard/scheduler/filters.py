"""InFlightAntiAffinityFilter: hard anti-affinity that counts in-flight moves.

It runs beside Nova's ServerGroupAntiAffinityFilter (Nova insists on that
name being enabled for anti-affinity groups), with the same rules
(``max_server_per_host``, 1 by default) but a member occupies its host AND
both ends of each of its in-flight moves (``policy.Snapshot.occupancy``).
"""

from nova.scheduler import filters
from nova.scheduler import utils
from oslo_log import log as logging

from nova_migration_guard.anti_affinity import policy
from nova_migration_guard import scheduler

LOG = logging.getLogger(__name__)


class InFlightAntiAffinityFilter(filters.BaseHostFilter):
    """Reject hosts that members occupy, counting in-flight moves."""

    # As Nova's group filters: a rebuild keeps its host, nothing to decide.
    RUN_ON_REBUILD = False
    # Run for every instance of a multi-create: each one adds a member.
    # The DB is read once per request anyway (scheduler.request_snapshot).
    run_filter_once_per_request = False

    def filter_all(self, filter_obj_list, spec_obj):
        # Nova's BaseFilter.filter_all asks _filter_one (rebuild check, then
        # host_passes) host by host.  What belongs to the request (rebuild,
        # group, guard options, snapshot, the occupied hosts as this
        # instance sees them) is decided here once, so that a host costs a
        # set lookup, as in Nova's own filter.
        hosts = list(filter_obj_list)
        if not self.RUN_ON_REBUILD and utils.request_is_rebuild(spec_obj):
            return hosts
        request = scheduler.request_occupancy(spec_obj, policy.ANTI_AFFINITY)
        if request is None:
            return hosts
        view, failed_cells = request
        audit = scheduler.audit()
        return [host_state for host_state in hosts
                if self._passes(host_state, view, failed_cells, audit)]

    def host_passes(self, host_state, spec_obj):
        request = scheduler.request_occupancy(spec_obj, policy.ANTI_AFFINITY)
        if request is None:
            return True
        return self._passes(host_state, *request, scheduler.audit())

    @staticmethod
    def _passes(host_state, view, failed_cells, audit):
        if host_state.cell_uuid in failed_cells:
            # Its cell did not answer: whether members occupy the host is
            # unknown, and a move refused now can be retried.
            if LOG.isEnabledFor(logging.DEBUG):
                LOG.debug('Group anti-affinity (in-flight): group %s, '
                          'instance %s: %s host %s, its cell did not answer',
                          view.snapshot.group_uuid, view.instance_uuid,
                          'audit: would reject' if audit else 'rejecting',
                          host_state.host)
            return audit
        # The instance itself is excluded (Snapshot.for_instance): its own
        # host and its own in-flight move never count against it.  Members
        # this request already placed show only in HostState.instances.
        if not view.refuses(host_state.host, host_state.instances):
            return True
        # Rejecting is routine filtering (debug, as Nova's filters log);
        # in audit mode the would-be rejection is the point (info).  The
        # refusal's details are built only for a record that is emitted.
        level = logging.INFO if audit else logging.DEBUG
        if LOG.isEnabledFor(level):
            refusal = view.refusal(host_state.host, host_state.instances)
            LOG.log(level,
                    'Group anti-affinity (in-flight): group %(group)s, '
                    'instance %(instance)s: %(verb)s host %(host)s: '
                    '%(refusal)s; in-flight moves that counted: %(moves)s',
                    {'group': refusal.group_uuid,
                     'instance': view.instance_uuid,
                     'verb': 'audit: would reject' if audit else 'rejecting',
                     'host': host_state.host, 'refusal': refusal,
                     'moves': list(refusal.moves)})
        return audit
