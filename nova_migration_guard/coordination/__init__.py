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
:class:`CoordinationUnavailable` when the backend cannot be reached.  It
yields a :class:`HeldLock`, whose ``check()`` raises :class:`LockLost` when
the lock's lease/TTL ran out while it was held.

:meth:`Coordinator.lease` gives a :class:`Lease`: a lock held for a process's
lifetime (one writer per compute identity) that reports its loss.

Where things are: ``locks`` (the Coordinator and its short locks),
``lease`` (leases and their watcher), ``fence`` (a lease holder's
self-fence), ``backend`` (the URL check and the
time-bounded calls to tooz), ``errors``.  This module is the public API.
"""

from nova_migration_guard.coordination.backend import backend_schemes
from nova_migration_guard.coordination.backend import LOCK_PREFIX
from nova_migration_guard.coordination.backend import mask_url
from nova_migration_guard.coordination.backend import validate_backend_url
from nova_migration_guard.coordination.errors import CoordinationError
from nova_migration_guard.coordination.errors import CoordinationUnavailable
from nova_migration_guard.coordination.errors import LeaseHeld
from nova_migration_guard.coordination.errors import LockLost
from nova_migration_guard.coordination.errors import LockTimeout
from nova_migration_guard.coordination.fence import end_process
from nova_migration_guard.coordination.fence import SelfFence
from nova_migration_guard.coordination.lease import Lease
from nova_migration_guard.coordination.locks import Coordinator
from nova_migration_guard.coordination.locks import HeldLock
from nova_migration_guard.coordination.locks import get_coordinator
from nova_migration_guard.coordination.locks import reset

__all__ = [
    'LOCK_PREFIX', 'CoordinationError', 'CoordinationUnavailable',
    'Coordinator', 'HeldLock', 'Lease', 'LeaseHeld', 'LockLost',
    'LockTimeout', 'SelfFence', 'backend_schemes', 'end_process',
    'get_coordinator', 'mask_url', 'reset', 'validate_backend_url',
]
