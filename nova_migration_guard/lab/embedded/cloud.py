"""An in-process Nova cloud for functional tests and the demo command.

``EmbeddedCloudTestCase`` assembles Nova's own functional-test fixtures the
way ``nova.tests.functional.integrated_helpers._IntegratedTestBase`` and the
server-group tests do: placement, the compute REST API (user and admin
clients), conductor, scheduler and ``NUMBER_OF_COMPUTES`` fake computes named
``host1``..``hostN``, plus Nova's Neutron, Glance and Cinder fakes.

Two things differ from most of Nova's own tests, on purpose:

* RPC casts stay asynchronous (no ``CastAsCallFixture``), so an API request
  returns as soon as it has cast, exactly as in a real cloud, and two moves
  started together really overlap.
* The default virt driver is ``fake.FakeLiveMigrateDriver``: it keeps each
  live migration in flight for up to 5 s, long enough to race another move.

The helpers drive the cloud through the REST API only, as a user or an
operator would, so the tests assert what a user sees.
"""

# Importing nova.tests.functional applies Nova's test concurrency policy
# (nova.monkey_patch.patch()): eventlet monkey patching by default, native
# threads when OS_NOVA_DISABLE_EVENTLET_PATCHING=true.  It must run before
# anything imports eventlet, futurist, urllib3 or oslo_context (nova.test
# does), so this import comes first.
import nova.tests.functional  # noqa: F401  isort:skip

import copy
import os
import random
import threading
import time
import unittest

import fixtures
from oslo_config import cfg
from oslo_messaging._drivers import impl_fake

from nova import test
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional.api import client as api_client
from nova.tests.functional import fixtures as func_fixtures
from nova.tests.functional import integrated_helpers

import nova_migration_guard.conf  # noqa: F401  registers our option groups
from nova_migration_guard import coordination

CONF = cfg.CONF

# Marks "do not check" for wait_for_server_state(task_state=...), because
# None is a meaningful task_state (no task running).
ANY = object()

# Migration statuses after which a record never changes again by itself.
# ('finished' is not final: a cold migration/resize waits for confirmation.)
FINAL_MIGRATION_STATUSES = frozenset((
    'completed', 'done', 'confirmed', 'reverted',
    'error', 'failed', 'cancelled'))
# The statuses in which each kind of move has succeeded.
SUCCEEDED_MIGRATION_STATUSES = ('completed', 'done', 'finished', 'confirmed')
# Microversion 2.68 removed the 'force' flag of live migration and evacuate.
MAX_FORCE_MICROVERSION = '2.67'


class SharedTopicConsumers(fixtures.Fixture):
    """Services sharing an RPC topic take turns at random, as consumers of
    one RabbitMQ queue share its messages.  oslo.messaging's fake driver
    lets every listener poll on a fixed 50 ms beat, so the listener that
    happens to poll first takes nearly every message and a second
    scheduler or conductor would sit idle.  A random pause per poll makes
    each message go to either listener with equal odds."""

    def _setUp(self):
        real_time = impl_fake.time

        class RandomPause:
            time = staticmethod(real_time.time)

            @staticmethod
            def sleep(seconds):
                real_time.sleep(random.uniform(0, 2 * seconds))

        self.useFixture(fixtures.MonkeyPatch(
            'oslo_messaging._drivers.impl_fake.time', RandomPause))


class GuardsFixture(fixtures.Fixture):
    """``[migration_guard] guards`` for one cloud, with its own file://
    lock backend and ``state_path`` (where the guarded driver keeps its
    live migration records); the process's coordinator (and its backend
    connection) is reset around it, so that it does not outlive the
    cloud's services into the next one."""

    def __init__(self, guards):
        super().__init__()
        self.guards = list(guards)

    def _setUp(self):
        locks = self.useFixture(fixtures.TempDir()).path
        state_path = self.useFixture(fixtures.TempDir()).path
        # Nova finds its api-paste.ini under $state_path/etc.
        nova_etc = os.path.join(CONF.state_path, 'etc')
        if os.path.isdir(nova_etc):
            os.symlink(nova_etc, os.path.join(state_path, 'etc'))
        for name, value, group in (
                ('state_path', state_path, None),
                ('guards', self.guards, 'migration_guard'),
                ('backend_url', 'file://' + locks,
                 'migration_guard_coordination')):
            CONF.set_override(name, value, group=group)
            self.addCleanup(CONF.clear_override, name, group=group)
        coordination.reset()
        self.addCleanup(coordination.reset)


class EmbeddedCloudTestCase(test.TestCase,
                            integrated_helpers.InstanceHelperMixin):
    """A whole Nova cloud in one process; subclass it and write tests."""

    #: How many nova-compute services to start (hosts host1..hostN).
    NUMBER_OF_COMPUTES = 3
    #: How many nova-scheduler and nova-conductor services to start.  Extra
    #: ones (hosts scheduler2.., conductor2..) consume the same RPC topic, so
    #: requests are shared among them as on a multi-controller cloud.
    NUMBER_OF_SCHEDULERS = 1
    NUMBER_OF_CONDUCTORS = 1
    #: Virt driver: a name relative to nova.virt (Nova only loads drivers from
    #: its own tree) or a driver class, which is then injected directly.
    COMPUTE_DRIVER = 'fake.FakeLiveMigrateDriver'
    #: API microversion of both the user and the admin client.
    MICROVERSION = 'latest'
    #: Nova's tests default to casts-as-calls; a real cloud does not.
    CAST_AS_CALL = False
    #: nova-migration-guard guards to enable ([migration_guard] guards).
    GUARDS = ()
    #: Extra scheduler filters as dotted class paths; appended to
    #: available_filters, their class names to Nova's default enabled_filters.
    EXTRA_FILTERS = ()
    #: Extra scheduler weighers as dotted class paths, appended to Nova's
    #: weight_classes.
    EXTRA_WEIGHERS = ()
    #: Size of the live-migration thread pool.  Nova keeps ONE such pool per
    #: process, sized by [DEFAULT] max_concurrent_live_migrations (default 1,
    #: meant per host); all embedded computes share it, so with the default
    #: every live migration in the cloud would run one after another.
    LIVE_MIGRATION_WORKERS = 16
    #: Give each test its own oslo.concurrency lock_path, for Nova code that
    #: takes external (file) locks, as _IntegratedTestBase does.
    REQUIRES_LOCKING = True
    #: [filter_scheduler] track_instance_changes.  Nova's default (True)
    #: keeps a cached view of each host's instances that the computes
    #: refresh asynchronously, so right after a move the host just left can
    #: still look occupied.  Tests that need the scheduler to see the
    #: database as it is set False (it then reads it per request).
    TRACK_INSTANCE_CHANGES = True

    def setUp(self):
        super().setUp()
        self._configure()
        if self.CAST_AS_CALL:
            self.useFixture(nova_fixtures.CastAsCallFixture(self))

        # External services Nova talks to, as in _IntegratedTestBase.
        self.placement = self.useFixture(func_fixtures.PlacementFixture()).api
        self.neutron = self.useFixture(nova_fixtures.NeutronFixture(self))
        self.glance = self.useFixture(nova_fixtures.GlanceFixture(self))
        self.cinder = self.useFixture(nova_fixtures.CinderFixture(self))
        # Real default policy: moves are admin-only, as in production.
        self.policy = self.useFixture(nova_fixtures.RealPolicyFixture())
        self.notifier = self.useFixture(
            nova_fixtures.NotificationFixture(self))

        api_fixture = self.useFixture(
            nova_fixtures.OSAPIFixture(api_version='v2.1'))
        self.api = api_fixture.api
        self.admin_api = api_fixture.admin_api
        self.api.microversion = self.MICROVERSION
        self.admin_api.microversion = self.MICROVERSION

        if max(self.NUMBER_OF_SCHEDULERS, self.NUMBER_OF_CONDUCTORS) > 1:
            self.useFixture(SharedTopicConsumers())
        self.conductor = self.start_service('conductor')
        self.scheduler = self.start_service('scheduler')
        self.conductors = [self.conductor] + [
            self.start_service('conductor', host='conductor%d' % i)
            for i in range(2, self.NUMBER_OF_CONDUCTORS + 1)]
        self.schedulers = [self.scheduler] + [
            self._start_extra_scheduler('scheduler%d' % i)
            for i in range(2, self.NUMBER_OF_SCHEDULERS + 1)]
        for i in range(1, self.NUMBER_OF_COMPUTES + 1):
            self._start_compute('host%d' % i)   # fills self.computes

        # Highest migration id seen per server before the last move a helper
        # issued: wait_for_migration() then ignores older records.
        self._migration_marks = {}
        #: (start, end) time.monotonic() of each callable of the last
        #: run_concurrently() call, for evidence of overlap.
        self.concurrent_spans = []

    def _configure(self):
        """Flags that must be set before any service starts."""
        if isinstance(self.COMPUTE_DRIVER, str):
            self.flags(compute_driver=self.COMPUTE_DRIVER)
        else:
            driver_cls = self.COMPUTE_DRIVER
            self.useFixture(fixtures.MonkeyPatch(
                'nova.virt.driver.load_compute_driver',
                lambda virtapi, compute_driver=None: driver_cls(virtapi)))

        self.flags(max_concurrent_live_migrations=self.LIVE_MIGRATION_WORKERS)
        self.flags(track_instance_changes=self.TRACK_INSTANCE_CHANGES,
                   group='filter_scheduler')

        if self.EXTRA_FILTERS:
            fs = CONF.filter_scheduler
            self.flags(
                available_filters=(list(fs.available_filters) +
                                   list(self.EXTRA_FILTERS)),
                enabled_filters=(list(fs.enabled_filters) + [
                    path.rsplit('.', 1)[-1] for path in self.EXTRA_FILTERS]),
                group='filter_scheduler')

        if self.EXTRA_WEIGHERS:
            self.flags(weight_classes=(
                list(CONF.filter_scheduler.weight_classes) +
                list(self.EXTRA_WEIGHERS)), group='filter_scheduler')

        self.useFixture(GuardsFixture(self.GUARDS))

    # ------------------------------------------------------------ services

    def _start_extra_scheduler(self, host):
        """start_service() refuses a second scheduler (a guard against
        tests starting one twice by mistake); production clouds run
        several, and nothing in one scheduler process depends on being
        alone, so start it the way start_service() would."""
        self.useFixture(nova_fixtures.ConfPatcher(host=host))
        return self.useFixture(nova_fixtures.ServiceFixture(
            'scheduler', host)).service

    def compute(self, host):
        """The nova-compute service object of ``host``."""
        return self.computes[host]

    def stop_compute(self, host, force_down=True):
        """Stop nova-compute on ``host`` and, as an operator would before an
        evacuation, mark it forced down through the API."""
        self.computes[host].stop()
        if force_down:
            service = self.admin_api.get_services(
                host=host, binary='nova-compute')[0]
            self.admin_api.api_put('/os-services/%s' % service['id'],
                                   {'forced_down': True})

    def bring_back_compute(self, host):
        """Restart nova-compute on ``host`` (a new manager, as a real
        restart) and, as an operator would once it is back, unset forced
        down."""
        self.computes[host] = self.restart_compute_service(
            self.computes[host])
        service = self.admin_api.get_services(
            host=host, binary='nova-compute')[0]
        self.admin_api.api_put('/os-services/%s' % service['id'],
                               {'forced_down': False})

    # ------------------------------------------------------------ servers

    def create_anti_affinity_group(self, name, policy='anti-affinity',
                                   rules=None):
        """Create a server group (2.64+ body) as the user; returns it."""
        body = {'name': name, 'policy': policy}
        if rules:
            body['rules'] = rules
        return self.api.post_server_groups(body)

    def boot_server(self, group=None, host=None, name=None, flavor_id=None,
                    networks='none', timeout=60):
        """Boot one server and wait until it is ACTIVE.

        ``host`` pins it (2.74+ admin-only 'host' field). ``networks='none'``
        keeps moves independent of Neutron port bindings; pass a list to
        exercise them.
        """
        api = self.admin_api if host else self.api
        body = self._build_server(
            name=name, image_uuid=self.glance.image1['id'],
            flavor_id=flavor_id, networks=networks, host=host)
        post = {'server': body}
        if group:
            post['os:scheduler_hints'] = {'group': group['id']}
        server = api.post_server(post)
        return self.wait_for_server_state(server, 'ACTIVE', timeout=timeout)

    def boot_servers_in_group(self, group, count, **kwargs):
        """Boot ``count`` members of ``group``, ACTIVE, one after another:
        parallel builds would race the policy and make placement random."""
        return [self.boot_server(group=group, **kwargs) for _ in range(count)]

    def server_host(self, server):
        """The compute host of ``server`` as the admin API reports it."""
        return self.admin_api.get_server(server['id'])[
            'OS-EXT-SRV-ATTR:host']

    def wait_for_server_state(self, server, status, task_state=ANY,
                              timeout=60):
        """Poll until the server has ``status`` (and ``task_state`` unless
        ANY; None means no task running); returns the fresh server."""
        expected = {'status': status}
        if task_state is not ANY:
            expected['OS-EXT-STS:task_state'] = task_state
        return self._wait_for_server_parameter(
            server, expected, max_retries=max(1, int(timeout / 0.5)))

    def wait_until_settled(self, server, timeout=60):
        """Poll until no task runs on the server, whatever its status;
        returns the fresh server."""
        return self._wait_for_server_parameter(
            server, {'OS-EXT-STS:task_state': None},
            max_retries=max(1, int(timeout / 0.5)))

    def settle_move(self, server, timeout=60):
        """Wait until the server's last move ended and no task runs on it;
        a cold migration waiting in VERIFY_RESIZE is confirmed, as its user
        would.  Returns the move's migration record."""
        # 'finished' is where a cold migration waits for confirmation.
        record = self.wait_for_migration(
            server, statuses=FINAL_MIGRATION_STATUSES | {'finished'},
            timeout=timeout)
        server = self.wait_until_settled(server, timeout=timeout)
        if server['status'] == 'VERIFY_RESIZE':
            self._confirm_resize(server)
        return record

    # ------------------------------------------------------------ moves
    # Each returns the APIResponse; a status outside ``expected`` raises
    # OpenStackApiException (pass expected=None to accept any status).

    def _api(self, microversion=None):
        """The admin client, at another microversion if asked.  A copy, so
        concurrent callers never see each other's microversion."""
        if microversion is None:
            return self.admin_api
        api = copy.copy(self.admin_api)
        api.microversion = microversion
        return api

    def _post_action(self, server, body, expected, microversion=None):
        self._mark_migrations(server)
        return self._api(microversion).api_post(
            '/servers/%s/action' % server['id'], body,
            check_response_status=expected)

    def live_migrate(self, server, host=None, force=False, expected=(202,)):
        """POST os-migrateLive; ``force`` bypasses the scheduler (only
        possible up to microversion 2.67, which is then used)."""
        args = {'host': host, 'block_migration': 'auto'}
        microversion = None
        if force:
            args['force'] = True
            microversion = MAX_FORCE_MICROVERSION
        return self._post_action(server, {'os-migrateLive': args}, expected,
                                 microversion)

    def cold_migrate(self, server, host=None, expected=(202,)):
        """POST migrate; the server then waits in VERIFY_RESIZE for
        ``self._confirm_resize(server)`` (InstanceHelperMixin)."""
        return self._post_action(
            server, {'migrate': {'host': host} if host else None}, expected)

    def evacuate(self, server, host=None, expected=(200,)):
        """POST evacuate (the source compute must be down: stop_compute).
        Since 2.95 the evacuated server ends SHUTOFF on its new host."""
        args = {'host': host} if host else {}
        return self._post_action(server, {'evacuate': args}, expected)

    # ------------------------------------------------------------ migrations

    def migrations(self, server, migration_type=None):
        """The server's migration records newer than the last move a helper
        issued, newest first (GET /os-migrations as admin)."""
        records = self.admin_api.api_get(
            '/os-migrations?instance_uuid=%s' % server['id']
        ).body['migrations']
        mark = self._migration_marks.get(server['id'], 0)
        records = [m for m in records if m['id'] > mark and (
            migration_type is None or m['migration_type'] == migration_type)]
        return sorted(records, key=lambda m: m['id'], reverse=True)

    def _mark_migrations(self, server):
        self._migration_marks[server['id']] = 0
        newest = self.migrations(server)
        self._migration_marks[server['id']] = newest[0]['id'] if newest else 0

    def wait_for_migration(self, server, statuses=SUCCEEDED_MIGRATION_STATUSES,
                           timeout=60, migration_type=None):
        """Poll the newest migration record of the server's last move until
        its status is one of ``statuses``; returns the record.  Fails at once
        if it reaches another final status, else after ``timeout`` s."""
        statuses = {s.lower() for s in statuses}
        deadline = time.monotonic() + timeout
        record = None
        while True:
            found = self.migrations(server, migration_type)
            if found:
                record = found[0]
                status = record['status'].lower()
                if status in statuses:
                    return record
                if status in FINAL_MIGRATION_STATUSES:
                    self.fail('Migration of %s ended %r, expected one of %s: '
                              '%s' % (server['id'], status, sorted(statuses),
                                      record))
            if time.monotonic() > deadline:
                self.fail('Timed out after %ss waiting for a migration of %s '
                          'in %s; last record: %s; %s' % (
                              timeout, server['id'], sorted(statuses), record,
                              self.describe_progress(server)))
            time.sleep(0.2)

    def describe_progress(self, server):
        """Where a server's last action stands, for failure messages: its
        state and the events of its newest instance action (which service
        step started, which finished and how)."""
        fresh = self.admin_api.get_server(server['id'])
        text = 'server %s/%s on %s' % (
            fresh['status'], fresh['OS-EXT-STS:task_state'],
            fresh['OS-EXT-SRV-ATTR:host'])
        actions = self.admin_api.get_instance_actions(server['id'])
        if actions:
            newest = max(actions, key=lambda a: a['start_time'])
            action = self.admin_api.get_instance_action_details(
                server['id'], newest['request_id'])
            text += '; action %s events: %s' % (action['action'], [
                (e['event'], e.get('host'), e['start_time'],
                 e.get('finish_time'), e.get('result'))
                for e in action.get('events', [])])
        return text

    def wait_until_moving_together(self, servers, status='running',
                                   timeout=30):
        """Poll until the current migration of every server is in
        ``status`` in one and the same GET /os-migrations answer: evidence
        that the moves really overlap.  Fails if one of them reaches a final
        status first, or after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.admin_api.api_get(
                '/os-migrations').body['migrations']
            current = {}
            for server in servers:
                mark = self._migration_marks.get(server['id'], 0)
                mine = [m for m in records if m['id'] > mark and
                        m['instance_uuid'] == server['id']]
                current[server['id']] = (
                    max(mine, key=lambda m: m['id'])['status'] if mine
                    else None)
            if all(s == status for s in current.values()):
                return
            if any(s in FINAL_MIGRATION_STATUSES for s in current.values()):
                self.fail('A move ended before all were %r together: %s'
                          % (status, current))
            if time.monotonic() > deadline:
                self.fail('Moves never all %r together within %ss: %s'
                          % (status, timeout, current))
            time.sleep(0.1)

    # ------------------------------------------------------------ concurrency

    def run_concurrently(self, *callables, timeout=120):
        """Run the callables in threads released together by a barrier.

        Returns their results in order; a callable that raised yields its
        exception instead.  ``threading`` works in both of Nova's test modes:
        under eventlet it is monkey patched into greenthreads, otherwise the
        threads are native.  Because casts are asynchronous, the API requests
        return quickly and the moves they start run side by side in the
        conductor/compute workers.
        """
        count = len(callables)
        barrier = threading.Barrier(count)
        results = [None] * count
        spans = [None] * count

        def run(index, func):
            try:
                barrier.wait(timeout)
                start = time.monotonic()
                try:
                    results[index] = func()
                finally:
                    spans[index] = (start, time.monotonic())
            except Exception as exc:   # noqa: report it, never lose it
                results[index] = exc

        threads = [threading.Thread(target=run, args=(i, f), daemon=True,
                                    name='run_concurrently-%d' % i)
                   for i, f in enumerate(callables)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in threads):
            self.fail('run_concurrently: callables still running after %ss'
                      % timeout)
        self.concurrent_spans = spans
        return results


# Re-exported for callers that catch API errors without importing Nova's
# test client.
OpenStackApiException = api_client.OpenStackApiException


class CloudRunError(Exception):
    """run_in_cloud(): the cloud or the body failed; the message is the
    last line of the error."""


def run_in_cloud(body, cloud_class=None, **attributes):
    """Start an embedded cloud, call ``body(cloud)``, tear the cloud down;
    returns what ``body`` returned.  ``cloud_class`` is
    EmbeddedCloudTestCase (the default) or another cloud of this package;
    ``attributes`` override its class attributes (GUARDS,
    NUMBER_OF_COMPUTES, ...).  For commands (demo, benchmarks) that are
    not test runs."""
    returned = []
    base = cloud_class or EmbeddedCloudTestCase

    class Cloud(base):
        def test_body(self):
            returned.append(body(self))

    for name, value in attributes.items():
        if not hasattr(base, name):
            raise TypeError('%s has no %s' % (base.__name__, name))
        setattr(Cloud, name, value)
    # Nova's TestCase deletes its attributes at cleanup: the result lives in
    # the closure.  A unittest result collects errors instead of raising.
    result = unittest.TestResult()
    Cloud('test_body').run(result)
    problems = result.errors + result.failures
    if problems or not returned:
        raise CloudRunError(
            problems[0][1].strip().splitlines()[-1] if problems else
            'the cloud did not start')
    return returned[0]
