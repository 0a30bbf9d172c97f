"""The real cloud's libvirt computes without starting them: their
configuration, the cloud's choice on a machine that cannot run them, and
the daemon records that let another process stop them."""

import json
import os
import signal
import subprocess
from unittest import mock

import fixtures
import testtools

from nova_migration_guard.lab.real_libvirt import hosts
from nova_migration_guard.lab.realcloud import cloud as cloud_mod
from nova_migration_guard.lab.realcloud import libvirt_computes

BASE_PORT = 48100


class ConfigTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.state = self.useFixture(fixtures.TempDir()).path
        self.cloud = cloud_mod.Cloud(self.state, base_port=BASE_PORT,
                                     real_libvirt=True)

    def test_six_computes(self):
        self.assertEqual(['compute1', 'compute2', 'compute3', 'compute4',
                          'libvirt-a', 'libvirt-b'], self.cloud.computes)
        self.assertEqual(['nova-compute-libvirt-a', 'nova-compute-libvirt-b'],
                         self.cloud.nova_service_names()[-2:])
        self.assertEqual(('nova-compute', 'libvirt-a'),
                         self.cloud._binary_and_host('nova-compute-libvirt-a'))
        self.assertEqual(('nova-conductor', 'conductor2'),
                         self.cloud._binary_and_host(
                             'nova-conductor-conductor2'))

    def test_libvirt_compute_conf(self):
        text = self.cloud._host_conf('libvirt-b')
        etc = os.path.join(self.state, 'etc', 'nova')
        for line in (
                'host = libvirt-b',
                'compute_driver = migration_guard.GuardedLibvirtDriver',
                'my_ip = 127.0.0.3',
                'connection_uri = qemu+unix:///system?socket=%s' %
                os.path.join(self.state, 'libvirt', 'B', 'sock',
                             'libvirt-sock'),
                'live_migration_scheme = tcp',
                'live_migration_inbound_addr = 127.0.0.3',
                'virt_type = qemu',
                # One path on both, a directory of its own in each one's
                # mount namespace.
                'instances_path = %s' % os.path.join(self.state, 'nova',
                                                     'instances'),
                'cpu_mode = none',
                # The compute's own files, in its order, for privsep.
                'helper_command = %s --config-file %s --config-file %s' % (
                    cloud_mod.Cloud.bin('privsep-helper'),
                    os.path.join(etc, 'nova.conf'),
                    os.path.join(etc, 'libvirt-b.conf'))):
            self.assertIn(line + '\n', text)
        self.assertNotIn('[libvirt]', self.cloud._host_conf('compute1'))

    def test_daemons_ports(self):
        daemons = libvirt_computes.daemons(self.cloud)
        self.assertEqual(
            {'libvirt-a': ('A', '127.0.0.2', 16509, (48116, 48147)),
             'libvirt-b': ('B', '127.0.0.3', 16509, (48148, 48179))},
            {compute: (host.name, host.address, host.tcp_port,
                       host.migration_ports)
             for compute, host in daemons.items()})

    def test_never_split_policy_only_with_libvirt_computes(self):
        self.assertIn('custom_policies = ' + libvirt_computes.CUSTOM_POLICIES,
                      self.cloud._nova_conf([]))
        fake_only = cloud_mod.Cloud(self.useFixture(fixtures.TempDir()).path)
        self.assertNotIn('custom_policies', fake_only._nova_conf([]))


class UnfitMachineTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.cloud = cloud_mod.Cloud(self.useFixture(fixtures.TempDir()).path,
                                     real_libvirt=True)
        self.useFixture(fixtures.MockPatchObject(
            libvirt_computes, 'environment_problem',
            return_value='real libvirt tests need root'))

    def test_without_libvirt_computes_outside_ci(self):
        self.useFixture(fixtures.EnvironmentVariable('CI'))
        with mock.patch('nova_migration_guard.report.progress') as progress:
            self.cloud._check_libvirt_environment()
        self.assertEqual(['compute1', 'compute2', 'compute3', 'compute4'],
                         self.cloud.computes)
        progress.assert_called_once_with(
            'realcloud: without the libvirt computes: real libvirt tests '
            'need root')

    def test_refused_under_ci(self):
        self.useFixture(fixtures.EnvironmentVariable('CI', 'true'))
        exc = self.assertRaises(cloud_mod.CloudError,
                                self.cloud._check_libvirt_environment)
        self.assertEqual('cannot start the libvirt computes (CI=true '
                         'requires them): real libvirt tests need root',
                         str(exc))


class DaemonRecordTest(testtools.TestCase):
    """A daemon started by one process (the cloud's ``up``) is stopped by
    another (``down``) from its record, by PID."""

    def setUp(self):
        super().setUp()
        self.base = self.useFixture(fixtures.TempDir()).path
        self.host = hosts.pair(self.base, lambda i: (100 + i, 200 + i),
                               tcp_port=16509, die_with_parent=False)[1]
        os.makedirs(os.path.join(self.host.dir, 'run'))
        # Stands in for the daemon: its PID and start time are recorded.
        self.host.process = subprocess.Popen(['sleep', '60'])
        self.addCleanup(self.host.process.wait)
        self.addCleanup(self.host.process.kill)
        self.host.mount_namespace = hosts.mount_namespace(os.getpid())

    def test_record_round_trip(self):
        again = hosts.LibvirtHost.from_record(json.loads(json.dumps(
            self.host.record())))
        self.assertEqual(
            ('B', '127.0.0.3', 16509, (101, 201), self.host.dir,
             self.host.client_uri, self.host.p2p_uri),
            (again.name, again.address, again.tcp_port,
             again.migration_ports, again.dir, again.client_uri,
             again.p2p_uri))
        self.assertIsNone(again.process.poll())
        again.process.send_signal(signal.SIGTERM)
        again.process.wait(10)
        self.assertEqual(0, again.process.poll())

    def test_recycled_pid_is_not_the_daemon(self):
        record = self.host.record()
        record['start_time'] = str(int(record['start_time']) - 1)
        again = hosts.LibvirtHost.from_record(record)
        self.assertEqual(0, again.process.poll())
        again.process.kill()
        self.assertIsNone(self.host.process.poll())

    def test_a_namespace_number_alone_is_not_the_daemons(self):
        # Linux reuses a dead namespace's number: the recorded one now
        # names ours, where this host's directories are not mounted.
        # stop() kills QEMUs and stragglers only where they are.
        again = hosts.LibvirtHost.from_record(self.host.record())
        self.assertFalse(again._in_own_namespace(os.getpid()))
        self.assertFalse(again._in_own_namespace(self.host.process.pid))
