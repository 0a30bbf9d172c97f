"""Anti-affinity decisions as pure functions over a snapshot of the group.

A member occupies its current host and, while it moves, both the source and
the destination of the move: if the move fails it stays on the source, if it
succeeds it lands on the destination, and until then either can be true.
"""

import collections
import dataclasses

ANTI_AFFINITY = 'anti-affinity'
SOFT_ANTI_AFFINITY = 'soft-anti-affinity'

# Migration statuses after which a migration no longer holds a host: the
# complement is Nova's own notion of "in progress"
# (migration_get_in_progress_by_host_and_node).  'finished' stays in
# progress: a resize waiting for confirmation holds both hosts.
FINAL_MIGRATION_STATUSES = frozenset((
    'confirmed', 'reverted', 'error', 'failed', 'completed', 'cancelled',
    'done'))


@dataclasses.dataclass(frozen=True)
class Move:
    """An in-flight move of a group member (one migration record)."""
    instance_uuid: str
    source: str
    dest: str
    migration_type: str = None
    status: str = None
    migration_id: int = None


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A server group as seen at one moment."""
    group_uuid: str
    policy: str
    max_server_per_host: int
    # member uuid -> its instance.host (None while not placed yet); may
    # cover only the hosts of interest (the late check reads one host)
    member_hosts: dict
    moves: tuple = ()
    # every member uuid; defaults to the keys of member_hosts
    members: frozenset = None

    def __post_init__(self):
        if self.members is None:
            object.__setattr__(self, 'members',
                               frozenset(self.member_hosts))
        # for_instance() per instance: a scheduler filter asks host after
        # host of a request, and rebuilding it each time costs hosts x moves.
        object.__setattr__(self, '_per_instance', {})
        object.__setattr__(self, '_moves_by_host', None)

    def for_instance(self, instance_uuid):
        """The group as ``instance_uuid`` (the instance being placed) sees
        it: a HostOccupancy, computed once per instance."""
        view = self._per_instance.get(instance_uuid)
        if view is None:
            view = HostOccupancy(self, instance_uuid)
            self._per_instance[instance_uuid] = view
        return view

    def occupancy(self, exclude=None):
        """host -> set of member uuids that occupy it, leaving out
        ``exclude`` (the instance being placed).  Computed once per
        ``exclude``; callers must not modify it."""
        return self.for_instance(exclude).occupied

    def moves_touching(self, host, exclude=None):
        if self._moves_by_host is None:
            by_host = collections.defaultdict(list)
            for move in self.moves:
                for end in {move.source, move.dest}:
                    by_host[end].append(move)
            object.__setattr__(self, '_moves_by_host', dict(by_host))
        return [m for m in self._moves_by_host.get(host, ())
                if m.instance_uuid != exclude]


class HostOccupancy:
    """A Snapshot as the instance being placed sees it (its own host and
    moves left out), prepared for a scheduler that asks host after host:
    which hosts are full is one set, so a host costs one lookup.

    ``placed`` (the scheduler's ``HostState.instances`` of the host) adds
    the members that this very request already put there (a multi-create):
    the scheduler records them only there, their instance rows have no
    host yet.  A member whose row has a host keeps it: the DB is the truth,
    the scheduler's host view may be stale.
    """

    def __init__(self, snapshot, instance_uuid):
        self.snapshot = snapshot
        self.instance_uuid = instance_uuid
        members = snapshot.members
        occupied = collections.defaultdict(set)
        unplaced = []
        for uuid, host in snapshot.member_hosts.items():
            if uuid == instance_uuid or uuid not in members:
                continue
            if host:
                occupied[host].add(uuid)
            elif host is None:
                unplaced.append(uuid)
        for move in snapshot.moves:
            if move.instance_uuid == instance_uuid or (
                    move.instance_uuid not in members):
                continue
            for host in (move.source, move.dest):
                if host:
                    occupied[host].add(move.instance_uuid)
        #: host -> member uuids that occupy it
        self.occupied = dict(occupied)
        #: members without a host (the request may be placing them)
        self.unplaced = tuple(unplaced)
        self.hard = snapshot.policy == ANTI_AFFINITY
        limit = snapshot.max_server_per_host
        #: hosts that hard anti-affinity refuses, before request placements
        self.full = frozenset(
            host for host, occupants in self.occupied.items()
            if self.hard and len(occupants) >= limit)

    def occupants(self, host, placed=()):
        """Member uuids that occupy ``host`` (a set; do not modify it)."""
        occupants = self.occupied.get(host, frozenset())
        if self.unplaced and placed:
            arrived = [uuid for uuid in self.unplaced if uuid in placed]
            if arrived:
                return occupants.union(arrived)
        return occupants

    def refuses(self, host, placed=()):
        """``refusal(host, placed) is not None``, without building it."""
        if not self.hard:
            return False
        if self.unplaced and placed:
            return (len(self.occupants(host, placed)) >=
                    self.snapshot.max_server_per_host)
        return host in self.full

    def refusal(self, host, placed=()):
        """A Refusal when placing the instance on ``host`` breaks hard
        anti-affinity, else None."""
        if not self.refuses(host, placed):
            return None
        occupants = self.occupants(host, placed)
        snapshot = self.snapshot
        return Refusal(
            group_uuid=snapshot.group_uuid, host=host,
            instance_uuid=self.instance_uuid,
            occupants=tuple(sorted(occupants)),
            max_server_per_host=snapshot.max_server_per_host,
            moves=tuple(m for m in snapshot.moves_touching(
                host, exclude=self.instance_uuid)
                if m.instance_uuid in occupants))


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why ``host`` cannot take ``instance_uuid``; str() is for operators."""
    group_uuid: str
    host: str
    instance_uuid: str
    occupants: tuple
    max_server_per_host: int
    moves: tuple

    def __str__(self):
        text = ('server group %s (anti-affinity, max_server_per_host=%d) '
                'already has %s on host %s'
                % (self.group_uuid, self.max_server_per_host,
                   ', '.join(sorted(self.occupants)), self.host))
        if self.moves:
            text += ' (counting in-flight moves: %s)' % ', '.join(
                '%s %s->%s' % (m.instance_uuid, m.source, m.dest)
                for m in self.moves)
        return text


def max_server_per_host(rules):
    """Nova's rule: an int >= 1, 1 when absent."""
    value = (rules or {}).get('max_server_per_host', 1)
    return int(value)


def check_host(snapshot, host, instance_uuid):
    """A Refusal when placing ``instance_uuid`` on ``host`` breaks hard
    anti-affinity, else None.  Soft anti-affinity never refuses."""
    return snapshot.for_instance(instance_uuid).refusal(host)
