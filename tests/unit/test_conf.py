"""Option validation at service start: one line naming option and values."""

from oslo_config import cfg
from oslo_config import fixture as config_fixture
import testtools

from nova_migration_guard import conf
from nova_migration_guard import hooks
from nova_migration_guard import validation


class ValidateTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = cfg.ConfigOpts()
        conf.register_opts(self.conf)
        self.conf.register_opt(cfg.StrOpt('state_path', default='/tmp/x'))
        self.cfg_file = self.useFixture(config_fixture.Config(self.conf))

    def _load(self, text):
        path = self.useFixture(
            __import__('fixtures').TempDir()).join('nova.conf')
        with open(path, 'w') as f:
            f.write(text)
        self.conf([], default_config_files=[path])

    def _refusal(self):
        exc = self.assertRaises(conf.ConfigurationError, validation.validate,
                                self.conf)
        self.assertIsInstance(exc, SystemExit)
        message = str(exc)
        self.assertEqual(1, len(message.splitlines()), message)
        return message

    def test_defaults_are_valid(self):
        self._load('')
        validation.validate(self.conf)
        self.assertEqual([], self.conf.migration_guard.guards)

    def test_unknown_guard(self):
        self._load('[migration_guard]\nguards = anti_affinity, bogus\n')
        self.assertEqual(
            "nova-migration-guard: invalid value for [migration_guard] "
            "guards: Valid values are [anti_affinity, migration_outcome, "
            "host_identity, convergence], but found 'bogus'",
            self._refusal())

    def test_bad_choice(self):
        self._load('[migration_guard_coordination]\n'
                   'on_backend_failure = maybe\n')
        self.assertEqual(
            "nova-migration-guard: invalid value for "
            "[migration_guard_coordination] on_backend_failure: Valid values "
            "are [fail_closed, proceed_unlocked], but found 'maybe'",
            self._refusal())

    def test_anti_affinity_mode(self):
        self._load('[migration_guard_anti_affinity]\nmode = warn\n')
        self.assertEqual(
            "nova-migration-guard: invalid value for "
            "[migration_guard_anti_affinity] mode: Valid values are "
            "[enforce, audit], but found 'warn'", self._refusal())

    def test_out_of_range(self):
        self._load('[migration_guard_coordination]\nacquire_timeout = 0\n')
        self.assertIn('[migration_guard_coordination] acquire_timeout: '
                      'Should be greater than or equal to 1',
                      self._refusal())

    def test_unknown_default_convergence_policy(self):
        self._load('[migration_guard_convergence]\n'
                   'default_policy = fastest\n')
        refusal = self._refusal()
        self.assertIn('[migration_guard_convergence] default_policy = '
                      "'fastest' is not a convergence policy", refusal)
        self.assertIn('accepted: large-guest, minimal-downtime', refusal)

    def test_invalid_custom_convergence_policy(self):
        self._load('[migration_guard_convergence]\n'
                   'custom_policies = gold:post-copy,speed=2\n')
        self.assertIn("custom policy gold: unknown key 'speed'",
                      self._refusal())

    def test_in_flight_timeout_below_one_second(self):
        self._load('[migration_guard_migration_outcome]\n'
                   'in_flight_timeout = 0\n')
        self.assertEqual(
            'nova-migration-guard: invalid value for '
            '[migration_guard_migration_outcome] in_flight_timeout: Should be '
            'greater than or equal to 1', self._refusal())

    def test_list_opts_covers_every_group(self):
        groups = {group.name for group, _ in conf.list_opts()}
        self.assertEqual({'migration_guard', 'migration_guard_coordination',
                          'migration_guard_anti_affinity',
                          'migration_guard_host_identity',
                          'migration_guard_convergence',
                          'migration_guard_migration_outcome'}, groups)
        for _, opts in conf.list_opts():
            for opt in opts:
                self.assertTrue(opt.help.strip(), opt.name)


class ServiceStartingHookTestCase(testtools.TestCase):
    """The hook Nova's Service calls before loading its manager."""

    def setUp(self):
        super().setUp()
        self.fix = self.useFixture(config_fixture.Config(conf.CONF))
        self.fix.config(group='migration_guard_coordination',
                        backend_url='nosuchscheme://x')
        self.service = type('Service', (), {'binary': 'nova-compute',
                                            'host': 'host1'})()

    def _refusal(self):
        exc = self.assertRaises(SystemExit,
                                hooks.MigrationGuardHooks().service_starting,
                                self.service)
        return str(exc)

    def test_invalid_option_stops_the_service(self):
        self.fix.config(group='migration_guard', guards=['anti_affinity'])
        self.assertIn('[migration_guard_coordination] backend_url',
                      self._refusal())

    def test_no_guard_listed_reads_no_option(self):
        # The disabled plugin: stock Nova, whatever its other options say;
        # the default, then "guards =" written in nova.conf.
        self.assertIsNone(
            hooks.MigrationGuardHooks().service_starting(self.service))
        self.fix.load_raw_values(group='migration_guard', guards='')
        self.assertIsNone(
            hooks.MigrationGuardHooks().service_starting(self.service))

    def test_unreadable_guards_value_is_validated(self):
        # A guards value that is not a list of known guards lists
        # something: not disabled, and the refusal names the option.
        self.fix.load_raw_values(group='migration_guard', guards='bogus')
        self.assertIn("[migration_guard] guards: Valid values are",
                      self._refusal())

    def test_refusal_is_logged_once_and_exits_1(self):
        """Once in the CRITICAL line (oslo.log's formatter, as a service
        runs it, adds the exception being handled to a line logged inside
        an except block) and nothing more: the exit status is 1, the
        interpreter prints no message of its own."""
        import io
        import logging

        from oslo_log import formatters
        from oslo_log import log

        self.fix.config(group='migration_guard', guards=['anti_affinity'])
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        log_conf = cfg.ConfigOpts()
        log.register_options(log_conf)
        log_conf([])
        handler.setFormatter(formatters.ContextFormatter(config=log_conf))
        logger = logging.getLogger('nova_migration_guard')
        logger.addHandler(handler)
        self.addCleanup(logger.removeHandler, handler)
        exc = self.assertRaises(SystemExit,
                                hooks.MigrationGuardHooks().service_starting,
                                self.service)
        self.assertEqual(1, stream.getvalue().count(str(exc)),
                         stream.getvalue())
        self.assertIn('CRITICAL', stream.getvalue())
        self.assertEqual(1, exc.code)


class ConfIsALeafTestCase(testtools.TestCase):
    """nova_migration_guard.conf imports nothing else of ours, as nova/conf
    (any module may import it without a cycle)."""

    def test_conf_imports_only_conf(self):
        import ast
        import os

        package = os.path.dirname(conf.__file__)
        imported = []
        for name in sorted(os.listdir(package)):
            if not name.endswith('.py'):
                continue
            with open(os.path.join(package, name)) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    modules = [node.module or '']
                elif isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                else:
                    continue
                imported.extend(
                    '%s: %s' % (name, module) for module in modules
                    if module.startswith('nova_migration_guard') and
                    not module.startswith('nova_migration_guard.conf'))
        self.assertEqual([], imported)
