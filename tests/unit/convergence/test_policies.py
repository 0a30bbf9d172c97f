"""Convergence policies: built-in, custom, and which one a guest gets."""

import testtools

from nova_migration_guard.convergence import policies as p


class SelectTest(testtools.TestCase):

    def test_flavor_before_image_before_default(self):
        specs = {p.EXTRA_SPEC: 'post-copy'}
        sysmeta = {p.IMAGE_SYSMETA: 'large-guest'}
        self.assertEqual('post-copy', p.select(
            specs, sysmeta, 'minimal-downtime')[0].name)
        self.assertEqual('large-guest', p.select(
            {}, sysmeta, 'minimal-downtime')[0].name)
        policy, source = p.select({}, {}, 'suspend-workload')
        self.assertEqual('suspend-workload', policy.name)
        self.assertIn('default_policy', source)

    def test_unknown_name_names_the_source_and_the_choices(self):
        error = self.assertRaises(p.PolicyError, p.select,
                                  {}, {p.IMAGE_SYSMETA: 'fast'}, 'x')
        self.assertIn('image property migration_guard_convergence_policy',
                      str(error))
        self.assertIn('large-guest, minimal-downtime, post-copy, '
                      'pre-copy-only, suspend-workload', str(error))

    def test_custom_policy(self):
        gold = p.parse_custom('gold:post-copy,seconds_per_gib=120,'
                              'downtime_steps_ms=300/900,pause=true')
        self.assertEqual(('gold', (300, 900), True, True, 120),
                         (gold.name, gold.downtime_steps_ms, gold.post_copy,
                          gold.pause, gold.seconds_per_gib))
        self.assertEqual('gold', p.select(
            {p.EXTRA_SPEC: 'gold'}, {}, 'minimal-downtime',
            ['gold:post-copy'])[0].name)

    def test_invalid_custom_policies(self):
        for spec, words in (
                ('gold', 'NAME:BASE'),
                ('gold:fast', "unknown base 'fast'"),
                ('gold:post-copy,speed=1', "unknown key 'speed'"),
                ('gold:post-copy,pause=maybe', "invalid pause 'maybe'"),
                ('gold:post-copy,downtime_steps_ms=900/300',
                 'invalid downtime_steps_ms')):
            error = self.assertRaises(p.PolicyError, p.parse_custom, spec)
            self.assertIn(words, str(error))

    def test_describe(self):
        self.assertEqual(
            'post-copy: downtime 500/1000 ms -> post-copy, then abort; '
            '300 s/GiB', p.BUILTIN['post-copy'].describe())
