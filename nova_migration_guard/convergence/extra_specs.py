"""Nova API validation of our flavor extra spec (Nova's
``nova.api.extra_spec_validators`` entry point): an unknown convergence
policy gets HTTP 400 naming the extra spec and the accepted policies, when
the flavor is changed, not when a migration starts."""

from nova.api.validation.extra_specs import base
from nova import exception

from nova_migration_guard.convergence import in_force
from nova_migration_guard.convergence import policies


class _PolicyNameValidator(base.ExtraSpecValidator):
    """Accepts the policy names in force at the moment of the request
    (custom policies can change without a restart)."""

    def _validate_str(self, value):
        _default, custom_specs = in_force.configuration()
        names = sorted(policies.available(custom_specs))
        if value not in names:
            raise exception.ValidationError(
                "Validation failed; extra spec %s: %r is not a convergence "
                "policy; accepted values: %s." % (
                    policies.EXTRA_SPEC, value, ', '.join(names)))


def register():
    return [_PolicyNameValidator(
        name=policies.EXTRA_SPEC,
        description=('The nova-migration-guard convergence policy of the '
                     'live migrations of this flavor\'s instances: a '
                     'built-in one (%s) or a custom one from '
                     '[migration_guard_convergence] custom_policies.'
                     % ', '.join(sorted(policies.BUILTIN))),
        value={'type': str, 'description': 'a convergence policy name'},
    )]
