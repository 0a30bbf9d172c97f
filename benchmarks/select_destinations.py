"""Benchmark: the scheduler's whole select_destinations, stock vs guarded.

Run with an interpreter that has Nova (patched) and its test dependencies,
from the repository root::

    PYTHONPATH=. .tox/functional/bin/python \
        benchmarks/select_destinations.py [HOSTS]

On the embedded cloud (one real fake-driver compute, host1) with HOSTS
(1,000 by default) compute nodes in all: host2..hostN are registered the
way a compute registers itself, without running one each: a ``Service`` and a
``ComputeNode`` (a copy of host1's) in cell1 through Nova's objects, host
mappings by Nova's ``discover_hosts`` (what ``nova-manage cell_v2
discover_hosts`` runs), a placement resource provider with host1's
inventories and traits through the placement API, and the scheduler's
instance view of each host by ``HostManager.sync_instance_info`` (what a
compute's periodic sync sends).  Their heartbeats (``last_seen_up``) are
refreshed between requests, outside the timing.

A MEMBERS-member anti-affinity group (created through the API; its first
member booted on host1 through the API, the others written to cell1, one per
host) with 0 / 100 / 1,000 in-flight moves of its members (migration rows,
as in anti_affinity_filter.py).  One request is the scheduler manager's
``select_destinations`` for a new member, called as the conductor calls it
for a boot (one instance, Selection objects with alternates) with a copy of
the RequestSpec the conductor sent for the first member's boot: allocation
candidates from placement, host states, every enabled filter and weigher,
the claim in placement.  After each request, untimed, its allocation is
deleted and its instance removed from the scheduler's host view (as a
compute does when an instance goes), so every request sees the same cloud.

Stock and guarded requests alternate in the same cloud: the scheduler's
filter and weigher lists as Nova loaded them from a guarded configuration
(``guards = anti_affinity``, the in-flight filter and weigher, as the
README configures them), and the same lists without our two classes (with
``guards`` emptied) for stock.  The RPC hop from the conductor is not
included (the fake messaging driver's 50 ms poll would dominate).

The table goes to stdout and to ``benchmarks/out/select_destinations.txt``;
progress lines go to stderr.
"""

import logging
import os
import random
import statistics
import sys
import time
from unittest import mock

from nova import context as nova_context
from nova import exception
from nova.db.main import api as db_api
from nova.db.main import models
from nova import objects
from nova.objects import host_mapping
import oslo_messaging
from oslo_utils import timeutils
from oslo_utils import uuidutils
import sqlalchemy as sa

from nova_migration_guard.demo import runner
from nova_migration_guard.lab.embedded import cloud as cloud_mod
from nova_migration_guard import report
from nova_migration_guard.scheduler import filters as guard_filters
from nova_migration_guard.scheduler import weighers as guard_weighers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import anti_affinity_filter as filter_bench  # noqa: E402

HOSTS = 1000
MOVES = (0, 100, 1000)
MEMBERS = filter_bench.MEMBERS
# Requests per configuration (after one warm-up pair), stock and guarded
# alternating.
REPS = 15
# Re-send every heartbeat when the oldest is this old ([DEFAULT]
# service_down_time is 60 s; a compute reports every 10 s).
HEARTBEAT_SECONDS = 20
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'out',
                   'select_destinations.txt')
# ComputeNode fields that name one node; the others are copied from host1.
NODE_IDENTITY = ('id', 'uuid', 'host', 'hypervisor_hostname', 'service_id',
                 'mapped', 'created_at', 'updated_at', 'deleted_at',
                 'deleted')


class Hosts(object):
    """host2..host<count> registered beside the real compute host1."""

    def __init__(self, cloud, count):
        self.cloud = cloud
        self.ctxt = nova_context.get_admin_context()
        self.cell = cloud.cell_mappings['cell1']
        self.names = ['host%d' % i for i in range(2, count + 1)]
        with nova_context.target_cell(self.ctxt, self.cell) as cctxt:
            template = objects.ComputeNode.get_by_nodename(cctxt, 'host1')
            for number, name in enumerate(self.names, 1):
                service = objects.Service(cctxt, host=name,
                                          binary='nova-compute',
                                          topic='compute', report_count=0)
                service.create()
                copied = {field: getattr(template, field)
                          for field in template.fields
                          if field not in NODE_IDENTITY and
                          template.obj_attr_is_set(field)}
                node = objects.ComputeNode(
                    cctxt, uuid=uuidutils.generate_uuid(), host=name,
                    hypervisor_hostname=name, service_id=service.id,
                    mapped=0, **copied)
                node.create()
                self._register_provider(template.uuid, node.uuid, name)
                if number % 100 == 0:
                    report.progress('  %d/%d hosts registered'
                                    % (number, len(self.names)))
        host_mapping.discover_hosts(self.ctxt, cell_uuid=self.cell.uuid)
        self.heartbeat()

    def _register_provider(self, template_uuid, uuid, name):
        placement = self.cloud.placement
        template = '/resource_providers/%s' % template_uuid
        placement.post('/resource_providers', {'uuid': uuid, 'name': name},
                       version='1.20')
        inventories = placement.get(template + '/inventories').body
        placement.put('/resource_providers/%s/inventories' % uuid, {
            'resource_provider_generation': 0,
            'inventories': inventories['inventories']})
        traits = placement.get(template + '/traits', version='1.6').body
        placement.put('/resource_providers/%s/traits' % uuid, {
            'resource_provider_generation': 1,
            'traits': traits['traits']}, version='1.6')

    def heartbeat(self):
        """Every registered compute reports (last_seen_up = now)."""
        self.beat = time.monotonic()
        with nova_context.target_cell(self.ctxt, self.cell) as cctxt:
            with db_api.get_context_manager(cctxt).writer.using(
                    cctxt) as session:
                session.execute(
                    sa.update(models.Service.__table__)
                    .where(models.Service.__table__.c.host.in_(self.names))
                    .values(last_seen_up=timeutils.utcnow()))

    def keep_up(self):
        if time.monotonic() - self.beat > HEARTBEAT_SECONDS:
            self.heartbeat()

    def sync_instance_info(self, host_manager):
        """What each compute's periodic instance sync sends: the first
        message (re)creates the scheduler's view of the host from the DB,
        the second one, matching it, marks it up to date."""
        for name in self.names:
            uuids = host_manager._get_instances_by_host(self.ctxt, name)
            for _ in range(2):
                host_manager.sync_instance_info(self.ctxt, name, list(uuids))


class Configurations(object):
    """The scheduler's filter and weigher lists, guarded as loaded and
    stock without our classes; ``use(name)`` switches."""

    OURS = (guard_filters.InFlightAntiAffinityFilter,
            guard_weighers.InFlightSoftAntiAffinityWeigher)

    def __init__(self, cloud, host_manager):
        self.cloud = cloud
        self.host_manager = host_manager
        self.lists = {
            'guarded': (list(host_manager.enabled_filters),
                        list(host_manager.weighers)),
            'stock': ([f for f in host_manager.enabled_filters
                       if not isinstance(f, self.OURS)],
                      [w for w in host_manager.weighers
                       if not isinstance(w, self.OURS)])}
        assert len(self.lists['stock'][0]) + 1 == len(
            self.lists['guarded'][0]), 'the in-flight filter is not loaded'

    def use(self, name):
        filters, weighers = self.lists[name]
        self.host_manager.enabled_filters = filters
        self.host_manager.weighers = weighers
        self.cloud.flags(guards=['anti_affinity'] if name == 'guarded'
                         else [], group='migration_guard')


def capture_boot_spec(cloud, group):
    """Boot the group's first member through the API (on host1, the only
    compute yet); returns (the member, the conductor's context and
    RequestSpec of its select_destinations)."""
    manager = cloud.scheduler.manager
    calls = []
    real = manager.select_destinations

    def spy(context, *args, **kwargs):
        calls.append((context, kwargs['spec_obj'].obj_clone()))
        return real(context, *args, **kwargs)

    with mock.patch.object(manager, 'select_destinations', spy):
        first = cloud.boot_server(group=group)
    return first, calls[0][0], calls[0][1]


def run(cloud, count):
    cloud.flags(instances=-1, cores=-1, ram=-1, group='quota')
    ctxt = nova_context.get_admin_context()
    cell = cloud.cell_mappings['cell1']
    manager = cloud.scheduler.manager
    host_manager = manager.host_manager
    group = cloud.create_anti_affinity_group('bench')
    first, request_ctxt, boot_spec = capture_boot_spec(cloud, group)
    report.progress('registering %d compute nodes ...' % (count - 1))
    started = time.monotonic()
    hosts = Hosts(cloud, count)
    report.progress('  registered in %.0f s' % (time.monotonic() - started))
    host_names = ['host1'] + hosts.names
    # The other members, one per host (host1 has the first one).
    member_host = filter_bench.spread_members(host_names[1:], MEMBERS - 1)
    filter_bench.write_rows(ctxt, cell, filter_bench.member_rows(
        member_host, boot_spec.project_id, boot_spec.user_id))
    objects.InstanceGroup.add_members(ctxt, group['id'], list(member_host))
    member_host[first['id']] = 'host1'
    hosts.sync_instance_info(host_manager)
    configurations = Configurations(cloud, host_manager)
    rng = random.Random(42)
    # Nova's test logging formats every DEBUG record (a third of the
    # request's time here); a scheduler runs with debug off.
    logging.disable(logging.DEBUG)
    try:
        return measure(cloud, hosts, configurations, request_ctxt, boot_spec,
                       member_host, rng)
    finally:
        logging.disable(logging.NOTSET)


def measure(cloud, hosts, configurations, request_ctxt, boot_spec,
            member_host, rng):
    ctxt = nova_context.get_admin_context()
    cell = cloud.cell_mappings['cell1']
    host_names = ['host1'] + hosts.names
    results = []
    for moves in MOVES:
        filter_bench.write_rows(
            ctxt, cell, migrations=filter_bench.in_flight_rows(
                member_host, host_names, moves, rng),
            clear=(models.Migration,))
        samples = {'stock': [], 'guarded': []}
        for rep in range(REPS + 1):
            # alternate which configuration goes first
            order = ('stock', 'guarded') if rep % 2 else ('guarded', 'stock')
            for name in order:
                hosts.keep_up()
                configurations.use(name)
                sample = request(cloud, request_ctxt, boot_spec,
                                 list(member_host), member_host)
                if rep:     # the first pair is a warm-up
                    samples[name].append(sample)
        row = [moves]
        for name in ('stock', 'guarded'):
            ms, sql, selects, _ = (statistics.median(column)
                                   for column in zip(*samples[name]))
            times = [sample[0] for sample in samples[name]]
            row += [ms, min(times), max(times), sql, selects,
                    sum(sample[3] for sample in samples[name])]
        results.append(row)
        report.progress('%d hosts, %4d in-flight moves: stock %.1f ms, '
                        'guarded %.1f ms' % (len(host_names), moves, row[1],
                                             row[7]))
    return results


def request(cloud, context, boot_spec, members, member_host):
    """One select_destinations for a new member; (ms, SQL statements,
    SELECTs)."""
    new = uuidutils.generate_uuid()
    spec = boot_spec.obj_clone()
    spec.instance_uuid = new
    # As the conductor fills it for a boot: every member (the new one
    # included, the API added it) and the members' hosts.
    spec.instance_group.members = members + [new]
    spec.instance_group.hosts = sorted(set(member_host.values()))
    manager = cloud.scheduler.manager
    with filter_bench.StatementCounter() as counter:
        start = time.perf_counter()
        try:
            selections = manager.select_destinations(
                context, spec_obj=spec, instance_uuids=[new],
                return_objects=True, return_alternates=True)
        except oslo_messaging.ExpectedException as exc:
            # The manager's NoValidHost (wrapped for RPC): every host
            # refused, in a small cloud with many moves; the scheduler did
            # the whole work all the same.
            if not issubclass(exc.exc_info[0], exception.NoValidHost):
                raise
            selections = None
        elapsed = time.perf_counter() - start
    # Untimed: give the cloud back as it was.
    if selections:
        cloud.placement.delete('/allocations/%s' % new)
        manager.host_manager.delete_instance_info(
            context, selections[0][0].service_host, new)
    return elapsed * 1000.0, counter.count, counter.selects, not selections


def table(results):
    head = ('in-flight', 'stock ms', 'min', 'max', 'guarded ms', 'min',
            'max', 'guarded/stock', 'stock SQL', 'guarded SQL',
            'stock SELECT', 'guarded SELECT', 'NoValidHost')
    rows = [('%d' % moves, '%.1f' % s_ms, '%.1f' % s_min, '%.1f' % s_max,
             '%.1f' % g_ms, '%.1f' % g_min, '%.1f' % g_max,
             '%.2fx' % (g_ms / s_ms), '%g' % s_sql, '%g' % g_sql,
             '%g' % s_sel, '%g' % g_sel, '%d/%d' % (s_none, g_none))
            for (moves, s_ms, s_min, s_max, s_sql, s_sel, s_none,
                 g_ms, g_min, g_max, g_sql, g_sel, g_none) in results]
    return '\n'.join(report.table(head, rows, right=range(len(head)))) + '\n'


def main(count=HOSTS):
    # Nova's thread pools log their shutdown at INFO outside the cloud's
    # log capture; keep stderr for progress.
    logging.getLogger('nova.thread_pool_factory').setLevel(logging.WARNING)
    started = time.monotonic()
    results = cloud_mod.run_in_cloud(
        lambda cloud: run(cloud, count), NUMBER_OF_COMPUTES=1,
        GUARDS=('anti_affinity',),
        EXTRA_FILTERS=runner.GUARD_FILTERS['anti_affinity'],
        EXTRA_WEIGHERS=runner.GUARD_WEIGHERS['anti_affinity'])
    text = ('select_destinations for one new member of a %d-member '
            'anti-affinity group, %d compute nodes\n(all returned by '
            'placement), stock and guarded requests alternating, median of '
            '%d each after a warm-up;\nSQL: every statement on any engine '
            'during the call (BEGIN included), SELECT the queries;\n'
            'NoValidHost: stock/guarded requests that found no host.\n\n'
            % (MEMBERS, count, REPS)) + table(results)
    report.publish(text, OUT)
    report.progress('total %.0f s; table written to %s'
                    % (time.monotonic() - started, OUT))
    return 0


if __name__ == '__main__':
    sys.exit(main(*map(int, sys.argv[1:2])))
