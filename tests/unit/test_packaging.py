"""The installed distribution: what pip put where, and its entry points."""

import importlib.metadata
import pathlib
import subprocess
import sys

import fixtures
import testtools

from nova_migration_guard.patching import series

DIST = importlib.metadata.distribution('nova-migration-guard')


class PackagingTestCase(testtools.TestCase):

    def test_nothing_installed_into_nova_package(self):
        files = [pathlib.PurePosixPath(str(f)) for f in DIST.files or ()]
        self.assertTrue(files, 'installed files unknown')
        into_nova = [str(f) for f in files if f.parts[0] == 'nova']
        self.assertEqual([], into_nova)
        self.assertTrue(any(f.parts[0] == 'nova_migration_guard'
                            for f in files))

    def test_patch_series_installed_as_data(self):
        root = series.patches_root()
        found = series.series_for(importlib.metadata.version('nova'))
        self.assertTrue(found.patches)
        for patch in found.patches:
            self.assertTrue(patch.is_file(), patch)
            self.assertTrue(patch.is_relative_to(root))

    def test_real_tier_guest_sources_installed(self):
        # demo --real builds the guest's initramfs from them.
        names = {str(f) for f in DIST.files or ()}
        for name in ('init', 'dirty.c'):
            self.assertIn('nova_migration_guard/lab/real_libvirt/guest/'
                          + name, names)

    def test_entry_points(self):
        eps = {(ep.group, ep.name): ep.value for ep in DIST.entry_points}
        self.assertEqual('nova_migration_guard.hooks:MigrationGuardHooks',
                         eps[('nova.plugin_hooks', 'migration_guard')])
        self.assertEqual('nova_migration_guard.conf:list_opts',
                         eps[('oslo.config.opts', 'nova_migration_guard')])
        self.assertEqual('nova_migration_guard.cmd.main:main',
                         eps[('console_scripts', 'nova-migration-guard')])

    def test_sample_config_generated(self):
        out = self.useFixture(fixtures.TempDir()).join('sample.conf')
        subprocess.run(
            [sys.executable, '-m', 'oslo_config.generator', '--namespace',
             'nova_migration_guard', '--output-file', out], check=True,
            timeout=120)
        text = pathlib.Path(out).read_text()
        for needle in ('[migration_guard]', '#guards =',
                       '[migration_guard_coordination]',
                       '#backend_url = file://$state_path/migration_guard/'
                       'locks', '#on_backend_failure = fail_closed'):
            self.assertIn(needle, text)


class DeclaredDependenciesTestCase(testtools.TestCase):
    """Every third-party module the shipped package imports is declared:
    in requirements.txt, or, for the demo's embedded cloud, in an extra of
    setup.cfg (read from the source tree, which is what ships)."""

    ROOT = pathlib.Path(__file__).resolve().parents[2]
    #: Imported but never declared, and why.
    HOST = {'nova': "the host: the plugin is installed into Nova's own "
                    "environment, and Nova pins what it needs"}
    #: Module -> distribution for modules not installed here.
    NOT_INSTALLED = {'libvirt': 'libvirt-python'}
    #: Code that only the demo (``nova-migration-guard demo``) or one tooz
    #: backend imports, and the extras that declare what it needs.
    EXTRAS = (('nova_migration_guard/coordination/backend.py',
               ('zookeeper',)),  # only with a zookeeper:// backend_url
              ('nova_migration_guard/lab/real_libvirt/',
               ('demo', 'real-libvirt')),
              ('nova_migration_guard/lab/realcloud/', ('demo', 'realcloud')),
              ('nova_migration_guard/lab/', ('demo',)),
              ('nova_migration_guard/demo/', ('demo',)))

    @staticmethod
    def _canonical(name):
        import re
        return re.sub(r'[-_.]+', '-', name).lower()

    def _requirements(self, lines):
        import re
        names = set()
        for line in lines:
            line = line.split('#', 1)[0].strip()
            if line:
                names.add(self._canonical(re.split(r'[<>=!~;\[ ]', line)[0]))
        return names

    def _declared(self):
        import configparser
        base = self._requirements(
            (self.ROOT / 'requirements.txt').read_text().splitlines())
        setup = configparser.ConfigParser()
        setup.read(self.ROOT / 'setup.cfg')
        extras = {}
        if setup.has_section('extras'):
            for extra, text in setup.items('extras'):
                extras[extra] = self._requirements(text.splitlines())
        return base, extras

    def _imports(self):
        """{(file, top-level module)} of third-party imports."""
        import ast
        found = set()
        for path in sorted((self.ROOT / 'nova_migration_guard').rglob(
                '*.py')):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and not node.level:
                    modules = [node.module]
                elif isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                else:
                    continue
                for module in modules:
                    top = module.split('.')[0]
                    if (top not in sys.stdlib_module_names and
                            top != 'nova_migration_guard'):
                        found.add((str(path.relative_to(self.ROOT)), top))
        return found

    def test_every_import_declared(self):
        base, extras = self._declared()
        dists = importlib.metadata.packages_distributions()
        missing = []
        for path, module in sorted(self._imports()):
            if module in self.HOST:
                continue
            names = {self._canonical(d) for d in dists.get(
                module, [self.NOT_INSTALLED.get(module, module)])}
            allowed = set(base)
            for prefix, extra_names in self.EXTRAS:
                if path.startswith(prefix):
                    for extra in extra_names:
                        allowed |= extras.get(extra, set())
                    break
            if not names & allowed:
                missing.append('%s imports %s (%s)'
                               % (path, module, ', '.join(sorted(names))))
        self.assertEqual([], missing)


class LabApartTestCase(testtools.TestCase):
    """The lab (nova_migration_guard/lab: the clouds) is test and demo
    infrastructure: only the demo imports it, never a guard, the hooks,
    the configuration or the patch command."""

    ROOT = pathlib.Path(__file__).resolve().parents[2] / 'nova_migration_guard'
    MAY_IMPORT_LAB = ('lab/', 'demo/')

    def test_only_the_demo_imports_the_lab(self):
        import ast
        offenders = []
        for path in sorted(self.ROOT.rglob('*.py')):
            relative = str(path.relative_to(self.ROOT))
            if relative.startswith(self.MAY_IMPORT_LAB):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] + ['%s.%s' % (node.module, a.name)
                                             for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                if any(n.startswith('nova_migration_guard.lab')
                       for n in names):
                    offenders.append(relative)
        self.assertEqual([], offenders)
