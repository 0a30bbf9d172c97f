"""The ``[migration_guard_migration_outcome]`` group."""

from oslo_config import cfg

migration_outcome_group = cfg.OptGroup(
    'migration_guard_migration_outcome',
    title='nova-migration-guard migration outcome',
    help="""
With the ``migration_outcome`` guard, the guarded libvirt driver decides where
a guest runs when a live migration ends abnormally or its compute restarted
mid-way. These options tune that decision.
""")

ALL_OPTS = [
    cfg.IntOpt(
        'in_flight_timeout',
        default=600,
        min=1,
        help="""
Seconds the guarded driver waits, when a live migration ended abnormally
while libvirt still migrates the guest (post-copy still pulling memory from
the source, or a job Nova could not abort), for libvirt to finish or fail
before it decides where the guest runs. Nothing is torn down meanwhile. If
libvirt is still migrating when the time is up, the instance is held (ERROR,
locked, nothing torn down) for an operator to check both hosts.

Raise it if post-copy migrations of your largest guests over your migration
network take longer (about memory size / bandwidth), so that they end as a
normal completion instead of a hold. The wait blocks the migration's thread
on the source compute and, after a restart mid-migration, that compute's
start.
"""),
]


def register_opts(conf):
    conf.register_group(migration_outcome_group)
    conf.register_opts(ALL_OPTS, group=migration_outcome_group)


def list_opts():
    return {migration_outcome_group: ALL_OPTS}
