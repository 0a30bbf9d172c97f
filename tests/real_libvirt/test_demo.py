"""``nova-migration-guard demo --real``'s scenario on the real tier: the
guest dirtying memory at twice the bandwidth cap, stock and guarded (what
runs and what is stubbed: nova_migration_guard/demo/real_tier.py).

The command runs in a subprocess, as a user runs it: the demo's embedded
clouds switch their process to eventlet, which the other real-tier tests
of this worker must not inherit."""

import json
import os
import subprocess
import sys

import fixtures
from testtools.content import text_content

from tests.real_libvirt import base


class NonConvergingGuestDemoTest(base.RealLibvirtTestCase):

    # The scenario starts its own daemons, once per mode.
    start_hosts = False

    def test_stock_does_not_converge_guarded_does(self):
        log = self.useFixture(fixtures.TempDir()).join('demo.log')
        result = subprocess.run(
            [sys.executable, '-m', 'nova_migration_guard.cmd.main', 'demo',
             '--real', '--scenario', 'non-converging-guest', '--json',
             '--log-file', log],
            capture_output=True, text=True, timeout=560,
            env=dict(os.environ, LC_ALL='C.UTF-8'))
        self.addDetail('progress', text_content(result.stderr))
        self.assertEqual(0, result.returncode, result.stdout)
        row, = json.loads(result.stdout)['scenarios']
        stock, guarded = row['stock'], row['guarded']
        # Stock Nova: Nova's completion timeout aborted it; the guest still
        # runs on its source, and the migrate call raised (ERROR, G3).
        self.assertFalse(stock['details']['completed'], stock)
        self.assertEqual(['A'], stock['details']['running_on'])
        self.assertIsNotNone(stock['details']['error'])
        self.assertIn("aborted by Nova's completion timeout",
                      stock['summary'])
        # Guarded: converged under the default policy, on the destination.
        self.assertTrue(guarded['ok'], guarded)
        self.assertEqual(['B'], guarded['details']['running_on'])
        self.assertIn('converged in', guarded['summary'])
        # Converged by the policy's doing, not by chance: a rung of the
        # ladder, or QEMU's CPU throttle, which stock Nova does not start
        # (live_migration_permit_auto_converge is off).  Which of them
        # finishes depends on how much vCPU the machine leaves the guest.
        self.assertEqual(0, stock['details']['peak_throttle'])
        self.assertTrue(guarded['details']['steps'] or
                        guarded['details']['peak_throttle'], guarded)
        self.assertNotIn('abort', guarded['details']['steps'])
        # Progress lines while it ran.
        self.assertIn('MiB left', result.stderr)
