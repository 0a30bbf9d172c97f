"""``nova-migration-guard patches``: on copies of the installed (stock)
Nova, driven through the real command line in a subprocess."""

import hashlib
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import testtools

from nova_migration_guard.patching import series as series_mod

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
        result = self._cmd('apply', version='33.1.0')
        self._assert_refused(result, 'nova 33.1.0 is not supported',
                             SERIES.name)
        self.assertEqual(before, _tree_digest(self.root))

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
            'tree.PatchedTree(nova.root, series.series_for(nova.version))'
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
