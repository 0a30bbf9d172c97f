"""The start guard (nova-api, ``instance_action`` hook of patch 0008): an
instance held because its guest's location is uncertain cannot be started,
rebuilt or moved, by anyone, until an operator has released the hold."""

from nova import exception

from nova_migration_guard.migration_outcome import hold

#: Compute API actions that could run a second copy of the guest, or
#: destroy the one copy Nova does not know about.
REFUSED_ACTIONS = frozenset([
    'start', 'reboot', 'rebuild', 'evacuate', 'unshelve', 'resume',
    'unpause', 'rescue', 'unrescue', 'restore', 'live_migrate', 'resize',
    'revert_resize', 'confirm_resize', 'delete', 'soft_delete',
    'force_delete', 'trigger_crash_dump',
])


def instance_action(context, instance, action):
    if action not in REFUSED_ACTIONS:
        return
    reason = hold.held_reason(instance)
    if reason is None:
        return
    raise exception.InstanceActionRefused(
        instance_uuid=instance.uuid,
        reason='Cannot %s instance %s: its location is uncertain (%s). '
               'Check where the guest runs on both hosts, then unlock the '
               'instance to release it.' % (action, instance.uuid, reason))
