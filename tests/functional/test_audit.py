"""``nova-migration-guard audit`` against the embedded cloud's compute API
served on a real loopback port, read through openstacksdk.

Each test plants one problem on purpose (through Nova's API, or through
Nova's objects where only a bug or a crash would produce it) and checks
that the audit finds exactly that problem; a clean cloud gives nothing.
"""

import datetime
import io
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time

import fixtures
from nova import context as nova_context
from nova import objects
from oslo_utils import timeutils

from nova_migration_guard.audit import findings
from nova_migration_guard.cmd import audit as audit_cmd
from nova_migration_guard.lab.embedded import http
from tests.functional import base

CLOUD = 'embedded'
READER_TOKEN = secrets.token_urlsafe(32)


class AuditTestCase(base.EmbeddedCloudTestCase):

    NUMBER_OF_COMPUTES = 3

    def setUp(self):
        super().setUp()
        self.loopback = self.useFixture(http.LoopbackComputeAPI(tokens={
            READER_TOKEN: ('reader', http.ADMIN_IDENTITY[1], ('reader',))}))
        tmp = self.useFixture(fixtures.TempDir())
        self.clouds_yaml = self.loopback.clouds_yaml(
            os.path.join(tmp.path, 'clouds.yaml'), cloud=CLOUD)
        self.useFixture(fixtures.EnvironmentVariable(
            'OS_CLIENT_CONFIG_FILE', self.clouds_yaml))
        self.useFixture(fixtures.EnvironmentVariable('OS_CLOUD'))
        self.ctxt = nova_context.get_admin_context()
        self.group = self.create_anti_affinity_group('web')
        self.vm1 = self.boot_server(group=self.group, name='vm1')
        self.vm2 = self.boot_server(group=self.group, name='vm2')
        self.host1 = self.server_host(self.vm1)
        self.host2 = self.server_host(self.vm2)
        self.free_host, = {'host1', 'host2', 'host3'} - {self.host1,
                                                         self.host2}

    # ------------------------------------------------------------ helpers

    def audit(self, *args):
        """Run the command in-process; (exit status, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        code = audit_cmd.main(['--os-cloud', CLOUD] + list(args), out=out,
                              err=err)
        return code, out.getvalue(), err.getvalue()

    def audit_json(self, *args, expected_code=1):
        code, out, err = self.audit('--json', *args)
        self.assertEqual(expected_code, code, out + err)
        report = json.loads(out)
        self.assertEqual(expected_code == 0, report['clean'])
        return report

    def assertFound(self, report, kind, subject, *words):
        """The report has exactly one finding, of ``kind`` about
        ``subject``, whose message names every one of ``words``."""
        self.assertEqual([(kind, subject)],
                         [(f['kind'], f['subject'])
                          for f in report['findings']], report)
        message = report['findings'][0]['message']
        for word in words:
            self.assertIn(word, message)
        return message

    def instance(self, server):
        return objects.Instance.get_by_uuid(self.ctxt, server['id'])

    def set_host(self, server, host):
        """What a lost update or a half-done move leaves: Nova's record of
        the instance's host changed behind everyone's back."""
        instance = self.instance(server)
        instance.host = instance.node = host
        instance.compute_id = objects.ComputeNode.get_by_nodename(
            self.ctxt, host).id
        instance.save()

    def add_migration(self, server, status, source, dest,
                      migration_type='live-migration', age=0):
        """A migration record of ``server`` as the conductor and computes
        write them, last changed ``age`` seconds ago."""
        dest_node = objects.ComputeNode.get_by_nodename(self.ctxt, dest)
        instance = self.instance(server)
        migration = objects.Migration(
            self.ctxt, instance_uuid=server['id'],
            user_id=instance.user_id, project_id=instance.project_id,
            migration_type=migration_type, status=status,
            source_compute=source, source_node=source,
            dest_compute=dest, dest_node=dest, dest_host='127.0.0.1',
            dest_compute_id=dest_node.id, hidden=False,
            cross_cell_move=False, old_instance_type_id=1,
            new_instance_type_id=1,
            created_at=timeutils.utcnow() - datetime.timedelta(seconds=age))
        migration.create()
        return migration

    def add_twin_node(self, nodename, host):
        """A second compute node record named ``nodename`` under ``host``'s
        service, as a compute whose identity changed would create it."""
        node = objects.ComputeNode.get_by_nodename(self.ctxt, nodename)
        service = objects.Service.get_by_compute_host(self.ctxt, host)
        twin = objects.ComputeNode(self.ctxt)
        for field in ('vcpus', 'memory_mb', 'local_gb', 'vcpus_used',
                      'memory_mb_used', 'local_gb_used', 'hypervisor_type',
                      'hypervisor_version', 'cpu_info',
                      'cpu_allocation_ratio', 'ram_allocation_ratio',
                      'disk_allocation_ratio'):
            setattr(twin, field, getattr(node, field))
        twin.host = host
        twin.service_id = service.id
        twin.hypervisor_hostname = nodename
        twin.create()
        return twin

    # ------------------------------------------------------------ tests

    def test_clean_cloud(self):
        # Members on distinct hosts and one real, completed live migration
        # that respects the group.
        self.live_migrate(self.vm1, host=self.free_host)
        self.wait_for_migration(self.vm1)
        self.wait_until_settled(self.vm1)
        self.assertEqual(self.free_host, self.server_host(self.vm1))

        code, out, err = self.audit()
        self.assertEqual(0, code, out + err)
        self.assertEqual('clean: nothing found\n', out)
        # over the loopback port, not wsgi-intercept
        self.assertGreaterEqual(self.loopback.requests_served, 4)
        self.assertIn('read servers: 2, server groups: 1, migrations: 1, '
                      'hypervisors: 3', err)
        report = self.audit_json(expected_code=0)
        self.assertEqual([], report['findings'])
        self.assertEqual({'servers': 2, 'server_groups': 1, 'migrations': 1,
                          'hypervisors': 3}, report['counts'])

    def test_every_page_read(self):
        """With the API's page size at 1, every list takes several pages;
        the audit reads them all (and still finds the problem)."""
        self.flags(max_limit=1, group='api')
        self.create_anti_affinity_group('empty')
        self.boot_server(name='vm3')
        self.add_migration(self.vm1, 'completed', self.free_host,
                           self.host2)
        self.add_migration(self.vm2, 'failed', self.host2, self.free_host)
        before = self.loopback.requests_served
        report = self.audit_json()
        # one request per item and one more per list (server groups: the
        # empty page after the last; others: the last page still links on)
        self.assertGreaterEqual(self.loopback.requests_served - before,
                                3 + 1 + 2 + 1 + 2 + 1 + 3 + 1)
        self.assertEqual({'servers': 3, 'server_groups': 2, 'migrations': 2,
                          'hypervisors': 3}, report['counts'])
        self.assertFound(report, findings.HOST_MISMATCH,
                         'instance %s' % self.vm1['id'])

    def test_anti_affinity_violation(self):
        self.set_host(self.vm2, self.host1)
        report = self.audit_json()
        self.assertFound(
            report, findings.ANTI_AFFINITY,
            'server group %s' % self.group['id'], 'web', self.vm1['id'],
            self.vm2['id'], 'has 2 members on host %s: ' % self.host1,
            'max_server_per_host=1')

        # The table names the same.
        code, out, _ = self.audit()
        self.assertEqual(1, code)
        lines = out.splitlines()
        self.assertEqual(['kind', 'subject', 'finding'], lines[0].split())
        self.assertEqual(3, len(lines))
        self.assertTrue(lines[2].startswith('anti-affinity  server group '),
                        out)

    def test_max_server_per_host_respected(self):
        group = self.create_anti_affinity_group(
            'pairs', rules={'max_server_per_host': 2})
        a, b, c = (self.boot_server(group=group, name=name)
                   for name in ('a', 'b', 'c'))
        self.set_host(a, 'host1')
        self.set_host(b, 'host1')
        self.set_host(c, 'host2')
        self.set_host(self.vm1, 'host3')
        self.set_host(self.vm2, 'host2')
        self.audit_json(expected_code=0)
        self.set_host(c, 'host1')
        self.assertFound(self.audit_json(), findings.ANTI_AFFINITY,
                         'server group %s' % group['id'], 'pairs',
                         'max_server_per_host=2', '3 members on host host1')

    def test_in_flight_move_counted(self):
        # vm2 live-migrating onto vm1's host: until it ends, both hosts
        # hold it.
        migration = self.add_migration(self.vm2, 'running', self.host2,
                                       self.host1)
        report = self.audit_json()
        self.assertFound(
            report, findings.ANTI_AFFINITY,
            'server group %s' % self.group['id'],
            'has 2 members on host %s, counting in-flight moves' % self.host1,
            '%s) moving %s->%s (migration %d, running)' % (
                self.vm2['id'], self.host2, self.host1, migration.id))

        # Once the move failed (vm2 stays on its source) the group is fine.
        migration.status = 'failed'
        migration.save()
        self.audit_json(expected_code=0)

    def test_stuck_migration(self):
        migration = self.add_migration(self.vm2, 'running', self.host2,
                                       self.free_host, age=7530)
        report = self.audit_json()
        message = self.assertFound(
            report, findings.STUCK_MIGRATION, 'migration %d' % migration.id,
            # 2 h 05 min 30 s by the API's clock (its Date header has whole
            # seconds)
            self.vm2['id'], "'running'", 'for 2 h 05 min',
            '%s->%s' % (self.host2, self.free_host))
        self.assertIn('3600 s', message)
        # Not stuck when the limit is longer than its age.
        self.audit_json('--stuck-after', str(3 * 3600), expected_code=0)

    def test_unknown_state(self):
        # A move failed and left the instance in ERROR.
        migration = self.add_migration(self.vm1, 'error', self.host1,
                                       self.free_host)
        self._reset_state(self.vm1, 'error')
        report = self.audit_json()
        self.assertFound(
            report, findings.UNKNOWN_STATE, 'instance %s' % self.vm1['id'],
            'is in ERROR on host %s' % self.host1,
            'migration %d' % migration.id, "ended 'error'")

    def _reset_state(self, server, state):
        # synchronous: the API writes the state itself
        self.admin_api.post_server_action(
            server['id'], {'os-resetState': {'state': state}})
        self.assertEqual(state.upper(), self.admin_api.get_server(
            server['id'])['status'])

    def test_host_disagrees_with_completed_migration(self):
        # A real live migration completes, then Nova's record of the host
        # goes back to the source (what a lost update leaves).
        self.live_migrate(self.vm1, host=self.free_host)
        record = self.wait_for_migration(self.vm1)
        self.wait_until_settled(self.vm1)
        self.set_host(self.vm1, self.host1)
        report = self.audit_json()
        self.assertFound(
            report, findings.HOST_MISMATCH, 'instance %s' % self.vm1['id'],
            'is on host %s' % self.host1,
            'live-migration %s->%s (migration %d)' % (
                self.host1, self.free_host, record['id']),
            "'completed'", 'its destination %s' % self.free_host)

    def test_hypervisor_hostname_under_two_hosts(self):
        node = objects.ComputeNode.get_by_nodename(self.ctxt, self.host1)
        twin = self.add_twin_node(self.host1, self.free_host)
        report = self.audit_json()
        self.assertFound(
            report, findings.DUPLICATE_HYPERVISOR, 'hypervisor %s'
            % self.host1, 'appears under 2 hosts',
            '%s (compute node %s)' % (self.host1, node.uuid),
            '%s (compute node %s)' % (self.free_host, twin.uuid))

    def test_every_kind_through_the_console_script(self):
        """All problems at once, found by the installed command in another
        process (its stdout must be JSON, its progress on stderr)."""
        self.set_host(self.vm2, self.host1)                  # anti-affinity
        stuck = self.add_migration(self.vm1, 'running', self.host1,
                                   self.free_host, age=7200)  # stuck
        self.add_migration(self.vm2, 'completed', self.free_host,
                           self.host2)                       # host mismatch
        vm3 = self.boot_server(name='vm3')
        vm3_host = self.server_host(vm3)
        self.add_migration(vm3, 'error', vm3_host,
                           'host1' if vm3_host != 'host1' else 'host2')
        self._reset_state(vm3, 'error')                      # unknown state
        self.add_twin_node(self.host2, self.free_host)   # duplicate

        result = self._console('audit', '--os-cloud', CLOUD, '--json')
        self.assertEqual(1, result['code'], result)
        report = json.loads(result['stdout'])
        self.assertEqual(sorted(findings.KINDS),
                         sorted({f['kind'] for f in report['findings']}),
                         report)
        subjects = {f['subject'] for f in report['findings']}
        self.assertEqual({
            'server group %s' % self.group['id'],
            'migration %d' % stuck.id,
            'instance %s' % vm3['id'],
            'instance %s' % self.vm2['id'],
            'hypervisor %s' % self.host2}, subjects)
        self.assertIn('audit embedded: listing migrations', result['stderr'])

    def _console(self, *args, timeout=120):
        """Run the installed console script in a subprocess while this
        process keeps serving the API (polling, so that the server's
        threads run whatever the concurrency model)."""
        script = os.path.join(os.path.dirname(sys.executable),
                              'nova-migration-guard')
        with tempfile.TemporaryFile('w+') as out, \
                tempfile.TemporaryFile('w+') as err:
            proc = subprocess.Popen([script] + list(args), stdout=out,
                                    stderr=err, env=dict(os.environ))
            deadline = time.monotonic() + timeout
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    proc.kill()
                    self.fail('%s did not end within %s s' % (args, timeout))
                time.sleep(0.1)
            out.seek(0)
            err.seek(0)
            return {'code': proc.returncode, 'stdout': out.read(),
                    'stderr': err.read()}

    def test_not_an_admin(self):
        self.loopback.clouds_yaml(self.clouds_yaml, cloud=CLOUD,
                                  token=READER_TOKEN)
        code, out, err = self.audit()
        self.assertEqual(2, code, out + err)
        self.assertEqual('', out)
        last = err.strip().splitlines()[-1]
        self.assertTrue(last.startswith(
            'nova-migration-guard audit: cannot read cloud embedded: '), err)
        self.assertIn('HTTP 403', last)
        self.assertNotIn('Traceback', err)
