"""Nova's own libvirt driver, one per host, on the two real daemons.

Real here: ``nova.virt.libvirt.driver.LibvirtDriver.live_migration()`` and
everything under it: ``_live_migration_operation`` (``Guest.migrate``,
i.e. migrateToURI3 with the flags ``_parse_migration_flags`` builds from
nova.conf) in Nova's thread pool, ``_live_migration_monitor`` polling the
job statistics, ``nova.virt.libvirt.migration`` (downtime steps, stats,
timeout action), ``Host`` with its connection and lifecycle events
(delivered to ``emit_event``), libvirt-python, libvirtd and QEMU.

Stubbed, because there is no Nova cloud here (no database, no RPC, no
conductor, no destination compute service):

* the Instance and Migration are real ``nova.objects`` built in memory;
  their ``save()`` records the changed fields instead of writing a
  database;
* the ``LibvirtLiveMigrateData`` that the destination's
  ``pre_live_migration`` would return is built by hand (the guest has no
  disk, volume, network or serial port, so there is nothing to describe);
* ``post_method`` and ``recover_method``, which nova-compute points at
  ``_post_live_migration`` and ``_rollback_live_migration`` (RPC to the
  destination and the conductor), record their calls;
* ``virtapi``: the driver does not use it on this path;
* the Host's connection events, which enable or disable the compute
  service record in the database, are recorded instead.

Nova runs in native-threading mode (eventlet is not imported), as
nova-compute does since its threading mode exists.  A nova-compute process
has one libvirt Host and so one libvirt event loop; two drivers share this
test process, so the event loop thread is started once (by the hosts
fixture) instead of once per Host.
"""

import logging
import re
import threading
import time

import fixtures
from oslo_config import fixture as config_fixture
from oslo_utils import uuidutils

import nova.conf
from nova import objects
import nova_migration_guard.conf  # noqa: F401  registers our options
from nova.objects import fields
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import guest as libvirt_guest

from nova_migration_guard.lab.real_libvirt import guest_image
from nova_migration_guard.lab.real_libvirt import hosts
from nova_migration_guard import nova_compat
from nova_migration_guard.virt.libvirt import convergence as ladder_io

CONF = nova.conf.CONF

# The non-converging guest and the migration stream's cap (guest_image).
DIRTY_TWICE_THE_CAP = guest_image.DIRTY_TWICE_THE_CAP
BANDWIDTH_MIB_S = guest_image.BANDWIDTH_MIB_S
# Nova's completion timeout per GiB (min. 2 GiB per guest) for stock runs of
# that guest: 120 s instead of the default 800 s/GiB's 1600 s.  The passes
# never shrink, so the longer default ends the same way.
SHORT_COMPLETION_TIMEOUT_S_PER_GIB = 60


_CONFIGURED = []


def _configure_once():
    """Nova's options parsed (no config file) and its objects registered,
    once per process."""
    if not _CONFIGURED:
        CONF([], project='nova', default_config_files=[],
             default_config_dirs=[])
        objects.register_all()
        _CONFIGURED.append(True)


class _SharedEventLoop(fixtures.Fixture):
    """Host.initialize() starts the process's libvirt event loop through
    the hosts fixture's single loop thread (see the module docstring)."""

    def _setUp(self):
        def start(handler):
            hosts.ensure_event_loop()

        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.host._ThreadingLibvirtEventHandler.start',
            start))


class JobStatsRecorder(fixtures.Fixture):
    """Every job-statistics sample Nova's migration monitor takes
    (``Guest.get_job_info``): (monotonic time, host name, domain name,
    JobInfo fields plus ``auto_converge_throttle``, QEMU's CPU throttle
    that JobInfo drops).  ``host_of_uri`` maps a connection URI to its host
    name."""

    def __init__(self, host_of_uri):
        super().__init__()
        self.host_of_uri = host_of_uri

    def _setUp(self):
        self.samples = []
        self._lock = threading.Lock()
        real = libvirt_guest.Guest.get_job_info
        recorder = self

        def get_job_info(guest):
            info = real(guest)
            host = recorder.host_of_uri.get(guest._domain.connect().getURI())
            sample = dict(vars(info), auto_converge_throttle=(
                ladder_io.auto_converge_throttle(guest)))
            with recorder._lock:
                recorder.samples.append(
                    (time.monotonic(), host, guest.name, sample))
            return info

        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.guest.Guest.get_job_info', get_job_info))

    def of(self, name, since=0.0):
        """The samples of domain ``name`` taken at or after ``since``."""
        with self._lock:
            return [info for t, host, guest_name, info in self.samples
                    if guest_name == name and t >= since]

    def passes(self, name, since=0.0):
        """The highest memory pass (memory_iteration) seen, 0 if none."""
        return max([s['memory_iteration'] for s in self.of(name, since)]
                   or [0])

    def peak_throttle(self, name, since=0.0):
        """The highest auto-converge CPU throttle (%) seen, 0 if none: QEMU
        throttles only when the migration was started with auto-converge
        and the guest dirties memory faster than the copy."""
        return max([s['auto_converge_throttle'] or 0
                    for s in self.of(name, since)] or [0])


class _StopDispatching(BaseException):
    """Ends Host._conn_event_thread, whose loop only stops for a
    BaseException (it logs and goes on after an Exception)."""


def _stop_conn_event_thread(host):
    def stop():
        raise _StopDispatching()
    host._conn_event_handler_queue.put(stop)


class Recorder(object):
    """Stands in for a compute manager callback: records each call."""

    def __init__(self, name):
        self.name = name
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))


def _recording_save(obj, saves):
    """``obj.save()`` appends the changed fields to ``saves``."""
    def save(*args, **kwargs):
        saves.append(dict((name, getattr(obj, name))
                          for name in obj.obj_what_changed()))
        obj.obj_reset_changes()
    obj.save = save
    return obj


class NovaLibvirtHosts(fixtures.Fixture):
    """A LibvirtDriver per daemon of a TwoLibvirtHosts fixture.

    ``drivers`` maps host name to its driver; ``events`` the lifecycle
    events each driver emitted (what nova-compute would receive);
    ``stats`` the monitor's job-statistics samples.  ``conf`` overrides
    nova.conf options (``config(group='libvirt', ...)``) before the
    drivers read them.
    """

    def __init__(self, libvirt_hosts, driver_class=None, guards=(),
                 **libvirt_options):
        super().__init__()
        self.libvirt_hosts = libvirt_hosts
        self.driver_class = driver_class or libvirt_driver.LibvirtDriver
        self.guards = list(guards)
        self.libvirt_options = libvirt_options

    def _setUp(self):
        if not nova_compat.native_threading_libvirt_events():
            raise RuntimeError(
                'the real libvirt tier drives Nova in its native-threading '
                'mode, whose libvirt event handler Nova has from 33.x on '
                '(installed: %s)' % nova_compat.nova_version())
        _configure_once()
        self.conf = self.useFixture(config_fixture.Config(CONF))
        self.conf.config(group='libvirt', virt_type='qemu',
                         **self.libvirt_options)
        self.conf.config(group='migration_guard', guards=self.guards)
        self.useFixture(_SharedEventLoop())
        # Last: Nova's thread pools (the drivers' threads ran there); until
        # they are shut down, interpreter exit waits for their workers.
        self.addCleanup(nova_compat.reset_thread_pools)
        self.stats = self.useFixture(JobStatsRecorder({
            host.client_uri: name
            for name, host in self.libvirt_hosts.hosts.items()}))
        self.drivers = {}
        self.events = {}
        for name, libvirt_host in sorted(self.libvirt_hosts.hosts.items()):
            self.drivers[name] = self._driver(name, libvirt_host)

    def _driver(self, name, libvirt_host):
        # The driver reads connection_uri when it creates its Host.
        self.conf.config(group='libvirt',
                         connection_uri=libvirt_host.client_uri)
        driver = self.driver_class(virtapi=None)
        # Connection up/down events enable/disable the compute service
        # record in the database: cloud side, recorded instead.
        self.connection_events = getattr(self, 'connection_events', [])
        driver._host._conn_event_handler = (
            lambda *args: self.connection_events.append((name, args)))
        driver._host.initialize()
        self.addCleanup(driver._host.cleanup)
        self.addCleanup(_stop_conn_event_thread, driver._host)
        # As init_host does: connect now, which registers the lifecycle
        # event callbacks (a destination never calls the driver before
        # the incoming guest's events arrive).
        driver._host.get_connection()
        driver._parse_migration_flags()
        events = self.events[name] = []
        driver.register_event_listener(
            lambda event: events.append((time.monotonic(), event)))
        return driver

    # -- the cloud side, stubbed --------------------------------------

    @staticmethod
    def instance(domain_uuid, name, memory_mb):
        """The Instance nova-compute would load for the guest."""
        flavor = objects.Flavor(
            name='m1.test', memory_mb=memory_mb, vcpus=1, root_gb=0,
            ephemeral_gb=0, swap=0, extra_specs={})
        instance = objects.Instance(
            uuid=str(domain_uuid), display_name=name, flavor=flavor,
            vm_state='active', task_state='migrating', progress=0,
            resources=None, numa_topology=None, pci_requests=None,
            migration_context=None, system_metadata={})
        instance.obj_reset_changes()
        instance.saves = []
        return _recording_save(instance, instance.saves)

    @staticmethod
    def migrate_data(dest, source_host, instance):
        """What the destination's pre_live_migration and the conductor
        would have handed the source: a live (not block) migration to
        ``dest`` (a LibvirtHost), with its Migration record."""
        migration = objects.Migration(
            uuid=uuidutils.generate_uuid(), instance_uuid=instance.uuid,
            source_compute=source_host.name, dest_compute=dest.name,
            migration_type=fields.MigrationType.LIVE_MIGRATION,
            status='running')
        migration.obj_reset_changes()
        migration.saves = []
        _recording_save(migration, migration.saves)
        return objects.LibvirtLiveMigrateData(
            block_migration=False, is_shared_instance_path=True,
            is_shared_block_storage=True, serial_listen_addr=None,
            serial_listen_ports=[],
            # live_migration_inbound_addr unset (Nova's default): the
            # daemons agree on the migration stream address themselves.
            target_connect_addr=None, graphics_listen_addr_vnc=None,
            graphics_listen_addr_spice=None, bdms=[], vifs=[],
            supported_perf_events=[], migration=migration,
            src_supports_numa_live_migration=False,
            dst_supports_numa_live_migration=False)

    def live_migrate(self, source, dest, instance):
        """Run the source driver's ``live_migration()`` (it returns when
        its monitor is done); returns the post_method and recover_method
        recorders, the migrate data and what it raised (None).

        ``dest`` is passed as ``address:port``: Nova builds the
        peer-to-peer URI ``qemu+tcp://<dest>/system`` from it, and each
        daemon here listens on its own port.
        """
        post, recover = Recorder('post'), Recorder('recover')
        data = self.migrate_data(dest, source, instance)
        try:
            self.drivers[source.name].live_migration(
                context=None, instance=instance,
                dest='%s:%d' % (dest.address, dest.tcp_port),
                post_method=post, recover_method=recover,
                block_migration=False, migrate_data=data)
        except Exception as exc:  # e.g. an aborted job: the test decides
            return post, recover, data, exc
        return post, recover, data, None

    def live_migrate_in_background(self, source, dest, instance):
        """live_migrate() in a thread; returns the thread and the dict it
        fills with post, recover, data and error."""
        result = {}
        migrating = threading.Thread(target=lambda: result.update(zip(
            ('post', 'recover', 'data', 'error'),
            self.live_migrate(source, dest, instance))), daemon=True)
        migrating.start()
        return migrating, result


class ConvergenceStepLog(fixtures.Fixture):
    """The convergence ladder's steps, as the guarded driver logs them."""

    def _setUp(self):
        self.records = []
        handler = logging.Handler()
        handler.emit = self.records.append
        logger = logging.getLogger(ladder_io.__name__)
        logger.addHandler(handler)
        self.addCleanup(logger.removeHandler, handler)
        # The probe's result is an INFO record.
        if not logger.isEnabledFor(logging.INFO):
            self.addCleanup(logger.setLevel, logger.level)
            logger.setLevel(logging.INFO)

    def steps(self):
        return [m for m in (r.getMessage() for r in self.records)
                if m.startswith('Convergence: ')]

    def probe_bps(self):
        """What the dirty-rate probe measured (bytes/s; None: none)."""
        for record in self.records:
            found = re.search(r'Dirty-rate probe: the guest dirties '
                              r'([0-9.]+) MiB/s', record.getMessage())
            if found:
                return float(found.group(1)) * 2 ** 20
        return None

    def actions(self):
        """['set-downtime', ..., 'post-copy']"""
        return [m[len('Convergence: '):].split(':')[0].split()[0]
                for m in self.steps()]
