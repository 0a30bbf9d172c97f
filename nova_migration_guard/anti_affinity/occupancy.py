"""Read a server group's members and their in-flight moves from Nova's DB.

The scheduler needs, per scheduling request, where every member of the group
is (``instance.host``) and every move of a member that still holds hosts: a
migration record whose status is not final
(``policy.FINAL_MIGRATION_STATUSES``), whatever its type (live-migration,
migration, resize, evacuation).  Both live in the cell databases, so this
module asks every cell (except cell0, which only holds instances that never
got a host) the way Nova's HostManager does, with
``nova.context.scatter_gather_skip_cell0``, and issues exactly ONE query per
cell: the members LEFT OUTER JOINed to their in-flight migrations.  Nova's
objects API has no multi-instance migration filter, hence the raw SQLAlchemy.

What a snapshot cannot see (closed only by the late check on the
destination compute):

* a move's destination between the scheduler's choice and the moment the
  migration record gets it: a live migration saves ``dest_compute`` after the
  destination's pre-checks; a cold migration/resize and an evacuation when
  the destination claims resources;
* unshelve: a shelved-offloaded member has ``host`` None and no migration
  record; it occupies the host it is unshelved on only once the destination
  compute's claim sets ``instance.host``;
* a member being built: its instance row gets its host on the compute.
"""

from nova import context as nova_context
from nova.db.main import api as db_api
from nova.db.main import models
import sqlalchemy as sa

from nova_migration_guard.anti_affinity import policy


class OccupancyUnavailable(Exception):
    """Some cells did not answer; ``partial`` is the snapshot built from the
    cells that did, ``cell_uuids`` the ones that did not.  Members of a cell
    can only occupy hosts of that cell, so the caller can still decide hosts
    of the other cells."""

    def __init__(self, cell_uuids, partial):
        super().__init__('cells did not answer: %s' % ', '.join(
            sorted(cell_uuids)))
        self.cell_uuids = frozenset(cell_uuids)
        self.partial = partial


def query_cell(cctxt, member_uuids, ended_since=None):
    """The one query of one cell: (uuid, host, migration id, source, dest,
    type, status) per member and in-flight move; the migration columns are
    None for a member that is not moving.  With ``ended_since`` (a naive
    UTC datetime), moves that ended at or after it count too."""
    inst = models.Instance.__table__
    mig = models.Migration.__table__
    holding = mig.c.status.not_in(sorted(policy.FINAL_MIGRATION_STATUSES))
    if ended_since is not None:
        holding = sa.or_(holding, mig.c.updated_at >= ended_since)
    in_flight = sa.and_(
        mig.c.instance_uuid == inst.c.uuid,
        mig.c.deleted == 0,
        holding)
    query = sa.select(
        inst.c.uuid, inst.c.host, mig.c.id, mig.c.source_compute,
        mig.c.dest_compute, mig.c.migration_type, mig.c.status,
    ).select_from(inst.outerjoin(mig, in_flight)).where(
        inst.c.uuid.in_(list(member_uuids)),
        inst.c.deleted == 0,
        # A cross-cell resize keeps a hidden copy of the instance in the
        # target cell; the visible copy (and its migration) is the truth.
        sa.or_(inst.c.hidden == sa.false(), inst.c.hidden.is_(None)))
    # get_context_manager: the cell's DB that target_cell put on the context.
    with db_api.get_context_manager(cctxt).reader.using(cctxt) as session:
        return [tuple(row) for row in session.execute(query)]


def _group_field(group, name, default=None):
    # Very old request specs carry an InstanceGroup without every field.
    return getattr(group, name) if group.obj_attr_is_set(name) else default


def load_snapshot(context, instance_group, ended_since=None):
    """A ``policy.Snapshot`` of ``instance_group`` as the cell DBs see it now;
    with ``ended_since`` (a naive UTC datetime) its moves include those that
    ended since then, which held their hosts at some moment after it.

    Raises OccupancyUnavailable (carrying the partial snapshot) when a cell
    failed or timed out.
    """
    members = list(_group_field(instance_group, 'members') or ())
    member_hosts = dict.fromkeys(members)
    moves = {}
    failed = set()
    if members:
        results = nova_context.scatter_gather_skip_cell0(
            context, query_cell, members, ended_since)
        for cell_uuid, rows in results.items():
            if nova_context.is_cell_failure_sentinel(rows):
                failed.add(cell_uuid)
                continue
            for uuid, host, mig_id, source, dest, mig_type, status in rows:
                member_hosts[uuid] = host
                if mig_id is not None:
                    # keyed so that a record seen in two cells counts once
                    moves[(uuid, source, dest, mig_type)] = policy.Move(
                        instance_uuid=uuid, source=source, dest=dest,
                        migration_type=mig_type, status=status,
                        migration_id=mig_id)
    snapshot = policy.Snapshot(
        group_uuid=_group_field(instance_group, 'uuid', 'n/a'),
        policy=_group_field(instance_group, 'policy'),
        # ``rules`` is a property (over the ``_rules`` field) that coerces
        # max_server_per_host to int and is {} when unset.
        max_server_per_host=policy.max_server_per_host(instance_group.rules),
        member_hosts=member_hosts,
        moves=tuple(sorted(moves.values(),
                           key=lambda m: (m.migration_id, m.instance_uuid))))
    if failed:
        raise OccupancyUnavailable(failed, snapshot)
    return snapshot
