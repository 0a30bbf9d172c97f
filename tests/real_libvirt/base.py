"""Base class of the real hypervisor tests: two libvirtd, TCG guests.

Each test gets its own two daemons (they start in well under a second), so
a test cannot leave state for the next one.  A machine that cannot run
them (not root, libvirt not installed, ...) skips the tests, except under
CI=true, where that is a failure: CI must run this tier.
"""

import os

from oslotest import base
from testtools import content

from nova_migration_guard.lab.real_libvirt import cloud
from nova_migration_guard.lab.real_libvirt import guest_image
from nova_migration_guard.lab.real_libvirt import guests
from nova_migration_guard.lab.real_libvirt import hosts


class RealLibvirtTestCase(base.BaseTestCase):
    """``self.hosts`` (TwoLibvirtHosts), ``self.conn`` (a client connection
    per host name) and ``self.events`` (an EventRecorder watching both),
    unless a test class sets ``start_hosts = False``."""

    start_hosts = True

    def setUp(self):
        super().setUp()
        try:
            cloud.check_environment()
        except cloud.Unavailable as exc:
            if os.environ.get('CI', '').lower() == 'true':
                self.fail('CI=true requires the real libvirt tier: %s'
                          % exc)
            self.skipTest(str(exc))
        if self.start_hosts:
            self.cloud = self.useFixture(cloud.RealLibvirtCloud())
            self.image = self.cloud.image
            self.hosts = self.cloud.hosts
            self.events = self.cloud.events
            self.conn = self.cloud.conn
        else:
            self.image = guest_image.ensure_image()

    def create_guest(self, conn, name, console_dir, memory_mib=128,
                     **dirty):
        """Define and start a guest on conn; returns (domain, console log
        path).  dirty takes dirty_mb, dirty_rate, dirty_spin and
        dirty_for.

        If the test fails, the guest's whole serial console and each
        host's QEMU log of it are attached: a guest that panicked or a
        QEMU that restarted shows there, not in a 500-character tail."""
        domain, console = guests.create(conn, self.image, name, console_dir,
                                        memory_mib=memory_mib, **dirty)
        self.addOnException(lambda exc_info: self._attach_guest_logs(
            name, console))
        return domain, console

    def _attach_guest_logs(self, name, console):
        self.addDetail('console %s' % name, content.text_content(
            guests.console(console)))
        hosts = getattr(self, 'hosts', None)
        for host in (hosts.a, hosts.b) if hosts else ():
            self.addDetail('qemu log %s on %s' % (name, host.name),
                           content.text_content(guests.console(
                               os.path.join(host.dir, 'log', 'qemu',
                                            '%s.log' % name))))

    def start_guest(self, conn, name, console_dir, **kwargs):
        """create_guest(), then wait until the guest booted."""
        domain, console = self.create_guest(conn, name, console_dir,
                                            **kwargs)
        guests.wait_booted(name, console)
        return domain, console

    @staticmethod
    def capabilities_cache():
        return cloud.capabilities_cache()

    console = staticmethod(guests.console)
    last_heartbeat = staticmethod(guests.last_heartbeat)

    def wait_for_heartbeat_after(self, console, number, timeout=20.0):
        """The guest prints a heartbeat after #``number``: it runs.

        A guest kernel that crashed after a completed migration (an Oops
        or a panic in its console, then a reboot inside the same QEMU) is
        recorded as the detail 'guest kernel crash', and the guest must
        then print heartbeats in its new boot.  QEMU 7.2 under TCG on this
        machine kind corrupts a migrated guest's memory now and then,
        stock and guarded migrations alike (benchmarks/README.rst: 3 of 4
        stock pre-copy completions of the moderate guest; in this tier an
        Oops in a timer callback after a paused completion, and a reboot
        after a post-copy): what the guest's own kernel does with memory
        QEMU moved is not what these tests judge.  Any other silence,
        and a reboot without a kernel crash, fails."""
        guests.wait_for_heartbeat_after(
            console, number, timeout,
            on_kernel_crash=lambda crash: self.addDetail(
                'guest kernel crash', content.text_content(crash.detail())))

    def live_migrate(self, domain, dest):
        """Migrate as Nova's libvirt driver does by default (no block
        migration): peer-to-peer to the destination daemon, migration
        stream to its migrate URI."""
        libvirt = hosts.libvirt
        flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
                 | libvirt.VIR_MIGRATE_PERSIST_DEST
                 | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
        domain.migrateToURI3(
            dest.p2p_uri, {libvirt.VIR_MIGRATE_PARAM_URI: dest.migrate_uri},
            flags)

    def assert_runs_only_on(self, name, host, other):
        """The guest runs on ``host``, defined persistently there (a
        migration's PERSIST_DEST), and ``other`` has no domain of that name
        at all, not even a stopped definition (UNDEFINE_SOURCE)."""
        domain = self.conn[host.name].lookupByName(name)
        self.assertEqual(hosts.libvirt.VIR_DOMAIN_RUNNING,
                         domain.state()[0])
        self.assertTrue(domain.isPersistent())
        error = self.assertRaises(hosts.libvirt.libvirtError,
                                  self.conn[other.name].lookupByName, name)
        self.assertEqual(hosts.libvirt.VIR_ERR_NO_DOMAIN,
                         error.get_error_code())

    def assertInOrder(self, expected, observed):
        """expected is a subsequence of observed (other items may come
        between)."""
        remaining = iter(observed)
        if not all(item in remaining for item in expected):
            self.fail('%s not in this order in %s' % (expected, observed))

    def assert_live_migration_events(self, source, dest, observed):
        """``observed`` (EventRecorder.lifecycle) holds a live migration's
        events in each host's order: the destination's incoming guest
        started, then resumed; the source's suspended for the switch-over,
        then stopped.  Each daemon delivers its own events in order, but
        the two daemons' events reach the recorder on two connections, so
        how they interleave (the destination's RESUMED before or after the
        source's STOPPED) is not asserted."""
        for host, expected in (
                (dest, ['STARTED/MIGRATED', 'RESUMED/MIGRATED']),
                (source, ['SUSPENDED/MIGRATED', 'STOPPED/MIGRATED'])):
            self.assertInOrder(['%s:%s' % (host.name, event)
                                for event in expected], observed)
