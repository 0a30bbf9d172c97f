"""Service start on patched Nova with the plugin installed (the plugin's
service_starting hook through nova/plugin_hooks.py): with guards listed, a
service with invalid guard options refuses to start; with none listed, the
plugin is disabled and reads none of its options, as stock Nova would."""

import os
import subprocess
import sys

import fixtures
from nova import context as nova_context
from nova import objects
from nova import plugin_hooks
import testtools

from tests.functional import base


class _ServiceStartMixin(object):
    NUMBER_OF_COMPUTES = 1

    def _refused(self, binary, host):
        exc = self.assertRaises(SystemExit, self.start_service, binary,
                                host=host)
        return str(exc)

    def _compute_hosts(self):
        return sorted(s['host'] for s in self.admin_api.get_services(
            binary='nova-compute'))


class ServiceStartTestCase(_ServiceStartMixin, base.EmbeddedCloudTestCase):
    GUARDS = ('anti_affinity',)

    def test_plugin_hooks_loaded_from_entry_point(self):
        names = [type(ext).__name__ for ext in plugin_hooks.extensions()]
        self.assertIn('MigrationGuardHooks', names)

    def test_invalid_backend_url_stops_compute_and_conductor(self):
        self.flags(backend_url='mysterydb://somewhere',
                   group='migration_guard_coordination')
        for binary, host in (('compute', 'host9'),
                             ('conductor', 'conductor2')):
            message = self._refused(binary, host)
            self.assertEqual(1, len(message.splitlines()), message)
            self.assertIn('[migration_guard_coordination] backend_url',
                          message)
            self.assertIn("unknown scheme 'mysterydb'", message)
            self.assertIn('etcd3+http', message)
        # Nothing of the refused compute reached the cloud.
        self.assertEqual(['host1'], self._compute_hosts())

    def test_valid_options_start(self):
        self.flags(acquire_timeout=5, on_backend_failure='proceed_unlocked',
                   group='migration_guard_coordination')
        self.start_service('compute', host='host2')
        self.assertEqual(['host1', 'host2'], self._compute_hosts())


class DisabledPluginServiceStartTestCase(_ServiceStartMixin,
                                         base.EmbeddedCloudTestCase):
    """``[migration_guard] guards`` empty (the default): the plugin is
    installed and its hook is called, but it is disabled."""

    def test_invalid_options_of_disabled_plugin_do_not_stop_services(self):
        self.flags(backend_url='mysterydb://somewhere',
                   group='migration_guard_coordination')
        self.flags(default_policy='no-such-policy',
                   custom_policies=['not a policy spec'],
                   group='migration_guard_convergence')
        compute = self.start_service('compute', host='host2')
        conductor = self.start_service('conductor', host='conductor2')
        self.assertEqual(['host1', 'host2'], self._compute_hosts())
        self.assertEqual('host2', compute.host)
        self.assertEqual('conductor2', conductor.host)
        # The disabled plugin logged nothing an operator would read (it
        # may say at debug level that it is disabled).
        plugin_lines = [
            line for line in self.stdlog.logger.output.splitlines()
            if 'nova-migration-guard' in line or
            'nova_migration_guard' in line]
        self.assertEqual([], plugin_lines)


class ConsoleScriptStartTestCase(testtools.TestCase):
    """nova-compute started from its console script, as an operator runs
    it, with an option of ours refused: the refusal is reported once."""

    def test_refused_option_reported_once(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        conf = os.path.join(tmp, 'nova.conf')
        with open(conf, 'w') as f:
            f.write('[DEFAULT]\nhost = refused1\nstate_path = %s\n'
                    '[migration_guard]\nguards = anti_affinity\n'
                    '[migration_guard_coordination]\n'
                    'backend_url = mysterydb://somewhere\n' % tmp)
        script = os.path.join(os.path.dirname(sys.executable),
                              'nova-compute')
        result = subprocess.run([script, '--config-file', conf],
                                capture_output=True, text=True, timeout=120)
        output = result.stdout + result.stderr
        self.assertEqual(1, result.returncode, output)
        refusal = ("invalid value for [migration_guard_coordination] "
                   "backend_url: 'mysterydb://somewhere' (unknown scheme "
                   "'mysterydb')")
        self.assertEqual(1, output.count(refusal), output)
        line, = [line for line in output.splitlines() if refusal in line]
        self.assertIn(' CRITICAL nova_migration_guard.hooks ', line)
        self.assertNotIn('Traceback', output)


class MachineLocalBackendWarningTestCase(base.EmbeddedCloudTestCase):
    """A compute starting with the anti_affinity guard and the default
    file:// backend warns when computes run on other machines (a compute
    node with another host_ip), not when they all share this one (the
    embedded cloud: every compute has the same my_ip)."""
    GUARDS = ('anti_affinity',)
    NUMBER_OF_COMPUTES = 2
    WARNING = ('[migration_guard_coordination] backend_url is file://')

    def _move_host1_to_another_machine(self):
        ctxt = nova_context.get_admin_context()
        node = objects.ComputeNode.get_by_host_and_nodename(
            ctxt, 'host1', 'host1')
        node.host_ip = '192.0.2.10'
        node.save()

    def _warnings(self):
        return [line for line in self.stdlog.logger.output.splitlines()
                if self.WARNING in line]

    def test_computes_on_one_machine_no_warning(self):
        self.start_service('compute', host='host3')
        self.assertEqual([], self._warnings())

    def test_compute_on_another_machine_warns(self):
        self._move_host1_to_another_machine()
        self.start_service('compute', host='host3')
        warnings = self._warnings()
        self.assertEqual(1, len(warnings), warnings)
        self.assertIn('WARNING', warnings[0])
        self.assertIn('nova-compute also runs on other machines '
                      '(host1 (192.0.2.10))', warnings[0])
        self.assertIn('etcd3+http://ETCD_HOST:2379', warnings[0])

    def test_shared_backend_no_warning(self):
        # Not contacted at start: the anti_affinity guard locks on use.
        self.flags(backend_url='redis://127.0.0.1:1',
                   group='migration_guard_coordination')
        self._move_host1_to_another_machine()
        self.start_service('compute', host='host3')
        self.assertEqual([], self._warnings())

    def test_no_locking_guard_no_warning(self):
        self.flags(guards=[], group='migration_guard')
        self._move_host1_to_another_machine()
        self.start_service('compute', host='host3')
        self.assertEqual([], self._warnings())
