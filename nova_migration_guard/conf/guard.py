"""The ``[migration_guard]`` group: which guards run."""

from oslo_config import cfg
from oslo_config import types

# The guards the plugin knows.
GUARD_NAMES = (
    'anti_affinity',
    'migration_outcome',
    'host_identity',
    'convergence',
)
# Guards accepted in the option but not shipped in this release: a service
# that lists one warns that it has no effect (see hooks.service_starting).
PLANNED_GUARDS = frozenset()

migration_guard_group = cfg.OptGroup(
    'migration_guard',
    title='nova-migration-guard',
    help="""
Guards that nova-migration-guard adds to Nova's move operations (live and
cold migration, resize, evacuate, unshelve). With ``guards`` empty the plugin
is installed but does nothing: patched Nova then behaves exactly as stock Nova.
""")

ALL_OPTS = [
    cfg.ListOpt(
        'guards',
        item_type=types.String(choices=GUARD_NAMES),
        default=[],
        help="""
The guards to enable, as a comma-separated list. Empty (the default) disables
the plugin entirely.

Possible values:

* ``anti_affinity``: count in-flight moves of server group members and check
  the destination under a distributed per-group lock.
* ``migration_outcome``: decide from libvirt on both hosts where a guest really
  runs when a live migration fails late or its compute restarted mid-way;
  finish or roll back the move, or hold the instance (locked, 409 on start)
  when it cannot be told. Needs ``compute_driver =
  migration_guard.GuardedLibvirtDriver`` on the computes and the guard on
  nova-api too (the start guard).
* ``host_identity``: refuse to start a compute service whose hypervisor is
  already another host's compute node, or whose identity another process
  holds (a lease in the coordination backend); brake Nova's start-up cleanup
  of evacuated guests when it looks wrong.
* ``convergence``: drive live migrations of busy guests by a named policy
  (downtime steps, auto-converge, post-copy, pause, abort) instead of Nova's
  fixed steps and timeout. Needs ``compute_driver =
  migration_guard.GuardedLibvirtDriver`` on the computes.

Enable a guard on every service of the cloud at once (scheduler, conductor and
computes); a guard enabled on only some services protects only their part.
"""),
]


def register_opts(conf):
    conf.register_group(migration_guard_group)
    conf.register_opts(ALL_OPTS, group=migration_guard_group)


def list_opts():
    return {migration_guard_group: ALL_OPTS}
