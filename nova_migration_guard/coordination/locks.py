"""Short locks shared between the services of a cloud: one started tooz
coordinator per process (a session), replaced after a backend failure."""

import contextlib
import itertools
import logging
import os
import socket
import sys
import threading
import weakref

from oslo_config import cfg
import tooz

from nova_migration_guard import conf as mg_conf
from nova_migration_guard.conf import coordination as coordination_conf
from nova_migration_guard.coordination import backend
from nova_migration_guard.coordination.errors import CoordinationUnavailable
from nova_migration_guard.coordination.errors import LockLost
from nova_migration_guard.coordination.errors import LockTimeout
from nova_migration_guard.coordination import lease as lease_mod

LOG = logging.getLogger(__name__)

_LEASE_IDS = itertools.count(1)


class _Session:
    """One started tooz coordinator and the locks held through it."""

    def __init__(self, driver, url):
        self.driver = driver
        self.url = url     # the backend_url it was started with
        self.holders = 0   # lock() calls acquiring or holding through it
        self.stale = False  # saw a backend failure: replace, stop when idle


class Coordinator:
    """The locks of one service: one tooz coordinator, started on first use.

    Thread-safe; a service uses the instance of :func:`get_coordinator`.
    After a backend failure the tooz coordinator is replaced by a new one on
    the next :meth:`lock` (the old one is stopped once no lock uses it), so
    locking works again as soon as the backend is back.
    """

    def __init__(self, conf=mg_conf.CONF, member_id=None):
        mg_conf.ensure_state_path(conf)
        self._conf = conf
        self._pid = os.getpid()
        self.member_id = member_id or _default_member_id(conf)
        self._mutex = threading.Lock()
        self._session = None
        # Released by stop(): a lease must not outlive its service.
        self._leases = weakref.WeakSet()

    @property
    def backend_url(self):
        """The configured backend URL, password masked."""
        return backend.mask_url(self._conf[backend.GROUP].backend_url)

    @contextlib.contextmanager
    def lock(self, name, timeout=None):
        """Hold the lock ``migration-guard.<name>`` for the ``with`` block,
        which gets a :class:`HeldLock` (``check()`` it before acting on
        what was decided under the lock).

        Waits at most ``timeout`` seconds (default: ``acquire_timeout``) for
        another holder, then raises :class:`LockTimeout`.  When the backend
        cannot be reached, raises :class:`CoordinationUnavailable` under
        ``on_backend_failure = fail_closed`` or logs a warning and runs the
        block unlocked under ``proceed_unlocked``.  A failure to release is
        logged, never raised: the block's work is done by then.
        """
        wait = float(self._conf[backend.GROUP].acquire_timeout
                     if timeout is None else timeout)
        full_name = backend.LOCK_PREFIX + name
        try:
            session, tooz_lock = self._acquire(full_name, wait)
            failure = None
        except backend.BackendFailure as exc:
            session = tooz_lock = None
            failure = exc.cause
        if failure is not None:
            self._unless_proceeding_unlocked(
                full_name, failure, 'Running without lock %r' % full_name)
            yield _NotHeld()
            return
        try:
            yield HeldLock(self, tooz_lock, full_name, wait)
        finally:
            self._release(session, tooz_lock, full_name, wait)

    def stop(self):
        """Release this coordinator's leases and stop the tooz coordinator
        (at service stop; tests).  Locks held at that moment are released
        by the backend when their TTL ends.  A later lock() starts a new
        coordinator."""
        for lease in list(self._leases):
            lease.release()
        with self._mutex:
            session = self._session
            if session is not None:
                self._retire_locked(session)
        if session is not None:
            backend.stop_driver(session.driver, backend.STOP_TIMEOUT)

    def lease(self, name, on_lost=None, fence=None):
        """A :class:`~.lease.Lease` on ``name`` (e.g. ``compute.<host>``),
        not yet acquired.  ``on_lost(reason)`` is called once if it is lost;
        ``fence``: a :class:`~.fence.SelfFence` that ends the process when
        it can no longer prove that it holds the lease."""
        lease = lease_mod.Lease(self._conf, name, on_lost, '%s:lease-%d' % (
            self.member_id, next(_LEASE_IDS)), fence=fence)
        self._leases.add(lease)
        return lease

    def _unless_proceeding_unlocked(self, full_name, failure, going_on):
        """The backend failed (``failure``) on lock ``full_name``: under
        ``on_backend_failure = fail_closed`` raise CoordinationUnavailable;
        under ``proceed_unlocked`` log that the caller goes on
        (``going_on``, what it does) and return."""
        if (self._conf[backend.GROUP].on_backend_failure
                != coordination_conf.PROCEED_UNLOCKED):
            raise CoordinationUnavailable(
                self.backend_url, full_name, backend.describe(failure)
            ) from failure
        LOG.warning(
            '%s: the coordination backend %s is unavailable (%s) and [%s] '
            'on_backend_failure is %s', going_on, self.backend_url,
            backend.describe(failure), backend.GROUP,
            coordination_conf.PROCEED_UNLOCKED)

    # The steps of lock().

    def _acquire(self, full_name, wait):
        session = self._use_session(wait)
        try:
            tooz_lock = session.driver.get_lock(full_name.encode('utf-8'))
            # blocking=<seconds> is the one spelling every tooz driver reads
            # as "wait at most"; its timeout= means the lock TTL to etcd3gw.
            acquired = backend.try_acquire(tooz_lock, wait,
                                           'acquiring %r' % full_name)
        except backend.BackendFailure:
            self._done_with(session, failed=True)
            raise
        except BaseException:
            self._done_with(session)
            raise
        if not acquired:
            self._done_with(session)
            raise LockTimeout(full_name, wait)
        return session, tooz_lock

    def _release(self, session, tooz_lock, full_name, wait):
        try:
            released = backend.run_bounded(
                lambda: backend.release_lock(tooz_lock),
                backend.call_bound(wait), 'releasing %r' % full_name)
        except (backend.Overran,) + backend.backend_errors() as exc:
            LOG.warning(
                'Could not release lock %r on %s (%s): it may stay held '
                'until its lease/TTL (%s s) expires in the backend',
                full_name, self.backend_url, backend.describe(exc),
                backend.describe_ttl(session.driver))
            self._done_with(session, failed=True)
            return
        except BaseException:
            self._done_with(session)
            raise
        if not released:
            # The backend no longer had our lock: its TTL ran out while we
            # held it (heartbeats failed), so others may have run meanwhile.
            LOG.warning('Lock %r had already expired in %s when released',
                        full_name, self.backend_url)
        self._done_with(session)

    def _use_session(self, wait):
        """The current session, started if needed, with one more holder."""
        retired = None
        with self._mutex:
            old = self._session
            if (old is not None and
                    old.url != self._conf[backend.GROUP].backend_url and
                    self._retire_locked(old)):
                # The backend changed (a test, or a service reconfigured
                # in-process): locks must not keep going to the old one,
                # which may be gone.  Its holders finish through it.
                retired = old
            if self._session is None:
                self._session = self._start_session(backend.call_bound(wait))
            self._session.holders += 1
            session = self._session
        if retired is not None:
            backend.stop_driver(retired.driver, 0)
        return session

    def _start_session(self, bound):
        url = self._conf[backend.GROUP].backend_url
        return _Session(backend.start_driver(url, self.member_id, bound), url)

    def _done_with(self, session, failed=False):
        """Drop a holder; on failure retire the session, so the next lock()
        starts a new tooz coordinator; stop a retired one once unused."""
        with self._mutex:
            session.holders -= 1
            if failed:
                self._retire_locked(session)
            stop = session.stale and session.holders == 0
        if stop:
            # Stopping its heart matters: it would otherwise keep renewing
            # the lease of a lock whose release failed, for ever.
            backend.stop_driver(session.driver, 0)

    def _retire_locked(self, session):
        """With ``_mutex`` held: ``session`` is handed out no more (the next
        lock() starts a new one).  True when no lock uses it any more, so
        the caller stops it, outside the mutex."""
        session.stale = True
        if self._session is session:
            self._session = None
        return session.holders == 0


class HeldLock:
    """A lock held through :meth:`Coordinator.lock`."""

    def __init__(self, coordinator, tooz_lock, full_name, wait):
        self._coordinator = coordinator
        self._tooz_lock = tooz_lock
        self.name = full_name
        self._wait = wait

    def check(self):
        """Raise :class:`LockLost` when the backend no longer has this lock
        as ours (its lease/TTL ran out while held).  When the backend cannot
        answer, ``on_backend_failure`` decides: ``fail_closed`` raises
        :class:`CoordinationUnavailable`, ``proceed_unlocked`` logs and goes
        on.  A driver that cannot tell (none of tooz's current ones) counts
        as still held."""
        url = self._coordinator.backend_url
        try:
            owner = backend.run_bounded(
                lambda: backend.still_owner(self._tooz_lock),
                backend.call_bound(self._wait),
                'checking ownership of %r' % self.name)
        except tooz.NotImplemented:
            LOG.debug('Cannot check ownership of lock %r on %s', self.name,
                      url)
            return
        except (backend.Overran,) + backend.backend_errors() as exc:
            self._coordinator._unless_proceeding_unlocked(
                self.name, exc, 'Going on without knowing whether lock %r '
                'is still held' % self.name)
            return
        if not owner:
            raise LockLost(self.name, url)


class _NotHeld:
    """What lock() yields when it runs the block without a lock
    (``proceed_unlocked``): nothing to lose."""

    name = None

    def check(self):
        pass


def _default_member_id(conf):
    """host:binary:pid, unique per service process."""
    host = None
    if 'host' in conf:
        try:
            host = conf.host
        except cfg.Error:
            host = None
    host = host or socket.gethostname()
    binary = os.path.basename(sys.argv[0] or '') or 'python'
    return '%s:%s:%d' % (host, binary, os.getpid())


_COORDINATOR = None
_COORDINATOR_LOCK = threading.Lock()


def get_coordinator(conf=mg_conf.CONF):
    """The process's :class:`Coordinator`, created on first use.

    ``conf`` only matters on that first call.  A forked child gets its own
    (the parent's member id and heart thread are not valid in it).
    """
    global _COORDINATOR
    with _COORDINATOR_LOCK:
        if _COORDINATOR is None or _COORDINATOR._pid != os.getpid():
            _COORDINATOR = Coordinator(conf)
        return _COORDINATOR


def reset():
    """Stop and forget the process's Coordinator (for tests)."""
    global _COORDINATOR
    with _COORDINATOR_LOCK:
        coordinator, _COORDINATOR = _COORDINATOR, None
    if coordinator is not None and coordinator._pid == os.getpid():
        coordinator.stop()
