"""Scenario tests against a live cloud, through openstacksdk only.

The cloud is the one named by ``OS_CLOUD`` (clouds.yaml; DevStack writes
``devstack-admin``), with admin credentials.  Without ``OS_CLOUD``,
``tox -e devstack`` (tools/run_devstack_tests.sh) starts the real-services
cloud (nova_migration_guard.lab.realcloud, anti_affinity guard) and names it in
``OS_CLOUD``.  With ``NMG_DEVSTACK_EMBEDDED=1`` and no ``OS_CLOUD``, the
tests start the embedded cloud with the anti_affinity guard and 3 computes
in a child process (``embedded_server``), once per test process, and reach
it over HTTP on a loopback port: the same test code as against DevStack.

A test skips, saying why, when ``OS_CLOUD`` is not set (and the embedded
cloud not asked for), when the cloud cannot be reached, and when it has
fewer than 3 nova-compute services up and enabled.

Knobs (environment): ``NMG_DEVSTACK_IMAGE`` and ``NMG_DEVSTACK_FLAVOR`` (id
or name; default: a cirros image, the smallest flavor with a disk),
``NMG_DEVSTACK_TIMEOUT`` (seconds per wait, default 300).
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from openstack import config as os_config
from openstack import connection
from openstack import exceptions as sdk_exc
import testtools

from tests.devstack import embedded_server

REQUIRED_COMPUTES = 3
MIGRATIONS_MICROVERSION = '2.80'
# Migration statuses after which a record never changes again by itself.
FINAL_MIGRATION_STATUSES = frozenset((
    'completed', 'done', 'confirmed', 'reverted', 'error', 'failed',
    'cancelled'))
REFUSED_MIGRATION_STATUSES = frozenset(('error', 'failed', 'cancelled'))


def _flag(name):
    return os.environ.get(name, '').strip().lower() in ('1', 'true', 'yes')


def timeout():
    return float(os.environ.get('NMG_DEVSTACK_TIMEOUT', 300))


class Target(object):
    """The cloud under test, resolved once per test process."""

    def __init__(self, cloud=None, config_file=None, image=None,
                 skip=None, error=None, embedded=None):
        self.cloud = cloud
        self.config_file = config_file
        self.image = image
        self.skip = skip
        self.error = error
        self.embedded = embedded
        self.computes = []
        self.flavor = None

    @property
    def env(self):
        """Environment for commands that must reach the same cloud."""
        env = dict(os.environ, OS_CLOUD=self.cloud)
        if self.config_file:
            env['OS_CLIENT_CONFIG_FILE'] = self.config_file
        return env

    def connect(self):
        """A new Connection (one per thread: requests' sessions are not
        meant to be shared between threads)."""
        config = os_config.OpenStackConfig(
            config_files=[self.config_file] if self.config_file else None)
        return connection.Connection(config=config.get_one(cloud=self.cloud))


_TARGET = None
_TARGET_LOCK = threading.Lock()


def target():
    global _TARGET
    with _TARGET_LOCK:
        if _TARGET is None:
            _TARGET = _resolve()
        return _TARGET


def _start_embedded():
    state = tempfile.mkdtemp(prefix='nmg-devstack-embedded-')
    server = embedded_server.EmbeddedCloudProcess(state)

    def stop():
        server.stop()
        if os.environ.get('NMG_DEVSTACK_KEEP_STATE'):
            print('embedded cloud state kept in %s' % state, file=sys.stderr)
        else:
            shutil.rmtree(state, ignore_errors=True)
    atexit.register(stop)
    info = server.start()
    return Target(cloud=info['cloud'], config_file=info['clouds_yaml'],
                  image=info['image'], embedded=server)


def _resolve():
    name = os.environ.get('OS_CLOUD')
    if name:
        t = Target(cloud=name,
                   config_file=os.environ.get('OS_CLIENT_CONFIG_FILE'))
        unreachable = 'skip'
    elif _flag('NMG_DEVSTACK_EMBEDDED'):
        try:
            t = _start_embedded()
        except embedded_server.EmbeddedCloudError as exc:
            return Target(error=str(exc))
        # The embedded cloud must work: a failure is a failure, not a skip.
        unreachable = 'error'
    else:
        return Target(skip='OS_CLOUD is not set: name an admin cloud of '
                           'clouds.yaml (DevStack: OS_CLOUD=devstack-admin), '
                           'or set NMG_DEVSTACK_EMBEDDED=1 for the embedded '
                           'cloud')
    try:
        conn = t.connect()
        services = list(conn.compute.services(binary='nova-compute'))
    except Exception as exc:   # noqa: any failure means "cannot reach"
        reason = 'cannot reach cloud %s: %s: %s' % (
            t.cloud, type(exc).__name__,
            (str(exc).strip().splitlines() or [''])[0])
        if unreachable == 'skip':
            t.skip = reason
        else:
            t.error = reason
        return t
    t.computes = sorted(s.host for s in services
                        if s.state == 'up' and s.status == 'enabled')
    if len(t.computes) < REQUIRED_COMPUTES:
        t.skip = ('cloud %s has %d nova-compute service(s) up and enabled '
                  '(%s); these scenarios need %d' % (
                      t.cloud, len(t.computes), ', '.join(t.computes) or
                      'none', REQUIRED_COMPUTES))
        return t
    try:
        t.image = _pick_image(conn, t.image)
        t.flavor = _pick_flavor(conn)
    except LookupError as exc:
        t.skip = 'cloud %s: %s' % (t.cloud, exc)
    return t


def _pick_image(conn, known=None):
    """NMG_DEVSTACK_IMAGE (id or name), else the image the embedded cloud
    named, else an active cirros image (else the first active one)."""
    wanted = os.environ.get('NMG_DEVSTACK_IMAGE')
    if not wanted and known:
        return known
    try:
        images = [(i.id, i.name or '') for i in conn.image.images()
                  if i.status == 'active']
    except Exception:   # noqa: no image endpoint: the compute API's proxy
        body = conn.compute.get('/images', microversion='2.35').json()
        images = [(i['id'], i.get('name') or '') for i in body['images']]
    if wanted:
        for image_id, name in images:
            if wanted in (image_id, name):
                return image_id
        raise LookupError('no active image %s' % wanted)
    if not images:
        raise LookupError('no active image to boot')
    cirros = [i for i in images if 'cirros' in i[1].lower()]
    return (cirros or images)[0][0]


def _pick_flavor(conn):
    """NMG_DEVSTACK_FLAVOR (id or name), else the smallest flavor with a
    root disk."""
    wanted = os.environ.get('NMG_DEVSTACK_FLAVOR')
    flavors = list(conn.compute.flavors(details=True))
    if wanted:
        for flavor in flavors:
            if wanted in (flavor.id, flavor.name):
                return flavor.id
        raise LookupError('no flavor %s' % wanted)
    usable = [f for f in flavors if (f.disk or 0) >= 1]
    if not usable:
        raise LookupError('no flavor with a root disk')
    return min(usable, key=lambda f: (f.ram, f.disk, f.vcpus)).id


class ScenarioTestCase(testtools.TestCase):
    """Base of the scenario tests: the cloud, and helpers that drive it
    through openstacksdk as an operator would."""

    def setUp(self):
        super().setUp()
        self.target = target()
        if self.target.error:
            self.fail(self.target.error)
        if self.target.skip:
            self.skipTest(self.target.skip)
        self.conn = self.target.connect()
        self.addCleanup(self.conn.close)
        self.prefix = 'nmg-%s-%s' % (self._testMethodName.replace('_', '-'),
                                     uuid.uuid4().hex[:6])
        self._marks = {}

    # ------------------------------------------------------------ servers

    def create_group(self, policy='anti-affinity'):
        group = self.conn.compute.create_server_group(
            name=self.prefix, policy=policy)
        self.addCleanup(self.conn.compute.delete_server_group, group,
                        ignore_missing=True)
        return group

    def boot(self, name, group=None):
        """Boot one server (no network) and wait until it is ACTIVE."""
        hints = {'group': group.id} if group else None
        server = self.conn.compute.create_server(
            name='%s-%s' % (self.prefix, name), image_id=self.target.image,
            flavor_id=self.target.flavor, networks='none',
            scheduler_hints=hints)
        self.addCleanup(self._delete_server, server.id)
        return self.conn.compute.wait_for_server(
            server, status='ACTIVE', failures=['ERROR'], interval=1,
            wait=timeout())

    def boot_members(self, group, count=2):
        """``count`` members of ``group``, ACTIVE, one after another:
        parallel builds would race the policy themselves."""
        return [self.boot('vm%d' % i, group=group)
                for i in range(1, count + 1)]

    def _delete_server(self, server_id):
        conn = self.target.connect()
        try:
            server = conn.compute.find_server(server_id)
            if server is None:
                return
            conn.compute.delete_server(server, force=False)
            conn.compute.wait_for_delete(server, interval=1, wait=timeout())
        finally:
            conn.close()

    def server(self, server):
        return self.conn.compute.get_server(server.id)

    def host_of(self, server):
        return self.server(server).compute_host

    # ------------------------------------------------------------ migrations

    def migrations(self, server):
        """The server's migration records (GET /os-migrations), oldest
        first, with their integer ids."""
        response = self.conn.compute.get(
            '/os-migrations', params={'instance_uuid': server.id},
            microversion=MIGRATIONS_MICROVERSION)
        return sorted(response.json()['migrations'], key=lambda m: m['id'])

    def mark(self, server):
        """Remember the newest migration record: later waits ignore it."""
        records = self.migrations(server)
        self._marks[server.id] = records[-1]['id'] if records else 0

    def new_migrations(self, server):
        mark = self._marks.get(server.id, 0)
        return [m for m in self.migrations(server) if m['id'] > mark]

    def run_concurrently(self, *callables):
        """Call the callables in threads released together by a barrier;
        their results in order (an exception in place of a result)."""
        barrier = threading.Barrier(len(callables))
        results = [None] * len(callables)

        def run(index, func):
            try:
                barrier.wait(60)
                results[index] = func()
            except Exception as exc:   # noqa: report it, never lose it
                results[index] = exc
        threads = [threading.Thread(target=run, args=(i, f), daemon=True)
                   for i, f in enumerate(callables)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout())
        self.assertFalse(any(t.is_alive() for t in threads),
                         'the concurrent calls did not return')
        return results

    def assert_policy_kept(self, servers, when):
        hosts = {}
        for server in servers:
            hosts.setdefault(server.compute_host, []).append(server.name)
        crowded = {h: n for h, n in hosts.items() if len(n) > 1}
        self.assertEqual({}, crowded, 'anti-affinity violated %s: members '
                         'on one host' % when)

    def wait_moves_settled(self, servers, confirm=False, refused=()):
        """Poll until the move started on each server (since its mark) has
        ended and no task runs on it; a cold migration waiting in
        VERIFY_RESIZE is confirmed when ``confirm``.  The API refused the
        moves of the servers (ids) in ``refused``: they may have no
        migration record.  The group's policy is checked at every poll:
        never two members on one host.  Returns (fresh servers, each one's
        newest migration record or None)."""
        deadline = time.monotonic() + timeout()
        confirmed = set()
        while True:
            fresh = [self.server(s) for s in servers]
            self.assert_policy_kept(fresh, 'while moving')
            records = []
            for server in fresh:
                new = self.new_migrations(server)
                records.append(new[-1] if new else None)
                if (confirm and server.status == 'VERIFY_RESIZE' and
                        server.id not in confirmed):
                    self.conn.compute.confirm_server_resize(server)
                    confirmed.add(server.id)
            done = all(
                (record['status'] in FINAL_MIGRATION_STATUSES
                 if record is not None else server.id in refused) and
                server.task_state is None and server.status == 'ACTIVE'
                for server, record in zip(fresh, records))
            errors = [s.name for s in fresh if s.status == 'ERROR']
            self.assertEqual([], errors, 'members in ERROR: %s' % [
                (s.name, s.status, r) for s, r in zip(fresh, records)])
            if done:
                return fresh, records
            if time.monotonic() > deadline:
                self.fail('moves did not end within %s s: %s' % (
                    timeout(), [(s.name, s.status, s.task_state,
                                 s.compute_host, r and r['status'])
                                for s, r in zip(fresh, records)]))
            time.sleep(1)

    def race_moves(self, servers, move, confirm=False):
        """Start ``move(conn, server)`` on every server at once, each from
        its own connection, and wait until all ended.  Checks what a user
        must see with the guard: the policy kept at every poll, no member
        in ERROR, each member either moved (its migration succeeded) or
        still ACTIVE where it was (its move refused), and at least one
        moved.  A move may be refused by the API itself: openstacksdk
        live-migrates at microversion 2.30, where the API waits for the
        scheduler and answers 400 "No valid host" when the scheduler
        filter already counts the other member's move.  Returns (fresh
        servers, records, hosts before, ids refused by the API)."""
        before = {s.id: self.host_of(s) for s in servers}
        for server in servers:
            self.mark(server)
        conns = [self.target.connect() for _ in servers]
        for conn in conns:
            self.addCleanup(conn.close)
        answers = self.run_concurrently(*[
            lambda c=c, s=s: move(c, s) for c, s in zip(conns, servers)])
        refused = set()
        for server, answer in zip(servers, answers):
            if (isinstance(answer, sdk_exc.BadRequestException) and
                    'No valid host' in str(answer)):
                refused.add(server.id)
                continue
            self.assertNotIsInstance(answer, Exception,
                                     'the API refused a move: %s' % answer)
        fresh, records = self.wait_moves_settled(servers, confirm=confirm,
                                                 refused=refused)
        self.assert_policy_kept(fresh, 'after the moves')
        moved = 0
        for server, record in zip(fresh, records):
            where = '%s: %s on %s, migration %s' % (
                server.name, server.status, server.compute_host, record)
            if (record is None or
                    record['status'] in REFUSED_MIGRATION_STATUSES):
                self.assertEqual(before[server.id], server.compute_host,
                                 where)
            else:
                moved += 1
                self.assertEqual(record['dest_compute'],
                                 server.compute_host, where)
                self.assertNotEqual(before[server.id], server.compute_host,
                                    where)
        self.assertGreaterEqual(moved, 1, 'no member moved: %s' % records)
        return fresh, records, before, refused

    # ------------------------------------------------------------ commands

    def run_command(self, *args, timeout_s=None):
        """Run an installed console script of this virtualenv against the
        cloud; (exit status, stdout, stderr)."""
        script = os.path.join(os.path.dirname(sys.executable), args[0])
        if not os.path.exists(script):
            script = shutil.which(args[0]) or args[0]
        proc = subprocess.run([script] + list(args[1:]),
                              env=self.target.env, capture_output=True,
                              text=True, timeout=timeout_s or timeout())
        return proc.returncode, proc.stdout, proc.stderr
