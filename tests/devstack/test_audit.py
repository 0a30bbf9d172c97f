"""``nova-migration-guard audit`` against the live cloud, after the guard
kept a group's policy under concurrent live migrations: nothing to find."""

import json

from tests.devstack import base
from tests.devstack import test_anti_affinity


class AuditScenarioTestCase(base.ScenarioTestCase):

    def test_audit_clean_after_concurrent_moves(self):
        group = self.create_group()
        members = self.boot_members(group)
        self.race_moves(members, test_anti_affinity.live_migrate)

        code, out, err = self.run_command(
            'nova-migration-guard', 'audit', '--os-cloud', self.target.cloud)
        self.assertEqual(0, code, out + err)
        self.assertEqual('clean: nothing found\n', out)

        code, out, err = self.run_command(
            'nova-migration-guard', 'audit', '--os-cloud', self.target.cloud,
            '--json')
        self.assertEqual(0, code, out + err)
        report = json.loads(out)
        self.assertTrue(report['clean'])
        self.assertEqual([], report['findings'])
        self.assertGreaterEqual(report['counts']['servers'], 2)
        self.assertGreaterEqual(report['counts']['server_groups'], 1)
        self.assertGreaterEqual(report['counts']['migrations'], 2)
        self.assertGreaterEqual(report['counts']['hypervisors'],
                                base.REQUIRED_COMPUTES)
