"""tox -e nova-patched runs Nova's own tests for everything the plugin
changes in the tested Nova: every file its patch series touches, and every
Nova entry point namespace the plugin registers in.  The tables below say
which of Nova's test modules cover what; a patch that touches a new file (or
a new namespace in setup.cfg) fails here until it has a row and its modules
are in tox.ini's ``[nova] test_modules``."""

import configparser
import importlib.util
import pathlib

import testtools

from nova_migration_guard.patching import series as series_mod

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Nova source file -> Nova's test modules for it (entries as in tox.ini).
# Test files the patches add or change are their own test modules.
TESTS_OF_PATCHED_FILE = {
    'nova/exception.py': ('nova.tests.unit.test_exception',),
    'nova/plugin_hooks.py': ('nova.tests.unit.test_plugin_hooks',
                             'nova.tests.unit.test_plugin_hook_points'),
    'nova/service.py': ('nova.tests.unit.test_service',),
    'nova/compute/manager.py': ('nova.tests.unit.compute.test_compute_mgr',),
    'nova/compute/api.py': ('nova.tests.unit.compute.test_api',),
    'nova/conductor/manager.py': ('nova.tests.unit.conductor.test_conductor',),
    'nova/api/openstack/compute/evacuate.py': (
        'nova.tests.unit.api.openstack.compute.test_evacuate',),
    'nova/api/openstack/compute/migrate_server.py': (
        'nova.tests.unit.api.openstack.compute.test_migrate_server',),
    'nova/virt/event.py': ('nova.tests.unit.virt.test_events',),
    # The libvirt driver turns the host's lifecycle events into Nova's.
    'nova/virt/libvirt/host.py': ('nova.tests.unit.virt.libvirt.test_host',
                                  'nova.tests.unit.virt.libvirt.test_driver'),
    'nova/virt/driver.py': (
        'nova.tests.unit.virt.test_virt_drivers.VirtDriverLoaderTestCase',),
    # The live migration monitor and its hook point (0011).
    'nova/virt/libvirt/driver.py': (
        'nova.tests.unit.virt.libvirt.test_driver',
        'nova.tests.unit.virt.libvirt.test_migration_monitor_hook'),
    'nova/virt/libvirt/migration.py': (
        'nova.tests.unit.virt.libvirt.test_migration',),
}

# Nova entry point namespace the plugin registers in (setup.cfg) -> Nova's
# test modules that load from it.
TESTS_OF_NAMESPACE = {
    'nova.plugin_hooks': ('nova.tests.unit.test_plugin_hooks',),
    'nova.compute_drivers': ('nova.tests.unit.virt.test_driver_entry_point',),
    'nova.api.extra_spec_validators': (
        'nova.tests.unit.api.validation.extra_specs.test_validators',),
}


def listed_test_modules():
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / 'tox.ini')
    return tox['nova']['test_modules'].split()


def tested_nova_versions():
    """The Nova of every release line the tox envs run on
    (constraints/nova-<release>.txt, NMG_NOVA_RELEASE): nova-patched runs
    the same module list on each, with each one's series; the 21.x series
    is checked against its own Nova."""
    versions = []
    for path in sorted((ROOT / 'constraints').glob('nova-*.txt')):
        pins = [line.partition('==')[2].strip()
                for line in path.read_text().splitlines()
                if line.partition('==')[0].strip().lower() == 'nova']
        if len(pins) != 1:
            raise AssertionError('%s pins nova %d times' % (path, len(pins)))
        versions.extend(pins)
    return versions


def _module_of_test_file(path):
    return path[:-len('.py')].replace('/', '.')


def _nova_namespaces():
    setup = configparser.ConfigParser(interpolation=None)
    setup.read(ROOT / 'setup.cfg')
    return [name for name in setup['entry_points']
            if name.startswith('nova.')]


class NovaTestListTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.listed = listed_test_modules()
        self.series = [series_mod.series_for(version)
                       for version in tested_nova_versions()]

    def _unlisted(self, entries_of, table_name):
        """Problems of {what: entries or None}, one line each."""
        problems = []
        for what, entries in entries_of.items():
            if entries is None:
                problems.append('%s: no row in %s' % (what, table_name))
                continue
            problems.extend('%s: %s is not in tox.ini [nova] test_modules'
                            % (what, e) for e in entries
                            if e not in self.listed)
        return problems

    def test_every_patched_file_has_listed_test_modules(self):
        entries_of = {}
        for series in self.series:
            for path in series.files:
                if path.startswith('nova/tests/'):
                    entries_of[path] = (_module_of_test_file(path),)
                else:
                    entries_of[path] = TESTS_OF_PATCHED_FILE.get(path)
        self.assertEqual(
            [], self._unlisted(entries_of, 'TESTS_OF_PATCHED_FILE'))

    def test_every_nova_namespace_has_listed_test_modules(self):
        entries_of = {namespace: TESTS_OF_NAMESPACE.get(namespace)
                      for namespace in _nova_namespaces()}
        self.assertEqual([], self._unlisted(entries_of, 'TESTS_OF_NAMESPACE'))

    def test_mapped_test_modules_exist(self):
        # In stock Nova, or added by the series: a typo fails here, not as
        # an import error in the nova-patched run.
        added = {_module_of_test_file(path) for series in self.series
                 for path in series.files if path.startswith('nova/tests/')}
        nova_dir = pathlib.Path(
            importlib.util.find_spec('nova').submodule_search_locations[0])
        tables = (TESTS_OF_PATCHED_FILE, TESTS_OF_NAMESPACE)
        for entry in {e for table in tables for es in table.values()
                      for e in es}:
            module = entry
            if entry.split('.')[-1][0].isupper():  # a TestCase class
                module = entry.rsplit('.', 1)[0]
            path = nova_dir.parent.joinpath(*module.split('.'))
            self.assertTrue(
                module in added or path.with_suffix('.py').is_file(),
                '%s is not a test module of Nova or of the series' % entry)
