"""Checking our options when a service starts (the ``service_starting``
hook): every value readable and acceptable, or the service does not start.

Beside the hook rather than in nova_migration_guard.conf, which stays a
leaf: the checks need the coordination backends and the convergence
policies, which import conf themselves.
"""

from oslo_config import cfg

from nova_migration_guard import conf as mg_conf
from nova_migration_guard.convergence import in_force
from nova_migration_guard.convergence import policies
from nova_migration_guard import coordination

ConfigurationError = mg_conf.ConfigurationError


def validate(conf=mg_conf.CONF):
    """Read every option of our groups; raise ConfigurationError on the first
    invalid one, naming the option and what it accepts."""
    mg_conf.ensure_state_path(conf)
    for group, opts in mg_conf.list_opts():
        for opt in opts:
            try:
                getattr(conf[group.name], opt.dest)
            except (ValueError, cfg.ConfigFileValueError) as exc:
                # oslo.config says "... is not valid: Valid values are [a, b],
                # but found 'c'"; keep what follows the location details.
                reason = str(exc).split(' is not valid: ', 1)[-1]
                raise ConfigurationError(
                    'nova-migration-guard: invalid value for [%s] %s: %s'
                    % (group.name, opt.name, reason.splitlines()[0]))
    coordination.validate_backend_url(conf)
    _validate_convergence_policies(conf)


def _validate_convergence_policies(conf):
    group = conf.migration_guard_convergence
    try:
        in_force.check(group.default_policy, group.custom_policies)
    except policies.PolicyError as exc:
        raise ConfigurationError('nova-migration-guard: invalid value for '
                                 '[migration_guard_convergence]: %s' % exc)
