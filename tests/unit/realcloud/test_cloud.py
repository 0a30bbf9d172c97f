"""The real-services cloud's own logic, without starting it: refusals
before anything starts, configuration rendering, process handling, the
Neutron stub."""

import http.client
import json
import os
import socket
import subprocess
import threading
from unittest import mock

import fixtures
import testtools

from nova_migration_guard.lab.realcloud import cloud as cloud_mod
from nova_migration_guard.lab.realcloud import neutron_stub
from nova_migration_guard.lab.realcloud import processes
from nova_migration_guard.lab.embedded import processes as embedded_processes


class MissingCommandsTest(testtools.TestCase):

    def test_missing_commands_named_with_their_package(self):
        state = self.useFixture(fixtures.TempDir()).path
        real_access = os.access

        def access(path, mode):
            return (not path.endswith('/mariadbd')) and real_access(
                path, mode)
        with mock.patch('os.access', access):
            exc = self.assertRaises(cloud_mod.CloudError,
                                    cloud_mod.Cloud(state).up)
        self.assertIn('mariadbd (Debian package mariadb-server)', str(exc))
        self.assertNotIn('\n', str(exc))
        self.assertFalse(os.path.exists(os.path.join(state, 'state.json')))


class UpRefusesTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.state = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.MockPatchObject(
            cloud_mod.Cloud, 'missing_commands', return_value=[]))

    def test_taken_port_named(self):
        # A base whose ports are all free (the ports next to an ephemeral
        # one can be anybody's), then the etcd one taken.
        base = next(base for base in range(20000, 30000, 50) if not any(
            processes.port_taken(base + offset)
            for offset in cloud_mod.PORTS.values()))
        port = base + cloud_mod.PORTS['etcd']
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', port))
            sock.listen(1)
            cloud = cloud_mod.Cloud(self.state, base_port=base)
            exc = self.assertRaises(cloud_mod.CloudError, cloud.up)
        self.assertEqual(
            'port %d (etcd) on 127.0.0.1 is taken: stop what listens there '
            'or choose another --base-port' % port, str(exc))

    def test_existing_cloud_not_overwritten(self):
        cloud = cloud_mod.Cloud(self.state)
        cloud.save()
        exc = self.assertRaises(cloud_mod.CloudError, cloud.up)
        self.assertIn('already holds a cloud', str(exc))


class ConfigTest(testtools.TestCase):

    def test_ini_repeats_lists_and_drops_none(self):
        text = cloud_mod._ini({
            'DEFAULT': {'debug': 'true', 'absent': None},
            'filter_scheduler': {'available_filters': ['a.all', 'b.One']}})
        self.assertEqual(
            '[DEFAULT]\ndebug = true\n\n[filter_scheduler]\n'
            'available_filters = a.all\navailable_filters = b.One\n',
            text)

    def test_guarded_nova_conf_enables_the_filter(self):
        cloud = cloud_mod.Cloud(self.useFixture(fixtures.TempDir()).path)
        stock = cloud._nova_conf([])
        guarded = cloud._nova_conf(['anti_affinity'])
        self.assertIn('guards = \n', stock)
        self.assertNotIn('InFlightAntiAffinityFilter', stock)
        self.assertIn('guards = anti_affinity\n', guarded)
        self.assertIn(',InFlightAntiAffinityFilter\n', guarded)
        self.assertIn('available_filters = ' + cloud_mod.GUARD_FILTER,
                      guarded)

    def test_passwords_generated_per_cloud(self):
        one = cloud_mod.Cloud(self.useFixture(fixtures.TempDir()).path)
        two = cloud_mod.Cloud(self.useFixture(fixtures.TempDir()).path)
        self.assertNotEqual(one.password('admin'), two.password('admin'))
        self.assertEqual(one.password('admin'), one.password('admin'))


class ProcessesTest(testtools.TestCase):

    def test_stop_ends_the_whole_group(self):
        log = os.path.join(self.useFixture(fixtures.TempDir()).path, 'log')
        # A shell with a child: both are in the service's session.
        started = processes.start('sleeper', [
            'sh', '-c', 'sleep 60 & echo $! ; wait'], log)
        self.assertTrue(processes.alive(started))
        processes.wait_until(lambda: os.path.getsize(log) > 0, started,
                             'the child pid in the log', timeout=10)
        with open(log) as f:
            child = int(f.read().split()[0])
        self.assertEqual(['sleeper'], processes.stop(started, timeout=5))
        self.assertFalse(processes.alive(started))
        # Gone, or a zombie waiting for init to reap it.
        stat = processes._stat(child)
        self.assertTrue(stat is None or stat[0] in ('Z', 'X'), stat)
        self.assertEqual([], processes.stop(started))

    def test_kill_and_exit_status(self):
        log = os.path.join(self.useFixture(fixtures.TempDir()).path, 'log')
        running = processes.start('sleeper', ['sleep', '60'], log)
        self.assertIsNone(processes.exit_status(running))
        self.assertEqual(-9, processes.kill(running))
        self.assertFalse(processes.alive(running))
        # A second kill finds it gone and answers the same.
        self.assertEqual(-9, processes.kill(running))
        ended = processes.start('false', ['false'], log)
        self.assertEqual(1, processes.exit_status(ended, timeout=10))

    def test_extra_compute_reads_its_overrides_last(self):
        cloud = cloud_mod.Cloud(self.useFixture(fixtures.TempDir()).path)
        os.makedirs(cloud.path('etc', 'nova'))
        os.makedirs(cloud.path('logs'))
        with mock.patch.object(cloud, '_start') as start:
            cloud.start_extra_compute('nova-compute-x-2', 'x', {
                'DEFAULT': {'report_interval': '1'}})
        name, argv = start.call_args[0]
        self.assertEqual('nova-compute-x-2', name)
        files = argv[2::2]
        self.assertEqual([cloud.path('etc', 'nova', f) for f in (
            'nova.conf', 'x.conf', 'nova-compute-x-2.conf')], files)
        with open(files[1]) as f:
            self.assertIn('host = x\n', f.read())
        with open(files[2]) as f:
            self.assertEqual('[DEFAULT]\nreport_interval = 1\n', f.read())

    def test_recycled_pid_is_not_ours(self):
        proc = subprocess.Popen(['sleep', '30'])
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        other = processes.Started(name='x', pid=proc.pid, start_time=1,
                                  log='/dev/null')
        self.assertFalse(processes.alive(other))
        self.assertEqual([], processes.stop(other))
        self.assertIsNone(proc.poll())


class NeutronStubTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.port = embedded_processes.free_port()
        self.server = neutron_stub.Server(('127.0.0.1', self.port),
                                          neutron_stub.Handler)
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)

    def request(self, method, path, body=None):
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=5)
        self.addCleanup(conn.close)
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())

    def test_reads_are_empty_lists(self):
        self.assertEqual((200, {'ports': []}), self.request(
            'GET', '/v2.0/ports?device_id=x&fields=id'))
        self.assertEqual((200, {'security_groups': []}), self.request(
            'GET', '/v2.0/security-groups.json'))
        status, body = self.request('GET', '/')
        self.assertEqual('v2.0', body['versions'][0]['id'])

    def test_writes_refused(self):
        status, body = self.request('POST', '/v2.0/ports', b'{"port": {}}')
        self.assertEqual(404, status)
        self.assertIn('not supported', body['NeutronError']['message'])
