"""The README's main command, ``nova-migration-guard demo``, end to end in a
subprocess on the patched Nova of this environment."""

import json
import os
import subprocess
import sys

import fixtures
import testtools

from nova_migration_guard import nova_compat


class DemoCommandTestCase(testtools.TestCase):

    def _demo(self, *args):
        log = self.useFixture(fixtures.TempDir()).join('demo.log')
        env = dict(os.environ, LC_ALL='C.UTF-8')
        return subprocess.run(
            [sys.executable, '-m', 'nova_migration_guard.cmd.main', 'demo',
             '--log-file', log] + list(args),
            capture_output=True, text=True, timeout=600, env=env), log

    def test_json_outcomes_read_from_the_cloud(self):
        result, log = self._demo('--json')
        self.assertEqual(0, result.returncode, result.stderr)
        report = json.loads(result.stdout)
        self.assertTrue(report['ok'])
        rows = {r['scenario']: r for r in report['scenarios']}
        self.assertEqual({'concurrent-live-migrations',
                          'concurrent-cold-migrations',
                          'forced-host-live-migration',
                          'migration-raises-after-move',
                          'backup-compute-other-host',
                          'non-converging-guest',
                          'xenapi-sr-naming'}, set(rows))
        # The real-tier scenario says why it did not run (no --real; it
        # runs in tests/real_libvirt/test_demo.py).
        real = rows.pop('non-converging-guest')
        for mode in ('stock', 'guarded'):
            self.assertIsNone(real[mode]['ok'])
            self.assertEqual('skipped: needs --real (two libvirt daemons, '
                             'QEMU)', real[mode]['summary'])
        for row in rows.values():
            self.assertTrue(row['guarded']['ok'], row)
        # Every guarded anti-affinity outcome keeps the policy with no
        # instance in ERROR, as read back from the cloud.
        for name, row in rows.items():
            if row['guard'] != 'anti_affinity':
                continue
            guarded = row['guarded']
            self.assertTrue(guarded['ok'], (name, guarded))
            self.assertNotIn('ERROR', guarded['details']['statuses'].values())
            hosts = list(guarded['details']['hosts'].values())
            self.assertEqual(len(hosts), len(set(hosts)), (name, guarded))
        self.assertEqual(409, rows['forced-host-live-migration'][
            'guarded']['details']['api'])
        stock = rows['concurrent-live-migrations']['stock']
        # Two group members, each on a real host of the embedded cloud, and
        # two migration records with final statuses.
        hosts = stock['details']['hosts']
        self.assertEqual({'vm1', 'vm2'}, set(hosts))
        self.assertTrue(set(hosts.values()) <= {'host1', 'host2', 'host3'})
        self.assertEqual(2, len(stock['details']['migrations']))
        # The summary says what the details show.
        violated = len(set(hosts.values())) < 2
        self.assertEqual(violated, 'policy violated' in stock['summary'])
        self.assertEqual(not violated and 'ERROR' not in
                         stock['details']['statuses'].values(), stock['ok'])
        # A migration that raised after the guest moved: stock ERROR where
        # the guest runs (ACTIVE on the releases that drop the error);
        # guarded ACTIVE there.
        late = rows['migration-raises-after-move']
        self.assertEqual(['dest'], late['stock']['details']['guest_runs_on'])
        self.assertEqual(
            'ERROR' if nova_compat.migrate_error_raised() else 'ACTIVE',
            late['stock']['details']['status'])
        self.assertEqual(('ACTIVE', 'dest', 'completed'), tuple(
            late['guarded']['details'][key]
            for key in ('status', 'host', 'migration')))
        # The HA backup with another host value: stock registers a second
        # compute node for the hypervisor; guarded refuses to start it.
        backup = rows['backup-compute-other-host']
        self.assertIsNone(backup['stock']['details']['refusal'])
        self.assertEqual(2, len(backup['stock']['details']['nodes']))
        self.assertIn('refuses to start',
                      backup['guarded']['details']['refusal'])
        self.assertEqual(2, backup['guarded']['details']['guests_running'])
        # XenAPI (logic only): stock's destination names the SR otherwise.
        xenapi = rows['xenapi-sr-naming']
        self.assertNotEqual(xenapi['stock']['details']['source_sr'],
                            xenapi['stock']['details']['dest_sr'])
        self.assertEqual(xenapi['guarded']['details']['source_sr'],
                         xenapi['guarded']['details']['dest_sr'])
        # Progress went to stderr, the services' logs to the log file.
        self.assertIn('[1/7] concurrent live migrations', result.stderr)
        self.assertGreater(os.path.getsize(log), 0)

    def test_each_run_logs_to_its_own_file(self):
        """Without --log-file, each run's services log to a new file of
        its own (printed), never to one file shared by every run."""
        tmp = self.useFixture(fixtures.TempDir()).path
        env = dict(os.environ, LC_ALL='C.UTF-8', TMPDIR=tmp)
        logs = []
        for _ in range(2):
            result = subprocess.run(
                [sys.executable, '-m', 'nova_migration_guard.cmd.main',
                 'demo', '--scenario', 'xenapi-sr-naming'],
                capture_output=True, text=True, timeout=600, env=env)
            self.assertEqual(0, result.returncode, result.stderr)
            first = result.stderr.splitlines()[0]
            self.assertTrue(first.startswith(
                'nova-migration-guard demo: services log to '), first)
            logs.append(first.rsplit(' ', 1)[-1])
        self.assertNotEqual(logs[0], logs[1])
        for log in logs:
            self.assertTrue(os.path.isfile(log), log)
            self.assertTrue(log.startswith(tmp + os.sep), log)
            self.assertNotEqual('nova-migration-guard-demo.log',
                                os.path.basename(log))

    def test_table(self):
        result, _ = self._demo('--scenario', 'forced-host-live-migration')
        self.assertEqual(0, result.returncode, result.stderr)
        lines = result.stdout.splitlines()
        self.assertIn('stock Nova', lines[0])
        self.assertIn('with nova-migration-guard', lines[0])
        self.assertEqual(3, len(lines))
        self.assertTrue(lines[2].startswith(
            "forced live migration onto another member's host"))
        self.assertIn('API 409 naming the group', lines[2])
