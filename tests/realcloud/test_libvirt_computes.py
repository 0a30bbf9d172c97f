"""Live migration between the real cloud's two libvirt computes.

The cloud runs with ``--real-libvirt`` (``lab/realcloud/libvirt_computes``):
nova-compute processes ``libvirt-a`` and ``libvirt-b`` with the guarded
libvirt driver, each on its own real libvirtd, whose guests are TCG QEMU.
Everything is real from the API down: nova-api, conductors, schedulers,
placement, Glance (the guest's kernel, initramfs and root disk), both
computes' RPC, Nova's own spawn and live migration (a block migration:
the computes share no instances_path), libvirt's peer-to-peer migration
to the destination's ``live_migration_inbound_addr``.  Only Neutron is
stubbed (``networks='none'``: the guest has no port; the guards never
depend on networking).  Two things differ from two real machines: each
nova-compute runs in its daemon's mount namespace, where its own
directory is mounted over the common ``instances_path``, and the libvirt
computes skip Nova's deep image inspection, whose MBR check refuses the
guest's kernel when a block migration's destination fetches it again
(``lab/realcloud/libvirt_computes.py`` says why).

What a test asserts is what a user and the hypervisor see: the API's
server (status, host, hypervisor, task state), its migration record, where
libvirt runs the guest, and the guest's heartbeat in its console log.  The
tests wait on the log file QEMU writes on the compute that runs the guest,
and read the API's console log (``os-getConsoleOutput``) once at the end:
Nova's API appends what it reads from the console's pty to that same file,
so that polling the API could show a line twice (a ``GUEST-UP`` read
twice would look like a reboot).
"""

import json
import os
import subprocess
import sys
import time

from testtools import content

from nova_migration_guard.lab.embedded import processes
from nova_migration_guard.lab.real_libvirt import guests
from nova_migration_guard.lab.real_libvirt import hosts
from nova_migration_guard.lab.realcloud import cloud as cloud_mod
from nova_migration_guard.lab.realcloud import libvirt_computes
from nova_migration_guard.lab.realcloud import processes as cloud_processes
from tests.realcloud import base

# Generous: a TCG guest shares 2 cores with a whole cloud.
BOOT_TIMEOUT = 300
MIGRATION_TIMEOUT = 600
HEARTBEAT_TIMEOUT = 120
# The TCG guests that went silent or crashed after a migration did so
# 17-19 s after their boot, their migration started within seconds of it
# (tests/real_libvirt): migrate a guest settled past this heartbeat.
SETTLED_HEARTBEAT = 20


def _only_on(compute):
    """domain_states() of a guest that runs on ``compute``'s daemon,
    defined persistently there, and that the other daemon does not have."""
    return {compute: (hosts.libvirt.VIR_DOMAIN_RUNNING, True)}


class _LibvirtComputesTest(base.RealCloudTestCase):
    """A test on the libvirt computes; skipped when the cloud has none
    (``--real-libvirt`` not given, or a machine that cannot run them),
    a failure under CI=true."""

    # The guarded driver as an operator runs it.
    GUARDS = ('migration_outcome', 'convergence')

    @classmethod
    def setUpClass(cls):
        # Before the base class restarts Nova for GUARDS.
        if base.STATE and not cloud_mod.Cloud.load(
                base.STATE).libvirt_computes:
            message = ('the real cloud has no libvirt computes (started '
                       'without --real-libvirt, or the machine cannot run '
                       'them: see its start output)')
            if os.environ.get('CI', '').lower() == 'true':
                raise AssertionError('CI=true requires them: ' + message)
            raise cls.skipException(message)
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.image = self.conn.image.find_image(libvirt_computes.GUEST_IMAGE)

    def console_log(self, server, compute):
        return libvirt_computes.console_log(self.cloud, compute, server.id)

    def api_console(self, server):
        """The server's console log through Nova's API."""
        return self.conn.compute.get_server_console_output(server)['output']

    def wait_for_heartbeat_after(self, console_log, number,
                                 timeout=HEARTBEAT_TIMEOUT):
        """The guest prints a heartbeat after #``number`` in its console
        log on the compute that runs it: it runs.  A guest kernel crash
        after a migration is recorded as a detail, and the guest must then
        run in its new boot (see tests/real_libvirt/base.py: QEMU/TCG
        corrupts a migrated guest's memory now and then)."""
        guests.wait_for_heartbeat_after(
            console_log, number, timeout,
            on_kernel_crash=lambda crash: self.addDetail(
                'guest kernel crash', content.text_content(crash.detail())))

    def boot_guest(self, name):
        """Boot the test guest through the API and wait until it runs
        settled (SETTLED_HEARTBEAT)."""
        server = self.boot(name, timeout=BOOT_TIMEOUT)
        self.addOnException(lambda exc_info: self._attach_logs(server))
        self.assertEqual('ACTIVE', server.status)
        self.assertIn(server.compute_host, self.cloud.libvirt_computes)
        console_log = self.console_log(server, server.compute_host)
        guests.wait_booted(server.name, console_log, timeout=BOOT_TIMEOUT)
        self.wait_for_heartbeat_after(console_log, SETTLED_HEARTBEAT - 1,
                                      timeout=BOOT_TIMEOUT)
        return server

    def other_compute(self, compute):
        (other,) = set(self.cloud.libvirt_computes) - {compute}
        return other

    def assert_runs_only_on(self, server, compute):
        """libvirt: the guest runs on ``compute``'s daemon, defined
        persistently there, and the other daemon has no domain of it."""
        self.assertEqual(
            _only_on(compute),
            libvirt_computes.domain_states(self.cloud, server.id))

    def _attach_logs(self, server):
        fresh = self.conn.compute.get_server(server.id)
        self.addDetail('server', content.text_content(repr(fresh)))
        domain = getattr(fresh, 'instance_name', None) or ''
        for compute in self.cloud.libvirt_computes:
            self.addDetail('console log on %s' % compute,
                           content.text_content(guests.console(
                               self.console_log(server, compute))))
            self.addDetail('qemu log on %s' % compute, content.text_content(
                libvirt_computes.qemu_log(self.cloud, compute, domain)))
            self.addDetail('nova-compute-%s log (tail)' % compute,
                           content.text_content(processes.tail(
                               self.cloud.log('nova-compute-%s' % compute),
                               size=20000)))


class LibvirtComputesTest(_LibvirtComputesTest):

    def test_live_migration_through_the_api(self):
        server = self.boot_guest('libvirt-guest')
        source = server.compute_host
        dest = self.other_compute(source)
        self.assert_runs_only_on(server, source)
        before = self.newest_migration_id(server)
        beat = guests.last_heartbeat(self.console_log(server, source))

        # As an admin does: no host given, the scheduler picks the only
        # other compute that runs this image's hypervisor type.
        status, _ = self.live_migrate(server)
        self.assertEqual(202, status)
        migration = self.wait_for_migration_end(server, before,
                                                timeout=MIGRATION_TIMEOUT)
        fresh = self.wait_until_settled(server, timeout=MIGRATION_TIMEOUT)

        self.assertEqual(('completed', source, dest), (
            migration.status, migration.source_compute,
            migration.dest_compute))
        self.assertEqual(('ACTIVE', dest, None), (
            fresh.status, fresh.compute_host, fresh.task_state))
        # The destination daemon's own host name (its UTS namespace).
        self.assertEqual(libvirt_computes.daemons(self.cloud)[dest].hostname,
                         fresh.hypervisor_hostname)
        self.assert_runs_only_on(server, dest)
        # The destination's console log starts at the switch-over: the
        # guest that migrated counts on there, and the API shows it.
        console_log = self.console_log(server, dest)
        self.wait_for_heartbeat_after(
            console_log, max(beat, guests.last_heartbeat(console_log)))
        self.assertGreater(
            guests.last_heartbeat_in(self.api_console(server)), beat)


class ConvergenceThroughTheCLITest(_LibvirtComputesTest):
    """A guest that rewrites 128 MiB at 30 MiB/s, twice what the 15 MiB/s
    stream copies (image ``realcloud-guest-dirty``), under the default
    convergence policy, moved as an operator does: ``openstack server
    migrate --live-migration --wait``.  Stock Nova's settings never
    converge on this guest (tests/real_libvirt); the guard's steps must
    show in ``openstack server event show``.  The rung is not asserted
    (it depends on the rates the machine gives the guest), nor any time."""

    #: Instance action events with the hosts they ran on (2.62).
    EVENTS_MICROVERSION = '2.62'

    def openstack(self, *args):
        """Run the openstack client of this environment against the
        cloud, as an admin; its output, parsed when it is JSON
        (``-f json``)."""
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=self.cloud.clouds_yaml,
                   OS_CLOUD='realcloud-admin')
        result = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), 'openstack')] +
            list(args), env=env, capture_output=True, text=True,
            timeout=MIGRATION_TIMEOUT)
        self.addDetailUniqueName(
            'openstack %s' % ' '.join(args),
            content.text_content(result.stdout + result.stderr))
        self.assertEqual(0, result.returncode, result.stderr)
        if '-f' in args and 'json' in args:
            return json.loads(result.stdout)
        return result.stdout

    def test_default_policy_converges_and_shows_its_steps(self):
        self.image = self.conn.image.find_image(libvirt_computes.DIRTY_IMAGE)
        server = self.boot_guest('dirty-guest')
        source = server.compute_host
        dest = self.other_compute(source)
        beat = guests.last_heartbeat(self.console_log(server, source))

        self.openstack('server', 'migrate', '--live-migration', '--wait',
                       server.id)

        fresh = self.wait_until_settled(server, timeout=MIGRATION_TIMEOUT)
        self.assertEqual(('ACTIVE', dest, None), (
            fresh.status, fresh.compute_host, fresh.task_state))
        self.assertEqual(['completed'], [
            m.status for m in self.migrations(server)])
        self.assert_runs_only_on(server, dest)
        console_log = self.console_log(server, dest)
        self.wait_for_heartbeat_after(
            console_log, max(beat, guests.last_heartbeat(console_log)))

        actions = self.openstack(
            '--os-compute-api-version', self.EVENTS_MICROVERSION, 'server',
            'event', 'list', server.id, '-f', 'json')
        (live,) = [a for a in actions if a['Action'] == 'live-migration']
        shown = self.openstack(
            '--os-compute-api-version', self.EVENTS_MICROVERSION, 'server',
            'event', 'show', server.id, live['Request ID'], '-f', 'json')
        events = {e['event']: e for e in shown['events']}
        # Nova's own steps of the live migration, all successful...
        for name in ('compute_pre_live_migration', 'compute_live_migration',
                     'compute_post_live_migration_at_destination'):
            self.assertEqual('Success', events[name]['result'], events)
        # ...and the guard's: at least one step, on the source.
        steps = {name: e for name, e in events.items()
                 if name.startswith('migration_guard_convergence_')}
        self.assertTrue(steps, 'no convergence step among %s'
                        % sorted(events))
        for name, event in steps.items():
            self.assertEqual(('Success', source),
                             (event['result'], event['host']), name)
        self.addDetail('summary', content.text_content(
            'migration completed (%s -> %s); the guard\'s steps in '
            'openstack server event show: %s' % (source, dest,
                                                 sorted(steps))))


class SourceComputeKilledTest(_LibvirtComputesTest):
    """The source's nova-compute SIGKILLed in the middle of a live
    migration between the two libvirt computes, then restarted (seed 2).

    libvirtd, not nova-compute, drives a peer-to-peer migration: it goes on
    without the process that asked for it and ends by itself.  The guest
    (image ``realcloud-guest-slow``: 128 MiB rewritten at 5 MiB/s under the
    15 MiB/s stream) needs a few passes, so the migration is still under
    way when the kill comes, at the first memory pass; libvirt then
    finishes it while the source compute is dead.  Stock Nova's restart
    resets the task state and keeps the instance on the source, where no
    guest runs (README, migration outcome).  The guarded compute's restart
    asks both daemons, finds the guest on the destination and ends the
    move with Nova's own post-migration step.

    Restarted while the job still runs (a guest that outruns the copy, on
    a flavor whose policy never switches to post-copy): stock Nova aborts
    the job and leaves the migration in error with the instance's
    allocation on the destination; the guarded restart aborts it too,
    awaits its end, and rolls back with Nova's own step (migration
    ``failed``, the allocation back on the source).

    Not covered here: a kill before libvirt's job starts, a job that fails
    while the compute is down, the destination's compute killed, and both
    ends restarting at once (the embedded tier covers the last, with the
    lock per migration).
    """

    def setUp(self):
        super().setUp()
        self.image = self.conn.image.find_image(libvirt_computes.SLOW_IMAGE)

    def _kill_compute(self, host):
        name = 'nova-compute-%s' % host
        self.cloud.kill(self.cloud.process(name))
        # Whatever happens next, the cloud gets its compute back.
        self.addCleanup(self._ensure_compute, host)

    def _ensure_compute(self, host):
        if not cloud_processes.alive(
                self.cloud.process('nova-compute-%s' % host)):
            self.cloud.start_compute(host)
        self.wait_for_compute_up(host)

    def _wait_for_first_pass(self, server, source, timeout=MIGRATION_TIMEOUT):
        """Until libvirt's job on ``source`` copies memory (after the block
        migration's disk): its first pass."""
        conn = libvirt_computes.connect(self.cloud, source)
        self.addCleanup(conn.close)
        domain = conn.lookupByUUIDString(server.id)
        deadline = time.monotonic() + timeout
        while True:
            stats = domain.jobStats()
            if (stats.get('type') == hosts.libvirt.VIR_DOMAIN_JOB_UNBOUNDED
                    and stats.get('memory_iteration', 0) >= 1):
                return stats
            self.assertLess(time.monotonic(), deadline,
                            'no memory pass on %s: %s' % (source, stats))
            time.sleep(0.2)

    def _wait_runs_only_on(self, server, compute, timeout=MIGRATION_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            found = libvirt_computes.domain_states(self.cloud, server.id)
            if found == _only_on(compute):
                return
            self.assertLess(time.monotonic(), deadline,
                            'libvirt: %s, not only on %s' % (found, compute))
            time.sleep(0.5)

    def kill_source_in_the_first_pass(self, libvirt_finishes=True):
        """Boot the guest, live-migrate it through the API and SIGKILL the
        source's nova-compute at libvirt's first memory pass; with
        ``libvirt_finishes``, wait until libvirt ran the migration to its
        end.  Then start that compute again.  Returns (server, source,
        destination, the newest migration id before, the heartbeat
        before)."""
        server = self.boot_guest('killed-source-guest')
        source = server.compute_host
        dest = self.other_compute(source)
        before = self.newest_migration_id(server)
        beat = guests.last_heartbeat(self.console_log(server, source))

        status, _ = self.live_migrate(server)
        self.assertEqual(202, status)
        stats = self._wait_for_first_pass(server, source)
        self._kill_compute(source)
        self.addDetail('job when killed', content.text_content(repr(stats)))
        migration = [m for m in self.migrations(server) if m.id > before][-1]
        self.assertEqual('running', migration.status)

        if libvirt_finishes:
            # libvirt ends the job by itself; Nova cannot know while the
            # source compute is dead: the server is still MIGRATING there.
            self._wait_runs_only_on(server, dest)
        fresh = self.server(server)
        self.assertEqual(('MIGRATING', source), (fresh.status,
                                                 fresh.compute_host))
        self._ensure_compute(source)
        return server, source, dest, before, beat

    def use_a_guest_that_never_converges(self):
        """The next boot_guest: a guest rewriting memory twice as fast as
        the stream copies it, on a flavor whose policy never switches to
        post-copy nor throttles: its migration never ends by itself."""
        self.image = self.conn.image.find_image(libvirt_computes.DIRTY_IMAGE)
        self.flavor = self.conn.compute.find_flavor(
            libvirt_computes.NEVER_SPLIT_FLAVOR)

    def test_restarted_while_the_job_runs_rolls_back(self):
        self.use_a_guest_that_never_converges()
        self.assert_move_ended(
            *self.kill_source_in_the_first_pass(libvirt_finishes=False),
            status='failed', on_source=True)

    def test_job_completes_while_the_source_compute_is_dead(self):
        self.assert_move_ended(*self.kill_source_in_the_first_pass(),
                               status='completed', on_source=False)

    def assert_move_ended(self, server, source, dest, before, beat, status,
                          on_source):
        """The migration ends ``status``, the guest runs on the source
        (``on_source``) or the destination with nothing held, and its
        heartbeat goes on there."""
        host = source if on_source else dest
        migration = self.wait_for_migration_end(server, before,
                                                timeout=MIGRATION_TIMEOUT)
        fresh = self.wait_until_settled(server, timeout=MIGRATION_TIMEOUT)
        self.assertEqual((status, source, dest), (
            migration.status, migration.source_compute,
            migration.dest_compute))
        self.assert_nothing_held(server, fresh, migration, host)
        console_log = self.console_log(server, host)
        self.wait_for_heartbeat_after(
            console_log, max(beat, guests.last_heartbeat(console_log)))
        self.summarize(server, migration, fresh)

    def summarize(self, server, migration, fresh):
        """The 'summary' detail: what Nova, placement and libvirt show."""
        self.addDetail('summary', content.text_content(
            'migration %s (%s -> %s); Nova: %s on %s, task %s; libvirt runs '
            'it on %s; allocations on %s' % (
                migration.status, migration.source_compute,
                migration.dest_compute, fresh.status, fresh.compute_host,
                fresh.task_state, sorted(libvirt_computes.domain_states(
                    self.cloud, server.id)),
                self.allocation_providers(server.id))))

    def assert_nothing_held(self, server, fresh, migration, host):
        """What a user, placement and libvirt see once the move ended on
        ``host``: the server ACTIVE there with no task, no fault, not
        locked; no migration in progress; the allocations only on
        ``host``'s provider; the guest running and persistent only there,
        with no job; the source's record of the migration gone."""
        self.assertEqual(('ACTIVE', host, None, False), (
            fresh.status, fresh.compute_host, fresh.task_state,
            fresh.is_locked))
        self.assertEqual(libvirt_computes.daemons(self.cloud)[host].hostname,
                         fresh.hypervisor_hostname)
        self.assertFalse(getattr(fresh, 'fault', None))
        in_progress = self.conn.compute.get(
            '/servers/%s/migrations' % server.id,
            microversion='2.80').json()['migrations']
        self.assertEqual([], in_progress)
        providers = self.allocation_providers(server.id)
        self.assertEqual([fresh.hypervisor_hostname], providers)
        self.assertEqual([], self.allocation_providers(migration.uuid))
        self.assert_runs_only_on(server, host)
        conn = libvirt_computes.connect(self.cloud, host)
        try:
            job = conn.lookupByUUIDString(server.id).jobStats()
        finally:
            conn.close()
        self.assertEqual(hosts.libvirt.VIR_DOMAIN_JOB_NONE, job.get('type'))
        self.assertFalse(os.path.exists(self.cloud.path(
            'nova', migration.source_compute, 'migration_guard',
            'live-migrations', '%s.json' % migration.uuid)))

    def allocation_providers(self, consumer):
        """The names of the resource providers ``consumer`` holds
        allocations on."""
        allocations = self.conn.placement.get(
            '/allocations/%s' % consumer).json()['allocations']
        return sorted(self.conn.placement.get(
            '/resource_providers/%s' % rp).json()['name']
            for rp in allocations)


class StockSourceComputeKilledTest(SourceComputeKilledTest):
    """SourceComputeKilledTest on stock Nova (no guard), the README's
    migration outcome rows "source compute died after libvirt finished;
    source restarts" (the restarted source finds no domain of the guest,
    resets the task state and keeps the instance on the source, while the
    guest runs on the destination: Nova would start a second copy) and
    "source compute died mid-copy; source restarts"."""

    GUARDS = ()

    def test_job_completes_while_the_source_compute_is_dead(self):
        server, source, dest, before, beat = (
            self.kill_source_in_the_first_pass())
        # The restarted compute's init_host resets the task state.
        fresh = self.wait_until_settled(server, timeout=MIGRATION_TIMEOUT)
        self.addCleanup(self._destroy_on, dest, server)
        self.addDetail('server after the restart', content.text_content(
            repr(fresh)))
        self.addDetail('migrations', content.text_content(repr(
            [(m.id, m.status) for m in self.migrations(server)])))
        # Nova keeps it on the source; libvirt runs it on the destination.
        self.assertEqual((source, None), (fresh.compute_host,
                                          fresh.task_state))
        self.assert_runs_only_on(server, dest)
        self.summarize(server, self.migrations(server)[0], fresh)

    def test_restarted_while_the_job_runs_rolls_back(self):
        self.use_a_guest_that_never_converges()
        server, source, dest, before, beat = (
            self.kill_source_in_the_first_pass(libvirt_finishes=False))
        migration = self.wait_for_migration_end(server, before,
                                                timeout=MIGRATION_TIMEOUT)
        fresh = self.wait_until_settled(server, timeout=MIGRATION_TIMEOUT)
        # The README's row "source compute died mid-copy; source
        # restarts": Nova aborts the job, the migration ends in error, and
        # the instance's allocation is left on the destination, where no
        # guest runs.
        self.assertEqual('error', migration.status)
        self.assertEqual((source, None), (fresh.compute_host,
                                          fresh.task_state))
        self._wait_runs_only_on(server, source)
        self.assertEqual(
            [libvirt_computes.daemons(self.cloud)[dest].hostname],
            self.allocation_providers(server.id))
        self.summarize(server, migration, fresh)

    def _destroy_on(self, compute, server):
        """The copy Nova lost track of: the cloud's next test must not
        share a host with it."""
        conn = libvirt_computes.connect(self.cloud, compute)
        try:
            domain = conn.lookupByUUIDString(server.id)
            domain.destroy()
            domain.undefine()
        finally:
            conn.close()
