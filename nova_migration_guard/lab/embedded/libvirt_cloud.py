"""Nova's in-process cloud with libvirt computes on Nova's fake libvirt
(nova.tests.functional.libvirt.base), for the guards that live in the
libvirt driver or in nova-compute's start.

What is stubbed: the hypervisor (Nova's fake libvirt; each test module says
what more).  Everything else is Nova's real code: API, conductor,
scheduler, placement and the nova-compute services with the libvirt
driver.
"""

import fixtures
from nova import conf as nova_conf
from nova.tests.functional.libvirt import base as libvirt_base
from oslo_utils.fixture import uuidsentinel as uuids

from nova_migration_guard.lab.embedded import cloud

CONF = nova_conf.CONF
GUARDED_DRIVER = 'migration_guard.GuardedLibvirtDriver'


class LibvirtCloudTestCase(libvirt_base.ServersTestBase):
    """``GUARDED`` runs the guarded driver with ``GUARDS`` on every
    service; otherwise stock Nova's LibvirtDriver runs with the plugin
    disabled, and the test records what stock Nova does."""

    GUARDS = ()
    GUARDED = True
    ADMIN_API = True
    microversion = 'latest'
    CAST_AS_CALL = False

    def setUp(self):
        super().setUp()
        self.useFixture(cloud.GuardsFixture(self.GUARDS if self.GUARDED
                                            else ()))
        if not self.STUB_COMPUTE_ID:
            # Nova's real node-identity checks: each compute is its own
            # machine with its own compute_id file, holding the node uuid
            # Nova's start_compute() gives that host.
            self.useFixture(fixtures.MonkeyPatch(
                'nova.virt.node.read_local_node_uuid',
                lambda: str(getattr(uuids, 'node_%s' % CONF.host))))

    def stop_compute(self, host, force_down=True):
        """Stop nova-compute on ``host`` and, as an operator would before
        an evacuation, mark it forced down (as EmbeddedCloudTestCase)."""
        self.computes[host].stop()
        if force_down:
            self.set_forced_down(host, True)

    def set_forced_down(self, host, forced):
        service = self.admin_api.get_services(
            binary='nova-compute', host=host)[0]
        self.admin_api.put_service_force_down(service['id'], forced)

    def _setup_compute_service(self):
        self.flags(compute_driver=(GUARDED_DRIVER if self.GUARDED else
                                   'libvirt.LibvirtDriver'))
