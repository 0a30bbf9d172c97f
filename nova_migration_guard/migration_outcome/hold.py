"""Holding an instance whose guest's location cannot be told.

When the outcome of a live migration is UNKNOWN, or post-copy failed, the
guarded driver and the restart recovery tear nothing down on either host.
They lock the instance (Nova's own lock, ``locked_by`` admin, with a
``locked_reason`` that starts with :data:`REASON_PREFIX`) and Nova puts it
in ERROR with a fault carrying the same reason.  The start guard then
refuses, with 409 and that reason and for admins too, every action that
could run a second copy of the guest.  An operator who has checked both
hosts releases the hold by unlocking the instance.
"""

from nova.compute import utils as compute_utils
from nova import exception
from nova.i18n import _
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

REASON_PREFIX = 'nova-migration-guard: '


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
    instance.save()
    compute_utils.add_instance_fault_from_exc(
        context, instance, MigrationOutcomeUnknown(reason=locked_reason))
    LOG.error('Holding instance: %s. Nothing is torn down on either host; '
              'check both, then unlock the instance to release it.',
              locked_reason, instance=instance)
    return locked_reason


def held_reason(instance):
    """The reason ``instance`` is held, or None."""
    if not instance.locked:
        return None
    reason = instance.system_metadata.get('locked_reason') or ''
    return reason if reason.startswith(REASON_PREFIX) else None
