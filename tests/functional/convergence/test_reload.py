"""A convergence option reloaded with an invalid value (SIGHUP, without a
restart) on Nova's in-process cloud: the live migration still runs, under
the last valid configuration, and the error names the option.

Stubbed, and why (nova_migration_guard/lab/embedded/libvirt_migration.py): the
hypervisor.  Nova's fake libvirt cannot migrate, so its migrate call runs a
job that the test switches over to the destination.  Nova's API,
conductor, scheduler, placement, both computes and the guarded driver are
real.  The reload itself (a real nova.conf and oslo.config's
mutate_config_files) is in tests/unit/convergence/test_in_force.py; here
the reloaded value is set as the reload leaves it.
"""

from nova.tests.fixtures import libvirt as fakelibvirt
from testtools.content import text_content

from nova_migration_guard.convergence import in_force
from nova_migration_guard.lab.embedded.libvirt_migration import MigrationCloud


class InvalidReloadedPolicyTest(MigrationCloud):

    GUARDS = ('migration_outcome', 'convergence')

    def setUp(self):
        in_force.reset()
        self.addCleanup(in_force.reset)
        # The services validate pre-copy-only at start: the last valid
        # default.
        self.flags(default_policy='pre-copy-only',
                   group='migration_guard_convergence')
        super().setUp()

    def test_migration_runs_under_the_last_valid_configuration(self):
        # The operator reloads nova.conf with a typo (no restart, so the
        # start-time validation does not run).
        self.flags(default_policy='pre-copy-onyl',
                   group='migration_guard_convergence')
        server, migration, libvirt = self.live_migrate_to_the_end()
        self.addDetail('outcome', text_content(
            self.outcome(server, migration)))

        # Completed; not in ERROR over a configuration mistake.
        self.assertEqual('completed', migration['status'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual(self.dest, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([self.dest], self.running_on())
        # Under pre-copy-only, the last valid default: auto-converge on,
        # post-copy never allowed.
        self.assertTrue(libvirt.flags & fakelibvirt.VIR_MIGRATE_AUTO_CONVERGE)
        self.assertFalse(libvirt.flags & fakelibvirt.VIR_MIGRATE_POSTCOPY)
        # The error names the option, the value and the accepted ones.
        log = self.stdlog.logger.output
        self.assertIn("[migration_guard_convergence] default_policy = "
                      "'pre-copy-onyl' is not a convergence policy; "
                      "accepted: large-guest, minimal-downtime, post-copy, "
                      "pre-copy-only, suspend-workload", log)
        self.assertIn('keep the last valid configuration (default_policy = '
                      'pre-copy-only', log)
