"""What a libvirt lifecycle event means for the compute manager, given its
libvirt detail (kept on Nova's LifecycleEvent by patch 0004).

Nova 34 maps every libvirt STOPPED event to a power-off, whatever the
detail: the STOPPED/MIGRATED a source emits when its guest has left by
live migration then reaches ``handle_lifecycle_event`` as "the guest shut
down", which is how a running guest ends up believed off.  The guarded
driver asks :func:`interpret` before passing an event on.

STOPPED/FAILED is two things in libvirt: the incoming copy of a live
migration that failed on its destination (the guest never ran there), and
a QEMU that died without a shutdown (crash, OOM kill).  Only the first is
a migration step; a crash reaches Nova as in stock Nova.  The driver
tells them apart by whether the instance has an incoming live migration
on its host (:func:`still_incoming` keeps that up to date from the
events themselves; Nova's pre_live_migration and the restart recovery add
what they know).

Pure: (libvirt event, detail) and what is known in, an action out.
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


# The incoming copy is handed over (it runs here now: post-copy or not),
# or it ended: the migration is no longer coming in.
_INCOMING_ENDS = {
    (RESUMED, RESUMED_MIGRATED),
    (RESUMED, RESUMED_POSTCOPY),
    (STOPPED, STOPPED_FAILED),
}


def interpret(detail, incoming=False):
    """The action for a lifecycle event whose ``detail`` is the libvirt
    (event, detail) pair, or None when the event carries none (then it is
    forwarded as Nova would).  ``incoming``: the instance had an incoming
    live migration on this host when the event came."""
    if detail is None:
        return FORWARD
    pair = tuple(detail)
    if pair in _POSTCOPY_FAILURES:
        return POSTCOPY_FAILED
    if pair in _MIGRATION_STEPS:
        return MIGRATION_STEP
    if pair == (STOPPED, STOPPED_FAILED) and incoming:
        # The failed incoming copy: the guest never ran here.
        return MIGRATION_STEP
    return FORWARD


def still_incoming(detail, incoming):
    """Whether the instance has an incoming live migration on this host
    after the event ``detail`` (as in :func:`interpret`), given whether it
    had one before (``incoming``).  libvirt starts an incoming copy with
    STARTED/MIGRATED; the migration stops coming in once that copy is
    resumed (handed over) or failed, and any other start (a boot here: a
    spawn, cold migration, evacuation) is no incoming live migration."""
    if detail is None:
        return incoming
    pair = tuple(detail)
    if pair == (STARTED, STARTED_MIGRATED):
        return True
    if pair in _INCOMING_ENDS or pair[0] == STARTED:
        return False
    return incoming
