"""Base class of the real hypervisor tests: two libvirtd, TCG guests.

Each test gets its own two daemons (they start in well under a second), so
a test cannot leave state for the next one.  A machine that cannot run
them (not root, libvirt not installed, ...) skips the tests, except under
CI=true, where that is a failure: CI must run this tier.
"""

import os
import re
import time
import uuid

from oslotest import base

from tests.real_libvirt import guest_image
from tests.real_libvirt import hosts

# How long a TCG guest may take from create() to GUEST-UP on its console.
BOOT_TIMEOUT = 60.0

_HEARTBEAT = re.compile(r'^heartbeat (\d+) ', re.MULTILINE)


class RealLibvirtTestCase(base.BaseTestCase):
    """``self.hosts`` (TwoLibvirtHosts), ``self.conn`` (a client connection
    per host name) and ``self.events`` (an EventRecorder watching both),
    unless a test class sets ``start_hosts = False``."""

    start_hosts = True

    def setUp(self):
        super().setUp()
        problem = hosts.environment_problem()
        if problem:
            if os.environ.get('CI', '').lower() == 'true':
                self.fail('CI=true requires the real libvirt tier: '
                          + problem)
            self.skipTest(problem)
        self.image = guest_image.ensure_image()
        if self.start_hosts:
            self.hosts = self.useFixture(hosts.TwoLibvirtHosts(
                capabilities_cache=self.capabilities_cache()))
            self.events = self.useFixture(hosts.EventRecorder())
            self.conn = {}
            for host in (self.hosts.a, self.hosts.b):
                self.conn[host.name] = self.hosts.connect(host)
                self.events.watch(self.conn[host.name], host.name)

    def create_guest(self, conn, name, console_dir, memory_mib=128,
                     **dirty):
        """Define and start a guest on conn; returns (domain, console log
        path).  dirty takes dirty_mb, dirty_rate and dirty_spin."""
        console = os.path.join(console_dir, 'console-%s.log' % name)
        xml = guest_image.domain_xml(
            name=name, uuid=uuid.uuid4(), memory_mib=memory_mib, vcpus=1,
            kernel=self.image.kernel, initrd=self.image.initrd,
            console_log=console, **dirty)
        domain = conn.defineXML(xml)
        domain.create()
        return domain, console

    def start_guest(self, conn, name, console_dir, **kwargs):
        """create_guest(), then wait until the guest booted."""
        domain, console = self.create_guest(conn, name, console_dir,
                                            **kwargs)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while 'GUEST-UP' not in self.console(console):
            if time.monotonic() > deadline:
                self.fail('guest %s did not boot within %s s; console: %s'
                          % (name, BOOT_TIMEOUT, self.console(console)))
            time.sleep(0.1)
        return domain, console

    @staticmethod
    def capabilities_cache():
        return os.path.join(guest_image.cache_dir(), 'qemu-capabilities')

    @staticmethod
    def console(path):
        try:
            with open(path, errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def last_heartbeat(self, console):
        """Number of the guest's last heartbeat line, -1 before the first."""
        beats = _HEARTBEAT.findall(self.console(console))
        return int(beats[-1]) if beats else -1

    def wait_for_heartbeat_after(self, console, number, timeout=20.0):
        """Wait until the guest printed a heartbeat numbered above number."""
        deadline = time.monotonic() + timeout
        while self.last_heartbeat(console) <= number:
            if time.monotonic() > deadline:
                self.fail('no heartbeat after #%d within %s s; console '
                          'tail: %s' % (number, timeout,
                                        self.console(console)[-500:]))
            time.sleep(0.1)

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
