"""The README's main command, ``nova-migration-guard demo``, end to end in a
subprocess on the patched Nova of this environment."""

import json
import os
import subprocess
import sys

import fixtures
import testtools


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
        row = {r['scenario']: r for r in report['scenarios']}[
            'concurrent-live-migrations']
        stock = row['stock']
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
        # Progress went to stderr, the services' logs to the log file.
        self.assertIn('[1/1] concurrent live migrations', result.stderr)
        self.assertGreater(os.path.getsize(log), 0)

    def test_table(self):
        result, _ = self._demo()
        self.assertEqual(0, result.returncode, result.stderr)
        lines = result.stdout.splitlines()
        self.assertIn('stock Nova', lines[0])
        self.assertIn('with nova-migration-guard', lines[0])
        self.assertTrue(lines[2].startswith(
            'concurrent live migrations in an anti-affinity group'))
