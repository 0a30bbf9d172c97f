"""The convergence guard on real QEMU: a guest that rewrites memory faster
than the capped migration stream copies it (stubbed as in nova_driver.py:
the cloud side of Nova; the migration itself is real).

Stock Nova's settings on the same guest never converge
(test_nova_driver.DirtyingGuestTest: passes go on until aborted).
Under the default policy (minimal-downtime: downtime steps, with QEMU's
auto-converge throttling the guest) the migration completes."""

import time

from testtools.content import text_content

from nova_migration_guard.virt.libvirt import driver as guarded
from tests.real_libvirt import base
from tests.real_libvirt import nova_driver
from tests.real_libvirt import test_nova_driver

# The cap: about half the dirtying guest's write rate.
BANDWIDTH_MIB_S = 15


class DefaultPolicyConvergesTest(test_nova_driver.NovaDriverTestCase):

    LIBVIRT_OPTIONS = {'live_migration_bandwidth': BANDWIDTH_MIB_S}

    def setUp(self):
        base.RealLibvirtTestCase.setUp(self)
        self.nova = self.useFixture(nova_driver.NovaLibvirtHosts(
            self.hosts, driver_class=guarded.GuardedLibvirtDriver,
            guards=('convergence',), **self.LIBVIRT_OPTIONS))

    def test_converges_under_the_default_policy(self):
        instance, console = self.boot(
            'dirty', memory_mib=256, dirty_mb=test_nova_driver.DIRTY_MB,
            dirty_spin=test_nova_driver.DIRTY_SPIN)
        started = time.monotonic()
        migrating, result = self.migrate_in_background(instance)
        migrating.join(300)
        self.assertFalse(migrating.is_alive(), 'still migrating after 300 s')
        took = time.monotonic() - started
        samples = self.nova.stats.of('dirty', since=started)
        self.addDetail('convergence', text_content(
            '%.0f s, %d passes' % (took, max(
                [s['memory_iteration'] for s in samples] or [0]))))
        self.assertIsNone(result['error'])
        self.assertEqual(1, len(result['post'].calls))
        self.assertEqual([], result['recover'].calls)
        self.assert_runs_only_on('dirty', self.hosts.b, self.hosts.a)
        self.wait_for_heartbeat_after(console, self.last_heartbeat(console))
