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
        # occupancy() per ``exclude``: a scheduler filter asks once per host
        # of a request, and rebuilding it each time costs hosts x moves.
        object.__setattr__(self, '_occupancy', {})

    def occupancy(self, exclude=None):
        """host -> set of member uuids that occupy it, leaving out
        ``exclude`` (the instance being placed).  Computed once per
        ``exclude``; callers must not modify it."""
        if exclude not in self._occupancy:
            self._occupancy[exclude] = self._compute_occupancy(exclude)
        return self._occupancy[exclude]

    def _compute_occupancy(self, exclude):
        occupied = collections.defaultdict(set)
        for uuid, host in self.member_hosts.items():
            if host and uuid != exclude and uuid in self.members:
                occupied[host].add(uuid)
        for move in self.moves:
            if move.instance_uuid == exclude or (
                    move.instance_uuid not in self.members):
                continue
            for host in (move.source, move.dest):
                if host:
                    occupied[host].add(move.instance_uuid)
        return dict(occupied)

    def moves_touching(self, host, exclude=None):
        return [m for m in self.moves
                if host in (m.source, m.dest) and m.instance_uuid != exclude]


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
    if snapshot.policy != ANTI_AFFINITY:
        return None
    occupants = snapshot.occupancy(exclude=instance_uuid).get(host, set())
    if len(occupants) < snapshot.max_server_per_host:
        return None
    return Refusal(
        group_uuid=snapshot.group_uuid, host=host,
        instance_uuid=instance_uuid, occupants=tuple(sorted(occupants)),
        max_server_per_host=snapshot.max_server_per_host,
        moves=tuple(m for m in snapshot.moves_touching(
            host, exclude=instance_uuid) if m.instance_uuid in occupants))


def members_on(snapshot, host, instance_uuid):
    """How many other members occupy ``host`` (the soft weigher's input)."""
    return len(snapshot.occupancy(exclude=instance_uuid).get(host, ()))
