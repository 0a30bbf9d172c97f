"""``nova-migration-guard audit`` when the cloud cannot be read: exit 2 and
one line, never a traceback.  (Against a cloud: tests/functional/
test_audit.py.)"""

import io
import os
import socket
import subprocess
import sys

import fixtures
import testtools

from nova_migration_guard.cmd import audit


class UnreachableTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.clouds_yaml = os.path.join(self.tmp, 'clouds.yaml')
        with socket.socket() as sock:    # a port nobody listens on
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        endpoint = 'http://127.0.0.1:%d/v2.1' % port
        with open(self.clouds_yaml, 'w') as f:
            f.write('clouds:\n  closed:\n    auth_type: admin_token\n'
                    '    auth:\n      endpoint: %s\n      token: t\n'
                    '    compute_endpoint_override: %s\n'
                    % (endpoint, endpoint))
        self.env = dict(os.environ, OS_CLIENT_CONFIG_FILE=self.clouds_yaml)
        self.env.pop('OS_CLOUD', None)
        for name, value in (('OS_CLIENT_CONFIG_FILE', self.clouds_yaml),
                            ('OS_CLOUD', None)):
            self.useFixture(fixtures.EnvironmentVariable(name, value))

    def _audit(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        code = audit.main(list(argv), out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def test_unknown_cloud(self):
        code, out, err = self._audit('--os-cloud', 'nosuch')
        self.assertEqual(2, code)
        self.assertEqual('', out)
        self.assertEqual(
            'nova-migration-guard audit: cannot read cloud nosuch: '
            'ConfigException: Cloud nosuch was not found.',
            err.splitlines()[-1])

    def test_nothing_listening(self):
        code, out, err = self._audit('--os-cloud', 'closed', '--json')
        self.assertEqual(2, code)
        self.assertEqual('', out)
        self.assertTrue(err.splitlines()[-1].startswith(
            'nova-migration-guard audit: cannot read cloud closed: '), err)
        self.assertNotIn('Traceback', err)

    def test_console_script(self):
        result = subprocess.run(
            [sys.executable, '-m', 'nova_migration_guard.cmd.main', 'audit',
             '--os-cloud', 'closed'], capture_output=True, text=True,
            env=self.env, timeout=120)
        self.assertEqual(2, result.returncode, result.stderr)
        self.assertEqual('', result.stdout)
        self.assertNotIn('Traceback', result.stderr)
        self.assertEqual(1, sum(
            1 for line in result.stderr.splitlines()
            if line.startswith('nova-migration-guard audit: ')),
            result.stderr)

    def test_help_documents_findings_and_exit_codes(self):
        out = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', out))
        self.assertRaises(SystemExit, audit.main, ['--help'])
        text = out.getvalue()
        for word in ('--os-cloud', '--stuck-after', '--json',
                     'anti-affinity', 'stuck-migration', 'unknown-state',
                     'host-mismatch', 'duplicate-hypervisor',
                     '0 nothing found, 1 findings, 2 the cloud could not '
                     'be read'):
            self.assertIn(word, text)


class ArgumentsTestCase(testtools.TestCase):

    def test_negative_stuck_after_refused(self):
        err = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', err))
        exc = self.assertRaises(SystemExit, audit.main,
                                ['--stuck-after', '-5'])
        self.assertEqual(2, exc.code)
        self.assertIn("argument --stuck-after: invalid value '-5': "
                      "seconds must be 0 or more", err.getvalue())

    def test_zero_stuck_after_accepted(self):
        from nova_migration_guard.cmd import main
        args = main.build_parser().parse_args(['audit', '--stuck-after', '0'])
        self.assertEqual(0, args.stuck_after)


class AuditErrorTestCase(testtools.TestCase):
    """An error of the audit itself is not "cannot read the cloud".

    What is stubbed, and why: the collection raises a ValueError, as a
    defect in the audit's own reading of an answer would; no real cloud
    answers in a way that makes it raise one on demand."""

    def test_value_error_reported_as_what_it_is(self):
        from nova_migration_guard.audit import collect

        def broken(conn, progress):
            raise ValueError('invalid literal for int() with base 10')
        self.useFixture(fixtures.MonkeyPatch(
            'nova_migration_guard.audit.collect.connect', lambda cloud: None))
        self.useFixture(fixtures.MonkeyPatch(
            'nova_migration_guard.audit.collect.collect', broken))
        self.assertIs(broken, collect.collect)
        out, err = io.StringIO(), io.StringIO()
        code = audit.main(['--os-cloud', 'somecloud'], out=out, err=err)
        self.assertEqual(3, code)
        self.assertEqual('', out.getvalue())
        last = err.getvalue().splitlines()[-1]
        self.assertNotIn('cannot read cloud', last)
        self.assertEqual(
            'nova-migration-guard audit: the audit failed on cloud '
            'somecloud: ValueError: invalid literal for int() with base 10 '
            '(an error of the audit, not of the cloud: please report it)',
            last)
        self.assertNotIn('Traceback', err.getvalue())
