"""The tooz backend behind the locks and leases: the URL check at service
start, and calls to the backend bounded in time, since a tooz call can hang
for a minute against a backend that is down (see MIN_CALL).  Internal to
the coordination package."""

import base64
import functools
import importlib
import importlib.metadata
import logging
import os
import re
import threading
import urllib.parse

from oslo_config import cfg
from oslo_utils import netutils
import tenacity
import tooz
from tooz import coordination as tooz_coordination

from nova_migration_guard import conf as mg_conf
from nova_migration_guard.conf import coordination as coordination_conf

LOG = logging.getLogger(__name__)

#: Every lock name gets this prefix, so our keys are recognisable in a
#: backend that other services (Cinder, Designate...) share.
LOCK_PREFIX = 'migration-guard.'

GROUP = coordination_conf.coordination_group.name

# tooz drivers retry internally and their clients retry again underneath:
# against a redis whose port refuses connections one tooz call takes about
# 60 s (15 tooz attempts x 10 redis-py retries with backoff), and an etcd
# behind a dropping firewall waits for the 30 s HTTP timeout per request.
# A guard must not hang a move that long, so every backend call runs under
# a bound (seconds) and counts as a backend failure beyond it: connecting
# and releasing get the lock's wait clamped to [MIN_CALL, MAX_CALL];
# acquiring gets the wait plus ACQUIRE_SLACK.
MIN_CALL = 2.0
MAX_CALL = 10.0
#: tooz polls a held lock (etcd3gw once a second, redis-py every 0.1 s),
#: so a healthy backend answers within the wait + ~1 s.
ACQUIRE_SLACK = 5.0
#: Bound on stopping a coordinator in stop(); beyond it, it ends in the
#: background (tooz's heart thread waits for the backend to come back).
STOP_TIMEOUT = 10.0


def call_bound(wait):
    return min(MAX_CALL, max(wait, MIN_CALL))


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


def url_problem(url, schemes):
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
    if parsed.scheme in ZOOKEEPER_SCHEMES:
        problem = _zookeeper_url_problem(parsed.query)
        if problem:
            return problem
    # The entry point exists; its module imports the backend's client
    # library, which may not be installed (kazoo, pymemcache...).
    eps = importlib.metadata.entry_points(
        group=tooz_coordination.TOOZ_BACKENDS_NAMESPACE, name=parsed.scheme)
    for ep in eps:
        try:
            ep.load()
        except Exception as exc:
            return 'the tooz driver for %r cannot be loaded: %s' % (
                parsed.scheme, one_line(str(exc)) or type(exc).__name__)
    return None


#: tooz's schemes for its kazoo (ZooKeeper) driver.
ZOOKEEPER_SCHEMES = ('zookeeper', 'kazoo')


def _zookeeper_url_problem(query):
    """Why the options of a zookeeper URL cannot work, or None.

    A ZooKeeper lock is an ephemeral znode: it lives as long as its
    holder's session, which the server ends the session timeout after it
    last heard from the client.  That timeout (tooz's ``timeout`` option,
    an integer, 10 s by default) is the lock's TTL; ``lock_timeout``, the
    TTL of etcd and redis locks, is not read by this driver, so a URL that
    sets it would not get the TTL it asks for.
    """
    options = urllib.parse.parse_qs(query)
    if 'lock_timeout' in options:
        return ('zookeeper does not read lock_timeout: its locks live as '
                'long as their session, set the session timeout with the '
                'timeout option instead (timeout=SECONDS, an integer >= 1; '
                '10 by default)')
    timeout = options.get('timeout', ['10'])[-1]
    if not timeout.isdigit() or int(timeout) < 1:
        return ('the zookeeper timeout option (the session timeout, which '
                'is the TTL of its locks) must be an integer number of '
                'seconds >= 1, not %r' % timeout)
    return None


def machine_local(url):
    """Whether ``url``'s backend locks only between the processes of one
    machine (``file://``)."""
    return urllib.parse.urlsplit(url).scheme == 'file'


def machine_local_problem(url, other_machines):
    """Why ``url`` cannot lock across the computes, some of which run on
    ``other_machines`` (descriptions of computes on another machine), or
    None.  A ``file://`` lock holds only between processes of one machine."""
    if not other_machines or not machine_local(url):
        return None
    shown = sorted(other_machines)
    more = len(shown) - MACHINES_SHOWN
    return ('[%s] backend_url is %s: file locks hold only between the '
            'processes of one machine, but nova-compute also runs on other '
            'machines (%s%s), so the anti_affinity and host_identity guards '
            'do not lock between them. Set backend_url on every Nova service '
            'to one shared backend: etcd3+http://ETCD_HOST:2379, '
            'redis://REDIS_HOST:6379 or zookeeper://ZK_HOST:2181'
            % (GROUP, mask_url(url), ', '.join(shown[:MACHINES_SHOWN]),
               ' and %d more' % more if more > 0 else ''))


#: How many other machines the machine-local warning names.
MACHINES_SHOWN = 3


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
        url = conf[GROUP].backend_url
    except cfg.Error as exc:  # e.g. "$typo" names no option
        url, problem = '(unreadable)', one_line(str(exc))
    else:
        problem = url_problem(url, schemes)
    if problem:
        raise mg_conf.ConfigurationError(
            'nova-migration-guard: invalid value for [%s] backend_url: %r '
            '(%s); accepted schemes are %s'
            % (GROUP, mask_url(url or ''), problem, ', '.join(schemes)))


def one_line(text):
    return ' '.join(str(text).split())


def describe(exc):
    """``Type: message`` on one line.  tooz wraps etcd3gw errors whose
    str() is empty (the text is in ``detail_text``), so walk the causes
    until one has a message."""
    if isinstance(exc, Overran):
        return str(exc)
    seen = set()
    current = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = one_line(str(current)) or one_line(
            getattr(current, 'detail_text', None) or '')
        if text:
            if current is not exc:
                text = '%s: %s' % (type(current).__name__, text)
            return '%s: %s' % (type(exc).__name__, text[:500])
        current = current.__cause__ or current.__context__
    return type(exc).__name__


@functools.lru_cache(maxsize=None)
def backend_errors():
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


class Overran(Exception):
    """A bounded backend call is still running past its bound."""

    def __init__(self, what, seconds):
        super().__init__('%s: no answer within %g seconds' % (what, seconds))


def run_bounded(func, seconds, what, on_late_result=None):
    """Run ``func()`` in a daemon thread and wait at most ``seconds``.

    Returns its result or raises its exception; raises :class:`Overran`
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
                          what, describe(exc))
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
            raise Overran(what, seconds)
    if 'error' in state:
        raise state['error']
    return state['result']


def is_zookeeper(tooz_object):
    """Whether a tooz coordinator or lock is tooz's kazoo driver's."""
    return type(tooz_object).__module__ == 'tooz.drivers.zookeeper'


def still_owner(tooz_lock):
    """Whether the backend still has ``tooz_lock`` as ours: False once its
    lease/TTL ran out while held, even if another holder has it since.

    tooz's is_still_owner() where the driver has it (redis, memcached,
    file, kubernetes); tooz's etcd3gw lock has none, so its key is read and
    compared with the value the lock wrote (a uuid of its own).  tooz's
    zookeeper lock says False also when the server cannot be reached, so
    it has a check of its own (:func:`zookeeper_owner`).  Backend errors
    propagate (the caller bounds the call in time).
    """
    if is_zookeeper(tooz_lock):
        return zookeeper_owner(tooz_lock)
    try:
        return bool(tooz_lock.is_still_owner())
    except tooz.NotImplemented:
        pass
    if type(tooz_lock).__module__ == 'tooz.drivers.etcd3gw':
        # Etcd3Lock writes base64(uuid) as the value of _key under its
        # lease; the key vanishes with the lease, or holds another uuid.
        values = tooz_lock._coord.client.get(tooz_lock._key.decode())
        return bool(values) and values[0] == base64.b64decode(
            tooz_lock._uuid)
    raise tooz.NotImplemented(
        'no ownership check for %s' % type(tooz_lock).__name__)


def zookeeper_owner(tooz_lock):
    """Whether ZooKeeper still has the lock's znode, with the data our
    kazoo lock wrote in it (its name is unique to this contender).

    False when the server answers that the znode is gone (our session
    expired, or someone deleted it) or that our session expired.  A request
    the server answers also keeps the session alive: this is a renewal.
    Connection errors propagate: "cannot tell" is not "lost".
    """
    from kazoo import exceptions as kazoo_exceptions
    kazoo_lock = tooz_lock._lock
    if not kazoo_lock.is_acquired or kazoo_lock.node is None:
        return False
    path = '%s/%s' % (kazoo_lock.path, kazoo_lock.node)
    for last_try in (False, True):
        try:
            # An ensemble member serves reads from its own copy, which may
            # lag the leader's (where sessions expire): sync() first.
            kazoo_lock.client.sync(path)
            data, _stat = kazoo_lock.client.get(path)
        except kazoo_exceptions.ConnectionClosedError:
            raise  # our client was stopped: the server said nothing
        except (kazoo_exceptions.NoNodeError,
                kazoo_exceptions.SessionExpiredError):
            return False
        except kazoo_exceptions.ConnectionLoss:
            # The server closes the connection of a session it expires
            # (e.g. while this process was frozen): the request in flight
            # fails so; asked again, once kazoo has reconnected, the
            # server says the session expired.
            if last_try:
                raise
            continue
        return data == kazoo_lock.data


def lock_ttl(driver):
    """Seconds a lock outlives its holder's last renewal in the backend,
    None when it has none (file://: held while the process lives).

    etcd3gw and redis: the ``lock_timeout`` URL option (tooz's heart renews
    the lock's lease or expiry).  zookeeper: a lock is an ephemeral znode,
    deleted when the server expires the holder's session, no sooner than
    the session timeout after it last heard from the client (kazoo pings
    it): the URL's ``timeout`` as the server granted it (it clamps it to
    its minSessionTimeout..maxSessionTimeout), recorded by
    :func:`start_driver`.  BackendFailure when that is unknown.
    """
    kind = type(driver).__module__
    if kind in ('tooz.drivers.etcd3gw', 'tooz.drivers.redis'):
        return int(driver.lock_timeout)
    if is_zookeeper(driver):
        granted = getattr(driver._coord, _GRANTED_TIMEOUT, None)
        if granted is None:
            raise BackendFailure(RuntimeError(
                'the session timeout that ZooKeeper granted is unknown'))
        return granted
    return None


def describe_ttl(driver):
    """lock_ttl() for messages: '30', '2.5' or 'unknown'."""
    try:
        ttl = lock_ttl(driver)
    except BackendFailure:
        ttl = None
    return 'unknown' if ttl is None else '%g' % ttl


#: Where _record_granted_timeout() keeps it on the kazoo client.
_GRANTED_TIMEOUT = 'migration_guard_granted_timeout'


def _record_granted_timeout(kazoo_client):
    """Keep the session timeout (seconds) that the server grants at every
    connection on ``kazoo_client``: kazoo reads it from the server's
    connect reply but keeps only the one it asked for.  The smallest one
    granted so far counts: a holder must never believe its lock lives
    longer than the server lets it.
    """
    from kazoo.protocol import serialization
    try:
        connection = kazoo_client._connection
        invoke = connection._invoke
    except AttributeError:  # another kazoo: leases refuse (lock_ttl())
        LOG.warning('Cannot learn the session timeout that ZooKeeper '
                    'grants from this kazoo version: identity leases on '
                    'ZooKeeper cannot be taken')
        return

    def recording_invoke(timeout, request, xid=None):
        result = invoke(timeout, request, xid=xid)
        if isinstance(request, serialization.Connect):
            granted = result[0].time_out / 1000.0
            known = getattr(kazoo_client, _GRANTED_TIMEOUT, None)
            if known is None or granted < known:
                setattr(kazoo_client, _GRANTED_TIMEOUT, granted)
                asked = kazoo_client._session_timeout / 1000.0
                if granted != asked:
                    LOG.warning(
                        'ZooKeeper granted a session timeout of %g s instead '
                        'of the %g s of the timeout URL option (the server '
                        'bounds it by its minSessionTimeout and '
                        'maxSessionTimeout): locks and leases live %g s '
                        'after their last renewal', granted, asked, granted)
        return result

    connection._invoke = recording_invoke


def try_acquire(tooz_lock, blocking, what):
    """``tooz_lock.acquire(blocking=blocking)`` bounded in time (the wait
    plus ACQUIRE_SLACK): True once held, False when another holder kept it
    for the whole wait; BackendFailure when the backend failed.

    tooz's drivers say "still held when the wait ended" three ways: False,
    tenacity's RetryError (etcd3gw, memcached) and kazoo's LockTimeout
    (zookeeper); kazoo also gives up with False when the server was
    unreachable for the whole wait, which is a backend failure.
    """
    def release_late(acquired):
        if acquired:
            tooz_lock.release()

    try:
        acquired = bool(run_bounded(
            lambda: tooz_lock.acquire(blocking=blocking),
            (blocking or 0) + ACQUIRE_SLACK, what,
            on_late_result=release_late))
    except _still_held_errors():
        acquired = False
    except (Overran,) + backend_errors() as exc:
        raise BackendFailure(exc)
    if not acquired and is_zookeeper(tooz_lock) and (
            not tooz_lock._client.connected):
        raise BackendFailure(RuntimeError(
            '%s: not connected to ZooKeeper' % what))
    return acquired


@functools.lru_cache(maxsize=None)
def _still_held_errors():
    errors = [tenacity.RetryError]
    try:
        from kazoo import exceptions as kazoo_exceptions
        errors.append(kazoo_exceptions.LockTimeout)
    except ImportError:
        pass
    return tuple(errors)


def release_lock(tooz_lock):
    """Release a held lock; whether the backend still had it as ours
    (False: its lease/TTL had run out, others may have held it since).

    tooz's zookeeper lock says True either way, so it is asked first; when
    it cannot tell (the connection dropped), the release goes ahead all the
    same (kazoo retries it once reconnected): a znode left behind would stay
    as long as the session, which lives on while this process does.
    """
    owned = True
    if is_zookeeper(tooz_lock):
        try:
            owned = zookeeper_owner(tooz_lock)
        except backend_errors() as exc:
            LOG.debug('Could not check the ownership of %r before releasing '
                      'it: %s', tooz_lock.name, describe(exc))
    return bool(tooz_lock.release()) and owned


def stop_driver(driver, seconds):
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
        run_bounded(stop, seconds, 'stopping the tooz coordinator')
    except Overran:
        LOG.debug('The tooz coordinator stops in the background once the '
                  'backend answers again')
    except Exception as exc:
        LOG.debug('Stopping the tooz coordinator failed: %s', describe(exc))


def start_driver(url, member_id, bound):
    """A started tooz coordinator with its heart beating (it keeps the
    leases/TTLs of held locks alive); :class:`BackendFailure` if not."""
    try:
        driver = tooz_coordination.get_coordinator(
            url, member_id.encode('utf-8'))
    except Exception as exc:  # config slipped past validate(): no lock
        raise BackendFailure(exc)
    if is_zookeeper(driver):
        _record_granted_timeout(driver._coord)

    def stop_late(_result):
        stop_driver(driver, STOP_TIMEOUT)

    try:
        run_bounded(lambda: driver.start(start_heart=True),
                    bound, 'connecting to %s' % mask_url(url),
                    on_late_result=stop_late)
    except (Overran,) + backend_errors() as exc:
        raise BackendFailure(exc)
    return driver


class BackendFailure(Exception):
    """The backend could not be used; ``cause`` says why."""

    def __init__(self, cause):
        super().__init__(str(cause))
        self.cause = cause
