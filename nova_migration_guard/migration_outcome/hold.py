"""Holding an instance whose guest's location cannot be told.

When the outcome of a live migration is UNKNOWN, or post-copy failed, the
guarded driver and the restart recovery tear nothing down on either host.
They lock the instance (Nova's own lock, ``locked_by`` admin, with a
``locked_reason`` that starts with :data:`REASON_PREFIX`), record the same
reason in the instance's system metadata under :data:`MARKER_KEY`, and Nova
puts it in ERROR with a fault carrying that reason.  The start guard then
refuses, with 409 and that reason and for admins too, every action that
could run a second copy of the guest.  An operator who has checked both
hosts releases the hold by unlocking the instance.

Why the marker: any owner can lock their own server with any reason
(microversion 2.73), one that reads like ours included, and the owner's
lock must not stop an operator's moves.  The API cannot write system
metadata, nor lock an owner's server as ``locked_by`` admin.  Nova's unlock
pops ``locked_reason`` but leaves the marker: a marker counts only while
the instance is locked by an admin with that very reason, so a lock set
after a release is never taken for the old hold.
"""

from nova.compute import utils as compute_utils
from nova import exception
from nova.i18n import _
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

REASON_PREFIX = 'nova-migration-guard: '
#: System metadata key the guard writes when it holds an instance (the
#: compute API writes no system metadata).
MARKER_KEY = 'nova_migration_guard_hold'


class MigrationOutcomeUnknown(exception.NovaException):
    """Raised to Nova's error handling: the instance goes to ERROR and the
    fault says why, while nothing is torn down."""
    msg_fmt = _('%(reason)s')


def hold(context, instance, reason):
    """Lock ``instance`` with ``reason`` and record it as the instance's
    fault (Nova runs a live migration outside the RPC method whose fault
    wrapper would record it); returns the lock reason."""
    locked_reason = REASON_PREFIX + reason
    instance.locked = True
    instance.locked_by = 'admin'
    instance.system_metadata['locked_reason'] = locked_reason
    instance.system_metadata[MARKER_KEY] = locked_reason
    instance.save()
    compute_utils.add_instance_fault_from_exc(
        context, instance, MigrationOutcomeUnknown(reason=locked_reason))
    LOG.error('Holding instance: %s. Nothing is torn down on either host; '
              'check both, then unlock the instance to release it.',
              locked_reason, instance=instance)
    return locked_reason


def held_reason(instance):
    """The reason ``instance`` is held by the guard, or None.

    Held: locked by an admin (never an owner's own lock) with the reason
    the guard recorded in its marker.  An instance held by a release
    before the marker existed has no marker at all: it stays held while
    locked by an admin with a reason starting with :data:`REASON_PREFIX`,
    so an upgrade releases no guest whose location is uncertain.
    """
    if not instance.locked or instance.locked_by != 'admin':
        return None
    sysmeta = instance.system_metadata
    reason = sysmeta.get('locked_reason') or ''
    if MARKER_KEY in sysmeta:
        return reason if reason and reason == sysmeta[MARKER_KEY] else None
    return reason if reason.startswith(REASON_PREFIX) else None
