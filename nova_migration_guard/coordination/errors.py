"""The errors of the coordination package (its public API)."""


class CoordinationError(Exception):
    """Base class of the coordination errors."""


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


class LockLost(CoordinationError):
    """The backend no longer holds our lock: its lease/TTL ran out while we
    held it (heartbeats missed), so another service may have taken it and
    acted on the same state.  What was decided under it must not be
    published."""

    def __init__(self, lock_name, backend_url):
        self.lock_name = lock_name
        self.backend_url = backend_url
        super().__init__(
            'Lost lock %r on %s while holding it: its lease/TTL expired '
            '(heartbeats missed), another service may hold it now'
            % (lock_name, backend_url))


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
