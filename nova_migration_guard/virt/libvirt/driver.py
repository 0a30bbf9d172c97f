"""GuardedLibvirtDriver: Nova's LibvirtDriver, but a live migration that
fails late never loses its guest.

Selected with ``[DEFAULT] compute_driver =
migration_guard.GuardedLibvirtDriver`` (the ``nova.compute_drivers`` entry
point of patch 0005).  With the ``migration_outcome`` guard off it behaves
exactly as LibvirtDriver.  With it on:

* lifecycle events are read by their libvirt detail
  (``migration_outcome.events``): a guest leaving by migration is not a
  power-off;
* when ``live_migration()`` would raise, where the guest really runs is
  decided from both hosts (``migration_outcome.reconcile``) and the
  migration is finished as a success, rolled back, or left to Nova's error
  handling when it cannot be told.

The decisions are pure functions; this module only gathers what libvirt
reports and acts.
"""

from nova import exception
from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from nova_migration_guard.migration_outcome import events
from nova_migration_guard.migration_outcome import reconcile

try:
    import libvirt
except ImportError:  # LibvirtDriver itself refuses to load then
    libvirt = None

LOG = logging.getLogger(__name__)

GUARD = 'migration_outcome'


def _guard_enabled():
    from nova_migration_guard import conf as mg_conf
    return GUARD in mg_conf.CONF.migration_guard.guards


class _Once(object):
    """A compute manager callback that records whether it ran."""

    def __init__(self, func):
        self.func = func
        self.called = False

    def __call__(self, *args, **kwargs):
        self.called = True
        return self.func(*args, **kwargs)


class GuardedLibvirtDriver(libvirt_driver.LibvirtDriver):

    def emit_event(self, event):
        if _guard_enabled():
            action = events.interpret(getattr(event, 'detail', None))
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

    def _live_migration(self, context, instance, dest, post_method,
                        recover_method, block_migration, migrate_data):
        if not _guard_enabled():
            return super()._live_migration(
                context, instance, dest, post_method, recover_method,
                block_migration, migrate_data)
        post, recover = _Once(post_method), _Once(recover_method)
        try:
            super()._live_migration(context, instance, dest, post, recover,
                                    block_migration, migrate_data)
        except Exception as error:
            verdict = reconcile.decide(self._source_side(instance),
                                       self._dest_side(instance, dest,
                                                       migrate_data),
                                       self._completed_job(instance))
            LOG.warning('Live migration to %s raised %s; libvirt says: %s',
                        dest, error, verdict.reason, instance=instance)
            if verdict.outcome == reconcile.COMPLETED:
                if not post.called:
                    post(context, instance, dest, block_migration,
                         migrate_data)
                return
            if verdict.outcome == reconcile.ROLLED_BACK:
                if not recover.called:
                    recover(context, instance, dest, migrate_data)
                return
            raise

    # -- observations ------------------------------------------------

    @staticmethod
    def _side_of(domain_lookup):
        try:
            domain = domain_lookup()
        except exception.InstanceNotFound:
            return reconcile.Side(reconcile.ABSENT, None)
        except Exception:
            return reconcile.Side(reconcile.UNREACHABLE, None)
        try:
            state, reason = domain.state()
        except Exception:
            return reconcile.Side(reconcile.UNREACHABLE, None)
        return reconcile.Side(state, reason)

    def _source_side(self, instance):
        return self._side_of(lambda: self._host._get_domain(instance))

    def _dest_side(self, instance, dest, migrate_data):
        address = (migrate_data.target_connect_addr
                   if 'target_connect_addr' in migrate_data and
                   migrate_data.target_connect_addr else dest)
        uri = self._live_migration_uri(address)

        def lookup():
            conn = libvirt.openReadOnly(uri)
            try:
                return _Snapshot(conn.lookupByUUIDString(instance.uuid))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    raise exception.InstanceNotFound(
                        instance_id=instance.uuid)
                raise
            finally:
                conn.close()
        return self._side_of(lookup)

    def _completed_job(self, instance):
        try:
            domain = self._host._get_domain(instance)
            stats = domain.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        except Exception:
            return None
        if not stats or 'type' not in stats:
            return None
        return reconcile.Job(stats['type'], stats.get('success'))


class _Snapshot(object):
    """A remote domain's state read before its connection closes."""

    def __init__(self, domain):
        self._state = domain.state()

    def state(self):
        return self._state
