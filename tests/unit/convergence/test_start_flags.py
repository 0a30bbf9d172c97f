"""The libvirt flags a convergence policy adds to one migration, and the
policy an instance gets (the image may name an unknown one)."""

import types

import testtools

from nova_migration_guard.convergence import policies
from nova_migration_guard.virt.libvirt import convergence

LIBVIRT = types.SimpleNamespace(VIR_MIGRATE_AUTO_CONVERGE=0x2000,
                                VIR_MIGRATE_POSTCOPY=0x8000)


class StartFlagsTest(testtools.TestCase):

    def flags(self, name, post_copy_possible=True):
        return convergence.start_flags(LIBVIRT, policies.BUILTIN[name],
                                       post_copy_possible)

    def test_per_policy(self):
        self.assertEqual(0xA000, self.flags('minimal-downtime'))
        self.assertEqual(0x2000, self.flags('minimal-downtime',
                                            post_copy_possible=False))
        self.assertEqual(0x2000, self.flags('pre-copy-only'))
        self.assertEqual(0x8000, self.flags('post-copy'))
        self.assertEqual(0, self.flags('post-copy', post_copy_possible=False))
        self.assertEqual(0x2000, self.flags('suspend-workload'))

    def test_params_per_policy(self):
        self.assertEqual(
            {'auto_converge.initial': 20, 'auto_converge.increment': 10},
            convergence.start_params(LIBVIRT,
                                     policies.BUILTIN['minimal-downtime']))
        self.assertEqual({}, convergence.start_params(
            LIBVIRT, policies.BUILTIN['post-copy']))

    def test_added_to_that_migrate_call_only(self):
        calls = []

        class Domain(object):
            def migrateToURI3(self, dest, params=None, flags=0):
                calls.append((dest, params, flags))

        class Guest(object):
            # As Nova's Guest.migrate: builds params, calls its domain.
            name = 'g'

            def __init__(self):
                self._domain = Domain()

            def migrate(self, dest, flags=0, bandwidth=0):
                self._domain.migrateToURI3(
                    dest, params={'bandwidth': bandwidth}, flags=flags)

        guest = Guest()
        domain = guest._domain
        wrapped = convergence.GuestForPolicy(guest, 0x8000,
                                             {'auto_converge.initial': 40})
        wrapped.migrate('uri', flags=0x1, bandwidth=15)
        self.assertEqual([('uri', {'bandwidth': 15,
                                   'auto_converge.initial': 40}, 0x8001)],
                         calls)
        self.assertEqual('g', wrapped.name)
        # The Guest itself is untouched: other calls go to its own domain.
        self.assertIs(domain, guest._domain)
        guest.migrate('uri2')
        self.assertEqual(('uri2', {'bandwidth': 0}, 0), calls[-1])


class PolicyForTest(testtools.TestCase):

    def instance(self, extra_specs=None, system_metadata=None):
        flavor = types.SimpleNamespace(extra_specs=extra_specs or {})
        return types.SimpleNamespace(flavor=flavor, uuid='u',
                                     system_metadata=system_metadata or {})

    def test_flavor_policy(self):
        policy, source = convergence.policy_for(self.instance(
            {policies.EXTRA_SPEC: 'post-copy'}))
        self.assertEqual('post-copy', policy.name)
        self.assertIn('flavor extra spec', source)

    def test_unknown_image_policy_falls_back_to_the_default(self):
        policy, source = convergence.policy_for(self.instance(
            system_metadata={policies.IMAGE_SYSMETA: 'fastest'}))
        self.assertEqual('minimal-downtime', policy.name)
        self.assertIn('default_policy', source)
