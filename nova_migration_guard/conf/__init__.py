"""Configuration of nova-migration-guard.

One module per option group, in the style of ``nova/conf``.  Every module
exposes ``register_opts(conf)`` and ``list_opts()``; this package gathers
them for the ``oslo.config.opts`` entry point (``tox -e genconfig``).
"""

from oslo_config import cfg

from nova_migration_guard.conf import anti_affinity
from nova_migration_guard.conf import convergence
from nova_migration_guard.conf import coordination
from nova_migration_guard.conf import guard
from nova_migration_guard.conf import host_identity
from nova_migration_guard.conf import migration_outcome

CONF = cfg.CONF

_MODULES = (guard, coordination, anti_affinity, host_identity, convergence,
            migration_outcome)


def register_opts(conf):
    for module in _MODULES:
        module.register_opts(conf)


def list_opts():
    """The options of every group, for oslo-config-generator."""
    opts = []
    for module in _MODULES:
        opts.extend(module.list_opts().items())
    return opts


register_opts(CONF)


class ConfigurationError(SystemExit):
    """An invalid option value: the service must not start.

    A SystemExit so that a service started from a console script stops with
    the one-line message and exit code 1, as Nova does for a bad
    ``compute_driver``.
    """


def ensure_state_path(conf):
    """Make ``$state_path`` (in the default backend_url) resolvable.

    Nova registers ``[DEFAULT] state_path``; a process that has not loaded
    nova.conf (a tool, a unit test) has not.  Register Nova's own option
    objects then, so that a later ``import nova.conf`` sees identical
    options instead of raising DuplicateOptError.
    """
    if 'state_path' in conf:
        return
    try:
        from nova.conf import paths as nova_paths
    except ImportError:  # no Nova installed: a stand-in with its meaning
        opts = [cfg.StrOpt('state_path', default='/var/lib/nova',
                           help="Top-level directory of Nova's state.")]
    else:
        opts = nova_paths.ALL_OPTS
    conf.register_opts(opts)


def validate(conf=CONF):
    """Read every option of our groups; raise ConfigurationError on the first
    invalid one, naming the option and what it accepts."""
    ensure_state_path(conf)
    for group, opts in list_opts():
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
    from nova_migration_guard import coordination  # noqa: avoid a cycle
    coordination.validate_backend_url(conf)
    _validate_convergence_policies(conf)


def _validate_convergence_policies(conf):
    from nova_migration_guard.convergence import in_force
    from nova_migration_guard.convergence import policies
    group = conf.migration_guard_convergence
    try:
        in_force.check(group.default_policy, group.custom_policies)
    except policies.PolicyError as exc:
        raise ConfigurationError('nova-migration-guard: invalid value for '
                                 '[migration_guard_convergence]: %s' % exc)
