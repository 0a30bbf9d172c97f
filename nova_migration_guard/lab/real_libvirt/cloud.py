"""Two real libvirt daemons with a client connection and an event
recorder each, and the guest image: what every real-tier user starts
from (tests/real_libvirt, benchmarks, ``demo --real``)."""

import os

import fixtures

from nova_migration_guard.lab.real_libvirt import guest_image
from nova_migration_guard.lab.real_libvirt import guests
from nova_migration_guard.lab.real_libvirt import hosts


class Unavailable(Exception):
    """This machine cannot run the real tier (the reason says why)."""


def check_environment():
    problem = hosts.environment_problem()
    if problem:
        raise Unavailable(problem)


class RealLibvirtCloud(fixtures.Fixture):
    """``hosts`` (TwoLibvirtHosts: ``a`` and ``b``), ``conn`` (a client
    connection per host name), ``events`` (an EventRecorder watching
    both) and ``image`` (the guest's kernel and initramfs)."""

    def _setUp(self):
        check_environment()
        self.image = guest_image.ensure_image()
        self.hosts = self.useFixture(hosts.TwoLibvirtHosts(
            capabilities_cache=capabilities_cache()))
        self.events = self.useFixture(hosts.EventRecorder())
        self.conn = {}
        for host in (self.hosts.a, self.hosts.b):
            self.conn[host.name] = self.hosts.connect(host)
            self.events.watch(self.conn[host.name], host.name)

    def start_guest(self, host_name, name, **kwargs):
        """Define, start and wait for the boot of a guest on the host;
        returns (domain, console log path)."""
        domain, console = guests.create(
            self.conn[host_name], self.image, name, self.hosts.base_dir,
            **kwargs)
        guests.wait_booted(name, console)
        return domain, console

    def running_on(self, name):
        """Names of the hosts where the domain ``name`` runs."""
        found = []
        for host_name, conn in sorted(self.conn.items()):
            try:
                state = conn.lookupByName(name).state()[0]
            except hosts.libvirt.libvirtError:
                continue
            if state == hosts.libvirt.VIR_DOMAIN_RUNNING:
                found.append(host_name)
        return found


def capabilities_cache():
    return os.path.join(guest_image.cache_dir(), 'qemu-capabilities')
