"""The demo's scenarios: actions through the REST API, outcomes read back
from the cloud (never written by the demo)."""

import collections
import dataclasses
import time

# Seconds a move, or a server's task, may take in a scenario.
TIMEOUT = 120


@dataclasses.dataclass
class Outcome:
    """What a user sees after a scenario, and its summary in words."""
    summary: str
    ok: bool                  # no policy violated, no instance in ERROR
    details: dict


class Scenario(object):
    """One seed scenario.  Subclasses set the attributes and ``run``."""

    #: Short id used on the command line and in --json.
    name = None
    #: One line for the table.
    title = None
    #: The guard whose effect the scenario shows.
    guard = None
    #: Computes the cloud needs (EmbeddedCloudTestCase).
    computes = 3
    #: The cloud to run on: None for EmbeddedCloudTestCase (fake driver),
    #: or a libvirt cloud of nova_migration_guard.lab.embedded (fake libvirt).
    cloud_class = None
    #: True for scenarios that run a library's logic without a cloud:
    #: ``run_logic(guarded)`` instead of ``run(cloud)``.
    logic_only = False
    #: True for scenarios on the real hypervisor tier (``demo --real``):
    #: ``run_real(guarded, progress)`` instead of ``run(cloud)``.
    real_only = False

    def run(self, cloud):
        """Drive ``cloud`` (an EmbeddedCloudTestCase) and return Outcome."""
        raise NotImplementedError


def _settle(cloud, servers):
    """Wait until no server has a task running; return fresh copies."""
    return [cloud.wait_until_settled(server, timeout=TIMEOUT)
            for server in servers]


def describe_group(servers, migrations):
    """Outcome of moves of anti-affinity group members, in words."""
    hosts = collections.Counter(s['OS-EXT-SRV-ATTR:host'] for s in servers)
    crowded = {h: n for h, n in hosts.items() if n > 1}
    errored = [s['name'] for s in servers if s['status'] == 'ERROR']
    parts = []
    for host, count in sorted(crowded.items()):
        parts.append('%d members on %s: policy violated' % (count, host))
    for name in errored:
        parts.append('%s in ERROR' % name)
    if not parts:
        placed = ', '.join('%s on %s' % (s['name'],
                                         s['OS-EXT-SRV-ATTR:host'])
                           for s in servers)
        parts.append('policy kept: %s' % placed)
    moved = collections.Counter(m['status'] for m in migrations)
    parts.append('migrations: %s' % ', '.join(
        '%d %s' % (n, status) for status, n in sorted(moved.items()))
        if moved else 'no migration started')
    return Outcome(
        summary='; '.join(parts), ok=not crowded and not errored,
        details={'hosts': {s['name']: s['OS-EXT-SRV-ATTR:host']
                           for s in servers},
                 'statuses': {s['name']: s['status'] for s in servers},
                 'migrations': [m['status'] for m in migrations]})


def _boot_pair(cloud, name):
    group = cloud.create_anti_affinity_group(name)
    return group, [cloud.boot_server(group=group, name='vm%d' % i)
                   for i in (1, 2)]


def _wait_moves(cloud, servers):
    """Each server's last move, once ended (see settle_move)."""
    return [cloud.settle_move(server, timeout=TIMEOUT) for server in servers]


class ConcurrentMoves(Scenario):
    """Two members on two hosts, one free host: both moved at once can only
    go to the free host, so one of them must not."""
    guard = 'anti_affinity'
    computes = 3

    def __init__(self, kind):
        self.kind = kind   # 'live' or 'cold'
        self.name = 'concurrent-%s-migrations' % kind
        self.title = ('concurrent %s migrations in an anti-affinity group'
                      % kind)

    def run(self, cloud):
        move = (cloud.live_migrate if self.kind == 'live'
                else cloud.cold_migrate)
        _, servers = _boot_pair(cloud, 'demo-%s' % self.kind)
        cloud.run_concurrently(
            *[lambda s=s: move(s, expected=None) for s in servers])
        records = _wait_moves(cloud, servers)
        return describe_group(_settle(cloud, servers), records)


class ForcedHostLiveMigration(Scenario):
    name = 'forced-host-live-migration'
    title = "forced live migration onto another member's host"
    guard = 'anti_affinity'
    computes = 3

    def run(self, cloud):
        _, servers = _boot_pair(cloud, 'demo-forced')
        target = cloud.server_host(servers[1])
        answer = cloud.live_migrate(servers[0], host=target, force=True,
                                    expected=None)
        records = (_wait_moves(cloud, servers[:1])
                   if answer.status == 202 else [])
        outcome = describe_group(_settle(cloud, servers), records)
        summary = 'API %d; %s' % (answer.status, outcome.summary)
        if answer.status == 409:
            summary = 'API 409 naming the group; ' + outcome.summary
        # A refusal at the API is the right answer; an accepted move must
        # still keep the policy and no instance in ERROR.
        return Outcome(summary=summary, ok=outcome.ok,
                       details=dict(outcome.details, api=answer.status))


def _stable(read, seconds=2.0, timeout=TIMEOUT):
    """``read()`` once it returned the same value for ``seconds`` (Nova
    may pass through an outcome on its way to another)."""
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() - since < seconds:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
        current = read()
        if current != value:
            value, since = current, time.monotonic()
    return value


class MigrationRaisesAfterMove(Scenario):
    name = 'migration-raises-after-move'
    title = 'a live migration that raises after the guest moved'
    guard = 'migration_outcome'

    @property
    def cloud_class(self):
        from nova_migration_guard.lab.embedded import libvirt_migration
        return libvirt_migration.MigrationCloud

    def run(self, cloud):
        cloud.fail_at('completed-then-raise')
        cloud.start_live_migration()
        cloud.wait_for_end()

        def read():
            server = cloud.api.get_server(cloud.server['id'])
            migration = cloud._wait_for_migration_status(
                cloud.server, ['completed', 'error', 'failed'])
            return (server['status'], server['OS-EXT-SRV-ATTR:host'],
                    server['OS-EXT-STS:task_state'], migration['status'])
        status, host, task, migration = _stable(read)
        running = cloud.running_on()
        summary = ('guest runs on %s; Nova: %s on %s, migration %s'
                   % (', '.join(running) or 'no host', status, host,
                      migration))
        return Outcome(
            summary=summary,
            ok=(status == 'ACTIVE' and running == [host] and
                migration == 'completed'),
            details={'status': status, 'host': host, 'task_state': task,
                     'migration': migration, 'guest_runs_on': running})


class BackupComputeOtherHost(Scenario):
    name = 'backup-compute-other-host'
    title = 'an HA backup compute with another host value'
    guard = 'host_identity'

    @property
    def cloud_class(self):
        from nova_migration_guard.lab.embedded import libvirt_cloud

        class Cloud(libvirt_cloud.LibvirtCloudTestCase):
            # Nova's real node-identity checks.
            STUB_COMPUTE_ID = False
        return Cloud

    def run(self, cloud):
        from nova import exception
        from nova.tests.fixtures import libvirt as fakelibvirt
        # Both HA nodes are installed and started once, the backup on the
        # same (still empty) hypervisor with another [DEFAULT] host.
        cloud.start_compute('primary')
        hypervisor = cloud.computes['primary'].driver._host.get_connection()
        try:
            cloud.start_compute('backup', connection=hypervisor)
            refusal = None
        except exception.InvalidConfiguration as exc:
            refusal = str(exc)
        except IndexError:
            # Nova's test helper found no resource provider for the
            # backup (placement keeps one per hypervisor name): started.
            refusal = None
        if refusal is None:
            cloud.computes['backup'].stop()    # the passive node
        servers = [cloud._create_server(networks='none') for _ in (1, 2)]
        nodes = sorted(
            (hv['hypervisor_hostname'], hv['service']['host'])
            for hv in cloud.admin_api.api_get(
                '/os-hypervisors/detail').body['hypervisors'])
        running = [d.UUIDString() for d in hypervisor.listAllDomains(
            fakelibvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)]
        intact = sorted(running) == sorted(s['id'] for s in servers)
        if refusal:
            summary = ('backup refused to start: its hypervisor is already '
                       'the compute node of %s' % ', '.join(
                           host for _, host in nodes))
        else:
            summary = ('backup started: hypervisor %s is the compute node '
                       'of %s' % (nodes[0][0], ' and '.join(
                           host for _, host in nodes)))
        summary += '; %d of 2 guests running' % len(running)
        return Outcome(summary=summary, ok=bool(refusal) and intact,
                       details={'refusal': refusal, 'nodes': nodes,
                                'guests_running': len(running)})


class XenapiSrNaming(Scenario):
    """Nova 21's XenAPI driver (the logic only: XenServer cannot run
    here): a volume attached before Mitaka has an SR named
    FA15E-D15C-<volume id> on the source; the destination must connect
    the same SR UUID for the live migration to work."""
    name = 'xenapi-sr-naming'
    title = 'XenAPI live migration of a pre-Mitaka volume (logic only)'
    guard = 'xenapi-21.x-patches'
    logic_only = True
    VOLUME = {'volume_id': '3d9a5f4e-6c1b-4c4e-9a57-0d7e2f1b8c11',
              'target_portal': '192.0.2.20:3260',
              'target_iqn': 'iqn.2010-10.org.openstack:volume-3d9a5f4e'}

    def run_logic(self, guarded):
        from nova_migration_guard.xenapi import sr_uuid
        source = sr_uuid.old_style_sr_uuid(self.VOLUME['volume_id'])
        # A patched source reports the SR UUID it uses; stock reports none.
        reported = (sr_uuid.volume_sr_uuids([self.VOLUME], {source})
                    if guarded else None)
        dest = sr_uuid.destination_sr_uuid(self.VOLUME, reported)
        same = dest == source
        summary = ('source SR %s..., destination SR %s...: %s' % (
            source[:15], dest[:15], 'the same, the migration proceeds'
            if same else 'different, the live migration fails'))
        return Outcome(summary=summary, ok=same,
                       details={'source_sr': source, 'dest_sr': dest})


class NonConvergingGuest(Scenario):
    """On the real tier: a guest dirtying memory twice as fast as the
    migration stream copies it, stock and guarded
    (nova_migration_guard/demo/real_tier.py says what runs and what is
    stubbed).  It runs in a child process: the embedded clouds of the
    other scenarios switch this one to eventlet, and the real tier needs
    Nova's native threading (libvirt's event loop blocks in C)."""
    name = 'non-converging-guest'
    title = ('a live migration of a guest dirtying memory twice as fast as '
             'it is copied (real QEMU)')
    guard = 'convergence'
    real_only = True

    def run_real(self, guarded, progress):
        import json
        import os
        import subprocess
        import sys

        env = dict(os.environ, OS_NOVA_DISABLE_EVENTLET_PATCHING='1')
        child = subprocess.Popen(
            [sys.executable, '-m', 'nova_migration_guard.demo.real_tier',
             'guarded' if guarded else 'stock'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        # Its progress lines (stderr), as they come; its result (stdout)
        # is one JSON object.
        errors = []
        for line in child.stderr:
            if line.startswith('progress: '):
                progress(line[len('progress: '):].rstrip('\n'))
            else:
                errors.append(line)
        out = child.stdout.read()
        if child.wait() != 0:
            raise RuntimeError('the real tier failed (exit %d): %s' % (
                child.returncode, ''.join(errors[-5:]).strip()))
        result = json.loads(out.strip().splitlines()[-1])
        return Outcome(summary=result['summary'], ok=result['ok'],
                       details=result['details'])


SCENARIOS = (ConcurrentMoves('live'), ConcurrentMoves('cold'),
             ForcedHostLiveMigration(), MigrationRaisesAfterMove(),
             BackupComputeOtherHost(), NonConvergingGuest(),
             XenapiSrNaming())
