"""``nova-migration-guard demo``'s command line (what runs no cloud; the
scenarios run in tests/functional/test_demo_command.py)."""

import contextlib
import io
import subprocess
import sys

import fixtures
import testtools

from nova_migration_guard.cmd import main
from nova_migration_guard.demo import scenarios

NAMES = [s.name for s in scenarios.SCENARIOS]


class DemoArgumentsTestCase(testtools.TestCase):

    def _exit(self, *argv):
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            exc = self.assertRaises(SystemExit, main.main, list(argv))
        return exc.code, out.getvalue(), err.getvalue()

    def test_unknown_scenario_refused_with_the_names(self):
        # In a subprocess: a demo that runs takes over fds 1 and 2.
        log = self.useFixture(fixtures.TempDir()).join('demo.log')
        result = subprocess.run(
            [sys.executable, '-m', 'nova_migration_guard.cmd.main', 'demo',
             '--json', '--scenario', 'no-such-thing', '--log-file', log],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(2, result.returncode, result.stdout)
        self.assertEqual('', result.stdout)
        self.assertIn("--scenario: invalid choice: 'no-such-thing'",
                      result.stderr)
        for name in NAMES:
            self.assertIn(name, result.stderr)

    def test_help_lists_the_scenarios(self):
        code, out, _ = self._exit('demo', '--help')
        self.assertEqual(0, code)
        for name in NAMES:
            self.assertIn(name, out)

    def test_known_scenarios_accepted(self):
        args = main.build_parser().parse_args(
            ['demo', '--scenario', NAMES[0], '--scenario', NAMES[-1]])
        self.assertEqual([NAMES[0], NAMES[-1]], args.scenario)

    def test_rounds_must_be_a_positive_number(self):
        for bad in ('0', '-3', 'five'):
            code, _, err = self._exit('demo', '--cloud', 'real',
                                      '--rounds', bad)
            self.assertEqual(2, code)
            self.assertIn('--rounds: expected a whole number of rounds, 1 '
                          'or more; got %r' % bad, err)

    def test_unknown_cloud_refused_with_the_choices(self):
        code, _, err = self._exit('demo', '--cloud', 'devstack')
        self.assertEqual(2, code)
        self.assertIn("--cloud: invalid choice: 'devstack' (choose from "
                      "'embedded', 'real')", err)

    def test_embedded_only_options_refused_on_the_real_cloud(self):
        # Before any cloud starts: one line, exit status 2.
        err = io.StringIO()
        args = main.build_parser().parse_args(
            ['demo', '--cloud', 'real', '--scenario', NAMES[0]])
        with contextlib.redirect_stderr(err):
            code = args.func(args)
        self.assertEqual(2, code)
        self.assertEqual('nova-migration-guard demo: --real, --scenario and '
                         '--log-file apply to --cloud embedded only\n',
                         err.getvalue())
