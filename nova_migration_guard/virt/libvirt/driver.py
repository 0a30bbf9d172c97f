"""GuardedLibvirtDriver: Nova's LibvirtDriver, but a live migration that
fails late never loses its guest.

Selected with ``[DEFAULT] compute_driver =
migration_guard.GuardedLibvirtDriver`` (the ``nova.compute_drivers`` entry
point of patch 0005).  With the ``migration_outcome`` and ``convergence``
guards off it behaves exactly as LibvirtDriver.  With ``migration_outcome``
on:

* lifecycle events are read by their libvirt detail
  (``migration_outcome.events``): a guest leaving by migration, or a
  failed incoming copy of a guest migrating here, is not a power-off (a
  guest that crashed is: that reaches Nova as in LibvirtDriver);
* before Nova rolls a live migration back, and when the migrate call
  raises, where the guest really runs is decided from both hosts
  (``migration_outcome.reconcile``), once libvirt has stopped migrating
  (post-copy is waited for, within ``in_flight_timeout``): the migration
  is finished as a success, rolled back without ERROR (a paused guest
  stays paused on its source), or, when it cannot be told or post-copy
  failed, held (``migration_outcome.hold``) with nothing torn down;
* ``migration_verdict()`` answers the same question for the restart
  recovery (``migration_outcome.recovery``);
* an aborted migration is recorded cancelled from the migrate call's
  error (``reconcile.rollback_status``), also under the convergence guard;
* the migrate call's error is taken from the call itself
  (``nova_compat.MigrateCall``), whether or not the release's
  ``_live_migration`` re-raises it (``nova_compat``), so that a late
  failure ends the same on every release.

With ``convergence`` on, a live migration follows its policy
(``virt/libvirt/convergence``): the policy's flags are added to its
migrate call, Nova's own monitor loop asks the policy at each sample
(patch 0011's ``live_migration_next_action``), and that loop (its
force-complete too) knows when the policy started the migration with
post-copy.

The decisions are pure functions; this module only gathers what libvirt
reports and acts.
"""

import functools
import threading
import time

from nova.compute import vm_states
from nova import exception
from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from nova_migration_guard.migration_outcome import events
from nova_migration_guard.migration_outcome import flight_record
from nova_migration_guard.migration_outcome import hold
from nova_migration_guard.migration_outcome import reconcile
from nova_migration_guard import nova_compat
from nova_migration_guard.virt.libvirt import convergence

LOG = logging.getLogger(__name__)

GUARD = 'migration_outcome'
# How often a verdict that libvirt still migrates is asked again.
_IN_FLIGHT_POLL_S = 1.0


def _conf():
    from nova_migration_guard import conf as mg_conf
    return mg_conf.CONF


def _guard_enabled():
    return GUARD in _conf().migration_guard.guards


def _libvirt():
    # The module Nova's driver uses (its test fixtures replace it).
    return libvirt_driver.libvirt


class GuardedLibvirtDriver(libvirt_driver.LibvirtDriver):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Instances with a live migration coming in to this host, as far as
        # Nova (pre_live_migration, the restart recovery) and libvirt's
        # events (events.still_incoming) have told: a STOPPED/FAILED of
        # one of them is its failed incoming copy, of any other a crash.
        self._incoming = set()
        self._incoming_lock = threading.Lock()
        # Per monitoring thread: whether the convergence policy started
        # the migration it monitors with post-copy (read by
        # _is_post_copy_enabled).
        self._monitoring = threading.local()
        # Per instance uuid: the migrate call of its live migration under
        # way here, when a guard watches it (nova_compat.MigrateCall).
        self._migrate_calls = {}

    def emit_event(self, event):
        if _guard_enabled():
            detail = getattr(event, 'detail', None)
            action = events.interpret(
                detail, incoming=self._incoming_event(event.uuid, detail))
            if action == events.MIGRATION_STEP:
                LOG.debug('Not passing on %s (detail %s): a step of a '
                          'migration, not a power state change', event,
                          event.detail)
                return
            if action == events.POSTCOPY_FAILED:
                LOG.error('Post-copy migration of instance %s failed '
                          '(libvirt event %s): neither copy of the guest '
                          'will be started', event.uuid, event.detail)
        super().emit_event(event)

    def _incoming_event(self, uuid, detail):
        """Whether ``uuid`` had an incoming live migration on this host
        when libvirt sent the event ``detail``; updates what is known."""
        with self._incoming_lock:
            was = uuid in self._incoming
            if events.still_incoming(detail, was):
                self._incoming.add(uuid)
            else:
                self._incoming.discard(uuid)
        return was

    def expect_incoming_migration(self, instance_uuid):
        """A live migration of the instance comes in to this host (said by
        Nova before libvirt's first event about it, or after a restart by
        its migration record)."""
        with self._incoming_lock:
            self._incoming.add(instance_uuid)

    def pre_live_migration(self, context, instance, *args, **kwargs):
        if _guard_enabled():
            self.expect_incoming_migration(instance.uuid)
        return super().pre_live_migration(context, instance, *args,
                                          **kwargs)

    def post_live_migration_at_destination(self, context, instance, *args,
                                           **kwargs):
        # The guest lives here now: a later STOPPED/FAILED is a crash.
        with self._incoming_lock:
            self._incoming.discard(instance.uuid)
        return super().post_live_migration_at_destination(
            context, instance, *args, **kwargs)

    def _live_migration(self, context, instance, dest, post_method,
                        recover_method, block_migration, migrate_data):
        if convergence.enabled():
            convergence.begin(instance, dest,
                              self._post_copy_possible(instance))
        if _guard_enabled() or convergence.enabled():
            self._migrate_calls[instance.uuid] = nova_compat.MigrateCall()
        try:
            self._live_migration_ending(
                context, instance, dest, post_method, recover_method,
                block_migration, migrate_data)
        finally:
            self._migrate_calls.pop(instance.uuid, None)
            convergence.end(instance)

    def _live_migration_ending(self, context, instance, dest, post_method,
                               recover_method, block_migration,
                               migrate_data):
        if not _guard_enabled():
            return super()._live_migration(
                context, instance, dest, post_method, recover_method,
                block_migration, migrate_data)
        address = flight_record.destination_address(dest, migrate_data)
        ending = _Ending(self, context, instance, dest, address,
                         block_migration, migrate_data, post_method,
                         recover_method)
        record = _record(dest, block_migration, migrate_data, post_method)
        try:
            super()._live_migration(context, instance, dest, ending.post,
                                    ending.recover, block_migration,
                                    migrate_data)
        except Exception as error:
            # Ended while this process runs (a BaseException such as
            # SystemExit is the process ending: the record stays for the
            # restart recovery).
            flight_record.remove(record)
            ending.after_error(error)
        else:
            error = self._unraised_migrate_error(instance)
            flight_record.remove(record)
            if error is not None:
                ending.after_error(error)
            else:
                ending.after_return()

    def _unraised_migrate_error(self, instance):
        """The migrate call's error where Nova's _live_migration returned
        without re-raising it (nova_compat.migrate_error_raised()), once the
        call ended, as Nova waits for it where it re-raises; else None."""
        call = self._migrate_calls.get(instance.uuid)
        if nova_compat.migrate_error_raised() or call is None:
            return None
        call.wait()
        return call.error

    def end_migration_job(self, instance, timeout=30):
        """Abort a live migration job libvirt still runs on this host for
        ``instance`` (the nova-compute that monitored it is gone) and wait
        up to ``timeout`` seconds for libvirt to end it.  True once no job
        runs: the domains then say how it ended.  False at once when
        libvirt refuses the abort (post-copy: migration_verdict waits for
        it to end by itself)."""
        try:
            guest = self._host.get_guest(instance)
        except exception.InstanceNotFound:
            return True
        active = (_libvirt().VIR_DOMAIN_JOB_BOUNDED,
                  _libvirt().VIR_DOMAIN_JOB_UNBOUNDED)
        deadline = time.monotonic() + timeout
        aborted = False
        while guest.get_job_info().type in active:
            if not aborted:
                LOG.warning('A live migration job still runs for the '
                            'instance, unmonitored: aborting it',
                            instance=instance)
                try:
                    guest._domain.abortJob()
                except _libvirt().libvirtError as exc:
                    # Too late to abort (post-copy): it ends by itself.
                    LOG.warning('Cannot abort it: %s', exc,
                                instance=instance)
                    return False
                aborted = True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    # -- convergence --------------------------------------------------

    def _live_migration_operation(self, context, instance, dest,
                                  block_migration, migrate_data, guest,
                                  device_names):
        run = convergence.run_of(instance)
        if run is not None:
            guest = convergence.GuestForPolicy(
                guest, convergence.start_flags(
                    _libvirt(), run.policy, run.post_copy_possible),
                convergence.start_params(_libvirt(), run.policy),
                before_migrate=run.start_probe)
        operation = super()._live_migration_operation
        call = self._migrate_calls.get(instance.uuid)
        if call is not None:
            operation = functools.partial(call.run, operation)
        return operation(context, instance, dest, block_migration,
                         migrate_data, guest, device_names)

    def _live_migration_monitor(self, context, instance, guest, dest,
                                post_method, recover_method,
                                block_migration, migrate_data,
                                operation_ended, disk_paths):
        # operation_ended: what tells Nova's monitor that the migrate call
        # ended (a Future or an Event, by release: nova_compat).
        run = convergence.run_of(instance)
        call = self._migrate_calls.get(instance.uuid)
        if call is not None:
            # An aborted job is recorded cancelled even when the monitor
            # polls too late to see it.
            recover_method = _knowing_aborts(recover_method, call)
        # Nova's monitor (the policy decides through its
        # live_migration_next_action hook point, convergence.next_action)
        # switches to post-copy, for its force-complete too, only where it
        # knows the migration started with post-copy.
        self._monitoring.post_copy = (run is not None and
                                      run.post_copy_possible)
        try:
            return super()._live_migration_monitor(
                context, instance, guest, dest, post_method,
                recover_method, block_migration, migrate_data,
                operation_ended, disk_paths)
        finally:
            self._monitoring.post_copy = False

    def _is_post_copy_enabled(self, migration_flags):
        return (super()._is_post_copy_enabled(migration_flags) or
                getattr(self._monitoring, 'post_copy', False))

    def _post_copy_possible(self, instance):
        # As Nova decides for its own post-copy flag: not with vPMEM, not
        # for a paused guest (libvirt refuses to migrate it with the flag).
        return (not self._get_vpmems(instance) and
                instance.vm_state != vm_states.PAUSED)

    # -- observations ------------------------------------------------

    def migration_verdict(self, instance, source=None, dest=None):
        """Where a live-migrated guest runs: reconcile.decide() over what
        libvirt reports.  ``source``/``dest`` name the other host's
        address; None means this host.

        While libvirt still migrates (IN_FLIGHT: post-copy, or a job that
        runs on), it asks again until libvirt has finished or failed, for
        at most ``in_flight_timeout`` seconds; past that, the verdict is
        UNKNOWN (hold), never a side to tear down."""
        timeout = _conf().migration_guard_migration_outcome.in_flight_timeout
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            verdict = self._verdict_now(instance, source, dest)
            if verdict.outcome != reconcile.IN_FLIGHT:
                return verdict
            if time.monotonic() >= deadline:
                return reconcile.waited_too_long(verdict, timeout)
            if not waiting:
                LOG.warning('Waiting up to %d s for libvirt to end the live '
                            'migration before deciding; nothing is torn '
                            'down meanwhile: %s', timeout, verdict.reason,
                            instance=instance)
                waiting = True
            time.sleep(_IN_FLIGHT_POLL_S)

    def _verdict_now(self, instance, source, dest):
        source_side, job, job_active = self._observe(instance, source,
                                                     with_job=True)
        dest_side, _, _ = self._observe(instance, dest)
        return reconcile.decide(source_side, dest_side, job, job_active)

    def _observe(self, instance, address, with_job=False):
        """(Side, Job, job active) of the guest's domain on this host
        (address None) or, read-only, on the libvirt at ``address``, as
        Nova's migration reaches it; one connection for both.  Job is None
        and job active False unless ``with_job``; Job is None too when
        libvirt has no completed-job statistics."""
        conn = None
        job, job_active = None, False
        try:
            if address is None:
                domain = self._host._get_domain(instance)
            else:
                conn = self._host._connect(
                    self._live_migration_uri(address), read_only=True)
                domain = self._lookup(conn, instance)
            state, reason = domain.state()[:2]
            if with_job:
                job = self._completed_job(domain)
                job_active = self._job_active(domain)
        except exception.InstanceNotFound:
            return reconcile.Side(reconcile.ABSENT, None), None, False
        except Exception as exc:
            LOG.warning('Cannot read the domain state on %s: %s',
                        address or 'this host', exc, instance=instance)
            return reconcile.Side(reconcile.UNREACHABLE, None), None, False
        finally:
            if conn is not None:
                conn.close()
        return reconcile.Side(state, reason), job, job_active

    @staticmethod
    def _job_active(domain):
        # The domain's current job (its migration) still runs.
        try:
            job_type = domain.jobStats().get('type')
        except _libvirt().libvirtError as exc:
            if exc.get_error_code() in (_libvirt().VIR_ERR_NO_DOMAIN,
                                        _libvirt().VIR_ERR_OPERATION_INVALID):
                return False  # the domain went away meanwhile
            raise
        return job_type in (_libvirt().VIR_DOMAIN_JOB_BOUNDED,
                            _libvirt().VIR_DOMAIN_JOB_UNBOUNDED)

    @staticmethod
    def _lookup(conn, instance):
        try:
            return conn.lookupByUUIDString(instance.uuid)
        except _libvirt().libvirtError as exc:
            if exc.get_error_code() == _libvirt().VIR_ERR_NO_DOMAIN:
                raise exception.InstanceNotFound(instance_id=instance.uuid)
            raise

    @staticmethod
    def _completed_job(domain):
        try:
            stats = domain.jobStats(
                _libvirt().VIR_DOMAIN_JOB_STATS_COMPLETED)
        except Exception:
            return None
        if not stats or 'type' not in stats:
            return None
        return reconcile.Job(stats['type'], stats.get('success'))


def _record(dest, block_migration, migrate_data, post_method):
    """Record what Nova's flows need to end this migration after a restart
    (``flight_record``); returns the migration's uuid, or None when Nova
    gave no migration (a buggy caller) or the record cannot be written."""
    migration = (migrate_data.migration
                 if migrate_data.obj_attr_is_set('migration') else None)
    if migration is None:
        return None
    # Nova's manager binds the block device mappings as they were before
    # the destination changed them to its post and rollback methods.
    source_bdms = (post_method.keywords.get('source_bdms')
                   if isinstance(post_method, functools.partial) else None)
    try:
        flight_record.write(migration.uuid, dest, block_migration,
                            migrate_data, source_bdms)
    except Exception as exc:
        LOG.warning('Cannot record live migration %s for the restart '
                    'recovery (%s): if this nova-compute stops before the '
                    'migration ends, the recovery cannot clean up volume '
                    'attachments and port bindings', migration.uuid, exc)
        return None
    return migration.uuid


def _abort_status(error):
    """Recover keyword arguments for a migrate call that ended with
    ``error``: the status reconcile.rollback_status() gives it, if any."""
    code = (error.get_error_code()
            if isinstance(error, _libvirt().libvirtError) else None)
    status = reconcile.rollback_status(code)
    return {'migration_status': status} if status else {}


def _knowing_aborts(recover_method, call):
    """``recover_method``, told the status from the migrate call's error
    once it ended (``call``, a nova_compat.MigrateCall): the monitor that
    polled too late to see the job cancelled says failed."""
    def recover(*args, **kwargs):
        if call.ended():
            kwargs.update(_abort_status(call.error))
        return recover_method(*args, **kwargs)
    return recover


class _Ending(object):
    """How one live migration ends, when Nova's monitor or migrate call
    ends it abnormally.

    Nova's monitor calls post (the job completed) or recover (failed or
    cancelled).  Before a rollback tears down the destination, the
    verdict is asked: a guest that runs on the destination is finished
    there, and one whose location cannot be told is held.  If the migrate
    call raises afterwards, Nova 32.2 and later re-raise it (G3) and the
    compute manager would put the instance in ERROR: the guest that was
    finished or rolled back is left as it is instead.  Where Nova drops
    the error (31.x, 32.0, 32.1), it is handled the same way.
    """

    def __init__(self, driver, context, instance, dest, address,
                 block_migration, migrate_data, post_method,
                 recover_method):
        self.driver = driver
        self.context = context
        self.instance = instance
        self.dest = dest
        self.address = address
        self.block_migration = block_migration
        self.migrate_data = migrate_data
        self.post_method = post_method
        self.recover_method = recover_method
        # Set once a callback was entered / returned; a callback that
        # raised is Nova's own failure and keeps Nova's handling.
        self.entered = None
        self.done = None
        self.held = None

    def verdict(self):
        return self.driver.migration_verdict(self.instance,
                                             dest=self.address)

    def post(self, *args, **kwargs):
        self._run('post', self.post_method, args, kwargs)

    def recover(self, context, instance, dest, migrate_data, **kwargs):
        verdict = self.verdict()
        LOG.info('Live migration to %s ended abnormally (%s); libvirt '
                 'says: %s', self.dest, kwargs.get('migration_status',
                                                   'failed'),
                 verdict.reason, instance=instance)
        self._act(verdict, (context, instance, dest, migrate_data), kwargs)

    def after_error(self, error):
        if self.held:
            raise hold.MigrationOutcomeUnknown(reason=self.held) from error
        if self.entered and not self.done:
            raise error
        if self.done:
            LOG.warning('Live migration to %s raised %s after it was %s; '
                        'keeping that outcome', self.dest, error,
                        'finished' if self.done == 'post' else
                        'rolled back', instance=self.instance)
            return
        verdict = self.verdict()
        LOG.warning('Live migration to %s raised %s; libvirt says: %s',
                    self.dest, error, verdict.reason,
                    instance=self.instance)
        self._act(verdict, (self.context, self.instance, self.dest,
                            self.migrate_data), _abort_status(error))
        if self.held:
            raise hold.MigrationOutcomeUnknown(reason=self.held) from error

    def _act(self, verdict, recover_args, recover_kwargs):
        if verdict.outcome == reconcile.ROLLED_BACK:
            self._run('recover', self.recover_method, recover_args,
                      recover_kwargs)
        elif verdict.outcome == reconcile.COMPLETED:
            self._run('post', self.post_method,
                      (self.context, self.instance, self.dest,
                       self.block_migration, self.migrate_data), {})
        else:
            self._hold(verdict)

    def after_return(self):
        if self.held:
            raise hold.MigrationOutcomeUnknown(reason=self.held)

    def _run(self, name, method, args, kwargs):
        if self.entered:
            LOG.warning('Not calling %s: %s was already called', name,
                        self.entered, instance=self.instance)
            return
        self.entered = name
        method(*args, **kwargs)
        self.done = name

    def _hold(self, verdict):
        if verdict.outcome == reconcile.POSTCOPY_FAILED:
            reason = ('post-copy live migration to %s failed, the guest\'s '
                      'memory is split between the hosts and neither copy '
                      'will be started: %s' % (self.dest, verdict.reason))
        else:
            reason = ('the outcome of the live migration to %s cannot be '
                      'told: %s' % (self.dest, verdict.reason))
        self.held = hold.hold(self.context, self.instance, reason)
