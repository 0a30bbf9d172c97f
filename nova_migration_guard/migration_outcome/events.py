"""What a libvirt lifecycle event means for the compute manager, given its
libvirt detail (kept on Nova's LifecycleEvent by patch 0004).

Nova 34 maps every libvirt STOPPED event to a power-off, whatever the
detail: the STOPPED/MIGRATED a source emits when its guest has left by
live migration then reaches ``handle_lifecycle_event`` as "the guest shut
down", which is how a running guest ends up believed off.  The guarded
driver asks :func:`interpret` before passing an event on.

Pure: (libvirt event, detail) in, an action out.
"""

# libvirt virDomainEventType and the details used here (copied, so that
# the decision needs no libvirt to import and test).
STARTED, SUSPENDED, RESUMED, STOPPED = 2, 3, 4, 5
STARTED_MIGRATED = 1
SUSPENDED_POSTCOPY_FAILED = 8
RESUMED_MIGRATED, RESUMED_POSTCOPY, RESUMED_POSTCOPY_FAILED = 1, 3, 4
STOPPED_MIGRATED, STOPPED_FAILED = 3, 5

#: Pass the event on unchanged.
FORWARD = 'forward'
#: A step of a migration, not a change of the guest's power state: drop
#: it; the migration's own completion or rollback updates the instance.
MIGRATION_STEP = 'migration-step'
#: Post-copy failed: memory is split between the hosts; set a fault and
#: never start either copy.
POSTCOPY_FAILED = 'postcopy-failed'

_MIGRATION_STEPS = {
    # The guest left this host by migration (source).
    (STOPPED, STOPPED_MIGRATED),
    # An incoming migration failed; the guest never ran here (destination).
    (STOPPED, STOPPED_FAILED),
    # An incoming guest appeared, or resumed after the switch-over
    # (destination), before the instance's host says it is here.
    (STARTED, STARTED_MIGRATED),
    (RESUMED, RESUMED_MIGRATED),
    (RESUMED, RESUMED_POSTCOPY),
}
_POSTCOPY_FAILURES = {
    (SUSPENDED, SUSPENDED_POSTCOPY_FAILED),
    (RESUMED, RESUMED_POSTCOPY_FAILED),
}


def interpret(detail):
    """The action for a lifecycle event whose ``detail`` is the libvirt
    (event, detail) pair, or None when the event carries none (then it is
    forwarded as Nova would)."""
    if detail is None:
        return FORWARD
    pair = tuple(detail)
    if pair in _POSTCOPY_FAILURES:
        return POSTCOPY_FAILED
    if pair in _MIGRATION_STEPS:
        return MIGRATION_STEP
    return FORWARD
