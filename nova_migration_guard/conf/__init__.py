"""Configuration of nova-migration-guard.

One module per option group, in the style of ``nova/conf``.  Every module
exposes ``register_opts(conf)`` and ``list_opts()``; this package gathers
them for the ``oslo.config.opts`` entry point (``tox -e genconfig``).

As nova/conf, a leaf: it imports nothing else of ours, so that any module
can import it.  Checking the values at service start, which needs the
guards' own code, is :mod:`nova_migration_guard.validation`.
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

    A SystemExit with exit status 1, as Nova's for a bad ``compute_driver``:
    the service-start hook logs the one-line message (``str()``) as
    CRITICAL, and the interpreter prints nothing more.
    """

    def __init__(self, message):
        super().__init__(message)
        self.code = 1


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
