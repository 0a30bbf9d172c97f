"""Where the convergence engine's steps are kept, besides the log.

Each step the ladder takes (a downtime raise, post-copy, pause, abort) is

* stored with the live migration's instance action, as an event named
  ``migration_guard_convergence_<step>`` (``..._set_downtime_1000ms``), on
  the compute that took it, so that ``openstack server event show`` lists
  the steps in order beside Nova's own events.  An abort is stored as an
  Error event whose details (microversion 2.84, admins) carry the numbers
  that triggered it.  Nova's migrations table has no column for free text;
  its memory counters are kept current by Nova's own monitor.
* emitted as the versioned notification ``migration_guard.convergence.
  <step>`` (priority info; payload ``ConvergenceStepPayload``) through
  Nova's versioned notifier, i.e. when ``[notifications]
  notification_format`` is ``versioned`` or ``both``.

Neither may break the migration: a failure to record is logged.
"""

from nova import objects as nova_objects
from nova import rpc
from oslo_log import log as logging
from oslo_versionedobjects import base as ovo_base
from oslo_versionedobjects import fields

from nova_migration_guard.convergence import ladder
from nova_migration_guard.convergence import passes as passes_mod

LOG = logging.getLogger(__name__)

EVENT_PREFIX = 'migration_guard_convergence_'
NOTIFICATION_PREFIX = 'migration_guard.convergence.'


# Fields made properties but not registered: oslo.versionedobjects has one
# registry per process, shared with Nova's objects (and Nova's object hash
# tests); the payload is only serialized here, never loaded back.
@ovo_base.VersionedObjectRegistry.register_if(False)
class ConvergenceStepPayload(ovo_base.VersionedObject):
    """One step of the convergence ladder and the numbers behind it."""

    # Nova's envelope (nova_object.data, ...), so that consumers of Nova's
    # versioned notifications read it as they read Nova's; the namespace
    # says whose it is.
    OBJ_SERIAL_NAMESPACE = 'nova_object'
    OBJ_PROJECT_NAMESPACE = 'nova_migration_guard'
    VERSION = '1.0'
    fields = {
        'instance_uuid': fields.UUIDField(),
        'migration_uuid': fields.UUIDField(nullable=True),
        'policy': fields.StringField(),
        'action': fields.StringField(),
        # The new allowed downtime (ms) of a set-downtime step.
        'value': fields.IntegerField(nullable=True),
        'reason': fields.StringField(),
        'memory_iteration': fields.IntegerField(),
        'memory_remaining_bytes': fields.IntegerField(),
        'bandwidth_bps': fields.IntegerField(),
        'auto_converge_throttle': fields.IntegerField(nullable=True),
        'elapsed_seconds': fields.IntegerField(),
    }


def _action(step):
    """``set_downtime``, ``post_copy``, ``pause``, ``abort``."""
    return step.action.replace('-', '_')


def step_name(step):
    """``set_downtime_1000ms``, ``post_copy``, ``pause``, ``abort``."""
    name = _action(step)
    return '%s_%dms' % (name, step.value) if step.value else name


def payload(instance, migration, policy, step, samples, elapsed):
    memory_passes = passes_mod.passes(samples)
    latest = memory_passes[-1] if memory_passes else passes_mod.Pass(0, 0, 0)
    return ConvergenceStepPayload(
        instance_uuid=instance.uuid,
        migration_uuid=getattr(migration, 'uuid', None),
        policy=policy.name, action=step.action, value=step.value,
        reason=step.reason, memory_iteration=latest.iteration,
        memory_remaining_bytes=int(latest.left_bytes),
        bandwidth_bps=int(latest.bandwidth_bps),
        auto_converge_throttle=(samples[-1].get('auto_converge_throttle')
                                if samples else None),
        elapsed_seconds=int(elapsed))


def record(context, instance, migration, policy, step, samples,
           elapsed):
    """Store ``step`` with the instance action and notify it."""
    if context is None:
        # No request (a driver driven outside nova-compute): the log only.
        return
    # The monitor runs on the source, the instance's host until the end.
    host = instance.host
    body = payload(instance, migration, policy, step, samples, elapsed)
    try:
        _action_event(context, host, instance, step)
    except Exception:
        LOG.warning('Could not store convergence step %s with the '
                    'instance action', step.action, exc_info=True,
                    instance=instance)
    try:
        _notify(context, host, step, body)
    except Exception:
        LOG.warning('Could not emit the convergence step %s notification',
                    step.action, exc_info=True, instance=instance)


def _action_event(context, host, instance, step):
    name = EVENT_PREFIX + step_name(step)
    nova_objects.InstanceActionEvent.event_start(
        context, instance.uuid, name, want_result=False, host=host)
    if step.action == ladder.ABORT:
        # exc_tb marks the event Error; exc_val becomes its details.
        nova_objects.InstanceActionEvent.event_finish_with_failure(
            context, instance.uuid, name, exc_val=step.reason,
            exc_tb='aborted by the convergence policy', want_result=False)
    else:
        nova_objects.InstanceActionEvent.event_finish(
            context, instance.uuid, name, want_result=False)


def _notify(context, host, step, body):
    if rpc.NOTIFIER is None:
        return
    notifier = rpc.get_versioned_notifier('nova-compute:%s' % host)
    notifier.info(context, NOTIFICATION_PREFIX + _action(step),
                  body.obj_to_primitive())
