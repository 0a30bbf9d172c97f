"""The functional environment runs on Nova with the patch series applied."""

import importlib.metadata
import subprocess
import sys

import testtools


def _patches(action):
    return subprocess.run(
        [sys.executable, '-m', 'nova_migration_guard.cmd.main', 'patches',
         action], capture_output=True, text=True, timeout=120)


class PatchedNovaTestCase(testtools.TestCase):

    def test_status_shows_series_applied(self):
        result = _patches('status')
        self.assertEqual(0, result.returncode, result.stderr)
        first = result.stdout.splitlines()[0]
        # The series of the installed Nova's release line.
        major = importlib.metadata.version('nova').split('.')[0]
        self.assertRegex(first,
                         r'series %s\.x \(\d+ patches\): applied$' % major)
        marks = [line.split()[0] for line in result.stdout.splitlines()[1:]]
        self.assertTrue(marks)
        self.assertEqual({'applied'}, set(marks))

    def test_check_succeeds_when_applied(self):
        result = _patches('check')
        self.assertEqual(0, result.returncode, result.stderr)
