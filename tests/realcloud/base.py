"""Tests against the real-services cloud (nova_migration_guard.realcloud).

``tox -e realcloud`` starts the cloud, runs these tests with
NMG_REALCLOUD_STATE naming its state directory, and stops it.  Without it
the tests skip.  Every Nova service is a separate process; a test class
names the guards it needs (``GUARDS``) and the Nova services are restarted
with them when the running ones differ.  Everything a test asserts comes
through Nova's API (openstacksdk) or from where the guest is.
"""

import os
import time

import testtools

from nova_migration_guard.realcloud import cloud as cloud_mod

STATE = os.environ.get('NMG_REALCLOUD_STATE')
FINAL_MIGRATION_STATUSES = frozenset((
    'completed', 'done', 'confirmed', 'reverted', 'error', 'failed',
    'cancelled'))
MICROVERSION = '2.80'


class RealCloudTestCase(testtools.TestCase):

    #: [migration_guard] guards the Nova services must run with; None:
    #: whichever they run with (the test starts its own processes).
    GUARDS = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not STATE:
            raise cls.skipException(
                'no real cloud: run through tox -e realcloud '
                '(NMG_REALCLOUD_STATE unset)')
        cls.cloud = cloud_mod.Cloud.load(STATE)
        if (cls.GUARDS is not None and
                list(cls.cloud.state['guards']) != list(cls.GUARDS)):
            cls.cloud.restart_nova(list(cls.GUARDS))

    def setUp(self):
        super().setUp()
        self.conn = self.cloud.connection()
        self.image = self.conn.image.find_image(cloud_mod.IMAGE)
        self.flavor = self.conn.compute.find_flavor(cloud_mod.FLAVOR)

    # ----------------------------------------------------------- servers

    def create_group(self, name, policy='anti-affinity'):
        group = self.conn.compute.create_server_group(name=name,
                                                      policy=policy)
        self.addCleanup(self.conn.compute.delete_server_group, group,
                        ignore_missing=True)
        return group

    def boot(self, name, group=None, host=None, timeout=120):
        kwargs = {}
        if group is not None:
            kwargs['scheduler_hints'] = {'group': group.id}
        if host is not None:
            kwargs['host'] = host
        server = self.conn.compute.create_server(
            name=name, image_id=self.image.id, flavor_id=self.flavor.id,
            networks='none', **kwargs)
        self.addCleanup(self._delete, server)
        return self.conn.compute.wait_for_server(server, wait=timeout)

    def _delete(self, server):
        self.conn.compute.delete_server(server, ignore_missing=True)
        self.conn.compute.wait_for_delete(server, wait=120)

    def server(self, server):
        return self.conn.compute.get_server(server.id)

    def wait_until_settled(self, server, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            fresh = self.server(server)
            if fresh.task_state is None:
                return fresh
            if time.monotonic() > deadline:
                self.fail('%s still has task %s after %d s'
                          % (server.name, fresh.task_state, timeout))
            time.sleep(0.5)

    # -------------------------------------------------------- migrations

    def action(self, server, body, conn=None):
        """POST a server action; returns (status, request id)."""
        resp = (conn or self.conn).compute.post(
            '/servers/%s/action' % server.id, json=body,
            microversion=MICROVERSION, raise_exc=False)
        return resp.status_code, resp.headers.get('x-openstack-request-id')

    def live_migrate(self, server, host=None, conn=None):
        return self.action(server, {'os-migrateLive': {
            'host': host, 'block_migration': 'auto'}}, conn)

    def cold_migrate(self, server, conn=None):
        return self.action(server, {'migrate': None}, conn)

    def evacuate(self, server, conn=None):
        return self.action(server, {'evacuate': {}}, conn)

    def unshelve(self, server, conn=None):
        return self.action(server, {'unshelve': None}, conn)

    def shelve_offload(self, server, timeout=120):
        """Shelve ``server`` (Nova offloads it at once by default) and wait
        until it is SHELVED_OFFLOADED."""
        status, _ = self.action(server, {'shelve': None})
        self.assertEqual(202, status)
        deadline = time.monotonic() + timeout
        while True:
            fresh = self.server(server)
            if (fresh.status == 'SHELVED_OFFLOADED' and
                    fresh.task_state is None):
                return fresh
            if time.monotonic() > deadline:
                self.fail('%s is %s/%s, not offloaded after %d s' % (
                    server.name, fresh.status, fresh.task_state, timeout))
            time.sleep(0.5)

    def compute_service(self, host):
        found = [s for s in self.conn.compute.services()
                 if s.binary == 'nova-compute' and s.host == host]
        self.assertEqual(1, len(found), found)
        return found[0]

    def wait_for_compute_up(self, host, timeout=180):
        """Until Nova's API shows ``host``'s compute service up.  A
        restarted nova-compute logs that it joined its service group at
        once, but sends its first heartbeat seconds later (Nova's
        INITIAL_REPORTING_DELAY); until then the scheduler's ComputeFilter
        skips the host, and a boot or move onto it fails."""
        deadline = time.monotonic() + timeout
        while True:
            service = self.compute_service(host)
            if service.state == 'up':
                return service
            if time.monotonic() > deadline:
                self.fail('the compute service of %s is %s/%s after %d s'
                          % (host, service.state, service.status, timeout))
            time.sleep(0.5)

    def update_compute_service(self, host, **body):
        """PUT os-services/{id} of ``host``'s compute (2.53: status,
        forced_down)."""
        resp = self.conn.compute.put(
            '/os-services/%s' % self.compute_service(host).id, json=body,
            microversion='2.53')
        self.assertEqual(200, resp.status_code, resp.text)

    def confirm_if_waiting(self, server, timeout=120):
        """Confirm a resize that waits for it (VERIFY_RESIZE), as a user
        would; returns the fresh server."""
        fresh = self.wait_until_settled(server, timeout)
        if fresh.status == 'VERIFY_RESIZE':
            status, _ = self.action(server, {'confirmResize': None})
            self.assertEqual(204, status)
            fresh = self.wait_until_settled(server, timeout)
            deadline = time.monotonic() + timeout
            while fresh.status == 'VERIFY_RESIZE':
                if time.monotonic() > deadline:
                    self.fail('%s still VERIFY_RESIZE' % server.name)
                time.sleep(0.5)
                fresh = self.server(server)
        return fresh

    def migrations(self, server):
        return sorted(self.conn.compute.migrations(instance_uuid=server.id),
                      key=lambda m: m.id, reverse=True)

    def newest_migration_id(self, server):
        found = self.migrations(server)
        return found[0].id if found else 0

    def wait_for_migration_end(self, server, after_id, timeout=120):
        """The first migration of ``server`` newer than ``after_id`` once
        its status is final."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.migrations(server) if m.id > after_id]
            # 'finished': a resize waiting for confirmation.
            if found and found[-1].status in (FINAL_MIGRATION_STATUSES |
                                              {'finished'}):
                return found[-1]
            if time.monotonic() > deadline:
                self.fail('migration of %s not ended after %d s: %s' % (
                    server.name, timeout,
                    [(m.id, m.status) for m in found]))
            time.sleep(0.5)


class ServiceLogs(object):
    """Which Nova process served a request: each process's log from a
    mark on, searched for the request id (oslo.messaging carries it to
    the conductor and the scheduler with the RPC context)."""

    def __init__(self, cloud, names):
        self.cloud = cloud
        self.names = list(names)
        self.offsets = {}

    def mark(self):
        for name in self.names:
            try:
                self.offsets[name] = os.path.getsize(self.cloud.log(name))
            except OSError:
                self.offsets[name] = 0

    def served(self, request_ids):
        """{request id: [names of the processes whose log has it]}."""
        found = {rid: [] for rid in request_ids if rid}
        for name in self.names:
            with open(self.cloud.log(name), 'rb') as f:
                f.seek(self.offsets.get(name, 0))
                text = f.read().decode('utf-8', 'replace')
            for rid in found:
                if rid in text:
                    found[rid].append(name)
        return found
