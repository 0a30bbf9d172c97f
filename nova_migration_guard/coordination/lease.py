"""Leases: locks held for a process's lifetime (one writer per compute
identity), renewed and checked by a watcher thread that reports their
loss."""

import logging
import threading
import time

import tooz

from nova_migration_guard.conf import host_identity as host_identity_conf
from nova_migration_guard.coordination import backend
from nova_migration_guard.coordination.errors import CoordinationUnavailable
from nova_migration_guard.coordination.errors import LeaseHeld

LOG = logging.getLogger(__name__)

#: Lease keys, apart from the short locks' keys.
_LEASE_PREFIX = backend.LOCK_PREFIX + 'lease.'
#: A standby says it still waits at most this often (seconds).
_STANDBY_LOG_EVERY = 60.0


class Lease:
    """A lock held for a process's lifetime, that says when it is lost.

    Get it from :meth:`Coordinator.lease`.  It has its own tooz coordinator
    (own member id, heart beating), so the short locks' session replacement
    never touches it.  While held, a watcher thread renews it and asks the
    backend whether it still has it for us every ``lease_check_interval``
    seconds (at most a third of the backend's lock TTL).  It is lost when
    the backend says no (the TTL ran out, e.g. while the process was
    frozen, or another process holds it now) or confirmed no renewal for
    the TTL minus one interval (unreachable): we stop before a standby can
    take over.  Then ``on_lost(reason)`` runs once, in the watcher thread
    (keep it short), and the lease is over; :attr:`lost_in_outage` says
    whether the backend was unreachable (True) or said no (False).

    ``fence`` (a :class:`~.fence.SelfFence`): the holder ends its process
    at :attr:`valid_until`, re-armed at every confirmed renewal, so that it
    is gone before the backend can give the lease to another process even
    if it froze or its threads starved.  Without a fence, only on_lost
    reports the loss, when the watcher runs again.

    ``file://`` locks (fcntl) only exclude the processes of one host and
    are lost only with the process.
    """

    def __init__(self, conf, name, on_lost, member_id, fence=None):
        self._conf = conf
        self.name = _LEASE_PREFIX + name
        self._on_lost = on_lost
        self._fence = fence
        #: The backend's lock TTL (seconds) once acquired (ZooKeeper: the
        #: session timeout); None when it has none (file://).
        self.ttl = None
        #: While held with a TTL: until when (time.monotonic()) the lease
        #: is surely still ours in the backend, minus one check interval.
        self.valid_until = None
        #: After a loss: True if the backend was unreachable, False if it
        #: said the lease is no longer ours.
        self.lost_in_outage = None
        self._member_id = member_id
        self._url = conf[backend.GROUP].backend_url
        self._mutex = threading.Lock()
        self._cancel = threading.Event()  # release(): stop waiting
        self._held = None  # the watcher's stop Event while held
        self._driver = self._lock = self._watcher = None

    @property
    def backend_url(self):
        """The backend URL, password masked."""
        return backend.mask_url(self._url)

    @property
    def check_interval(self):
        """Seconds between two renewals (a third of the TTL at most)."""
        return self._interval(self.ttl)

    @property
    def held(self):
        """True from acquire() until release() or the loss."""
        return self._held is not None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()

    def acquire(self, wait=False):
        """Take the lease; True once held.

        ``wait=False``: raise :class:`LeaseHeld` when another process holds
        it, :class:`CoordinationUnavailable` when the backend cannot be
        reached.  ``wait=True`` (a hot standby): block until it is ours,
        waiting out backend outages too, logging at most once a minute;
        False if :meth:`release` was called meanwhile (service stop).
        """
        with self._mutex:
            if self._held is not None:
                return True
            self._cancel.clear()
            self._url = self._conf[backend.GROUP].backend_url
        started = time.monotonic()
        last_log = None
        driver = tooz_lock = ttl = None
        acquired = False
        # The first try does not block: a standby says at once that it
        # waits; later ones wait one check interval.
        blocking = False
        interval = self._interval(None)
        try:
            while not self._cancel.is_set():
                try:
                    if driver is None:
                        driver = backend.start_driver(
                            self._url, self._member_id, backend.MAX_CALL)
                    # A new tooz lock per try: a file lock's reference
                    # count goes wrong when one is tried again.
                    tooz_lock = driver.get_lock(self.name.encode('utf-8'))
                    ttl = backend.lock_ttl(driver)
                    interval = self._interval(ttl)
                    sent = time.monotonic()
                    acquired = backend.try_acquire(
                        tooz_lock, blocking, 'acquiring %r' % self.name)
                    if acquired and blocking and ttl:
                        # The backend's TTL started somewhere within that
                        # wait: renew once, so that it counts from a
                        # known point.
                        sent = time.monotonic()
                        self._renew_taken(tooz_lock)
                except backend.BackendFailure as exc:
                    if driver is not None:
                        backend.stop_driver(driver, 0)
                        driver = None
                    if not wait:
                        raise CoordinationUnavailable(
                            self.backend_url, self.name,
                            backend.describe(exc.cause)) from exc.cause
                    if last_log is None or (time.monotonic() - last_log
                                            >= _STANDBY_LOG_EVERY):
                        last_log = time.monotonic()
                        LOG.warning(
                            'Waiting for lease %r: the coordination backend '
                            '%s is unavailable (%s)', self.name,
                            self.backend_url, backend.describe(exc.cause))
                    self._cancel.wait(interval)
                    continue
                if acquired:
                    if self._start_watcher(driver, tooz_lock, sent, ttl,
                                           interval):
                        driver = None  # the lease's now
                        LOG.info('Acquired lease %r on %s after %.0f s',
                                 self.name, self.backend_url,
                                 time.monotonic() - started)
                        return True
                    break  # release() was called meanwhile
                if not wait:
                    raise LeaseHeld(self.name, self.backend_url)
                blocking = max(1.0, interval)
                if last_log is None or (time.monotonic() - last_log
                                        >= _STANDBY_LOG_EVERY):
                    last_log = time.monotonic()
                    LOG.info('Lease %r on %s is held by another process: '
                             'waiting as a hot standby until it frees '
                             '(%.0f s so far)', self.name, self.backend_url,
                             last_log - started)
            return False
        finally:
            if driver is not None:
                self._free(driver, tooz_lock if acquired else None)

    def release(self):
        """Give the lease up (idempotent; on_lost is not called).  Also ends
        an acquire(wait=True) waiting in another thread."""
        with self._mutex:
            self._cancel.set()
            stop, self._held = self._held, None
            driver, tooz_lock = self._driver, self._lock
            watcher = self._watcher
            self._driver = self._lock = self._watcher = None
        if stop is None:
            return
        if self._fence is not None:
            self._fence.disarm()
        stop.set()
        if watcher is not threading.current_thread():
            watcher.join(backend.MAX_CALL)
        self._free(driver, tooz_lock)
        LOG.info('Released lease %r on %s', self.name, self.backend_url)

    # Internals.

    def _interval(self, ttl):
        interval = float(self._conf[host_identity_conf.host_identity_group.
                                    name].lease_check_interval)
        if ttl:
            interval = min(interval, ttl / 3.0)
        return max(interval, 0.2)

    def _renewed(self, renewed, interval):
        """The backend confirmed the lease for a request sent at
        ``renewed`` (it counts the TTL from when it got it, later); called
        with the mutex held."""
        if self.ttl is None:
            return
        # The watcher's deadline too: one interval before the TTL runs
        # out, counted on our clock from before the request went out.  The
        # kernel's kill comes half an interval before the TTL ends: a clock
        # running slow by 500 ppm (NTP's limit) is 15 ms late in 30 s.
        self.valid_until = renewed + self.ttl - interval
        if self._fence is not None:
            self._fence.arm(self.valid_until,
                            renewed + self.ttl - interval / 2.0)

    def _renew_taken(self, tooz_lock):
        """Renew a lock just acquired; BackendFailure if the backend does
        not confirm it (then it frees with its TTL)."""
        try:
            problem = backend.run_bounded(
                lambda: _lease_problem(tooz_lock), backend.MIN_CALL,
                'renewing %r' % self.name)
        except (backend.Overran,) + backend.backend_errors() as exc:
            raise backend.BackendFailure(exc)
        if problem is not None:
            raise backend.BackendFailure(RuntimeError(problem))

    def _start_watcher(self, driver, tooz_lock, renewed, ttl, interval):
        with self._mutex:
            if self._cancel.is_set():
                return False
            stop = threading.Event()
            self._held = stop
            self.ttl, self.lost_in_outage = ttl, None
            self._renewed(renewed, interval)
            self._driver, self._lock = driver, tooz_lock
            self._watcher = threading.Thread(
                target=self._watch, daemon=True, name='migration-guard-lease',
                args=(driver, tooz_lock, stop, renewed, ttl, interval))
            self._watcher.start()
        return True

    def _watch(self, driver, tooz_lock, stop, renewed, ttl, interval):
        """Renew and check the lease until ``stop`` is set or it is lost.
        ``renewed``: when the last renewal the backend confirmed was sent,
        the TTL runs from there at the earliest."""
        error = None
        wait = interval
        while not stop.wait(wait):
            wait = interval
            sent = time.monotonic()
            # From then on the backend may have dropped the lease.
            deadline = renewed + ttl - interval if ttl else None
            try:
                if error is not None and deadline is not None and (
                        sent >= deadline):
                    problem = ('the backend has not confirmed it for %.0f s '
                               '(%s) and its TTL is %d s' % (
                                   sent - renewed, error, ttl))
                else:
                    # Past the deadline without an error (the process was
                    # frozen): the backend has the last word.
                    left = (backend.MAX_CALL if deadline is None
                            else deadline - sent)
                    problem = backend.run_bounded(
                        lambda: _lease_problem(tooz_lock),
                        min(backend.MAX_CALL, left if left > 0 else interval),
                        'renewing it')
            except (backend.Overran,) + backend.backend_errors() as exc:
                error = backend.describe(exc)
                LOG.warning('Could not renew lease %r on %s (%s)',
                            self.name, self.backend_url, error)
                if deadline is not None:  # next try at the deadline latest
                    wait = max(0.0, min(interval,
                                        deadline - time.monotonic()))
                continue
            if problem is None:
                renewed, error = sent, None
                with self._mutex:
                    if self._held is stop:
                        self._renewed(renewed, interval)
                continue
            with self._mutex:
                if stop.is_set() or self._held is not stop:
                    return  # released meanwhile
                self._held = None
                self.lost_in_outage = error is not None and (
                    deadline is not None and sent >= deadline)
                self._driver = self._lock = self._watcher = None
            driver.heart.stop()  # renew nothing we gave up
            reason = 'Lost lease %r on %s: %s' % (
                self.name, self.backend_url, problem)
            LOG.error('%s', reason)
            if self._on_lost is not None:
                try:
                    self._on_lost(reason)
                except Exception:
                    LOG.exception('The on_lost callback of lease %r failed',
                                  self.name)
            # Frees it at once if the backend still has it for us.
            self._free(driver, tooz_lock)
            return

    def _free(self, driver, tooz_lock):
        """Release (bounded) and stop the coordinator."""
        if tooz_lock is not None:
            try:
                backend.run_bounded(tooz_lock.release, backend.MAX_CALL,
                                    'releasing %r' % self.name)
            except (backend.Overran,) + backend.backend_errors() as exc:
                LOG.warning('Could not release lease %r on %s (%s): it stays '
                            'held until its TTL runs out', self.name,
                            self.backend_url, backend.describe(exc))
        backend.stop_driver(driver, backend.STOP_TIMEOUT)


def _lease_problem(tooz_lock):
    """Renew a held tooz lock and ask the backend whether it still has it
    for us: None if so, else why not.  Backend errors propagate."""
    kind = type(tooz_lock).__module__
    if kind == 'tooz.drivers.etcd3gw':
        # tooz's heartbeat ignores an expired lease (refresh() gives -1),
        # so read the lease and the key directly (tooz 9 internals).
        lease = tooz_lock._lease
        if lease.refresh() == -1:
            return 'its TTL ran out in the backend'
        kvs = tooz_lock._coord.client.get(tooz_lock._key, metadata=True)
        if any(int(meta.get('lease', 0)) == lease.id for _, meta in kvs):
            return None
        return ('another process holds it now' if kvs
                else 'the backend no longer has it')
    if kind == 'tooz.drivers.redis':
        try:
            # PEXPIRE when the token in redis is still ours, else an error.
            if tooz_lock.heartbeat():
                return None
        except tooz.ToozError as exc:
            if type(exc.__cause__).__name__ != 'LockNotOwnedError':
                raise
            return ('its TTL ran out in the backend or another process '
                    'holds it now')
        return 'tooz no longer holds it'

    if backend.is_zookeeper(tooz_lock):
        # The get renews the session, and with it the lock's znode.
        if backend.zookeeper_owner(tooz_lock):
            return None
        return ('its TTL ran out in the backend (its ZooKeeper session '
                'expired) or its znode was deleted')
    try:
        owned = tooz_lock.is_still_owner()
    except tooz.NotImplemented:
        return None
    return None if owned else 'the backend no longer has it for us'
