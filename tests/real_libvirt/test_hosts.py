"""The two-host fixture with real libvirtd and QEMU: Nova-style live
migration there and back, and a cleanup that leaves nothing behind."""

import os
import time

from tests.real_libvirt import base
from nova_migration_guard.lab.real_libvirt import hosts


class LiveMigrationTest(base.RealLibvirtTestCase):

    def test_live_migration_there_and_back(self):
        name = 'idle-guest'
        _, console = self.start_guest(self.conn['A'], name,
                                      self.hosts.base_dir)
        for source, dest in ((self.hosts.a, self.hosts.b),
                             (self.hosts.b, self.hosts.a)):
            domain = self.conn[source.name].lookupByName(name)
            since = time.monotonic()
            self.live_migrate(domain, dest)
            # The source may report STOPPED after migrateToURI3 returned.
            self.events.wait_for(source.name, name, 'STOPPED', 'MIGRATED',
                                 since=since)
            self.assert_runs_only_on(name, dest, source)
            self.assert_live_migration_events(
                source, dest, self.events.lifecycle(name, since=since))
            # The source QEMU has stopped: heartbeats from now on come
            # from the guest running on the destination.
            self.wait_for_heartbeat_after(console,
                                          self.last_heartbeat(console))


class CleanupTest(base.RealLibvirtTestCase):

    start_hosts = False

    def test_cleanup_leaves_nothing_behind(self):
        fixture = hosts.TwoLibvirtHosts(
            capabilities_cache=self.capabilities_cache())
        fixture.setUp()
        try:
            started = []
            namespaces = []
            for host in (fixture.a, fixture.b):
                conn = fixture.connect(host)
                # Killed while booting or booted makes no difference.
                self.create_guest(conn, 'guest-' + host.name,
                                  fixture.base_dir)
                qemu_pids = host.qemu_pids()
                self.assertEqual(1, len(qemu_pids))
                started += [hosts.Process(pid)
                            for pid in [host.pid] + qemu_pids]
                namespaces.append(host.mount_namespace)
            self.assertTrue(all(p.alive() for p in started))
        finally:
            fixture.cleanUp()

        self.assertEqual([], [p.pid for p in started if p.alive()])
        for namespace in namespaces:
            self.assertEqual([], hosts.processes_in_namespace(namespace))
        with open('/proc/self/mountinfo') as f:
            self.assertNotIn(fixture.base_dir, f.read())
        self.assertFalse(os.path.exists(fixture.base_dir))


class PortSlotTest(base.RealLibvirtTestCase):
    """Daemon pairs that run at once (parallel test workers) never share
    migration ports: one such collision failed an incoming migration with
    "Failed to find an available port"."""

    start_hosts = False

    def test_pairs_get_disjoint_ranges(self):
        first = self.useFixture(hosts._PortSlot())
        second = hosts._PortSlot()
        second.setUp()
        ranges = [first.ports(0), first.ports(1)]
        try:
            ranges += [second.ports(0), second.ports(1)]
        finally:
            second.cleanUp()
        ports = [set(range(low, high + 1)) for low, high in ranges]
        for i, one in enumerate(ports):
            for other in ports[i + 1:]:
                self.assertEqual(set(), one & other)
