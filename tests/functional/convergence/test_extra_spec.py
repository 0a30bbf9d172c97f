"""The convergence policy extra spec at Nova's API (the embedded cloud's
real flavor extra-specs API, microversion >= 2.86 validates extra specs).
Validation needs no patch: Nova loads our validator from its own
``nova.api.extra_spec_validators`` entry point."""

from tests.functional import base


class ConvergencePolicyExtraSpecTest(base.EmbeddedCloudTestCase):
    NUMBER_OF_COMPUTES = 0

    def setUp(self):
        super().setUp()
        self.flavor = self.admin_api.post_flavor(
            {'flavor': {'name': 'f1', 'ram': 512, 'vcpus': 1, 'disk': 1}})

    def set_policy(self, name):
        return self.admin_api.post_extra_spec(
            self.flavor['id'],
            {'extra_specs': {'migration_guard:convergence_policy': name}})

    def extra_specs(self):
        return self.admin_api.api_get(
            '/flavors/%s/os-extra_specs' % self.flavor['id']
        ).body['extra_specs']

    def test_builtin_policy_accepted(self):
        self.set_policy('post-copy')
        self.assertEqual(
            {'migration_guard:convergence_policy': 'post-copy'},
            self.extra_specs())

    def test_unknown_policy_is_a_400_naming_key_and_values(self):
        error = self.assertRaises(base.OpenStackApiException,
                                  self.set_policy, 'fastest')
        self.assertEqual(400, error.response.status_code)
        text = error.response.text
        self.assertIn('migration_guard:convergence_policy', text)
        self.assertIn('accepted values: large-guest, minimal-downtime, '
                      'post-copy, pre-copy-only, suspend-workload', text)
        self.assertEqual({}, self.extra_specs())

    def test_custom_policy_from_config_accepted_without_restart(self):
        self.assertRaises(base.OpenStackApiException, self.set_policy,
                          'gold')
        self.flags(custom_policies=['gold:post-copy,seconds_per_gib=120'],
                   group='migration_guard_convergence')
        self.set_policy('gold')

    def test_unknown_key_in_our_namespace_is_a_400(self):
        error = self.assertRaises(
            base.OpenStackApiException, self.admin_api.post_extra_spec,
            self.flavor['id'],
            {'extra_specs': {'migration_guard:convergence': 'post-copy'}})
        self.assertEqual(400, error.response.status_code)
        self.assertIn('migration_guard:convergence', error.response.text)
