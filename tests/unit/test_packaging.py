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
            self.assertIn('nova_migration_guard/embedded/real_libvirt/guest/'
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
