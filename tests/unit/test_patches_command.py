"""``nova-migration-guard patches``: on copies of the installed (stock)
Nova, driven through the real command line in a subprocess."""

import hashlib
import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import testtools

from nova_migration_guard.patching import series as series_mod
from nova_migration_guard.patching import tree as tree_mod

NOVA_VERSION = importlib.metadata.version('nova')
SERIES = series_mod.series_for(NOVA_VERSION)
INSTALLED = pathlib.Path(
    importlib.metadata.distribution('nova').locate_file('nova'))


def _tree_digest(root):
    """sha256 of every file under root/nova (no bytecode caches)."""
    digest = {}
    for path in sorted((root / 'nova').rglob('*')):
        if path.is_file() and '__pycache__' not in path.parts:
            digest[str(path.relative_to(root))] = hashlib.sha256(
                path.read_bytes()).hexdigest()
    return digest


class PatchesCommandTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix='nmg-nova-'))
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        os.chmod(self.tmp, 0o755)
        self.root = self.tmp / 'site'

    def _copy_nova(self, full=False):
        """A stock Nova tree: the files the series touches (or all of nova)
        plus nova/__init__.py; it must start unpatched."""
        if full:
            shutil.copytree(INSTALLED, self.root / 'nova',
                            ignore=shutil.ignore_patterns('__pycache__'))
        else:
            for rel in SERIES.files + ['nova/__init__.py']:
                src = INSTALLED.parent / rel
                if src.is_file():
                    dst = self.root / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
        for dirpath, _, _ in os.walk(self.tmp):
            os.chmod(dirpath, 0o755)
        result = self._cmd('status')
        self.assertIn(': not applied', result.stdout,
                      'the installed Nova must be stock for these tests')
        return _tree_digest(self.root)

    def _cmd(self, action, *extra, version=NOVA_VERSION, prefix=()):
        args = list(prefix) + [
            sys.executable, '-m', 'nova_migration_guard.cmd.main',
            'patches', action, '--nova-dir', str(self.root)]
        if version:
            args += ['--nova-version', version]
        return subprocess.run(args + list(extra), capture_output=True,
                              text=True, timeout=120)

    def _assert_refused(self, result, *fragments):
        self.assertEqual(1, result.returncode, result.stdout + result.stderr)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(1, len(lines), result.stderr)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])

    def test_apply_revert_round_trip_byte_for_byte(self):
        before = self._copy_nova(full=True)
        result = self._cmd('apply')
        self.assertEqual(0, result.returncode, result.stderr)
        # Progress, one line per patch.
        for i, patch in enumerate(SERIES.patches, 1):
            self.assertIn('[%d/%d] applying %s' % (i, len(SERIES.patches),
                                                   patch.name), result.stdout)
        patched = _tree_digest(self.root)
        self.assertIn('nova/plugin_hooks.py', patched)
        self.assertNotEqual(before['nova/compute/manager.py'],
                            patched['nova/compute/manager.py'])
        status = self._cmd('status')
        self.assertIn('(%d patches): applied' % len(SERIES.patches),
                      status.stdout)

        result = self._cmd('revert')
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertEqual(before, _tree_digest(self.root))

    def test_apply_is_idempotent(self):
        self._copy_nova()
        self.assertEqual(0, self._cmd('apply').returncode)
        once = _tree_digest(self.root)
        again = self._cmd('apply')
        self.assertEqual(0, again.returncode)
        self.assertIn('already applied', again.stdout)
        self.assertEqual(once, _tree_digest(self.root))
        self.assertEqual(0, self._cmd('check').returncode)

    def test_revert_when_not_applied_changes_nothing(self):
        before = self._copy_nova()
        result = self._cmd('revert')
        self.assertEqual(0, result.returncode)
        self.assertIn('is not applied', result.stdout)
        self.assertEqual(before, _tree_digest(self.root))

    def test_unsupported_version_refused(self):
        before = self._copy_nova()
        for action in ('check', 'apply', 'status', 'revert'):
            result = self._cmd(action, version='30.1.0')
            # The refusal names every supported release line.
            self._assert_refused(
                result, 'nova 30.1.0 is not supported; supported releases: '
                'nova 34.x (2026.2, tested on 34.0.0); nova 33.x (2026.1, '
                'SLURP, tested on 33.0.2); nova 32.x (2025.2, tested on '
                '32.2.1); nova 31.x (2025.1, SLURP, tested on 31.3.1); '
                'nova 21.x')
        self.assertEqual(before, _tree_digest(self.root))

    def test_apply_stamps_the_version_revert_removes_the_stamp(self):
        before = self._copy_nova()
        self.assertEqual(0, self._cmd('apply').returncode)
        stamp = json.loads((self.root / tree_mod.STAMP).read_text())
        self.assertEqual(NOVA_VERSION, stamp['nova_version'])
        self.assertEqual(SERIES.name, stamp['series'])
        self.assertEqual(
            {rel: hashlib.sha256((self.root / rel).read_bytes()).hexdigest()
             for rel in SERIES.created}, stamp['created'])
        self.assertIn('nova/plugin_hooks.py', stamp['created'])
        self.assertEqual(0, self._cmd('revert').returncode)
        self.assertEqual(before, _tree_digest(self.root))

    def _upgrade_nova(self, new_version):
        """What `pip install nova==<new>` does to a patched tree: every
        file Nova ships is replaced by the new release's (here: stock
        bytes of the installed Nova); the files the series created and its
        stamp are not Nova's, so they stay."""
        for rel in SERIES.files:
            if rel not in SERIES.created:
                shutil.copy2(INSTALLED.parent / rel, self.root / rel)
        return new_version

    def test_upgrade_without_revert_refused_then_cleaned_by_revert(self):
        stock = self._copy_nova()
        self.assertEqual(0, self._cmd('apply').returncode)
        new = self._upgrade_nova(NOVA_VERSION + '.post1')
        upgraded = _tree_digest(self.root)
        status = self._cmd('status', version=new)
        self.assertEqual(1, status.returncode)
        self.assertIn(': %s\n' % tree_mod.STALE, status.stdout)
        self.assertIn('series %s was applied to nova %s, but this tree is '
                      'nova %s' % (SERIES.name, NOVA_VERSION, new),
                      status.stdout)
        self.assertEqual(1, self._cmd('check', version=new).returncode)
        self._assert_refused(self._cmd('apply', version=new),
                             'cannot apply series',
                             'applied to nova %s' % NOVA_VERSION,
                             'patches revert')
        self.assertEqual(upgraded, _tree_digest(self.root))

        result = self._cmd('revert', version=new)
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIn('removed the %d file(s) series %s added to nova %s'
                      % (len(SERIES.created), SERIES.name, NOVA_VERSION),
                      result.stdout)
        self.assertEqual(stock, _tree_digest(self.root))
        self.assertEqual(0, self._cmd('apply', version=new).returncode)
        stamp = json.loads((self.root / tree_mod.STAMP).read_text())
        self.assertEqual(new, stamp['nova_version'])

    def test_upgrade_cleanup_keeps_edited_leftovers(self):
        self._copy_nova()
        self.assertEqual(0, self._cmd('apply').returncode)
        new = self._upgrade_nova(NOVA_VERSION + '.post1')
        self._edit('nova/plugin_hooks.py', 'NAMESPACE = ', 'NAMESPACE  = ')
        upgraded = _tree_digest(self.root)
        self._assert_refused(self._cmd('revert', version=new),
                             'cannot remove what series %s left'
                             % SERIES.name, 'nova/plugin_hooks.py changed')
        self.assertEqual(upgraded, _tree_digest(self.root))

    def test_stamp_of_other_version_on_patched_files_refused(self):
        """The stamp says another version but Nova's files still carry the
        series (the metadata changed, the files did not): removing the
        leftovers would leave Nova importing a missing module."""
        self._copy_nova()
        self.assertEqual(0, self._cmd('apply').returncode)
        patched = _tree_digest(self.root)
        self._assert_refused(
            self._cmd('revert', version=NOVA_VERSION + '.post1'),
            'not stock nova %s.post1 either' % NOVA_VERSION, 'reinstall nova')
        self.assertEqual(patched, _tree_digest(self.root))

    def test_foreign_stamp_refused(self):
        self._copy_nova()
        (self.root / tree_mod.STAMP).write_text('{"series": 1}')
        for action in ('status', 'apply', 'revert'):
            self._assert_refused(self._cmd(action),
                                 'is not a stamp this command wrote')

    def _edit(self, rel, old, new):
        path = self.root / rel
        text = path.read_text()
        self.assertIn(old, text)
        path.write_text(text.replace(old, new, 1))

    def test_local_edit_conflict_refused_untouched(self):
        self._copy_nova()
        # A local change inside a hunk of the third patch: the first two
        # would apply, so a naive tool would leave Nova half patched.
        self._edit('nova/service.py', 'self.servicegroup_api = '
                   'servicegroup.API()', 'self.servicegroup_api = '
                   'servicegroup.API()  # local edit')
        before = _tree_digest(self.root)
        for action in ('apply', 'check'):
            result = self._cmd(action)
            self.assertEqual(1, result.returncode)
        self._assert_refused(self._cmd('apply'), 'cannot apply series',
                             'local edits')
        self.assertEqual(before, _tree_digest(self.root))
        self.assertFalse((self.root / 'nova/plugin_hooks.py').exists())

    def test_edit_after_apply_blocks_revert(self):
        self._copy_nova()
        self._cmd('apply')
        self._edit('nova/plugin_hooks.py', 'NAMESPACE = ', 'NAMESPACE  = ')
        before = _tree_digest(self.root)
        self._assert_refused(self._cmd('revert'), 'cannot revert series')
        self.assertEqual(before, _tree_digest(self.root))

    def test_partially_applied_is_completed(self):
        before = self._copy_nova()
        for patch in SERIES.patches[:2]:
            subprocess.run(['patch', '-p1', '-s', '-d', str(self.root),
                            '-i', str(patch)], check=True)
        status = self._cmd('status')
        self.assertIn('partially applied (2 of %d)' % len(SERIES.patches),
                      status.stdout)
        result = self._cmd('apply')
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIn('[1/%d] applying %s' % (len(SERIES.patches) - 2,
                                              SERIES.patches[2].name),
                      result.stdout)
        self.assertIn('): applied', self._cmd('status').stdout)
        self.assertEqual(0, self._cmd('revert').returncode)
        self.assertEqual(before, _tree_digest(self.root))

    def test_missing_permissions_refused(self):
        before = self._copy_nova()
        for dirpath, _, _ in os.walk(self.root):
            os.chmod(dirpath, 0o555)
        self.addCleanup(lambda: [os.chmod(d, 0o755) for d, _, _ in
                                 os.walk(self.root)])
        prefix = ()
        if os.geteuid() == 0:
            # root ignores permission bits; drop the capabilities that let
            # it, so the read-only tree is read-only for the command too.
            prefix = ('setpriv', '--bounding-set',
                      '-dac_override,-dac_read_search')
        result = self._cmd('apply', prefix=prefix)
        self._assert_refused(result, 'permission denied')
        self.assertEqual(before, _tree_digest(self.root))

    def test_not_a_nova_tree(self):
        self.root.mkdir(parents=True)
        self._assert_refused(self._cmd('status'),
                             'does not contain the nova package')

    def test_version_from_metadata(self):
        self._copy_nova()
        meta = self.root / ('nova-%s.dist-info' % NOVA_VERSION) / 'METADATA'
        meta.parent.mkdir()
        meta.write_text('Metadata-Version: 2.1\nName: nova\nVersion: %s\n'
                        % NOVA_VERSION)
        result = self._cmd('status', version=None)
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIn('nova %s at' % NOVA_VERSION, result.stdout)

    def test_change_killed_while_writing_is_rolled_back(self):
        """A process killed between two file writes leaves its journal; the
        next run restores the original bytes before doing anything else."""
        before = self._copy_nova()
        code = (
            'import os, sys\n'
            'from nova_migration_guard.patching import series, tree\n'
            'written = []\n'
            'real = tree.PatchedTree._write\n'
            'def write(self, rel, data):\n'
            '    real(self, rel, data)\n'
            '    written.append(rel)\n'
            '    if len(written) == 4:\n'
            '        os._exit(9)\n'
            'tree.PatchedTree._write = write\n'
            'nova = series.nova_tree_at(sys.argv[1], sys.argv[2])\n'
            'tree.PatchedTree(nova, series.series_for(nova.version))'
            '.apply(progress=lambda *a: None)\n')
        killed = subprocess.run([sys.executable, '-c', code, str(self.root),
                                 NOVA_VERSION])
        self.assertEqual(9, killed.returncode)
        self.assertNotEqual(before, _tree_digest(self.root))
        self.assertIn('interrupted', self._cmd('status').stdout)
        result = self._cmd('apply')
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIn('rolled back an interrupted apply/revert',
                      result.stdout)
        self.assertIn('): applied', self._cmd('status').stdout)
        self.assertEqual(0, self._cmd('revert').returncode)
        self.assertEqual(before, _tree_digest(self.root))


class SeriesSelectionTestCase(testtools.TestCase):
    """One table (series.RELEASES) picks the series from Nova's version."""

    def test_series_by_major_version(self):
        for version, name in (('34.0.0', '34.x'), ('34.1.0', '34.x'),
                              ('33.0.2', '33.x'), ('33.0.0', '33.x'),
                              ('32.2.1', '32.x'), ('31.3.1', '31.x'),
                              ('21.2.4', '21.x')):
            series = series_mod.series_for(version)
            self.assertEqual(name, series.name)
            self.assertEqual(name, series.directory.name)
            self.assertEqual(name, series.release.series)

    def test_unsupported_versions(self):
        for version in ('30.2.0', '22.0.0', '35.0.0', '3.0.0', '340.0.0',
                        'master'):
            self.assertIsNone(series_mod.release_of(version))
            self.assertRaises(series_mod.PatchError, series_mod.series_for,
                              version)

    def test_table_and_patch_directories_agree(self):
        root = series_mod.patches_root() / 'nova'
        on_disk = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.assertEqual(on_disk, sorted(r.series for r in
                                         series_mod.RELEASES))
        for release in series_mod.RELEASES:
            series = series_mod.series_for(release.tested)
            self.assertTrue(series.patches)
            for patch in series.patches:
                self.assertTrue(patch.is_file(), patch)

    def test_hook_point_series_match(self):
        """Every hook-point series carries the same patches as 34.x: same
        names, subjects and files; only the code around the hooks differs."""
        reference = series_mod.series_for('34.0.0')
        for version in ('33.0.2', '32.2.1', '31.3.1'):
            series = series_mod.series_for(version)
            self.assertEqual([p.name for p in reference.patches],
                             [p.name for p in series.patches])
            self.assertEqual(reference.files, series.files)
            self.assertEqual(reference.created, series.created)

    def test_constraints_pin_the_tested_release(self):
        """tox's NMG_NOVA_RELEASE=<major> installs constraints/nova-<major>
        .txt: it pins the Nova the table says the series is tested on."""
        root = pathlib.Path(__file__).resolve().parents[2] / 'constraints'
        files = sorted(root.glob('nova-*.txt'))
        self.assertTrue(files)
        for path in files:
            major = path.stem.split('-', 1)[1]
            pins = dict(line.split('==', 1) for line in
                        path.read_text().splitlines()
                        if '==' in line and not line.startswith('#'))
            release = series_mod.release_of(major + '.0.0')
            self.assertIsNotNone(release, path)
            self.assertEqual(release.tested, pins['nova'].strip(), path)
