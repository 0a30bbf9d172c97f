"""One nova-compute process per compute identity (``service_starting``
hook: before the manager, and so the virt driver, loads).

The process takes the coordination lease ``compute.<host>``.  With
``on_duplicate = refuse`` a second process with the same identity exits;
with ``standby`` it waits, as a hot standby, until the lease frees.  A
process that loses its lease (it froze, or the backend lost it) stops its
service, so that it takes no more work, and says why.  The lease is
released when the service stops or fails to start.
"""

import threading

from oslo_log import log as logging

from nova_migration_guard import conf as mg_conf
from nova_migration_guard.conf import coordination as coordination_conf
from nova_migration_guard.conf import host_identity as host_identity_conf
from nova_migration_guard import coordination

LOG = logging.getLogger(__name__)


class IdentityInUse(SystemExit):
    """Another process holds this compute's identity, or that cannot be
    checked: do not start."""


def lease_name(host):
    return 'compute.%s' % host


def take(service):
    conf = mg_conf.CONF.migration_guard_host_identity
    name = lease_name(service.host)
    lease = coordination.get_coordinator().lease(
        name, on_lost=lambda reason: _lost(service, reason))
    if conf.on_duplicate == host_identity_conf.STANDBY:
        LOG.warning('nova-compute %s waits as a hot standby until no other '
                    'process holds its identity (lease %s on %s)',
                    service.host, name, lease.backend_url)
        lease.acquire(wait=True)
    else:
        try:
            lease.acquire(wait=False)
        except coordination.CoordinationUnavailable as exc:
            if (mg_conf.CONF.migration_guard_coordination.on_backend_failure
                    == coordination_conf.PROCEED_UNLOCKED):
                LOG.warning('nova-compute %s starts without its identity '
                            'lease: %s, and [migration_guard_coordination] '
                            'on_backend_failure = proceed_unlocked',
                            service.host, exc)
                return None
            message = (
                'nova-compute with [DEFAULT] host = %s refuses to start: it '
                'cannot make sure that no other process runs with this '
                'identity: %s. Start it once the backend is back, or set '
                '[migration_guard_coordination] on_backend_failure = '
                'proceed_unlocked to start without that check.'
                % (service.host, exc))
            LOG.critical('%s', message)
            raise IdentityInUse(message) from exc
        except coordination.LeaseHeld as exc:
            message = (
                'nova-compute with [DEFAULT] host = %s refuses to start: '
                'another nova-compute process runs with this identity (%s). '
                'Two processes managing one compute corrupt its state. Stop '
                'the other one, or, for active/passive HA, set '
                '[migration_guard_host_identity] on_duplicate = standby on '
                'both.' % (service.host, exc))
            LOG.critical('%s', message)
            raise IdentityInUse(message) from exc
    LOG.info('nova-compute %s holds its identity lease %s on %s',
             service.host, name, lease.backend_url)
    _release_on_stop(service, lease)
    return lease


def _release_on_stop(service, lease):
    """Release the lease when the service stops, or fails to start (a
    refusal in init_host: the process is about to exit anyway)."""
    start, stop = service.start, service.stop

    def start_or_release(*args, **kwargs):
        try:
            return start(*args, **kwargs)
        except BaseException:
            lease.release()
            raise

    def stop_and_release(*args, **kwargs):
        try:
            return stop(*args, **kwargs)
        finally:
            lease.release()
    service.start, service.stop = start_or_release, stop_and_release


def _lost(service, reason):
    LOG.critical('nova-compute %s lost its identity lease (%s): stopping the '
                 'service so that it takes no more work; another process '
                 'may now act as this compute', service.host, reason)
    # Not in the lease's watcher thread, which calls us.
    threading.Thread(target=service.stop, daemon=True,
                     name='identity-lease-lost').start()
