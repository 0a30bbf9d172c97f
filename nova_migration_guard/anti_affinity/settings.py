"""When the anti-affinity guard acts, read from the configuration; shared
by the scheduler filter/weigher and the late check."""

from nova_migration_guard import conf
from nova_migration_guard.conf import anti_affinity as aa_conf

GUARD = 'anti_affinity'


def handles(policy_name):
    """The guard is enabled and ``policy_name`` is left to it
    (``[migration_guard_anti_affinity] policies``)."""
    return (GUARD in conf.CONF.migration_guard.guards and
            policy_name in conf.CONF.migration_guard_anti_affinity.policies)


def audit():
    """``[migration_guard_anti_affinity] mode = audit``: log what the guard
    would do, change nothing."""
    return conf.CONF.migration_guard_anti_affinity.mode == aa_conf.AUDIT
