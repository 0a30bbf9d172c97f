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
* ``zookeeper://ZK_HOST:2181`` (``?timeout=SECONDS``: the session timeout)

How long a lock outlives a holder that stopped renewing it (its TTL) is the
``lock_timeout`` URL option for etcd and redis (30 s by default) and the
session timeout for ZooKeeper, its ``timeout`` URL option (an integer, 10 s
by default; ``lock_timeout`` is refused there), as the server grants it
between its ``minSessionTimeout`` and ``maxSessionTimeout`` (by default 2
and 20 ``tickTime``, 4 to 40 s).

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
                          'be retried). With host_identity, a compute that '
                          'cannot renew its identity lease ends itself '
                          'before the lease can run out, and a compute does '
                          'not start without its lease.'),
            (PROCEED_UNLOCKED, 'Log a warning and run the guarded operation '
                               'without the lock (Nova\'s stock behaviour, '
                               'races possible). With host_identity, a '
                               'compute that cannot renew its identity lease '
                               'keeps running without the one-process '
                               'guarantee and takes the lease again once the '
                               'backend answers.'),
        ],
        help="""
What the guards do when the lock backend cannot be reached, at start and
while running. Keep the default unless moves must go on during a backend
outage and the races the lock prevents are acceptable for that time.

With the ``host_identity`` guard this also decides what an outage of the
backend longer than the lock TTL (see ``backend_url``: ``lock_timeout`` for
etcd and redis, 30 s by default; the session ``timeout`` for ZooKeeper, 10 s
by default) does to the computes:

* ``fail_closed``: **every nova-compute using that backend ends itself**
  (exit status 75, one CRITICAL line) one check interval before its lease
  could run out, so that no two processes ever act as one compute; a
  frozen compute (stopped, starved, its host paused) is killed by a kernel
  timer at that point too. Guests keep running (QEMU does not depend on
  nova-compute), but operations in progress on the computes are cut off
  (Nova's start-up recovery handles them), the API reports the computes
  down after ``service_down_time`` and nothing can be scheduled, moved or
  started until they are back. Under systemd with ``Restart=`` a compute
  with ``on_duplicate = standby`` waits for the backend and starts once it
  has its lease; with ``refuse`` it exits again at start until the backend
  answers. Run this only with a highly available backend (an etcd cluster
  of 3 or 5 members, redis with Sentinel, a ZooKeeper ensemble) and a TTL
  longer than the outages you expect (a failover, a restart): on thousands of
  hypervisors a backend outage becomes a control-plane outage.
* ``proceed_unlocked``: the computes log a warning and keep running without
  the guarantee: a hot standby can start as soon as the backend answers
  again while the old process still runs (two processes acting as one
  compute until the old one sees another process holding its lease and
  ends). A compute that the backend says lost its lease (its TTL ran out
  while it was frozen, another process holds it) still ends. Use it where
  no standby is configured, and an outage must not stop the computes.
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
