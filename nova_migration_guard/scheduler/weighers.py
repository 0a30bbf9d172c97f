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

    def _weigh_object(self, host_state, spec_obj):
        # BaseWeigher.weigh_objects calls this once per host; the snapshot
        # is read from the DB once per request (scheduler.request_snapshot).
        if (not scheduler.applies(spec_obj, policy.SOFT_ANTI_AFFINITY) or
                scheduler.audit()):
            # Audit mode: stock Nova's preference only (soft anti-affinity
            # never refuses, so there is no refusal to log).
            return 0
        snapshot, failed_cells = scheduler.request_snapshot(spec_obj)
        if host_state.cell_uuid in failed_cells:
            return 0        # unknown: no preference, soft never refuses
        snapshot = scheduler.with_request_placements(snapshot, host_state)
        return -policy.members_on(
            snapshot, host_state.host, spec_obj.instance_uuid)
