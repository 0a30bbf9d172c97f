"""The scheduler counts in-flight moves of server group members.

Every scenario holds the first member's move in flight deterministically (a
live migration inside the driver's live_migration, an evacuation inside
spawn, a cold migration waiting for confirmation) before it schedules the
next member, so nothing depends on timing.  Each scenario runs twice: with
the guard (``InFlight*`` classes) and with the plugin disabled (``Stock*``,
GUARDS=()), which records what stock Nova does in the same situation.
"""

import collections
import contextlib
import logging as std_logging
import sys
import threading
import time
from unittest import mock

from nova.compute import manager as compute_manager
from nova import context as nova_context
from nova import objects
from nova.scheduler import host_manager
from nova.virt import fake
from oslo_log import log as logging
from oslo_utils import uuidutils
import sqlalchemy as sa

from nova_migration_guard.anti_affinity import occupancy
from nova_migration_guard.anti_affinity import policy
from nova_migration_guard import scheduler as guard_scheduler
from nova_migration_guard.scheduler import filters as guard_filters
from nova_migration_guard.scheduler import weighers as guard_weighers
from tests.functional import base

LOG = logging.getLogger(__name__)

FILTER = 'nova_migration_guard.scheduler.filters.InFlightAntiAffinityFilter'
WEIGHER = ('nova_migration_guard.scheduler.weighers.'
           'InFlightSoftAntiAffinityWeigher')
NOVA_SOFT_WEIGHER = ('nova.scheduler.weights.affinity.'
                     'ServerGroupSoftAntiAffinityWeigher')
# A held operation waits for the test; should a test die first, the driver
# gives up after this long (the cleanup releases everything anyway).
HOLD_TIMEOUT = 60
FINAL = tuple(policy.FINAL_MIGRATION_STATUSES)
VIOLATION = 'Anti-affinity instance group policy was violated'

#: What became of the second move: its final migration record, the server
#: once settled, how many snapshots the scheduler loaded (one query per
#: cell each) and on which hosts Nova's late check
#: (_validate_instance_group_policy) ran for it.
Outcome = collections.namedtuple(
    'Outcome', 'record server queries late_checks')


class HoldingDriver(fake.FakeLiveMigrateDriver):
    """A fake driver whose live migrations and spawns (so evacuations) wait,
    for the instances a test holds, until the test releases them: unlike
    FakeLiveMigrateDriver's 5 s, the move stays in flight exactly as long
    as the test needs."""

    # instance uuid -> threading.Event, shared by every compute's driver
    held = {}

    def _wait(self, instance):
        event = self.held.get(instance.uuid)
        if event is not None and not event.wait(HOLD_TIMEOUT):
            LOG.warning('HoldingDriver: %s never released', instance.uuid)

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration=False,
                       migrate_data=None):
        self._wait(instance)
        post_method(context, instance, dest, block_migration, migrate_data)

    def spawn(self, context, instance, *args, **kwargs):
        self._wait(instance)
        return super().spawn(context, instance, *args, **kwargs)


class _Base(base.EmbeddedCloudTestCase):
    GUARDS = ('anti_affinity',)
    EXTRA_FILTERS = (FILTER,)
    COMPUTE_DRIVER = HoldingDriver

    def setUp(self):
        HoldingDriver.held = {}
        super().setUp()
        # Registered after the services: runs before they stop, so held
        # moves finish while everything they talk to is still up.
        self.addCleanup(self._finish_held)

    @property
    def guarded(self):
        return 'anti_affinity' in self.GUARDS

    def _finish_held(self):
        held = list(HoldingDriver.held)
        for event in HoldingDriver.held.values():
            event.set()
        for uuid in held:
            self.wait_until_settled({'id': uuid})

    def hold(self, server):
        HoldingDriver.held[server['id']] = threading.Event()

    def release(self, server):
        HoldingDriver.held.pop(server['id']).set()

    def hosts(self, *servers):
        return [self.server_host(s) for s in servers]

    def spy_queries(self):
        """A spy around the real per-cell query (it still runs)."""
        return mock.patch.object(occupancy, 'query_cell',
                                 wraps=occupancy.query_cell)

    @contextlib.contextmanager
    def spy_scheduler_loads(self):
        """Count the snapshots the scheduler side loads (each is one query
        per cell: FilterAndWeigherTestCase counts the SQL).  The guard's
        compute and conductor sides load their own, not counted here."""
        real = occupancy.load_snapshot
        loads = []

        def spy(context, group):
            if sys._getframe(1).f_globals['__name__'] == (
                    guard_scheduler.__name__):
                loads.append(group.uuid)
            return real(context, group)

        with mock.patch.object(occupancy, 'load_snapshot', spy):
            yield loads

    def wait_for_migration_where(self, server, predicate, timeout=60):
        """Poll the server's newest migration until ``predicate(record)``."""
        deadline = time.monotonic() + timeout
        record = None
        while time.monotonic() < deadline:
            found = self.migrations(server)
            record = found[0] if found else None
            if record and predicate(record):
                return record
            time.sleep(0.2)
        self.fail('Migration of %s never matched; last: %s'
                  % (server['id'], record))

    def schedule_second_move(self, server, move, **kwargs):
        """Start ``move`` of ``server`` while another member's move is held
        in flight; wait until it ended; return an Outcome."""
        real_check = compute_manager.ComputeManager.\
            _validate_instance_group_policy
        late_checks = []

        def spy_late_check(manager, context, instance, *args, **kwargs):
            if instance.uuid == server['id']:
                late_checks.append(manager.host)
            return real_check(manager, context, instance, *args, **kwargs)

        with self.spy_scheduler_loads() as loads, mock.patch.object(
                compute_manager.ComputeManager,
                '_validate_instance_group_policy', spy_late_check):
            move(server, **kwargs)
            record = self.wait_for_migration(server, FINAL)
            settled = self.wait_until_settled(server)
        outcome = Outcome(record, settled, len(loads), late_checks)
        LOG.info('%s: second move of %s ended %s (%s -> %s); server %s on '
                 '%s, fault %r; scheduler snapshots %d; late check ran on %s',
                 self.id(), server['id'], record['status'],
                 record['source_compute'], record['dest_compute'],
                 settled['status'], settled['OS-EXT-SRV-ATTR:host'],
                 settled.get('fault', {}).get('message'), outcome.queries,
                 outcome.late_checks)
        return outcome

    def assert_refused_by_scheduler(self, outcome, host):
        """The guarded outcome: NoValidHost from the scheduler, no
        destination ever asked, the server untouched on ``host``."""
        self.assertEqual('error', outcome.record['status'])
        self.assertIsNone(outcome.record['dest_compute'])
        self.assertEqual([], outcome.late_checks)
        self.assertEqual(('ACTIVE', host), (
            outcome.server['status'],
            outcome.server['OS-EXT-SRV-ATTR:host']))
        self.assertNotIn('fault', outcome.server)
        self.assertEqual(1, outcome.queries)   # once per request

    def assert_second_move_outcome(self, outcome, stock_picked):
        """The second move's outcome for B on host2: refused by the
        scheduler when guarded, else what stock Nova does after its
        scheduler picked ``stock_picked``."""
        if self.guarded:
            self.assert_refused_by_scheduler(outcome, host='host2')
        else:
            self.assert_stock_late_check_fired(outcome, host='host2',
                                               picked=stock_picked)

    def assert_stock_late_check_fired(self, outcome, host, picked):
        """Stock Nova: its scheduler picked ``picked``, the host another
        member is moving to or from; the late check there raised
        GroupAffinityViolation, which escapes the live-migration pre-check
        (G1 in the notes): the migration fails and the server goes to
        ERROR, though it still runs on its source ``host``."""
        self.assertEqual('error', outcome.record['status'])
        self.assertEqual([picked], outcome.late_checks)
        self.assertEqual(('ERROR', host), (
            outcome.server['status'],
            outcome.server['OS-EXT-SRV-ATTR:host']))
        self.assertEqual(VIOLATION, outcome.server['fault']['message'])
        self.assertEqual(0, outcome.queries)   # the filter steps aside


class InFlightLiveMigrationTestCase(_Base):
    """A live migration must not pick the destination of a member's
    in-flight live migration (nor its source)."""

    def test_live_migration_avoids_in_flight_live_migration(self):
        group = self.create_anti_affinity_group('spread')
        a = self.boot_server(group=group, host='host1')
        b = self.boot_server(group=group, host='host2')
        # A moves to the only free host and stays in flight there.
        self.hold(a)
        self.live_migrate(a)
        mig_a = self.wait_for_migration(a, ('running',))
        self.assertEqual(('host1', 'host3'),
                         (mig_a['source_compute'], mig_a['dest_compute']))

        # Nova's filter sees A on host1 only, so host3 looks free for B.
        outcome = self.schedule_second_move(b, self.live_migrate)
        self.assert_second_move_outcome(outcome, stock_picked='host3')
        self.release(a)
        self.wait_for_migration(a, ('completed',))
        self.assertEqual(['host3', 'host2'], self.hosts(a, b))

    def test_live_migration_avoids_source_of_unconfirmed_resize(self):
        group = self.create_anti_affinity_group('spread')
        a = self.boot_server(group=group, host='host1')
        b = self.boot_server(group=group, host='host2')
        # A cold-migrates to host3 and waits for confirmation: A's host is
        # host3 already, its 'finished' migration still holds host1.
        self.cold_migrate(a, host='host3')
        self.wait_for_server_state(a, 'VERIFY_RESIZE')
        self.wait_for_migration(a, ('finished',))

        outcome = self.schedule_second_move(b, self.live_migrate)
        self.assert_second_move_outcome(outcome, stock_picked='host1')
        if not self.guarded:
            return

        # Once confirmed, host1 is free: a NEW request sees it (the snapshot
        # of the refused request is not reused).
        self._confirm_resize(a)
        self.wait_for_migration(a, ('confirmed',))
        self.live_migrate(b)
        self.wait_for_migration(b, ('completed',))
        self.assertEqual(['host3', 'host1'], self.hosts(a, b))

    def test_live_migration_avoids_in_flight_evacuation(self):
        group = self.create_anti_affinity_group('spread')
        a = self.boot_server(group=group, host='host1')
        b = self.boot_server(group=group, host='host2')
        self.stop_compute('host1')
        # A is evacuated to host3 and held in spawn; its evacuation record
        # has host3 as destination since the rebuild claim.
        self.hold(a)
        self.evacuate(a)
        self.wait_for_migration_where(
            a, lambda m: m['dest_compute'] == 'host3' and
            m['status'] not in FINAL)

        outcome = self.schedule_second_move(b, self.live_migrate)
        self.assert_second_move_outcome(outcome, stock_picked='host3')
        self.release(a)
        self.wait_for_migration(a, ('done',))

    def test_max_server_per_host_2_admits_a_second_member(self):
        group = self.create_anti_affinity_group(
            'pairs', rules={'max_server_per_host': 2})
        a, b = (self.boot_server(group=group, host='host1') for _ in 'ab')
        c, d = (self.boot_server(group=group, host='host2') for _ in 'cd')
        # A live-migrates to host3 and stays in flight.
        self.hold(a)
        self.live_migrate(a, host='host3')
        self.wait_for_migration(a, ('running',))
        # C is scheduled: host1 has A (leaving) and B, host3 only A
        # (arriving): the second member is admitted to host3.
        self.hold(c)
        self.live_migrate(c)
        mig_c = self.wait_for_migration(c, ('running',))
        self.assertEqual('host3', mig_c['dest_compute'])
        # D is not: host1 has A and B, host3 A and C, all but B in flight.
        outcome = self.schedule_second_move(d, self.live_migrate)
        self.assert_second_move_outcome(outcome, stock_picked='host3')
        for server in (a, c):
            self.release(server)
            self.wait_for_migration(server, ('completed',))
        self.assertEqual(['host3', 'host1', 'host3', 'host2'],
                         self.hosts(a, b, c, d))


class StockLiveMigrationTestCase(InFlightLiveMigrationTestCase):
    """The same scenarios with the plugin disabled: stock Nova."""
    GUARDS = ()


class InFlightSoftAntiAffinityTestCase(_Base):
    """The soft weigher prefers a host no member occupies, in-flight moves
    included.  Only the two soft anti-affinity weighers run, so that the
    resource weighers (which dislike the destination for A's claim there
    anyway) do not decide instead."""

    def _configure(self):
        super()._configure()
        self.flags(weight_classes=[NOVA_SOFT_WEIGHER, WEIGHER],
                   group='filter_scheduler')

    def test_new_member_avoids_in_flight_destination(self):
        group = self.create_anti_affinity_group(
            'soft', policy='soft-anti-affinity')
        a = self.boot_server(group=group, host='host1')
        # host2: the host stock Nova's tie-break would pick (see the log).
        self.hold(a)
        self.live_migrate(a, host='host2')
        self.wait_for_migration(a, ('running',))

        # Nova's weigher sees host2 and host3 as equally empty; counting
        # A's move, only host3 is.
        with self.spy_scheduler_loads() as loads:
            c = self.boot_server(group=group)
        host = self.server_host(c)
        LOG.info('%s: new member went to %s', self.id(), host)
        if self.guarded:
            self.assertEqual('host3', host)
            self.assertEqual(1, len(loads))
        else:
            # A tie between host2 and host3, not asserted.
            self.assertIn(host, ('host2', 'host3'))
            self.assertEqual(0, len(loads))
        self.release(a)
        self.wait_for_migration(a, ('completed',))


class StockSoftAntiAffinityTestCase(InFlightSoftAntiAffinityTestCase):
    GUARDS = ()


class FilterAndWeigherTestCase(_Base):
    """The filter and weigher called as the scheduler calls them, on the
    embedded cloud's real databases: A live-migrating host1 -> host3
    (held), B on host2."""

    def setUp(self):
        super().setUp()
        self.ctxt = nova_context.get_admin_context()
        self.group = self.create_anti_affinity_group('spread')
        self.a = self.boot_server(group=self.group, host='host1')
        self.b = self.boot_server(group=self.group, host='host2')
        self.hold(self.a)
        self.live_migrate(self.a)
        self.wait_for_migration(self.a, ('running',))
        self.cell_uuid = self.cell_mappings['cell1'].uuid

    def spec(self, server, policy_name=None, hints=None):
        group = objects.InstanceGroup.get_by_uuid(self.ctxt, self.group['id'])
        if policy_name:
            group.policy = policy_name
        return objects.RequestSpec(
            instance_uuid=server['id'], instance_group=group,
            scheduler_hints=hints or {})

    def host_states(self, count):
        """host1..host<count>: the three real ones and made-up others."""
        return [host_manager.HostState('host%d' % i, 'host%d' % i,
                                       self.cell_uuid)
                for i in range(1, count + 1)]

    def passing(self, spec, states):
        filter_ = guard_filters.InFlightAntiAffinityFilter()
        return [s.host for s in filter_.filter_all(states, spec)]

    def count_statements(self):
        """Count SQL statements that read the migrations table, from any
        engine, while the context is active."""
        statements = []

        def before(conn, cursor, statement, *args):
            if 'migrations' in statement:
                statements.append(statement)

        sa.event.listen(sa.engine.Engine, 'before_cursor_execute', before)
        self.addCleanup(sa.event.remove, sa.engine.Engine,
                        'before_cursor_execute', before)
        return statements

    def test_one_query_per_request_regardless_of_host_count(self):
        statements = self.count_statements()
        with self.spy_queries() as spy:
            for count in (3, 60):
                spec = self.spec(self.b)
                del statements[:]
                spy.reset_mock()
                passed = self.passing(spec, self.host_states(count))
                self.assertEqual(
                    ['host2'] + ['host%d' % i for i in range(4, count + 1)],
                    passed)
                # The scheduler filters again for the next instance of a
                # multi-create and for alternates, with the same spec.
                self.passing(spec, self.host_states(count))
                self.assertEqual(1, spy.call_count)
                self.assertEqual(1, len(statements), statements)
                self.assertIn('LEFT OUTER JOIN migrations', statements[0])

    def test_weigher_one_query_per_request(self):
        weigher = guard_weighers.InFlightSoftAntiAffinityWeigher()
        spec = self.spec(self.b, policy_name=policy.SOFT_ANTI_AFFINITY)
        wrapped = [mock.Mock(obj=s) for s in self.host_states(40)]
        with self.spy_queries() as spy:
            weights = weigher.weigh_objects(wrapped, spec)
            weigher.weigh_objects(wrapped, spec)
        self.assertEqual(1, spy.call_count)
        # host1: A (source), host3: A (destination), host2 is B's own.
        self.assertEqual([-1, 0, -1] + [0] * 37, weights)

    def test_own_move_does_not_count_against_the_mover(self):
        # Scheduling A again (as a retry would): both ends of its own move
        # are fine; B's host is not.
        self.assertEqual(['host1', 'host3', 'host4'],
                         self.passing(self.spec(self.a), self.host_states(4)))

    def test_multi_create_counts_members_placed_by_the_request(self):
        # A member of this request has no host in the DB yet; the scheduler
        # records it in HostState.instances only.
        new, placed = (uuidutils.generate_uuid() for _ in range(2))
        spec = self.spec({'id': new})
        spec.instance_group.members.extend([new, placed])
        states = self.host_states(5)
        states[3].instances[placed] = objects.Instance(uuid=placed)
        # host1, host3: A and its move; host2: B; host4: the placed one.
        self.assertEqual(['host5'], self.passing(spec, states))

    def test_refusal_details_built_only_for_a_logged_record(self):
        # A scheduler normally runs with debug off: a rejected host then
        # costs a set lookup, its refusal (members, moves) is not built.
        logger = std_logging.getLogger(guard_filters.__name__)
        self.addCleanup(logger.setLevel, logger.level)
        logger.setLevel(std_logging.INFO)
        real = policy.HostOccupancy.refusal
        built = []

        def spy(view, host, placed=()):
            built.append(host)
            return real(view, host, placed)

        with mock.patch.object(policy.HostOccupancy, 'refusal', spy):
            self.assertEqual(['host2'], self.passing(self.spec(self.b),
                                                     self.host_states(3)))
            self.assertEqual([], built)
            logger.setLevel(std_logging.DEBUG)
            self.assertEqual(['host2'], self.passing(self.spec(self.b),
                                                     self.host_states(3)))
        self.assertEqual(['host1', 'host3'], built)

    def test_rebuild_passes_every_host(self):
        spec = self.spec(self.b, hints={'_nova_check_type': ['rebuild']})
        with self.spy_queries() as spy:
            self.assertEqual(['host1', 'host2', 'host3'],
                             self.passing(spec, self.host_states(3)))
        self.assertEqual(0, spy.call_count)

    def test_inactive_without_guard_or_hard_policy(self):
        with self.spy_queries() as spy:
            spec = self.spec(self.b, policy_name=policy.SOFT_ANTI_AFFINITY)
            self.assertEqual(['host1', 'host2', 'host3'],
                             self.passing(spec, self.host_states(3)))
            self.flags(guards=[], group='migration_guard')
            self.assertEqual(['host1', 'host2', 'host3'],
                             self.passing(self.spec(self.b),
                                          self.host_states(3)))
            no_group = objects.RequestSpec(instance_uuid=self.b['id'],
                                           instance_group=None)
            self.assertEqual(['host1'],
                             self.passing(no_group, self.host_states(1)))
            # anti-affinity left to stock Nova by the guard's own option
            self.flags(guards=['anti_affinity'], group='migration_guard')
            self.flags(policies=['soft-anti-affinity'],
                       group='migration_guard_anti_affinity')
            self.assertEqual(['host1', 'host2', 'host3'],
                             self.passing(self.spec(self.b),
                                          self.host_states(3)))
        self.assertEqual(0, spy.call_count)

    def test_audit_mode_logs_and_passes(self):
        self.flags(mode='audit', group='migration_guard_anti_affinity')
        self.assertEqual(['host1', 'host2', 'host3'],
                         self.passing(self.spec(self.b), self.host_states(3)))
        logged = self.stdlog.logger.output
        for host in ('host1', 'host3'):
            self.assertIn('instance %s: audit: would reject host %s'
                          % (self.b['id'], host), logged)
        self.assertIn('in-flight moves that counted: [Move(instance_uuid=%r'
                      % self.a['id'], logged)
        weigher = guard_weighers.InFlightSoftAntiAffinityWeigher()
        spec = self.spec(self.b, policy_name=policy.SOFT_ANTI_AFFINITY)
        self.assertEqual([0, 0, 0], weigher.weigh_objects(
            [mock.Mock(obj=s) for s in self.host_states(3)], spec))

    def test_unanswering_cell_rejects_its_hosts_only(self):
        other_cell = self.host_states(4)
        other_cell[3].cell_uuid = 'another-cell'
        partial = guard_scheduler.request_snapshot(self.spec(self.b))[0]
        spec = self.spec(self.b)
        with mock.patch.object(
                occupancy, 'load_snapshot', side_effect=occupancy.
                OccupancyUnavailable({'another-cell'}, partial)):
            self.assertEqual(['host2'], self.passing(spec, other_cell))
