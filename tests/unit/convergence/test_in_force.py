"""The convergence options reloaded without a restart: a real nova.conf
file and oslo.config's own reload (``mutate_config_files``, what Nova's
services run on SIGHUP)."""

import logging

import fixtures
from oslo_config import cfg
import testtools

from nova_migration_guard import conf
from nova_migration_guard.convergence import in_force
from nova_migration_guard import validation


class ReloadTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        in_force.reset()
        self.addCleanup(in_force.reset)
        self.conf = cfg.ConfigOpts()
        conf.register_opts(self.conf)
        self.conf.register_opt(cfg.StrOpt('state_path', default='/tmp/x'))
        self.path = self.useFixture(fixtures.TempDir()).join('nova.conf')
        self.logs = self.useFixture(fixtures.FakeLogger(
            name=in_force.__name__, level=logging.WARNING))

    def _write(self, default=None, custom=()):
        lines = ['[migration_guard_convergence]']
        if default:
            lines.append('default_policy = %s' % default)
        lines.extend('custom_policies = %s' % spec for spec in custom)
        with open(self.path, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def _start(self, **kwargs):
        """As a service starts: load, validate, register the hook."""
        self._write(**kwargs)
        self.conf([], default_config_files=[self.path])
        validation.validate(self.conf)
        self.conf.register_mutate_hook(in_force.on_reload)
        return in_force.configuration(self.conf)

    def _reload(self, **kwargs):
        self._write(**kwargs)
        self.conf.mutate_config_files()

    def test_a_valid_change_takes_effect_without_a_restart(self):
        self.assertEqual(('minimal-downtime', ()), self._start())
        self._reload(default='gold', custom=['gold:post-copy,pause=true'])
        self.assertEqual(('gold', ('gold:post-copy,pause=true',)),
                         in_force.configuration(self.conf))
        self.assertEqual('', self.logs.output)

    def test_an_invalid_default_keeps_the_last_valid_one(self):
        self._start(default='pre-copy-only')
        self._reload(default='fastest')
        # Reported at the reload, once, naming the option and the values.
        self.assertIn("invalid value for [migration_guard_convergence]: "
                      "[migration_guard_convergence] default_policy = "
                      "'fastest' is not a convergence policy; accepted: "
                      "large-guest, minimal-downtime, post-copy, "
                      "pre-copy-only, suspend-workload", self.logs.output)
        self.assertIn('keep the last valid configuration (default_policy = '
                      'pre-copy-only, custom_policies = (none))',
                      self.logs.output)
        for _ in range(3):
            self.assertEqual(('pre-copy-only', ()),
                             in_force.configuration(self.conf))
        self.assertEqual(1, self.logs.output.count('invalid value'))
        # Fixed: in force at the next reload.
        self._reload(default='post-copy')
        self.assertEqual(('post-copy', ()),
                         in_force.configuration(self.conf))

    def test_an_invalid_custom_policy_keeps_the_last_valid_ones(self):
        self._start(default='gold', custom=['gold:post-copy'])
        self._reload(default='gold', custom=['gold:post-copy,speed=2'])
        self.assertIn("custom policy gold: unknown key 'speed'; accepted: ",
                      self.logs.output)
        self.assertEqual(('gold', ('gold:post-copy',)),
                         in_force.configuration(self.conf))

    def test_the_same_mistake_again_is_reported_again(self):
        self._start()
        self._reload(default='fastest')
        self._reload(default='post-copy')
        self._reload(default='fastest')
        self.assertEqual(2, self.logs.output.count('invalid value'))
        self.assertEqual(('post-copy', ()),
                         in_force.configuration(self.conf))
