"""Benchmark: Nova's ServerGroupAntiAffinityFilter vs ours (in-flight moves).

Run with an interpreter that has Nova (patched) and its test dependencies,
from the repository root::

    PYTHONPATH=. .tox/functional/bin/python benchmarks/anti_affinity_filter.py

For 100 / 1,000 / 5,000 hosts and 0 / 100 / 1,000 in-flight moves of the
members of a 50-member anti-affinity group, it times one scheduling request
(``filter_all(host_states, spec_obj)`` with a fresh RequestSpec, since our
filter caches its DB snapshot per RequestSpec object) of both filters, and
counts the SQL statements each request executes.

The databases are the ones Nova's own tests use (``nova.test.TestCase``:
in-memory SQLite API DB plus cell0 and cell1 through the CellDatabases
fixture); the benchmark runs as a single test method driven by
``unittest.TestResult``, not by a test runner.

The table goes to stdout and to ``benchmarks/out/anti_affinity_filter.txt``;
progress lines go to stderr.
"""

import logging
import os
import random
import statistics
import sys
import time
import unittest

from nova import context as nova_context
from nova.db.main import api as db_api
from nova.db.main import models
from nova import objects
from nova.scheduler.filters import affinity_filter
from nova.scheduler import host_manager
from nova import test
from oslo_utils import uuidutils
import sqlalchemy as sa

from nova_migration_guard import report
from nova_migration_guard.scheduler import filters as guard_filters

HOSTS = (100, 1000, 5000)
MOVES = (0, 100, 1000)
MEMBERS = 50
# In-flight (non-final) statuses of the moves, cycled.
IN_FLIGHT_STATUSES = ('running', 'preparing', 'queued', 'migrating',
                      'pre-migrating', 'post-migrating', 'finished')
MIGRATION_TYPES = ('live-migration', 'migration', 'resize', 'evacuation')
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'out',
                   'anti_affinity_filter.txt')


def repetitions(hosts):
    """Median of this many requests (after one warm-up request)."""
    return {100: 21, 1000: 11}.get(hosts, 5)


class StatementCounter(object):
    """Counts SQL statements executed by ANY engine (the API DB and every
    cell DB of the fixtures) while active: all of them (``count``, which
    includes the explicit BEGIN that Nova's SQLite test engines issue) and
    the SELECTs (``selects``)."""

    def __init__(self):
        self.count = 0
        self.selects = 0

    def __call__(self, conn, cursor, statement, *args):
        self.count += 1
        if statement.lstrip().upper().startswith('SELECT'):
            self.selects += 1

    def __enter__(self):
        sa.event.listen(sa.engine.Engine, 'before_cursor_execute', self)
        return self

    def __exit__(self, *exc):
        sa.event.remove(sa.engine.Engine, 'before_cursor_execute', self)


def spread_members(host_names, count=MEMBERS):
    """``count`` new member uuids -> their hosts, spread evenly over
    ``host_names``, one per host."""
    members = [uuidutils.generate_uuid() for _ in range(count)]
    return {uuid: host_names[i * len(host_names) // count]
            for i, uuid in enumerate(members)}


def member_rows(member_host, project_id='bench', user_id='bench'):
    """Instance rows of the members (cell DB), on their hosts."""
    return [{
        'uuid': uuid, 'host': host, 'node': host,
        'project_id': project_id, 'user_id': user_id,
        'vm_state': 'active', 'deleted': 0, 'hidden': False,
    } for uuid, host in member_host.items()]


def in_flight_rows(member_host, host_names, moves, rng):
    """Migration rows (cell DB) of ``moves`` in-flight moves of the members
    in turn: source the member's host, destination a random host, a
    non-final status."""
    members = list(member_host)
    rows = []
    for i in range(moves):
        uuid = members[i % len(members)]
        source = member_host[uuid]
        dest = rng.choice(host_names)
        rows.append({
            'uuid': uuidutils.generate_uuid(), 'instance_uuid': uuid,
            'source_compute': source, 'source_node': source,
            'dest_compute': dest, 'dest_node': dest,
            'migration_type': MIGRATION_TYPES[i % len(MIGRATION_TYPES)],
            'status': IN_FLIGHT_STATUSES[i % len(IN_FLIGHT_STATUSES)],
            'deleted': 0, 'hidden': False,
        })
    return rows


def write_rows(ctxt, cell, instances=(), migrations=(), clear=()):
    """Bulk-insert rows into ``cell``'s DB after deleting every row of the
    tables (models) in ``clear``."""
    with nova_context.target_cell(ctxt, cell) as cctxt:
        with db_api.get_context_manager(cctxt).writer.using(
                cctxt) as session:
            for model in clear:
                session.execute(sa.delete(model.__table__))
            if instances:
                session.execute(sa.insert(models.Instance.__table__),
                                list(instances))
            if migrations:
                session.execute(sa.insert(models.Migration.__table__),
                                list(migrations))


class Scenario(object):
    """One configuration's rows in cell1 and its HostStates."""

    def __init__(self, ctxt, cell, hosts, moves, rng):
        self.host_names = ['host%05d' % i for i in range(hosts)]
        self.member_host = spread_members(self.host_names)
        self.members = list(self.member_host)
        write_rows(ctxt, cell, member_rows(self.member_host),
                   in_flight_rows(self.member_host, self.host_names, moves,
                                  rng),
                   clear=(models.Migration, models.Instance))
        # HostStates as the scheduler's HostManager has them (and as Nova's
        # tests/unit/scheduler/fakes.py FakeHostState builds them): the
        # members' Instance objects in ``instances`` of their host.
        self.host_states = []
        by_host = {}
        for uuid, host in self.member_host.items():
            by_host.setdefault(host, {})[uuid] = objects.Instance(
                uuid=uuid, host=host)
        for name in self.host_names:
            state = host_manager.HostState(name, name, cell.uuid)
            state.instances = by_host.get(name, {})
            self.host_states.append(state)
        self.group_uuid = uuidutils.generate_uuid()

    def spec(self):
        """A fresh RequestSpec: boot of a new member of the group."""
        new = uuidutils.generate_uuid()
        group = objects.InstanceGroup(
            uuid=self.group_uuid, policy='anti-affinity', rules={},
            members=self.members + [new], hosts=[])
        return objects.RequestSpec(instance_uuid=new, instance_group=group,
                                   scheduler_hints={})


def measure(filter_, scenario, reps):
    """(median ms per request, SQL statements per request, SELECTs per
    request, hosts passed)."""
    times = []
    statements = []
    selects = []
    passed = None
    for i in range(reps + 1):
        spec = scenario.spec()
        with StatementCounter() as counter:
            start = time.perf_counter()
            passed = list(filter_.filter_all(scenario.host_states, spec))
            elapsed = time.perf_counter() - start
        if i:  # the first request is a warm-up
            times.append(elapsed * 1000.0)
            statements.append(counter.count)
            selects.append(counter.selects)
    return (statistics.median(times), statistics.median(statements),
            statistics.median(selects), len(passed))


def run(results):
    """The benchmark proper, inside a nova.test.TestCase (``case``)."""

    def body(case):
        case.flags(guards=['anti_affinity'], group='migration_guard')
        ctxt = nova_context.get_admin_context()
        cell = case.cell_mappings['cell1']
        stock = affinity_filter.ServerGroupAntiAffinityFilter()
        ours = guard_filters.InFlightAntiAffinityFilter()
        rng = random.Random(42)
        # Nova's test logging formats every DEBUG record; a scheduler runs
        # with debug off, so both filters' per-host debug logs are muted.
        logging.disable(logging.DEBUG)
        try:
            for hosts in HOSTS:
                for moves in MOVES:
                    report.progress('%5d hosts, %4d in-flight moves: ...'
                                    % (hosts, moves))
                    scenario = Scenario(ctxt, cell, hosts, moves, rng)
                    reps = repetitions(hosts)
                    s_ms, s_sql, _, s_pass = measure(stock, scenario, reps)
                    o_ms, o_sql, o_sel, o_pass = measure(ours, scenario,
                                                         reps)
                    row = (hosts, moves, s_ms, o_ms, s_sql, o_sql, o_sel,
                           s_pass, o_pass, reps)
                    results.append(row)
                    report.progress(
                        '%5d hosts, %4d in-flight moves: stock %.2f ms, '
                        'ours %.2f ms (%g SQL, %g SELECT), %d reps'
                        % (hosts, moves, s_ms, o_ms, o_sql, o_sel, reps))
        finally:
            logging.disable(logging.NOTSET)

    return body


class _Benchmark(test.TestCase):
    # Set by main(); a plain callable so that TestCase's attribute clean-up
    # does not lose results (they live in main()'s list).
    _body = None

    def runTest(self):
        type(self)._body(self)


def table(results):
    head = ('hosts', 'in-flight', 'stock ms/req', 'ours ms/req',
            'stock SQL/req', 'ours SQL/req', 'ours SELECT/req',
            'stock pass', 'ours pass', 'reps')
    rows = [(
        '%d' % h, '%d' % m, '%.2f' % s_ms, '%.2f' % o_ms, '%g' % s_sql,
        '%g' % o_sql, '%g' % o_sel, '%d' % s_p, '%d' % o_p, '%d' % r)
        for h, m, s_ms, o_ms, s_sql, o_sql, o_sel, s_p, o_p, r in results]
    return '\n'.join(report.table(head, rows,
                                  right=range(len(head)))) + '\n'


def main():
    results = []
    _Benchmark._body = staticmethod(run(results))
    started = time.perf_counter()
    outcome = unittest.TestResult()
    _Benchmark('runTest').run(outcome)
    for _, trace in outcome.errors + outcome.failures:
        report.STDERR.write(trace)
    if not outcome.wasSuccessful() or not results:
        return 1
    text = ('Anti-affinity filter, one scheduling request (filter_all over '
            'every host),\ngroup of %d members (one per host), median of '
            '"reps" requests after a warm-up;\nSQL counts every statement on '
            'any engine during the request (BEGIN included),\nSELECT the '
            'queries among them; "pass": hosts left by the filter.\n\n'
            % MEMBERS) + table(results)
    report.publish(text, OUT)
    report.progress('total %.1f s; table written to %s'
                    % (time.perf_counter() - started, OUT))
    return 0


if __name__ == '__main__':
    sys.exit(main())
