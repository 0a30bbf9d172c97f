"""Configuration of nova-migration-guard.

One module per option group, in the style of ``nova/conf``.  Every module
exposes ``register_opts(conf)`` and ``list_opts()``; this package gathers
them for the ``oslo.config.opts`` entry point (``tox -e genconfig``).
"""

from oslo_config import cfg

from nova_migration_guard.conf import coordination
from nova_migration_guard.conf import guard

CONF = cfg.CONF

_MODULES = (guard, coordination)


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


def validate(conf=CONF):
    """Read every option of our groups; raise ConfigurationError on the first
    invalid one, naming the option and what it accepts."""
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
