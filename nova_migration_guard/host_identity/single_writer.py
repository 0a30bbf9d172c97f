"""One nova-compute process per compute identity (``service_starting``
hook: before the manager, and so the virt driver, loads).

The process takes the coordination lease ``compute.<host>``.  With
``on_duplicate = refuse`` a second process with the same identity exits;
with ``standby`` it waits, as a hot standby, until the lease frees.  Once
it has the lease it waits one lock TTL before it starts, so that a previous
holder that the backend forgot early (a redis failover to a replica that
missed the lock, a clock step on the server) has fenced itself by then.

A process that can no longer prove it holds its lease must stop writing
before another can take over.  Stopping the service is not enough (Nova's
graceful stop lets the tasks in progress go on), so under
``on_backend_failure = fail_closed`` it fences itself: it ends, with one
CRITICAL line, one check interval before the lease can run out in the
backend, counted on its own clock from its last confirmed renewal, and a
kernel timer kills it even if it froze meanwhile (see
``coordination.fence``).  Under ``proceed_unlocked`` an unreachable backend
only costs the guarantee: the process warns, goes on, and takes its lease
again once the backend answers; it ends only when the backend says another
process holds its identity.

The lease is released when the service stops or fails to start.
"""

import threading
import time

from oslo_log import log as logging

from nova_migration_guard import conf as mg_conf
from nova_migration_guard.conf import coordination as coordination_conf
from nova_migration_guard.conf import host_identity as host_identity_conf
from nova_migration_guard import coordination

LOG = logging.getLogger(__name__)


class IdentityInUse(SystemExit):
    """Another process holds this compute's identity, or that cannot be
    checked: do not start (exit status 1; the one-line message is logged
    as CRITICAL, the interpreter prints nothing more)."""

    def __init__(self, message):
        super().__init__(message)
        self.code = 1


def lease_name(host):
    return 'compute.%s' % host


def take(service):
    conf = mg_conf.CONF.migration_guard_host_identity
    fail_closed = (mg_conf.CONF.migration_guard_coordination.on_backend_failure
                   != coordination_conf.PROCEED_UNLOCKED)
    name = lease_name(service.host)
    holder = _Holder(service, name, fail_closed)
    lease = holder.lease
    if conf.on_duplicate == host_identity_conf.STANDBY:
        LOG.warning('nova-compute %s waits as a hot standby until no other '
                    'process holds its identity (lease %s on %s)',
                    service.host, name, lease.backend_url)
        if not lease.acquire(wait=True):
            message = ('nova-compute with [DEFAULT] host = %s was stopped '
                       'while it waited as a hot standby for its identity '
                       'lease %s: it does not start.' % (service.host, name))
            LOG.warning('%s', message)
            raise IdentityInUse(message)
    else:
        refusal = None
        try:
            lease.acquire(wait=False)
        except coordination.CoordinationUnavailable as exc:
            if not fail_closed:
                LOG.warning('nova-compute %s starts without its identity '
                            'lease: %s, and [migration_guard_coordination] '
                            'on_backend_failure = proceed_unlocked',
                            service.host, exc)
                return None
            refusal = exc, (
                'nova-compute with [DEFAULT] host = %s refuses to start: it '
                'cannot make sure that no other process runs with this '
                'identity: %s. Start it once the backend is back, or set '
                '[migration_guard_coordination] on_backend_failure = '
                'proceed_unlocked to start without that check.'
                % (service.host, exc))
        except coordination.LeaseHeld as exc:
            refusal = exc, (
                'nova-compute with [DEFAULT] host = %s refuses to start: '
                'another nova-compute process runs with this identity (%s). '
                'Two processes managing one compute corrupt its state. Stop '
                'the other one, or, for active/passive HA, set '
                '[migration_guard_host_identity] on_duplicate = standby on '
                'both.' % (service.host, exc))
        if refusal is not None:
            # Logged outside the except block, where oslo.log's formatter
            # would append the exception being handled: the message once.
            cause, message = refusal
            LOG.critical('%s', message)
            raise IdentityInUse(message) from cause
    if lease.ttl:
        LOG.info('nova-compute %s holds its identity lease %s on %s and '
                 'waits one lock TTL (%d s) before it starts: a previous '
                 'holder has fenced itself by then, even one whose lease the '
                 'backend dropped early', service.host, name,
                 lease.backend_url, lease.ttl)
        time.sleep(lease.ttl)
    LOG.info('nova-compute %s holds its identity lease %s on %s',
             service.host, name, lease.backend_url)
    holder.release_on_stop()
    return lease


class _Holder:
    """The identity lease of one service and what happens on its loss."""

    def __init__(self, service, name, fail_closed):
        self.service = service
        self.name = name
        self.what = 'the identity lease %s of nova-compute %s' % (
            name, service.host)
        self.fence = coordination.SelfFence(self.what) if fail_closed else None
        self.stopped = threading.Event()
        self.lease = coordination.get_coordinator().lease(
            name, on_lost=self.lost, fence=self.fence)

    def release_on_stop(self):
        """Release the lease when the service stops (Nova's graceful stop
        returns once the tasks in progress ended), or fails to start (a
        refusal in init_host: the process is about to exit anyway)."""
        start, stop = self.service.start, self.service.stop

        def start_or_release(*args, **kwargs):
            try:
                return start(*args, **kwargs)
            except BaseException:
                self.release()
                raise

        def stop_and_release(*args, **kwargs):
            try:
                return stop(*args, **kwargs)
            finally:
                self.release()
        self.service.start, self.service.stop = (start_or_release,
                                                 stop_and_release)

    def release(self):
        self.stopped.set()
        self.lease.release()

    def lost(self, reason):
        """The lease's watcher says it is lost (see Lease)."""
        if self.fence is not None:
            self.fence.now(reason)
        if not self.lease.lost_in_outage:
            # The backend answered: the TTL ran out (the process froze) or
            # another process holds the identity now.
            coordination.end_process(self.what, reason)
        LOG.warning('nova-compute %s can no longer prove that it is the '
                    'only process acting as this compute (%s), and '
                    '[migration_guard_coordination] on_backend_failure = '
                    'proceed_unlocked: it keeps running WITHOUT that '
                    'guarantee (a standby may start once the backend is '
                    'back) and takes its lease again as soon as the backend '
                    'answers', self.service.host, reason)
        threading.Thread(target=self._take_again, daemon=True,
                         name='identity-lease-again').start()

    def _take_again(self):
        """proceed_unlocked after an outage: take the lease again; end the
        process if another one holds it for longer than our own key from
        before the outage can linger (etcd keeps it one TTL)."""
        held_since = None
        interval = self.lease.check_interval
        ttl = self.lease.ttl or 0
        while not self.stopped.wait(interval):
            try:
                self.lease.acquire(wait=False)
            except coordination.CoordinationUnavailable:
                held_since = None
                continue
            except coordination.LeaseHeld as exc:
                now = time.monotonic()
                held_since = held_since or now
                if now - held_since > ttl + interval:
                    coordination.end_process(
                        self.what, '%s since the backend answered again'
                        % exc)
                continue
            if self.stopped.is_set():
                self.lease.release()
                return
            LOG.warning('nova-compute %s holds its identity lease %s on %s '
                        'again', self.service.host, self.name,
                        self.lease.backend_url)
            return
