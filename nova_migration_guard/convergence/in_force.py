"""The convergence configuration in force: ``[migration_guard_convergence]``
``default_policy`` and ``custom_policies``, as validated.

Both options are mutable: Nova's services reload them on SIGHUP, without
a restart.  At start an invalid value stops the service
(``validation.validate``).  A reload cannot be refused, so an invalid reloaded
value is reported once, at the reload, as an error naming the option and
the accepted values, and the last valid configuration stays in force until
it is fixed: a live migration must not fail over a typo in nova.conf
(Nova would put its instance in ERROR).
"""

import threading

from oslo_log import log as logging

from nova_migration_guard import conf as mg_conf
from nova_migration_guard.conf import convergence as convergence_conf
from nova_migration_guard.convergence import policies

LOG = logging.getLogger(__name__)

_GROUP = convergence_conf.convergence_group.name
_OPTS = {opt.name: opt for opt in convergence_conf.ALL_OPTS}
#: In force before any valid configuration was seen (a process that did
#: not validate at start): the options' defaults.
_DEFAULTS = (_OPTS['default_policy'].default,
             tuple(_OPTS['custom_policies'].default))

_lock = threading.Lock()
_last_valid = None
_reported = set()


def check(default, custom_specs):
    """Raise PolicyError, naming the option and the accepted values, when
    the configuration is invalid."""
    policies.select({}, {}, default, custom_specs)


def configuration(conf=mg_conf.CONF):
    """(default policy name, custom policy specs) in force."""
    global _last_valid
    group = conf[_GROUP]
    current = (group.default_policy, tuple(group.custom_policies))
    with _lock:
        if current == _last_valid:
            return current
        try:
            check(*current)
        except policies.PolicyError as exc:
            kept = _last_valid or _DEFAULTS
            if current not in _reported:
                _reported.add(current)
                LOG.error(
                    'nova-migration-guard: invalid value for [%s]: %s. '
                    'Live migrations keep the last valid configuration '
                    '(default_policy = %s, custom_policies = %s) until it '
                    'is fixed', _GROUP, exc, kept[0],
                    ', '.join(kept[1]) or '(none)')
            return kept
        _last_valid = current
        _reported.clear()
        return current


def on_reload(conf, fresh):
    """oslo.config mutate hook: report an invalid reloaded value at once,
    not at the next live migration."""
    if any(group == _GROUP for group, _name in fresh):
        configuration(conf)


def reset():
    """Forget what was seen (tests)."""
    global _last_valid
    with _lock:
        _last_valid = None
        _reported.clear()
