"""The [migration_guard_convergence] group: which convergence policy a
live migration gets (nova_migration_guard.convergence.policies)."""

from oslo_config import cfg

convergence_group = cfg.OptGroup(
    'migration_guard_convergence',
    title='nova-migration-guard convergence',
    help="""
With the ``convergence`` guard, live migrations of guests that dirty memory
faster than the network copies them follow a named policy: the flavor extra
spec ``migration_guard:convergence_policy``, else the image property
``migration_guard_convergence_policy``, else ``default_policy``. Built-in
policies: minimal-downtime, pre-copy-only, post-copy, suspend-workload,
large-guest.
""")

ALL_OPTS = [
    cfg.StrOpt(
        'default_policy',
        default='minimal-downtime',
        mutable=True,
        help="""
The policy of live migrations whose flavor and image name none. The default,
minimal-downtime, keeps the guest running and finishes the migration:
downtime steps, then auto-converge, then post-copy. Choose ``pre-copy-only``
where a guest must never be split across two hosts (post-copy's risk: if the
network fails during it, neither half can run), at the price of aborting
migrations that do not converge; ``suspend-workload`` where a short pause is
better than post-copy's page faults. Any built-in or custom policy name;
takes effect without a restart (SIGHUP). An invalid value stops a starting
service; at a reload it is logged as an error and the last valid value
stays in force.
"""),
    cfg.MultiStrOpt(
        'custom_policies',
        default=[],
        mutable=True,
        help="""
Extra named policies, one per line: ``NAME:BASE,key=value,...``, where BASE is
a built-in policy and the keys are downtime_steps_ms (e.g. 500/1000/3000),
stall_passes, auto_converge, post_copy, pause (true/false),
auto_converge_initial and auto_converge_increment (CPU throttle %, 1-99)
and seconds_per_gib. stall_passes is the policy's patience: the passes a
predicted convergence may take, the raises the CPU throttle may need
before post-copy or pause is preferred, and the stalled passes that
refute a prediction; raise it for guests whose write rate varies a lot
between passes. Example: ``gold:post-copy,seconds_per_gib=120``. Add one
when the built-in policies do not fit a class of guests; flavors and images
then name it. Takes effect without a restart (SIGHUP); an invalid entry at
a reload is logged as an error and the last valid policies stay in force.
"""),
]


def register_opts(conf):
    conf.register_group(convergence_group)
    conf.register_opts(ALL_OPTS, group=convergence_group)


def list_opts():
    return {convergence_group: ALL_OPTS}
