"""A service with invalid guard options refuses to start, on patched Nova
(the plugin's service_starting hook through nova/plugin_hooks.py)."""

from nova import context as nova_context
from nova import objects
from nova import plugin_hooks

from tests.functional import base


class ServiceStartTestCase(base.EmbeddedCloudTestCase):
    NUMBER_OF_COMPUTES = 1

    def test_plugin_hooks_loaded_from_entry_point(self):
        names = [type(ext).__name__ for ext in plugin_hooks.extensions()]
        self.assertIn('MigrationGuardHooks', names)

    def _refused(self, binary, host):
        exc = self.assertRaises(SystemExit, self.start_service, binary,
                                host=host)
        return str(exc)

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
        hosts = [s['host'] for s in self.admin_api.get_services(
            binary='nova-compute')]
        self.assertEqual(['host1'], hosts)

    def test_valid_options_start(self):
        self.flags(acquire_timeout=5, on_backend_failure='proceed_unlocked',
                   group='migration_guard_coordination')
        self.start_service('compute', host='host2')
        hosts = sorted(s['host'] for s in self.admin_api.get_services(
            binary='nova-compute'))
        self.assertEqual(['host1', 'host2'], hosts)


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
