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

On the source, the move is ended with Nova's own post-migration or rollback
step, from the record the guarded driver kept of the migration
(``flight_record``).

Both ends may restart at once: each recovery runs under a lock per
migration (``coordination``, so a backend shared by the hosts) and first
reads the migration again, so that one end acts and the other finds the
migration ended.  The destination's recovery holds the lock until its
post-migration step is done.

The destination also learns which live migrations are coming in to it
(their records), so that their failed incoming copies are not taken for
crashed guests.
"""

from nova.compute import task_states
from nova.compute import vm_states
from nova import exception
from nova.network import model as network_model
from nova import objects
from nova import servicegroup
from oslo_log import log as logging

from nova_migration_guard import coordination
from nova_migration_guard.migration_outcome import flight_record
from nova_migration_guard.migration_outcome import hold
from nova_migration_guard.migration_outcome import reconcile
from nova_migration_guard import nova_compat

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
    # One query: the live migrations of this host in any status in which
    # the migration may still be coming in or under way.
    migrations = objects.MigrationList.get_by_filters(context, {
        'host': manager.host, 'migration_type': 'live-migration',
        'status': _COMING_IN})
    _expect_incoming(manager, migrations)
    _source_half_of_moves_completed_elsewhere(manager, context)
    for migration in migrations:
        if migration.status not in _UNDER_WAY:
            continue
        if manager.host == migration.source_compute:
            # Before Nova initialises the instance (init_host).
            _recover_locked(manager, context, migration)
        else:
            # The destination's post-migration step needs its resource
            # tracker, which is set up after init_host: it runs in its own
            # thread, which asks for it through this service's RPC topic,
            # served once the service is up.
            nova_compat.spawn(_recover_locked, manager, context, migration)


def lock_name(migration):
    return 'live-migration-recovery-%s' % migration.uuid


def _recover_locked(manager, context, migration):
    try:
        with coordination.get_coordinator().lock(lock_name(migration)):
            # The other end may have ended it while this one waited.
            migration = objects.Migration.get_by_uuid(context,
                                                      migration.uuid)
            if migration.status not in _UNDER_WAY:
                LOG.info('Live migration %s was ended by the other end\'s '
                         'recovery (%s)', migration.uuid, migration.status)
                return
            _recover(manager, context, migration)
    except Exception:
        # One instance's recovery never stops the service; stock Nova
        # handles what is left.
        LOG.exception('Could not recover live migration %s of instance %s',
                      migration.uuid, migration.instance_uuid)


def _expect_incoming(manager, migrations):
    # What the driver knew before the restart of the live migrations
    # coming in here: their failed incoming copy's STOPPED/FAILED event is
    # no crash (migration_outcome.events).
    for migration in migrations:
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
    record = (flight_record.read(context, migration.uuid) if at_source
              else None)
    dest = None
    if at_source:
        # Where this host's libvirt sent the guest, as Nova's driver
        # reached it (a migration network's address, if the record has it).
        dest = (record.destination_address if record is not None
                else migration.dest_compute)
    verdict = manager.driver.migration_verdict(
        instance,
        source=None if at_source else migration.source_compute,
        dest=dest)
    LOG.warning('Found live migration %s (%s -> %s) under way at start; '
                'libvirt says: %s', migration.uuid,
                migration.source_compute, migration.dest_compute,
                verdict.reason, instance=instance)
    if record is not None:
        # Nova's migrate_data carries the migration that its flows update.
        record.migrate_data.migration = migration
    if verdict.outcome == reconcile.COMPLETED:
        if record is not None:
            _post_live_migration(manager, context, instance, migration,
                                 record)
        else:
            _finish(manager, context, instance, migration)
    elif verdict.outcome == reconcile.ROLLED_BACK:
        if record is not None:
            _rollback_live_migration(manager, context, instance, migration,
                                     record)
        elif at_source:
            _roll_back(manager, context, instance, migration)
    else:
        _hold(context, instance, migration, verdict)


def _source_half_of_moves_completed_elsewhere(manager, context):
    """The source's part of Nova's post-migration step, for the live
    migrations of this host that its destination completed while this
    compute was down (their record is still here): the source's volume
    connections and attachments, its VIFs and, where Nova would, its
    instance directory.  The records of migrations that ended otherwise
    are removed."""
    for uuid in flight_record.recorded():
        try:
            migration = objects.Migration.get_by_uuid(context, uuid)
        except exception.MigrationNotFound:
            flight_record.remove(uuid)
            continue
        except Exception:
            # Kept for the next start: the database could not be asked.
            LOG.exception('Could not read live migration %s recorded on '
                          'this host', uuid)
            continue
        if (migration.source_compute != manager.host or
                migration.status in _UNDER_WAY):
            # Another compute's (hosts sharing a state_path), or one the
            # recovery below ends.
            continue
        try:
            if migration.status == 'completed':
                _source_half(manager, context, migration)
        except Exception:
            LOG.exception('Could not clean up the source of live migration '
                          '%s completed by its destination', uuid)
        flight_record.remove(uuid)


def _source_half(manager, context, migration):
    instance = objects.Instance.get_by_uuid(
        context, migration.instance_uuid,
        expected_attrs=['system_metadata', 'info_cache', 'flavor'])
    record = flight_record.read(context, migration.uuid)
    if record is None or instance.host != migration.dest_compute:
        return
    verdict = manager.driver.migration_verdict(
        instance, dest=migration.dest_compute)
    if verdict.outcome != reconcile.COMPLETED:
        LOG.error('Not cleaning up the source of live migration %s, '
                  'completed by its destination: libvirt says: %s',
                  migration.uuid, verdict.reason, instance=instance)
        return
    # Nova's _post_live_migration, its steps on the source, in its order.
    migrate_data, source_bdms = record.migrate_data, record.source_bdms
    manager.driver.post_live_migration(
        context, instance, manager._get_instance_block_device_info(
            context, instance, bdms=source_bdms), migrate_data)
    manager._post_live_migration_remove_source_vol_connections(
        context, instance, source_bdms)
    network_info = instance.get_network_info()
    if 'vifs' in migrate_data:
        network_info = network_model.NetworkInfo.hydrate(
            [vif.source_vif for vif in migrate_data.vifs])
    manager.driver.post_live_migration_at_source(context, instance,
                                                 network_info)
    do_cleanup, destroy_disks = manager._live_migration_cleanup_flags(
        migrate_data, migr_ctxt=instance.migration_context)
    if do_cleanup:
        manager.driver.cleanup(context, instance, network_info,
                               destroy_disks=destroy_disks,
                               migrate_data=migrate_data)
    LOG.warning('Cleaned up the source of live migration %s, completed by '
                'its destination %s while this compute was down',
                migration.uuid, migration.dest_compute, instance=instance)


def _source_compute_up(manager, context, migration):
    service = objects.Service.get_by_compute_host(
        context, migration.source_compute)
    return servicegroup.API().service_is_up(service)


def _post_live_migration(manager, context, instance, migration, record):
    """Nova's own post-migration step, as the source's monitor runs it
    when libvirt's job completed: the destination's port bindings
    activated, the source's volume attachments deleted and VIFs unplugged,
    its instance directory cleaned, the destination's post step, the
    migration 'completed' and the source's allocation freed."""
    if manager.rt.pci_tracker is None:
        # At init_host the resource tracker has not read this host yet
        # (Nova's pre_start_hook does it next): Nova's post step frees the
        # instance's PCI devices through it, then updates it anyway.
        manager.update_available_resource(context)
    manager._post_live_migration_update_host(
        context, instance, record.dest, record.block_migration,
        record.migrate_data, source_bdms=record.source_bdms)
    flight_record.remove(migration.uuid)
    LOG.warning('Completed live migration %s interrupted by a restart, with '
                'Nova\'s post-migration step: the instance is on %s',
                migration.uuid, migration.dest_compute, instance=instance)


def _rollback_live_migration(manager, context, instance, migration,
                             record):
    """Nova's own rollback, as the source's monitor runs it when libvirt's
    job failed: the allocation back on the source, the destination's
    volume attachments and inactive port bindings deleted, the source's
    attachments restored on the block device mappings, the destination
    cleaned, the instance ACTIVE here and the migration 'failed'."""
    manager._rollback_live_migration(
        context, instance, record.dest, record.migrate_data,
        migration_status='failed', source_bdms=record.source_bdms)
    flight_record.remove(migration.uuid)
    LOG.warning('Rolled back live migration %s interrupted by a restart, '
                'with Nova\'s rollback: the instance runs on %s',
                migration.uuid, manager.host, instance=instance)


# Without a record (a migration started before this release, or a record
# that could not be written): the database and Placement only.

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
