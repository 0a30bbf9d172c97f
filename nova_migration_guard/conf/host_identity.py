"""The [migration_guard_host_identity] group: one process per compute
identity."""

from oslo_config import cfg

REFUSE = 'refuse'
STANDBY = 'standby'

host_identity_group = cfg.OptGroup(
    'migration_guard_host_identity',
    title='nova-migration-guard host identity',
    help="""
With the ``host_identity`` guard, nova-compute takes a lease on its host
identity (``[DEFAULT] host``) in the coordination backend of
``[migration_guard_coordination] backend_url`` before it loads its manager, so
that two processes never act as the same compute at once. Only a shared
backend (etcd, redis, zookeeper) sees processes of other hosts: the default
``file://`` backend only catches a second process on the same host.
""")

ALL_OPTS = [
    cfg.StrOpt(
        'on_duplicate',
        default=REFUSE,
        choices=[
            (REFUSE, 'A nova-compute whose identity is held by another '
                     'running process exits at start, naming the identity '
                     'and the backend.'),
            (STANDBY, 'It waits as a hot standby until the lease frees (the '
                      'holder stopped, or died and its lease expired), then '
                      'starts.'),
        ],
        help="""
What a nova-compute does at start when another process already holds its
identity. Keep ``refuse`` unless you run a second, identically configured
compute on purpose as a standby for the first (for example on a shared
hypervisor or a failover node): then set ``standby`` on both.
"""),
    cfg.IntOpt(
        'lease_check_interval',
        default=5,
        min=1,
        help="""
Seconds between two renewals and checks of this process's identity lease
(never more than a third of the backend's lock TTL: the ``lock_timeout`` URL
option of etcd and redis, the session ``timeout`` of ZooKeeper). It is also
the safety margin: a compute that has not had a renewal confirmed for the
TTL minus this interval ends itself (see
``[migration_guard_coordination] on_backend_failure``), and a compute that
takes the lease waits one TTL before it starts. Lower it to tolerate more
failed renewals within one TTL, at the cost of more requests to the backend;
raise it only if those requests load the backend.
"""),
    cfg.StrOpt(
        'destroy_brake',
        default='enforce',
        choices=[
            ('enforce', 'Refuse the cleanup of evacuated guests at '
                        'nova-compute start, and do not start, when a '
                        'record is inconsistent or too many guests would '
                        'go.'),
            ('audit', 'Only log what would have been refused, and let '
                      'Nova destroy the guests.'),
        ],
        help="""
What the destroy brake does when the guests Nova is about to destroy at
start, as evacuated from this host, do not check out against their
evacuation records and instances, or are too many (``max_destroy_share``).
Use ``audit`` to learn what the brake would stop before enforcing it, or
for one start after you have checked the guests it named.
"""),
    cfg.FloatOpt(
        'max_destroy_share',
        default=0.5,
        min=0.0,
        max=1.0,
        help="""
The largest share of a compute's local guests that its evacuation cleanup
may destroy at start (0.5: half). Above it the cleanup is refused and the
service does not start until someone checks: a host whose every instance was
evacuated while it was down then needs 1.0 (or ``destroy_brake = audit``) for
that one start. Lower it for more caution; 1.0 keeps only the consistency
checks.
"""),
]


def register_opts(conf):
    conf.register_group(host_identity_group)
    conf.register_opts(ALL_OPTS, group=host_identity_group)


def list_opts():
    return {host_identity_group: ALL_OPTS}
