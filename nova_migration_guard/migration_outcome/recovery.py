"""Recovery after restarts (compute ``init_host`` hook).

A nova-compute that dies while it monitors a live migration leaves the
instance MIGRATING with ``host`` on the source, while libvirt carries on
and may finish the migration.  Stock Nova 34 then resets the task state
on the source's restart and, finding no domain there, soon believes the
guest is stopped, while it runs on the destination (G4); a user who
starts it runs a second copy on shared volumes.

At start, before Nova initialises its instances, the guarded compute asks
libvirt on both hosts about every running live migration it is an end of
(on the source, a job that still runs is first aborted, as Nova does, and
its end awaited):

* the guest runs on the destination: the move is completed (the
  destination's post-migration step, the migration 'completed', the
  source's allocation freed), on the source's own restart, or on the
  destination's when the source compute is down;
* it runs on the source: the source's restart rolls back (migration
  'failed', the allocation returned to the source, ACTIVE there);
* it cannot be told, or post-copy failed: the instance is held
  (``hold``), ERROR with a fault, nothing torn down;
* libvirt still migrates it (post-copy in flight, which cannot be
  aborted): the verdict waits for libvirt to end it, within
  ``in_flight_timeout``, then holds it if it is still in flight.

The destination also learns which live migrations are coming in to it
(their records), so that their failed incoming copies are not taken for
crashed guests.
"""

from nova.compute import task_states
from nova.compute import vm_states
from nova import objects
from nova import servicegroup
from nova import thread_pool_factory
from oslo_log import log as logging

from nova_migration_guard.migration_outcome import hold
from nova_migration_guard.migration_outcome import reconcile

LOG = logging.getLogger(__name__)

#: Migration statuses in which libvirt may have moved the guest.
_UNDER_WAY = ['running', 'post-migrating']
#: ... and in which the destination may get libvirt events of it.
_COMING_IN = ['queued', 'preparing'] + _UNDER_WAY


def init_host(manager, context):
    driver = manager.driver
    if not hasattr(driver, 'migration_verdict'):
        LOG.warning('[migration_guard] guards lists migration_outcome, but '
                    'compute_driver %s is not migration_guard.'
                    'GuardedLibvirtDriver: live migrations interrupted by a '
                    'restart are left to Nova', type(driver).__name__)
        return
    _expect_incoming(manager, context)
    migrations = objects.MigrationList.get_by_filters(context, {
        'host': manager.host, 'migration_type': 'live-migration',
        'status': _UNDER_WAY})
    for migration in migrations:
        try:
            _recover(manager, context, migration)
        except Exception:
            # One instance's recovery never stops the service; stock Nova
            # handles what is left.
            LOG.exception('Could not recover live migration %s of '
                          'instance %s', migration.uuid,
                          migration.instance_uuid)


def _expect_incoming(manager, context):
    # What the driver knew before the restart of the live migrations
    # coming in here: their failed incoming copy's STOPPED/FAILED event is
    # no crash (migration_outcome.events).
    for migration in objects.MigrationList.get_by_filters(context, {
            'host': manager.host, 'migration_type': 'live-migration',
            'status': _COMING_IN}):
        if migration.dest_compute == manager.host:
            manager.driver.expect_incoming_migration(
                migration.instance_uuid)


def _recover(manager, context, migration):
    instance = objects.Instance.get_by_uuid(
        context, migration.instance_uuid,
        expected_attrs=['system_metadata', 'info_cache', 'flavor'])
    if (instance.task_state != task_states.MIGRATING or
            instance.host != migration.source_compute):
        return
    at_source = manager.host == migration.source_compute
    if not at_source and _source_compute_up(manager, context, migration):
        # The source's monitor (or its own restart) ends this migration.
        return
    if at_source:
        # Nova aborts an unmonitored job at start; a post-copy job cannot
        # be aborted, and the verdict then waits for libvirt to end it
        # (or holds the instance), tearing nothing down meanwhile.
        manager.driver.end_migration_job(instance)
    verdict = manager.driver.migration_verdict(
        instance,
        source=None if at_source else migration.source_compute,
        dest=migration.dest_compute if at_source else None)
    LOG.warning('Found live migration %s (%s -> %s) under way at start; '
                'libvirt says: %s', migration.uuid,
                migration.source_compute, migration.dest_compute,
                verdict.reason, instance=instance)
    if verdict.outcome == reconcile.COMPLETED:
        _complete(manager, context, instance, migration, at_source)
    elif verdict.outcome == reconcile.ROLLED_BACK:
        if at_source:
            _roll_back(manager, context, instance, migration)
    else:
        _hold(context, instance, migration, verdict)


def _source_compute_up(manager, context, migration):
    service = objects.Service.get_by_compute_host(
        context, migration.source_compute)
    return servicegroup.API().service_is_up(service)


def _complete(manager, context, instance, migration, at_source):
    if at_source:
        _finish(manager, context, instance, migration)
    else:
        # The destination's own post-migration step needs its resource
        # tracker, which is set up after init_host: ask for it through
        # this service's RPC topic, which is served once it is.
        thread_pool_factory.spawn(_finish, manager, context, instance,
                                  migration)


def _finish(manager, context, instance, migration):
    try:
        manager.compute_rpcapi.post_live_migration_at_destination(
            context, instance, False, migration.dest_compute)
        migration.status = 'completed'
        migration.save()
        manager._delete_allocation_after_move(context, instance, migration)
    except Exception:
        LOG.exception('Could not complete live migration %s interrupted by '
                      'a restart', migration.uuid, instance=instance)
        return
    LOG.warning('Completed live migration %s interrupted by a restart: the '
                'instance is on %s', migration.uuid, migration.dest_compute,
                instance=instance)


def _roll_back(manager, context, instance, migration):
    # What Nova's rollback does for the database and placement; the
    # destination holds nothing that ran (reconcile said so).
    manager.reportclient.move_allocations(context, migration.uuid,
                                          instance.uuid)
    migration.status = 'failed'
    migration.save()
    instance.task_state = None
    instance.save(expected_task_state=[task_states.MIGRATING])
    LOG.warning('Rolled back live migration %s interrupted by a restart: '
                'the instance runs on %s', migration.uuid, manager.host,
                instance=instance)


def _hold(context, instance, migration, verdict):
    hold.hold(context, instance, 'live migration %s from %s to %s was '
              'interrupted by a restart and its outcome cannot be told: %s'
              % (migration.uuid, migration.source_compute,
                 migration.dest_compute, verdict.reason))
    instance.vm_state = vm_states.ERROR
    instance.task_state = None
    instance.save(expected_task_state=[task_states.MIGRATING])
    migration.status = 'error'
    migration.save()
