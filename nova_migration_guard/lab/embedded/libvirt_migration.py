"""Live migrations that end late or abnormally, on Nova's in-process cloud
with Nova's fake libvirt (nova.tests.fixtures.libvirt): the cloud of the
migration_outcome tests and of the demo's late-failure scenario.

What is stubbed, and why: the hypervisor.  The fake libvirt cannot migrate
a guest, so ``Domain.migrateToURI3`` is replaced by ``LibvirtMigration``,
which changes both hosts' fake domains as real libvirt does at each step
(the states and reasons are those recorded from real QEMU migrations in
tests/traces/libvirt and the real-libvirt notes), and fails at the step a
scenario names.  The fake also lacks ``virDomain.state()``, which is added,
calls a paused domain inactive, which libvirt does not (Nova's monitor
would take a paused guest's refused migration for a completed one), and
read-only connections to another host's libvirt (how the guarded
driver asks the other end) are routed to that host's fake connection.
Before Nova 34 the fake starts each domain with a running job, which
libvirt does not: here each starts with none.
Everything else is Nova's real code: API, conductor, scheduler, placement,
two nova-compute services, the libvirt driver and its migration monitor.
The same failures run on real QEMU in tests/real_libvirt.
"""

import threading
import time

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova import context as nova_context

import nova_migration_guard.conf  # noqa: F401 (registers the options)
from nova_migration_guard.migration_outcome import reconcile
from nova_migration_guard.lab.embedded import libvirt_cloud


def _state(domain, flags=0):
    return [domain._state, getattr(domain, 'nmg_reason', 0)]


def _is_active(domain):
    # libvirt: the domain has a running QEMU, whether its vCPUs run or not.
    return int(domain._state in (
        reconcile.RUNNING, reconcile.BLOCKED, reconcile.PAUSED,
        reconcile.SHUTDOWN, reconcile.PMSUSPENDED))


def _without_job(init):
    """Domain.__init__ of a fake domain that, as in libvirt, runs no job
    until one starts (the fake of Nova 33.x and older starts every domain
    with a running job: Nova's monitor would never see a refused
    migration end)."""
    def __init__(domain, *args, **kwargs):
        init(domain, *args, **kwargs)
        domain._job_type = fakelibvirt.VIR_DOMAIN_JOB_NONE
    return __init__


def set_state(domain, state, reason):
    domain._state = state
    domain.nmg_reason = reason


def _job_stats(domain, flags=0):
    passes = getattr(domain, 'nmg_passes', None)
    if passes and domain._job_type == fakelibvirt.VIR_DOMAIN_JOB_UNBOUNDED:
        return passes.next_sample()
    return {'type': domain._job_type}


class _StalledPasses(object):
    """Job statistics of a migration that does not converge: each call
    is a new memory pass starting with as much to send as the last."""

    MIB = 2 ** 20

    def __init__(self):
        self.iteration = 0

    def next_sample(self):
        self.iteration += 1
        return {'type': fakelibvirt.VIR_DOMAIN_JOB_UNBOUNDED,
                'memory_iteration': self.iteration,
                'memory_total': 256 * self.MIB,
                'memory_processed': 120 * self.MIB * self.iteration,
                'memory_remaining': 120 * self.MIB,
                'memory_bps': 15 * self.MIB,
                'time_elapsed': 8000 * self.iteration}


class _ReadOnlyView(object):
    """Another host's fake connection as a read-only remote client sees it
    (closing the client does not close the host's connection)."""

    def __init__(self, conn):
        self._conn = conn

    def lookupByUUIDString(self, uuid):
        return self._conn.lookupByUUIDString(uuid)

    def close(self):
        pass


class LibvirtMigration(fixtures.Fixture):
    """migrateToURI3 of the source's fake domain, failing at ``step``.

    Steps, in libvirt's order for a pre-copy migration:

    ``refused``        the call fails before a job starts (no destination
                       domain; the source keeps running);
    ``job-failed``     the job fails while copying (the incoming domain is
                       removed, the source keeps running);
    ``wait-abort``     the job runs until aborted (Nova's completion
                       timeout), then fails as cancelled;
    ``stalling``       as wait-abort, and the job's statistics show a
                       guest that dirties memory as fast as it is copied:
                       every pass starts with 120 MiB to send at 15 MiB/s
                       (what tests/traces recorded on real QEMU);
    ``stalling-paused-fails`` as stalling until the source guest is
                       paused (a force-complete, or a policy's pause),
                       then the job fails (the connection broke);
    ``postcopy-failed`` the job switched to post-copy and the connection
                       broke: both domains paused, post-copy failed;
    ``completed-then-raise`` the switch-over happened (the guest runs on the
                       destination, the source domain is gone), then the
                       call raises anyway;
    ``both-running``   the call fails, and the destination has a running
                       domain as well (what no one can decide);
    ``hang``           the job runs until the test calls switch_over()
                       and releases it, or until aborted (refused once
                       the test called start_post_copy()).
    """

    def __init__(self, test, step):
        self.test = test
        self.step = step
        self.entered = threading.Event()
        self.release = threading.Event()
        self.aborted = threading.Event()
        self.abort_refused = threading.Event()
        self.calls = 0

    def _setUp(self):
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.migrateToURI3',
            self._migrate))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.abortJob', self._abort))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.jobStats', _job_stats))
        # Leave no migrate call blocked behind the test.
        self.addCleanup(self.release.set)

    # The test's view of both hosts.

    def conn(self, host):
        return self.test.computes[host].driver._host.get_connection()

    def domain(self, host, uuid):
        try:
            return self.conn(host).lookupByUUIDString(uuid)
        except fakelibvirt.libvirtError:
            return None

    # libvirt's steps.

    def _incoming(self, params, state, reason):
        dom = self.conn(self.test.dest).createXML(params['destination_xml'],
                                                  0)
        set_state(dom, state, reason)
        return dom

    def switch_over(self, undefine_source=True):
        """The guest now runs on the destination.  The source's persistent
        domain is undefined (VIR_MIGRATE_UNDEFINE_SOURCE, Nova's default),
        or, where that last step did not happen, left shut off with reason
        MIGRATED."""
        source_dom = self.source_dom
        dest_dom = self.conn(self.test.dest).lookupByUUIDString(
            source_dom.UUIDString())
        set_state(dest_dom, fakelibvirt.VIR_DOMAIN_RUNNING,
                  reconcile.RUNNING_MIGRATED)
        source_dom.complete_job()
        source_dom.destroy()
        if undefine_source:
            source_dom.undefine()
        else:
            set_state(source_dom, fakelibvirt.VIR_DOMAIN_SHUTOFF,
                      reconcile.SHUTOFF_MIGRATED)

    def _fail(self, message,
              error_code=fakelibvirt.VIR_ERR_OPERATION_FAILED):
        raise fakelibvirt.make_libvirtError(
            fakelibvirt.libvirtError, message, error_code=error_code,
            error_domain=fakelibvirt.VIR_FROM_QEMU)

    def _cancelled(self, dom, incoming, seen=True):
        incoming.destroy()
        # libvirt's job reads CANCELLED for a moment, then NONE: a monitor
        # that polls late never sees it (not ``seen``).
        dom._job_type = (fakelibvirt.VIR_DOMAIN_JOB_CANCELLED if seen
                         else fakelibvirt.VIR_DOMAIN_JOB_NONE)
        # As libvirt: VIR_ERR_OPERATION_ABORTED (fakelibvirt lacks it).
        self._fail("operation aborted: job 'migration out' canceled by "
                   "client", error_code=reconcile.ERR_OPERATION_ABORTED)

    def _migrate(self, dom, dconnuri, params, flags):
        self.calls += 1
        self.source_dom = dom
        self.params, self.flags = params, flags
        step = self.step
        if step == 'refused':
            self._fail('unable to connect to server: Connection refused')
        incoming = self._incoming(params, fakelibvirt.VIR_DOMAIN_PAUSED,
                                  reconcile.PAUSED_MIGRATION)
        dom._job_type = fakelibvirt.VIR_DOMAIN_JOB_UNBOUNDED
        self.entered.set()
        if step == 'job-failed':
            incoming.destroy()
            dom.fail_job()
            self._fail('operation failed: migration out job: unexpectedly '
                       'failed')
        if step in ('stalling', 'stalling-paused-fails'):
            dom.nmg_passes = _StalledPasses()
        if step == 'stalling-paused-fails':
            self._wait_for_pause(dom)
            incoming.destroy()
            dom.fail_job()
            self._fail('operation failed: migration out job: unexpectedly '
                       'failed')
        if step in ('wait-abort', 'wait-abort-unseen', 'stalling'):
            self.aborted.wait(60)
            self._cancelled(dom, incoming, seen=step != 'wait-abort-unseen')
        if step == 'postcopy-failed':
            set_state(incoming, fakelibvirt.VIR_DOMAIN_PAUSED,
                      reconcile.PAUSED_POSTCOPY_FAILED)
            set_state(dom, fakelibvirt.VIR_DOMAIN_PAUSED,
                      reconcile.PAUSED_POSTCOPY_FAILED)
            dom.fail_job()
            self._fail('operation failed: migration out job: post-copy '
                       'phase failed')
        if step == 'completed-then-raise':
            self.switch_over()
            self._fail('internal error: the migrate call failed after the '
                       'migration completed')
        if step == 'both-running':
            set_state(incoming, fakelibvirt.VIR_DOMAIN_RUNNING,
                      reconcile.RUNNING_MIGRATED)
            dom.fail_job()
            self._fail('operation failed: migration out job: unexpectedly '
                       'failed')
        if step == 'hang':
            while not (self.release.wait(0.1) or self.aborted.is_set()):
                pass
            if self.aborted.is_set():
                self._cancelled(dom, incoming)
            return
        raise AssertionError('unknown step %s' % step)

    def start_post_copy(self):
        """The job switched to post-copy: the source paused, the
        destination runs and pulls the memory it lacks from the source;
        libvirt refuses to abort the job from now on."""
        set_state(self.source_dom, fakelibvirt.VIR_DOMAIN_PAUSED,
                  reconcile.PAUSED_POSTCOPY)
        set_state(self.conn(self.test.dest).lookupByUUIDString(
            self.source_dom.UUIDString()), fakelibvirt.VIR_DOMAIN_RUNNING,
            reconcile.RUNNING_POSTCOPY)

    def _wait_for_pause(self, dom, timeout=60):
        deadline = time.monotonic() + timeout
        while dom._state != fakelibvirt.VIR_DOMAIN_PAUSED:
            if time.monotonic() > deadline:
                raise AssertionError('the source guest was not paused')
            time.sleep(0.1)

    def _abort(self, dom, flags=0):
        if dom.state()[:2] == [fakelibvirt.VIR_DOMAIN_PAUSED,
                               reconcile.PAUSED_POSTCOPY]:
            self.abort_refused.set()
            self._fail('Requested operation is not valid: cannot abort '
                       'migration in post-copy mode',
                       error_code=fakelibvirt.VIR_ERR_OPERATION_INVALID)
        self.aborted.set()


class MigrationCloud(libvirt_cloud.LibvirtCloudTestCase):
    """Two libvirt computes, ``src`` and ``dest``, and one server on src;
    the migration_outcome guard when ``GUARDED``."""

    GUARDS = ('migration_outcome',)
    src, dest = 'src', 'dest'
    #: 'none', or 'port': the server has the Neutron fixture's port_1.
    SERVER_NETWORKS = 'none'
    #: A migration network: the destination's ``[libvirt]
    #: live_migration_inbound_addr``, the only address at which another
    #: host reaches a libvirt (the host names resolve to a network that
    #: libvirt does not listen on).
    DEST_INBOUND_ADDRESS = None

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.state', _state))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.__init__',
            _without_job(fakelibvirt.Domain.__init__)))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.isActive', _is_active))
        real_open = fakelibvirt.openAuth

        if self.DEST_INBOUND_ADDRESS:
            # (one configuration for every compute of the harness: only the
            # destination's matters for a migration to it)
            self.flags(live_migration_inbound_addr=self.DEST_INBOUND_ADDRESS,
                       group='libvirt')

        def open_auth(uri, auth, flags=0):
            reachable = ({self.DEST_INBOUND_ADDRESS: self.dest}
                         if self.DEST_INBOUND_ADDRESS else
                         {host: host for host in self.computes})
            for address, host in reachable.items():
                if '//%s/' % address in uri and host in self.computes:
                    return _ReadOnlyView(
                        self.computes[host].driver._host.get_connection())
            if self.DEST_INBOUND_ADDRESS:
                raise fakelibvirt.make_libvirtError(
                    fakelibvirt.libvirtError,
                    'unable to connect to server: Connection refused',
                    error_code=fakelibvirt.VIR_ERR_SYSTEM_ERROR,
                    error_domain=fakelibvirt.VIR_FROM_RPC)
            return real_open(uri, auth, flags)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.openAuth', open_auth))
        self.ctxt = nova_context.get_admin_context()
        self.start_compute(self.src)
        self.server = self._create_server(
            networks=('none' if self.SERVER_NETWORKS == 'none' else
                      [{'port': self.neutron.port_1['id']}]))
        self.start_compute(self.dest)

    # ----------------------------------------------------------- actions

    def fail_at(self, step):
        return self.useFixture(LibvirtMigration(self, step))

    def start_live_migration(self):
        self.api.post_server_action(
            self.server['id'],
            {'os-migrateLive': {'host': self.dest,
                                'block_migration': 'auto'}})

    def live_migrate_to_the_end(self):
        """A live migration to dest that libvirt completes; returns the
        server and the migration once it ended, and the LibvirtMigration
        that ran it."""
        libvirt = self.fail_at('hang')
        self.start_live_migration()
        self.assertTrue(libvirt.entered.wait(30))
        libvirt.switch_over()
        libvirt.release.set()
        return self.wait_for_end() + (libvirt,)

    def wait_for_end(self, statuses=('completed', 'failed', 'error',
                                     'cancelled'), timeout=120):
        # Generous: a policy's steps come a sample (0.5 s) at a time on a
        # machine that may be busy.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not {
                m['status'] for m in self.api.get_migrations()
                if m['instance_uuid'] == self.server['id']} & set(statuses):
            time.sleep(0.25)
        migration = self._wait_for_migration_status(self.server,
                                                    list(statuses))
        server = self._wait_for_server_parameter(
            self.server, {'OS-EXT-STS:task_state': None}, max_retries=50)
        return server, migration

    # ---------------------------------------------------- observations

    def guest_states(self):
        """{host: (state, reason)} of the server's domain on each host
        that has one."""
        seen = {}
        for host in (self.src, self.dest):
            try:
                dom = self.computes[host].driver._host.get_connection(
                ).lookupByUUIDString(self.server['id'])
            except fakelibvirt.libvirtError:
                continue
            seen[host] = tuple(_state(dom))
        return seen

    def wait_for_guests_on(self, hosts, timeout=20):
        """The hosts holding a domain, once they are ``hosts`` (Nova's
        rollback on the destination is an asynchronous cast) or after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (sorted(self.guest_states()) != sorted(hosts) and
               time.monotonic() < deadline):
            time.sleep(0.2)
        return sorted(self.guest_states())

    def live_migration_events(self, prefix=''):
        """The events (oldest first) of the server's live-migration
        action whose name starts with ``prefix``, as an admin reads them
        (microversion 2.84: with their details)."""
        microversion, self.api.microversion = self.api.microversion, '2.84'
        try:
            actions = self.api.get_instance_actions(self.server['id'])
            live = [a for a in actions if a['action'] == 'live-migration']
            self.assertEqual(1, len(live), actions)
            events = self.api.api_get(
                '/servers/%s/os-instance-actions/%s' % (
                    self.server['id'], live[0]['request_id'])
            ).body['instanceAction']['events']
        finally:
            self.api.microversion = microversion
        return sorted((e for e in events if e['event'].startswith(prefix)),
                      key=lambda e: e['start_time'])

    def running_on(self):
        return sorted(host for host, (state, _) in self.guest_states().items()
                      if state == fakelibvirt.VIR_DOMAIN_RUNNING)

    def outcome(self, server, migration):
        """What a user and an operator see, in one line (for the record)."""
        return ('host=%s status=%s task=%s power=%s migration=%s locked=%s '
                'guest=%s' % (
                    server['OS-EXT-SRV-ATTR:host'], server['status'],
                    server['OS-EXT-STS:task_state'],
                    server['OS-EXT-STS:power_state'], migration['status'],
                    server.get('locked'), self.guest_states()))
