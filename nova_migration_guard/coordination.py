"""Distributed locks shared between the services of a cloud, over tooz.

tooz does the locking; this module only picks the backend from
``[migration_guard_coordination] backend_url``, keeps one started tooz
coordinator per process and turns backend trouble into the behaviour that
``on_backend_failure`` asks for::

    from nova_migration_guard import coordination

    with coordination.get_coordinator().lock('server-group-%s' % uuid):
        ...  # check and claim under the lock

``lock()`` raises :class:`LockTimeout` when another service holds the lock
for longer than ``acquire_timeout`` and, under ``fail_closed``,
:class:`CoordinationUnavailable` when the backend cannot be reached.

:meth:`Coordinator.lease` gives a :class:`Lease`: a lock held for a process's
lifetime (one writer per compute identity) that reports its loss.
"""

import contextlib
import functools
import importlib
import importlib.metadata
import itertools
import logging
import os
import re
import socket
import sys
import threading
import weakref
import time
import urllib.parse

from oslo_config import cfg
from oslo_utils import netutils
import tenacity
import tooz
from tooz import coordination as tooz_coordination

from nova_migration_guard import conf as mg_conf
from nova_migration_guard.conf import coordination as coordination_conf
from nova_migration_guard.conf import host_identity as host_identity_conf

LOG = logging.getLogger(__name__)

#: Every lock name gets this prefix, so our keys are recognisable in a
#: backend that other services (Cinder, Designate...) share.
LOCK_PREFIX = 'migration-guard.'

_GROUP = coordination_conf.coordination_group.name

# tooz drivers retry internally and their clients retry again underneath:
# against a redis whose port refuses connections one tooz call takes about
# 60 s (15 tooz attempts x 10 redis-py retries with backoff), and an etcd
# behind a dropping firewall waits for the 30 s HTTP timeout per request.
# A guard must not hang a move that long, so every backend call runs under
# a bound (seconds) and counts as a backend failure beyond it: connecting
# and releasing get the lock's wait clamped to [_MIN_CALL, _MAX_CALL];
# acquiring gets the wait plus _ACQUIRE_SLACK.
_MIN_CALL = 2.0
_MAX_CALL = 10.0
#: tooz polls a held lock (etcd3gw once a second, redis-py every 0.1 s),
#: so a healthy backend answers within the wait + ~1 s.
_ACQUIRE_SLACK = 5.0
#: Bound on stopping a coordinator in stop(); beyond it, it ends in the
#: background (tooz's heart thread waits for the backend to come back).
_STOP_TIMEOUT = 10.0


def _call_bound(wait):
    return min(_MAX_CALL, max(wait, _MIN_CALL))


class CoordinationError(Exception):
    """Base class of the errors of this module."""


class CoordinationUnavailable(CoordinationError):
    """The lock backend cannot be reached (``fail_closed``).

    The guarded operation must not run; it can be retried once the backend
    is back.
    """

    def __init__(self, backend_url, lock_name, cause):
        self.backend_url = backend_url
        self.lock_name = lock_name
        self.cause = cause
        super().__init__(
            'Cannot take lock %r: the coordination backend %s is '
            'unavailable (%s)' % (lock_name, backend_url, cause))


class LockTimeout(CoordinationError):
    """Another service held the lock for longer than we may wait."""

    def __init__(self, lock_name, timeout):
        self.lock_name = lock_name
        self.timeout = timeout
        super().__init__(
            'Timed out after %g seconds waiting for lock %r, held by '
            'another service' % (timeout, lock_name))


class LeaseHeld(CoordinationError):
    """Another process holds the lease (``Lease.acquire(wait=False)``)."""

    def __init__(self, lease_name, backend_url):
        self.lease_name = lease_name
        self.backend_url = backend_url
        super().__init__(
            'Lease %r on %s is held by another process' % (
                lease_name, backend_url))


# -- configuration ----------------------------------------------------------

def backend_schemes():
    """The URL schemes of the installed tooz backends, sorted."""
    eps = importlib.metadata.entry_points(
        group=tooz_coordination.TOOZ_BACKENDS_NAMESPACE)
    return sorted({ep.name for ep in eps})


def mask_url(url):
    """``url`` with its password (user info and query options) masked, for
    messages and logs."""
    secret_option = re.compile(r'password|secret|token', re.IGNORECASE)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        # Malformed: show it only if nothing in it can be a secret.
        if '@' in url or secret_option.search(url):
            return '%s://***' % url.split(':', 1)[0]
        return url
    if parts.password is None and not secret_option.search(parts.query):
        return url
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostinfo = netloc.rpartition('@')
        netloc = '%s:***@%s' % (userinfo.split(':', 1)[0], hostinfo)
    query = re.sub(r'((?:^|&)[^=&]*(?:password|secret|token)[^=&]*=)[^&]*',
                   r'\1***', parts.query, flags=re.IGNORECASE)
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, query, parts.fragment))


def _url_problem(url, schemes):
    """Why tooz cannot use ``url`` (a short phrase), or None."""
    if not url or not url.strip():
        return 'empty URL'
    if url != url.strip():
        return 'leading or trailing spaces'
    try:
        parsed = netutils.urlsplit(url)
        parsed.port  # noqa: B018 -- parses the port, ValueError if bad
    except ValueError as exc:
        return 'malformed URL: %s' % exc
    if '://' not in url or not parsed.scheme:
        return 'not a URL of the form SCHEME://...'
    if parsed.scheme not in schemes:
        return 'unknown scheme %r' % parsed.scheme
    if parsed.scheme == 'file':
        # "file://relative/dir" would silently lock in "/dir" on host
        # "relative"; tooz has no notion of a host for files.
        if parsed.netloc or not os.path.isabs(parsed.path):
            return 'a file URL needs an absolute directory: file:///PATH'
    if parsed.scheme == 'redis' and not (parsed.hostname or parsed.path):
        return 'a redis URL needs a host (redis://HOST:PORT) or a socket path'
    # The entry point exists; its module imports the backend's client
    # library, which may not be installed (kazoo, pymemcache...).
    eps = importlib.metadata.entry_points(
        group=tooz_coordination.TOOZ_BACKENDS_NAMESPACE, name=parsed.scheme)
    for ep in eps:
        try:
            ep.load()
        except Exception as exc:
            return 'the tooz driver for %r cannot be loaded: %s' % (
                parsed.scheme, _one_line(str(exc)) or type(exc).__name__)
    return None


def validate_backend_url(conf=mg_conf.CONF):
    """Check ``[migration_guard_coordination] backend_url`` at service start.

    Raises :class:`nova_migration_guard.conf.ConfigurationError` with one
    line naming the option, the (password-masked) value and the accepted
    schemes when the URL is malformed or no installed tooz backend serves
    its scheme.  Does not connect to the backend.
    """
    mg_conf.ensure_state_path(conf)
    schemes = backend_schemes()
    try:
        url = conf[_GROUP].backend_url
    except cfg.Error as exc:  # e.g. "$typo" names no option
        url, problem = '(unreadable)', _one_line(str(exc))
    else:
        problem = _url_problem(url, schemes)
    if problem:
        raise mg_conf.ConfigurationError(
            'nova-migration-guard: invalid value for [%s] backend_url: %r '
            '(%s); accepted schemes are %s'
            % (_GROUP, mask_url(url or ''), problem, ', '.join(schemes)))


# -- helpers ----------------------------------------------------------------

def _one_line(text):
    return ' '.join(str(text).split())


def _describe(exc):
    """``Type: message`` on one line.  tooz wraps etcd3gw errors whose
    str() is empty (the text is in ``detail_text``), so walk the causes
    until one has a message."""
    if isinstance(exc, _Overran):
        return str(exc)
    seen = set()
    current = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = _one_line(str(current)) or _one_line(
            getattr(current, 'detail_text', None) or '')
        if text:
            if current is not exc:
                text = '%s: %s' % (type(current).__name__, text)
            return '%s: %s' % (type(exc).__name__, text[:500])
        current = current.__cause__ or current.__context__
    return type(exc).__name__


@functools.lru_cache(maxsize=None)
def _backend_errors():
    """Exceptions meaning "the backend failed", including client errors
    that some tooz drivers let through untranslated (etcd3gw's start() and
    heartbeat, redis errors outside tooz's wrappers)."""
    errors = [tooz.ToozError, OSError]
    for module, name in (('etcd3gw.exceptions', 'Etcd3Exception'),
                         ('redis.exceptions', 'RedisError'),
                         ('requests.exceptions', 'RequestException'),
                         ('kazoo.exceptions', 'KazooException')):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


class _Overran(Exception):
    """A bounded backend call is still running past its bound."""

    def __init__(self, what, seconds):
        super().__init__('%s: no answer within %g seconds' % (what, seconds))


def _run_bounded(func, seconds, what, on_late_result=None):
    """Run ``func()`` in a daemon thread and wait at most ``seconds``.

    Returns its result or raises its exception; raises :class:`_Overran`
    when it is still running.  Then ``on_late_result(result)`` runs in that
    thread if ``func`` succeeds later (to release a lock acquired too late
    or to stop a coordinator started too late).
    """
    done = threading.Event()
    guard = threading.Lock()
    state = {}

    def target():
        try:
            result = func()
        except BaseException as exc:  # handed to the caller
            with guard:
                state['error'] = exc
                abandoned = state.get('abandoned', False)
                done.set()
            if abandoned:
                LOG.debug('%s failed after we stopped waiting: %s',
                          what, _describe(exc))
            return
        with guard:
            state['result'] = result
            abandoned = state.get('abandoned', False)
            done.set()
        if abandoned and on_late_result is not None:
            try:
                on_late_result(result)
            except Exception:
                LOG.debug('Cleaning up after %s failed', what, exc_info=True)

    thread = threading.Thread(target=target, daemon=True,
                              name='migration-guard-coordination')
    thread.start()
    done.wait(seconds)
    with guard:
        if not done.is_set():
            state['abandoned'] = True
            raise _Overran(what, seconds)
    if 'error' in state:
        raise state['error']
    return state['result']


def _stop_driver(driver, seconds):
    """Stop a tooz coordinator, waiting at most ``seconds``.

    tooz's stop() joins the heart thread, and that thread retries a failing
    heartbeat every second until the backend answers again: during an
    outage stop() would block.  Beyond the bound it finishes in the
    background.
    """
    driver.heart.stop()  # no new beat from now on

    def stop():
        if driver.is_started:
            driver.stop()

    try:
        _run_bounded(stop, seconds, 'stopping the tooz coordinator')
    except _Overran:
        LOG.debug('The tooz coordinator stops in the background once the '
                  'backend answers again')
    except Exception as exc:
        LOG.debug('Stopping the tooz coordinator failed: %s', _describe(exc))


class _Session:
    """One started tooz coordinator and the locks held through it."""

    def __init__(self, driver, url):
        self.driver = driver
        self.url = url     # the backend_url it was started with
        self.holders = 0   # lock() calls acquiring or holding through it
        self.stale = False  # saw a backend failure: replace, stop when idle


# -- the coordinator ---------------------------------------------------------

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
        return mask_url(self._conf[_GROUP].backend_url)

    @contextlib.contextmanager
    def lock(self, name, timeout=None):
        """Hold the lock ``migration-guard.<name>`` for the ``with`` block.

        Waits at most ``timeout`` seconds (default: ``acquire_timeout``) for
        another holder, then raises :class:`LockTimeout`.  When the backend
        cannot be reached, raises :class:`CoordinationUnavailable` under
        ``on_backend_failure = fail_closed`` or logs a warning and runs the
        block unlocked under ``proceed_unlocked``.  A failure to release is
        logged, never raised: the block's work is done by then.
        """
        wait = float(self._conf[_GROUP].acquire_timeout
                     if timeout is None else timeout)
        full_name = LOCK_PREFIX + name
        try:
            session, tooz_lock = self._acquire(full_name, wait)
            failure = None
        except _BackendFailure as exc:
            session = tooz_lock = None
            failure = exc.cause
        if failure is not None:
            if (self._conf[_GROUP].on_backend_failure
                    != coordination_conf.PROCEED_UNLOCKED):
                raise CoordinationUnavailable(
                    self.backend_url, full_name, _describe(failure)
                ) from failure
            LOG.warning(
                'Running without lock %r: the coordination backend %s is '
                'unavailable (%s) and [%s] on_backend_failure is %s',
                full_name, self.backend_url, _describe(failure), _GROUP,
                coordination_conf.PROCEED_UNLOCKED)
            yield
            return
        try:
            yield
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
            _stop_driver(session.driver, _STOP_TIMEOUT)

    def lease(self, name, on_lost=None):
        """A :class:`Lease` on ``name`` (e.g. ``compute.<host>``), not yet
        acquired.  ``on_lost(reason)`` is called once if it is lost."""
        lease = Lease(self._conf, name, on_lost, '%s:lease-%d' % (
            self.member_id, next(_LEASE_IDS)))
        self._leases.add(lease)
        return lease

    # The steps of lock().

    def _acquire(self, full_name, wait):
        session = self._use_session(wait)
        try:
            tooz_lock = session.driver.get_lock(full_name.encode('utf-8'))

            def release_late(acquired):
                if acquired:
                    tooz_lock.release()

            # blocking=<seconds> is the one spelling every tooz driver reads
            # as "wait at most"; its timeout= means the lock TTL to etcd3gw.
            acquired = _run_bounded(
                lambda: tooz_lock.acquire(blocking=wait),
                wait + _ACQUIRE_SLACK, 'acquiring %r' % full_name,
                on_late_result=release_late)
        except tenacity.RetryError:
            # etcd3gw and memcached signal "still held when the wait ended"
            # with tenacity's RetryError instead of returning False.
            acquired = False
        except (_Overran,) + _backend_errors() as exc:
            self._done_with(session, failed=True)
            raise _BackendFailure(exc)
        except BaseException:
            self._done_with(session)
            raise
        if not acquired:
            self._done_with(session)
            raise LockTimeout(full_name, wait)
        return session, tooz_lock

    def _release(self, session, tooz_lock, full_name, wait):
        try:
            released = _run_bounded(tooz_lock.release, _call_bound(wait),
                                    'releasing %r' % full_name)
        except (_Overran,) + _backend_errors() as exc:
            LOG.warning(
                'Could not release lock %r on %s (%s): it may stay held '
                'until its lease/TTL (%s s) expires in the backend',
                full_name, self.backend_url, _describe(exc),
                getattr(session.driver, 'lock_timeout', 'unknown'))
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
                    old.url != self._conf[_GROUP].backend_url and
                    self._retire_locked(old)):
                # The backend changed (a test, or a service reconfigured
                # in-process): locks must not keep going to the old one,
                # which may be gone.  Its holders finish through it.
                retired = old
            if self._session is None:
                self._session = self._start_session(_call_bound(wait))
            self._session.holders += 1
            session = self._session
        if retired is not None:
            _stop_driver(retired.driver, 0)
        return session

    def _start_session(self, bound):
        url = self._conf[_GROUP].backend_url
        return _Session(_start_driver(url, self.member_id, bound), url)

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
            _stop_driver(session.driver, 0)

    def _retire_locked(self, session):
        """With ``_mutex`` held: ``session`` is handed out no more (the next
        lock() starts a new one).  True when no lock uses it any more, so
        the caller stops it, outside the mutex."""
        session.stale = True
        if self._session is session:
            self._session = None
        return session.holders == 0


def _start_driver(url, member_id, bound):
    """A started tooz coordinator with its heart beating (it keeps the
    leases/TTLs of held locks alive); :class:`_BackendFailure` if not."""
    try:
        driver = tooz_coordination.get_coordinator(
            url, member_id.encode('utf-8'))
    except Exception as exc:  # config slipped past validate(): no lock
        raise _BackendFailure(exc)

    def stop_late(_result):
        _stop_driver(driver, _STOP_TIMEOUT)

    try:
        _run_bounded(lambda: driver.start(start_heart=True),
                     bound, 'connecting to %s'
                     % mask_url(url), on_late_result=stop_late)
    except (_Overran,) + _backend_errors() as exc:
        raise _BackendFailure(exc)
    return driver


class _BackendFailure(Exception):
    """Internal: lock() could not use the backend; ``cause`` says why."""

    def __init__(self, cause):
        super().__init__(str(cause))
        self.cause = cause


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


# -- leases ------------------------------------------------------------------

#: Lease keys, apart from the short locks' keys.
_LEASE_PREFIX = LOCK_PREFIX + 'lease.'
#: A standby says it still waits at most this often (seconds).
_STANDBY_LOG_EVERY = 60.0
_LEASE_IDS = itertools.count(1)


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
    (keep it short), and the lease is over.

    ``file://`` locks (fcntl) only exclude the processes of one host and
    are lost only with the process.
    """

    def __init__(self, conf, name, on_lost, member_id):
        self._conf = conf
        self.name = _LEASE_PREFIX + name
        self._on_lost = on_lost
        self._member_id = member_id
        self._url = conf[_GROUP].backend_url
        self._mutex = threading.Lock()
        self._cancel = threading.Event()  # release(): stop waiting
        self._held = None  # the watcher's stop Event while held
        self._driver = self._lock = self._watcher = None

    @property
    def backend_url(self):
        """The backend URL, password masked."""
        return mask_url(self._url)

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
            self._url = self._conf[_GROUP].backend_url
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
                        driver = _start_driver(self._url, self._member_id,
                                               _MAX_CALL)
                    # A new tooz lock per try: a file lock's reference
                    # count goes wrong when one is tried again.
                    tooz_lock = driver.get_lock(self.name.encode('utf-8'))
                    ttl = _lock_ttl(driver, tooz_lock)
                    interval = self._interval(ttl)
                    sent = time.monotonic()
                    acquired = self._try_acquire(tooz_lock, blocking)
                except _BackendFailure as exc:
                    if driver is not None:
                        _stop_driver(driver, 0)
                        driver = None
                    if not wait:
                        raise CoordinationUnavailable(
                            self.backend_url, self.name,
                            _describe(exc.cause)) from exc.cause
                    if last_log is None or (time.monotonic() - last_log
                                            >= _STANDBY_LOG_EVERY):
                        last_log = time.monotonic()
                        LOG.warning(
                            'Waiting for lease %r: the coordination backend '
                            '%s is unavailable (%s)', self.name,
                            self.backend_url, _describe(exc.cause))
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
        stop.set()
        if watcher is not threading.current_thread():
            watcher.join(_MAX_CALL)
        self._free(driver, tooz_lock)
        LOG.info('Released lease %r on %s', self.name, self.backend_url)

    # Internals.

    def _interval(self, ttl):
        interval = float(self._conf[host_identity_conf.host_identity_group.
                                    name].lease_check_interval)
        if ttl:
            interval = min(interval, ttl / 3.0)
        return max(interval, 0.2)

    def _try_acquire(self, tooz_lock, blocking):
        def release_late(acquired):
            if acquired:
                tooz_lock.release()

        try:
            return bool(_run_bounded(
                lambda: tooz_lock.acquire(blocking=blocking),
                (blocking or 0) + _ACQUIRE_SLACK,
                'acquiring %r' % self.name, on_late_result=release_late))
        except tenacity.RetryError:  # etcd3gw: still held after `blocking`
            return False
        except (_Overran,) + _backend_errors() as exc:
            raise _BackendFailure(exc)

    def _start_watcher(self, driver, tooz_lock, renewed, ttl, interval):
        with self._mutex:
            if self._cancel.is_set():
                return False
            stop = threading.Event()
            self._held = stop
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
                    left = _MAX_CALL if deadline is None else deadline - sent
                    problem = _run_bounded(
                        lambda: _lease_problem(tooz_lock),
                        min(_MAX_CALL, left if left > 0 else interval),
                        'renewing it')
            except (_Overran,) + _backend_errors() as exc:
                error = _describe(exc)
                LOG.warning('Could not renew lease %r on %s (%s)',
                            self.name, self.backend_url, error)
                if deadline is not None:  # next try at the deadline latest
                    wait = max(0.0, min(interval,
                                        deadline - time.monotonic()))
                continue
            if problem is None:
                renewed, error = sent, None
                continue
            with self._mutex:
                if stop.is_set() or self._held is not stop:
                    return  # released meanwhile
                self._held = None
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
                _run_bounded(tooz_lock.release, _MAX_CALL,
                             'releasing %r' % self.name)
            except (_Overran,) + _backend_errors() as exc:
                LOG.warning('Could not release lease %r on %s (%s): it stays '
                            'held until its TTL runs out', self.name,
                            self.backend_url, _describe(exc))
        _stop_driver(driver, _STOP_TIMEOUT)


def _lock_ttl(driver, tooz_lock):
    """The TTL (seconds) of a held lock that the heart renews, None when
    the backend has none (file, zookeeper: held while the process or its
    session lives)."""
    if type(tooz_lock).__module__ in ('tooz.drivers.etcd3gw',
                                      'tooz.drivers.redis'):
        return int(driver.lock_timeout)
    return None


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

    try:
        owned = tooz_lock.is_still_owner()
    except tooz.NotImplemented:
        return None
    return None if owned else 'the backend no longer has it for us'
