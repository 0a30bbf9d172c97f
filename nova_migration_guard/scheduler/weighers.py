"""InFlightSoftAntiAffinityWeigher: soft anti-affinity counting in-flight
moves.

Like Nova's ServerGroupSoftAntiAffinityWeigher (same multiplier option and
aggregate key, same sign: fewer members, higher weight), but a member
occupies its host and both ends of each of its in-flight moves.  Listed
beside Nova's weigher (``nova.scheduler.weights.all_weighers``), members
on their ``instance.host`` weigh in both, in-flight ends in this one only.
"""

import nova.conf
from nova.scheduler import utils
from nova.scheduler import weights

from nova_migration_guard.anti_affinity import policy
from nova_migration_guard import scheduler

CONF = nova.conf.CONF


class InFlightSoftAntiAffinityWeigher(weights.BaseHostWeigher):
    """Prefer hosts with fewer members, in-flight moves included."""

    def weight_multiplier(self, host_state):
        return utils.get_weight_multiplier(
            host_state, 'soft_anti_affinity_weight_multiplier',
            CONF.filter_scheduler.soft_anti_affinity_weight_multiplier)

    def weigh_objects(self, weighed_obj_list, spec_obj):
        # BaseWeigher.weigh_objects calls _weigh_object host by host; what
        # belongs to the request (group, guard options, snapshot, the
        # occupied hosts as this instance sees them) is decided here once.
        # No minval/maxval to clamp to (BaseWeigher's are None).
        request = self._request(spec_obj)
        if request is None:
            return [0] * len(weighed_obj_list)
        return [self._weight(weighed.obj, *request)
                for weighed in weighed_obj_list]

    def _weigh_object(self, host_state, spec_obj):
        request = self._request(spec_obj)
        return 0 if request is None else self._weight(host_state, *request)

    @staticmethod
    def _request(spec_obj):
        if scheduler.audit():
            # Audit mode: stock Nova's preference only (soft anti-affinity
            # never refuses, so there is no refusal to log).
            return None
        return scheduler.request_occupancy(spec_obj,
                                           policy.SOFT_ANTI_AFFINITY)

    @staticmethod
    def _weight(host_state, view, failed_cells):
        if host_state.cell_uuid in failed_cells:
            return 0        # unknown: no preference, soft never refuses
        # Members this request already placed show only in
        # HostState.instances (policy.HostOccupancy).
        return -len(view.occupants(host_state.host, host_state.instances))
