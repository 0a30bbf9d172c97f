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


def still_owner(tooz_lock):
    """Whether the backend still has ``tooz_lock`` as ours: False once its
    lease/TTL ran out while held, even if another holder has it since.

    tooz's is_still_owner() where the driver has it (redis, zookeeper,
    memcached, file, kubernetes); tooz's etcd3gw lock has none, so its key
    is read and compared with the value the lock wrote (a uuid of its own).
    Backend errors propagate (the caller bounds the call in time).
    """
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
