"""The [migration_guard_coordination] group: the distributed lock backend."""

from oslo_config import cfg

FAIL_CLOSED = 'fail_closed'
PROCEED_UNLOCKED = 'proceed_unlocked'

coordination_group = cfg.OptGroup(
    'migration_guard_coordination',
    title='nova-migration-guard coordination',
    help="""
The tooz backend that nova-migration-guard uses for locks shared between
services (for example the per-server-group lock that the anti-affinity check
takes on every destination compute). Every service of a cloud must use the
same backend.
""")

ALL_OPTS = [
    cfg.StrOpt(
        'backend_url',
        default='file://$state_path/migration_guard/locks',
        help="""
The tooz backend URL.

The default, a ``file://`` directory under Nova's ``state_path``, only locks
between processes of one host: it suits an all-in-one cloud and tests. A cloud
with more than one host must point every service at one shared backend:

* ``etcd3+http://ETCD_HOST:2379`` (etcd v3 through its gRPC gateway; devstack
  already runs etcd)
* ``redis://REDIS_HOST:6379`` (add ``?sentinel=NAME`` for Sentinel)
* ``zookeeper://ZK_HOST:2181``

A nova-compute with the ``anti_affinity`` or ``host_identity`` guard logs a
warning at start when this is a ``file://`` URL while computes run on other
machines (compute nodes with another ``host_ip``).
"""),
    cfg.StrOpt(
        'on_backend_failure',
        default=FAIL_CLOSED,
        choices=[
            (FAIL_CLOSED, 'Refuse the guarded operation when the backend '
                          'cannot be reached (the move fails cleanly and can '
                          'be retried).'),
            (PROCEED_UNLOCKED, 'Log a warning and run the guarded operation '
                               'without the lock (Nova\'s stock behaviour, '
                               'races possible).'),
        ],
        help="""
What a guard does when the lock backend cannot be reached. Keep the default
unless moves must go on during a backend outage and the races the lock
prevents are acceptable for that time.
"""),
    cfg.IntOpt(
        'acquire_timeout',
        default=60,
        min=1,
        help="""
Seconds a guard waits for a lock that another service holds before it gives
up and refuses the operation. Raise it if many moves of one server group run
at once and some are refused with a lock timeout.
"""),
]


def register_opts(conf):
    conf.register_group(coordination_group)
    conf.register_opts(ALL_OPTS, group=coordination_group)


def list_opts():
    return {coordination_group: ALL_OPTS}
