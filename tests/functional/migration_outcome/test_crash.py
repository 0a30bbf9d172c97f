"""A guest whose QEMU dies (a crash, an OOM kill) is recorded shut off by
Nova's own handle_lifecycle_event and power state sync, with the guard as
without.

Stubbed (see base.py): the fake libvirt has no QEMU to kill and no event
loop, so the test sets the domain shut off (reason crashed, as libvirt
does) and hands the driver the lifecycle event libvirt sends then,
STOPPED/FAILED, as Nova's libvirt Host would.  tests/real_libvirt
(GuardedQemuCrashTest) kills a real QEMU.
"""

from nova.virt import event as virtevent

from tests.functional.migration_outcome import base

STOPPED_FAILED = (5, 5)   # VIR_DOMAIN_EVENT_STOPPED, _STOPPED_FAILED
SHUTOFF_CRASHED = 3       # VIR_DOMAIN_SHUTOFF_CRASHED


class _CrashScenarios(object):

    def qemu_dies(self, host):
        driver = self.computes[host].driver
        domain = driver._host.get_connection().lookupByUUIDString(
            self.server['id'])
        base.set_state(domain, base.fakelibvirt.VIR_DOMAIN_SHUTOFF,
                       SHUTOFF_CRASHED)
        driver.emit_event(virtevent.LifecycleEvent(
            self.server['id'], virtevent.EVENT_LIFECYCLE_STOPPED,
            detail=STOPPED_FAILED))

    def test_a_crashed_guest_is_recorded_shut_off(self):
        self.qemu_dies(self.src)
        server = self._wait_for_state_change(self.server, 'SHUTOFF')
        self.assertEqual(self.src, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('stopped', server['OS-EXT-STS:vm_state'])
        self.assertEqual(4, server['OS-EXT-STS:power_state'])  # SHUTDOWN
        self.assertFalse(server['locked'])


class GuardedCrashTest(_CrashScenarios, base.LateFailureTestCase):
    """The destination's STOPPED/FAILED of an incoming copy:
    test_restart.GuardedRestartTest.test_failed_incoming_copy_after_a_
    destination_restart."""


class StockCrashTest(_CrashScenarios, base.LateFailureTestCase):
    GUARDED = False
