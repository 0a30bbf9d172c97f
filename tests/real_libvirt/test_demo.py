"""``nova-migration-guard demo --real``'s scenario on the real tier: the
guest dirtying memory at twice the bandwidth cap, stock and guarded (what
runs and what is stubbed: the scenario's docstring,
nova_migration_guard/demo/scenarios.py NonConvergingGuest)."""

import io
import json

from testtools.content import text_content

from nova_migration_guard.demo import runner
from tests.real_libvirt import base


class NonConvergingGuestDemoTest(base.RealLibvirtTestCase):

    # The scenario starts its own daemons, once per mode.
    start_hosts = False

    def test_stock_does_not_converge_guarded_does(self):
        out, progress = io.StringIO(), io.StringIO()
        code = runner.run(names=['non-converging-guest'], as_json=True,
                          out=out, progress=progress, real=True)
        self.addDetail('progress', text_content(progress.getvalue()))
        self.assertEqual(0, code, out.getvalue())
        row, = json.loads(out.getvalue())['scenarios']
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
        self.assertIn('set-downtime', guarded['details']['steps'])
        # Progress lines while it ran.
        self.assertIn('MiB left', progress.getvalue())
