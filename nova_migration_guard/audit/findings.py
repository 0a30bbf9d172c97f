"""The audit's checks, as pure functions over what the Nova API returns.

Inputs are the plain JSON objects of the compute API (microversion 2.80, see
``collect.MICROVERSION``), as lists of dicts:

* servers:       ``GET /servers/detail?all_tenants=1`` (``id``, ``name``,
                 ``status``, ``OS-EXT-SRV-ATTR:host``,
                 ``OS-EXT-STS:task_state``)
* server groups: ``GET /os-server-groups?all_projects=1`` (``id``, ``name``,
                 ``policy``, ``rules``, ``members``)
* migrations:    ``GET /os-migrations`` (``id``, ``instance_uuid``,
                 ``migration_type``, ``status``, ``source_compute``,
                 ``dest_compute``, ``created_at``, ``updated_at``)
* hypervisors:   ``GET /os-hypervisors/detail`` (``id``,
                 ``hypervisor_hostname``, ``service.host``)

Each check returns a list of ``Finding(kind, subject, message)``; the
message is one sentence naming the instance, group, hosts or migration.
"""

import collections
import datetime

from nova_migration_guard.anti_affinity import policy

Finding = collections.namedtuple('Finding', 'kind subject message')

ANTI_AFFINITY = 'anti-affinity'
STUCK_MIGRATION = 'stuck-migration'
UNKNOWN_STATE = 'unknown-state'
HOST_MISMATCH = 'host-mismatch'
DUPLICATE_HYPERVISOR = 'duplicate-hypervisor'
#: Every kind, in the order the audit reports them.
KINDS = (ANTI_AFFINITY, STUCK_MIGRATION, UNKNOWN_STATE, HOST_MISMATCH,
         DUPLICATE_HYPERVISOR)

#: Migration statuses after which a migration holds no host any more; the
#: complement is "in progress", as Nova's
#: migration_get_in_progress_by_host_and_node (and the anti-affinity guard)
#: count it.  'finished' is in progress: a resize waiting for confirmation
#: holds both hosts.
FINAL_STATUSES = policy.FINAL_MIGRATION_STATUSES
#: Every status Nova 34 gives a migration record (nova/compute,
#: nova/conductor, nova/virt/libvirt): live migration accepted, queued,
#: preparing, running, running (post-copy) (the libvirt driver, once the
#: migration switched to post-copy), post-migrating; cold migration/resize
#: pre-migrating, migrating, post-migrating, finished, confirming,
#: reverting; evacuation accepted, pre-migrating, done; and the final ones.
KNOWN_STATUSES = FINAL_STATUSES | frozenset((
    'accepted', 'queued', 'preparing', 'running', 'running (post-copy)',
    'pre-migrating', 'migrating', 'post-migrating', 'finished',
    'confirming', 'reverting'))
#: In progress, but waiting for the user (a resize in VERIFY_RESIZE waits
#: for confirm or revert): never "stuck".
WAITING_FOR_USER = frozenset(('finished',))
#: A move that failed.
FAILED_STATUSES = frozenset(('error', 'failed'))
#: After these the instance lives on the migration's destination ...
LANDED_ON_DEST = frozenset(('completed', 'done', 'confirmed', 'finished'))
#: ... and after these on its source (revert, aborted live migration).
STAYED_ON_SOURCE = frozenset(('reverted', 'cancelled'))

HOST = 'OS-EXT-SRV-ATTR:host'
TASK_STATE = 'OS-EXT-STS:task_state'


def _status(migration):
    return (migration.get('status') or '').lower()


def in_progress(migration):
    return _status(migration) not in FINAL_STATUSES


def parse_time(text):
    """An API timestamp (ISO 8601, UTC when it names no zone) as an aware
    datetime, or None."""
    if not text:
        return None
    value = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


def _order(migration):
    return (parse_time(migration.get('created_at')) or
            datetime.datetime.min.replace(tzinfo=datetime.timezone.utc),
            migration.get('id') or 0)


def latest_migrations(migrations):
    """instance uuid -> its newest migration record (by created_at, id)."""
    latest = {}
    for migration in migrations:
        uuid = migration.get('instance_uuid')
        if uuid and (uuid not in latest or
                     _order(migration) > _order(latest[uuid])):
            latest[uuid] = migration
    return latest


class _Names:
    """Labels for the messages: 'vm1 (uuid)'."""

    def __init__(self, servers):
        self.servers = {s['id']: s for s in servers}

    def server(self, uuid):
        name = (self.servers.get(uuid) or {}).get('name')
        return '%s (%s)' % (name, uuid) if name else uuid

    def migration(self, m):
        """'live-migration host1->host2 (migration 7)'."""
        return '%s %s->%s (migration %s)' % (
            m.get('migration_type') or 'migration',
            m.get('source_compute') or '?', m.get('dest_compute') or '?',
            m.get('id'))


def _duration(seconds):
    seconds = int(seconds)
    if seconds < 120:
        return '%d s' % seconds
    minutes = seconds // 60
    if minutes < 120:
        return '%d min' % minutes
    return '%d h %02d min' % (minutes // 60, minutes % 60)


def anti_affinity_violations(servers, server_groups, migrations):
    """Hard anti-affinity groups with more than max_server_per_host members
    on one host, counting a moving member on its host and on both ends of
    each in-flight move (as the guard does, ``policy.Snapshot``).  Soft
    anti-affinity is best effort: never a violation."""
    names = _Names(servers)
    hosts = {s['id']: s.get(HOST) for s in servers}
    found = []
    for group in server_groups:
        if group.get('policy') != policy.ANTI_AFFINITY:
            continue
        members = frozenset(group.get('members') or ())
        moves = tuple(sorted(
            (policy.Move(instance_uuid=m['instance_uuid'],
                         source=m.get('source_compute'),
                         dest=m.get('dest_compute'),
                         migration_type=m.get('migration_type'),
                         status=_status(m), migration_id=m.get('id'))
             for m in migrations
             if m.get('instance_uuid') in members and in_progress(m)),
            key=lambda move: (move.migration_id or 0)))
        limit = policy.max_server_per_host(group.get('rules'))
        snapshot = policy.Snapshot(
            group_uuid=group['id'], policy=group['policy'],
            max_server_per_host=limit,
            member_hosts={uuid: hosts.get(uuid) for uuid in members},
            moves=moves, members=members)
        for host, occupants in sorted(snapshot.occupancy().items()):
            if len(occupants) <= limit:
                continue
            described, counted_moves = [], False
            for uuid in sorted(occupants, key=names.server):
                text = names.server(uuid)
                moving = [m for m in moves if m.instance_uuid == uuid and
                          host in (m.source, m.dest) and
                          hosts.get(uuid) != host]
                if moving:
                    counted_moves = True
                    text += ' moving %s->%s (migration %s, %s)' % (
                        moving[0].source, moving[0].dest,
                        moving[0].migration_id, moving[0].status)
                described.append(text)
            found.append(Finding(
                ANTI_AFFINITY, 'server group %s' % group['id'],
                'server group %s (%s, anti-affinity, max_server_per_host=%d)'
                ' has %d members on host %s%s: %s.'
                % (group.get('name') or '-', group['id'], limit,
                   len(occupants), host,
                   ', counting in-flight moves' if counted_moves else '',
                   ', '.join(described))))
    return found


def stuck_migrations(servers, migrations, now, stuck_after):
    """Migrations in progress (not waiting for the user's confirm) whose
    record has not changed (updated_at, else created_at) for more than
    ``stuck_after`` seconds before ``now``."""
    names = _Names(servers)
    found = []
    for m in sorted(migrations, key=_order):
        status = _status(m)
        if (status in FINAL_STATUSES or status in WAITING_FOR_USER or
                status not in KNOWN_STATUSES):
            continue
        changed = parse_time(m.get('updated_at') or m.get('created_at'))
        if changed is None:
            continue
        age = (now - changed).total_seconds()
        if age <= stuck_after:
            continue
        found.append(Finding(
            STUCK_MIGRATION, 'migration %s' % m.get('id'),
            '%s of instance %s has been %r for %s without change (since %s),'
            ' longer than the %d s allowed.'
            % (names.migration(m), names.server(m.get('instance_uuid')),
               status, _duration(age), changed.strftime('%Y-%m-%d %H:%M:%SZ'),
               stuck_after)))
    return found


def unknown_states(servers, migrations):
    """Moves that ended in a state Nova cannot resolve by itself:

    * an instance whose latest migration failed ('error' or 'failed') and
      which is in ERROR, or still has a task_state: Nova does not know
      where the guest runs, and nothing will clear it;
    * a migration whose status is none Nova 34 sets.
    """
    names = _Names(servers)
    latest = latest_migrations(migrations)
    found = []
    for server in servers:
        m = latest.get(server['id'])
        if m is None or _status(m) not in FAILED_STATUSES:
            continue
        task_state = server.get(TASK_STATE)
        if server.get('status') == 'ERROR':
            state = 'is in ERROR'
        elif task_state:
            state = 'still has task_state %r' % task_state
        else:
            continue
        found.append(Finding(
            UNKNOWN_STATE, 'instance %s' % server['id'],
            'instance %s %s on host %s after its %s ended %r: where its '
            'guest runs is unknown, check both hosts.'
            % (names.server(server['id']), state, server.get(HOST) or '-',
               names.migration(m), _status(m))))
    for m in sorted(migrations, key=_order):
        if _status(m) not in KNOWN_STATUSES:
            found.append(Finding(
                UNKNOWN_STATE, 'migration %s' % m.get('id'),
                '%s of instance %s has status %r, which Nova never sets.'
                % (names.migration(m), names.server(m.get('instance_uuid')),
                   m.get('status'))))
    return found


def host_mismatches(servers, migrations):
    """Instances whose host disagrees with their latest migration record:
    a move that succeeded (completed, done, confirmed, or finished and
    waiting for confirmation) but the instance is not on its destination;
    a reverted or cancelled one but the instance is not on its source; a
    move in progress but the instance is on neither end.  Instances without
    a host (shelved offloaded, being built) are not checked."""
    names = _Names(servers)
    latest = latest_migrations(migrations)
    found = []
    for server in servers:
        host = server.get(HOST)
        m = latest.get(server['id'])
        if not host or m is None:
            continue
        status = _status(m)
        source, dest = m.get('source_compute'), m.get('dest_compute')
        if status in LANDED_ON_DEST:
            expected, where = (dest,), 'its destination %s' % dest
        elif status in STAYED_ON_SOURCE:
            expected, where = (source,), 'its source %s' % source
        elif status in KNOWN_STATUSES and status not in FINAL_STATUSES:
            expected = (source, dest)
            where = 'either end (%s or %s)' % (source, dest)
        else:
            continue
        if None in expected or host in expected:
            continue
        found.append(Finding(
            HOST_MISMATCH, 'instance %s' % server['id'],
            'instance %s is on host %s, but its %s is %r, which puts it on '
            '%s.' % (names.server(server['id']), host, names.migration(m),
                     status, where)))
    return found


def duplicate_hypervisors(hypervisors):
    """Compute nodes whose hypervisor_hostname appears under more than one
    compute host (service.host): two services claim the same node."""
    by_name = collections.defaultdict(list)
    for hypervisor in hypervisors:
        name = hypervisor.get('hypervisor_hostname')
        if name:
            by_name[name].append(hypervisor)
    found = []
    for name, nodes in sorted(by_name.items()):
        hosts = sorted({(n.get('service') or {}).get('host') or '-'
                        for n in nodes})
        if len(hosts) < 2:
            continue
        found.append(Finding(
            DUPLICATE_HYPERVISOR, 'hypervisor %s' % name,
            'hypervisor_hostname %s appears under %d hosts: %s.'
            % (name, len(hosts), ', '.join(
                '%s (compute node %s)' % (
                    host, ', '.join(sorted(
                        str(n.get('id')) for n in nodes
                        if ((n.get('service') or {}).get('host') or '-') ==
                        host)))
                for host in hosts))))
    return found


def audit(servers, server_groups, migrations, hypervisors, now,
          stuck_after):
    """Every finding, in ``KINDS`` order."""
    return (anti_affinity_violations(servers, server_groups, migrations) +
            stuck_migrations(servers, migrations, now, stuck_after) +
            unknown_states(servers, migrations) +
            host_mismatches(servers, migrations) +
            duplicate_hypervisors(hypervisors))
