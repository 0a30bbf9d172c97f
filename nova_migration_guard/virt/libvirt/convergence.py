"""The convergence guard in the guarded libvirt driver: the I/O around
``convergence.ladder``.

* At start, the migration's policy (``convergence.policies.select``) adds
  the libvirt flags it needs: auto-converge, and post-copy where the
  policy may use it.  They are added to the one migrate call of this
  migration (a wrapper of its Guest), not to the driver's flags, which
  other migrations share.
* While it runs, ``monitor`` replaces Nova's monitor loop: each job-stats
  sample goes to ``ladder.decide``, and the Step is applied (downtime,
  post-copy, pause, abort) and logged with its numbers; completion,
  failure and cancellation are handled as Nova does.
"""

import copy
import time

from nova.virt.libvirt import migration as libvirt_migrate
from oslo_log import log as logging

from nova_migration_guard import conf as mg_conf
from nova_migration_guard.convergence import in_force
from nova_migration_guard.convergence import ladder
from nova_migration_guard.convergence import policies
from nova_migration_guard.convergence import record

LOG = logging.getLogger(__name__)

GUARD = 'convergence'
MIB = 2 ** 20
SAMPLE_FIELDS = ('type', 'memory_iteration', 'memory_remaining',
                 'memory_bps', 'memory_total', 'memory_processed',
                 'downtime', 'time_elapsed')


def enabled():
    return GUARD in mg_conf.CONF.migration_guard.guards


def policy_for(instance):
    """The instance's Policy (the default one, with a warning, when its
    image names an unknown policy: images are not validated by Nova).
    Never raises: the configuration in force is a valid one."""
    default, custom_specs = in_force.configuration()
    extra_specs = instance.flavor.extra_specs if instance.flavor else {}
    system_metadata = instance.system_metadata or {}
    try:
        policy, source = policies.select(extra_specs, system_metadata,
                                         default, custom_specs)
    except policies.PolicyError as exc:
        LOG.warning('%s; using the default policy', exc, instance=instance)
        policy, source = policies.select({}, {}, default, custom_specs)
    return policy, source


def start_flags(libvirt, policy, post_copy_possible):
    """The libvirt migrate flags the policy adds."""
    flags = 0
    if policy.auto_converge:
        flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
    if policy.post_copy and post_copy_possible:
        flags |= libvirt.VIR_MIGRATE_POSTCOPY
    return flags


def start_params(libvirt, policy):
    """The migrate parameters the policy adds: auto-converge's initial
    throttle and its increment (libvirt >= 2.0)."""
    if not policy.auto_converge:
        return {}
    return {
        getattr(libvirt, 'VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL',
                'auto_converge.initial'): policy.auto_converge_initial,
        getattr(libvirt, 'VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT',
                'auto_converge.increment'): policy.auto_converge_increment,
    }


class GuestForPolicy(object):
    """A Guest whose migrate() adds one migration's flags and parameters
    (the driver's own flags are shared by all its migrations)."""

    def __init__(self, guest, flags, params):
        self._guest = guest
        self._flags = flags
        self._params = params

    def migrate(self, *args, **kwargs):
        kwargs['flags'] = kwargs.get('flags', 0) | self._flags
        # Nova's Guest.migrate builds the parameters itself: hand it a copy
        # whose domain adds ours to them.
        guest = copy.copy(self._guest)
        guest._domain = _DomainWithParams(self._guest._domain, self._params)
        return guest.migrate(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._guest, name)


class _DomainWithParams(object):

    def __init__(self, domain, params):
        self._domain = domain
        self._params = params

    def migrateToURI3(self, destination, params=None, flags=0):
        return self._domain.migrateToURI3(
            destination, params=dict(params or {}, **self._params),
            flags=flags)

    def __getattr__(self, name):
        return getattr(self._domain, name)


def monitor(driver, libvirt, context, instance, guest, dest, post_method,
            recover_method, block_migration, migrate_data, future,
            policy, source, post_copy_possible):
    """Nova's monitor loop, with the ladder deciding; ``policy`` came
    from ``source`` (policy_for)."""
    LOG.info('Live migration to %s follows convergence policy %s (from %s)',
             dest, policy.describe(), source, instance=instance)
    memory_bytes = instance.flavor.memory_mb * MIB
    on_failure = []
    samples = []
    progress = ladder.start(time.monotonic())
    migration = migrate_data.migration
    guest.migrate_configure_max_downtime(policy.downtime_steps_ms[0])
    while True:
        info = guest.get_job_info()
        if info.type == libvirt.VIR_DOMAIN_JOB_NONE and future.done():
            info.type = libvirt_migrate.find_job_type(guest, instance)
        if info.type == libvirt.VIR_DOMAIN_JOB_UNBOUNDED:
            libvirt_migrate.run_tasks(guest, instance,
                                      driver.active_migrations, on_failure,
                                      migration, post_copy_possible)
            sample = {f: getattr(info, f, 0) for f in SAMPLE_FIELDS}
            sample['auto_converge_throttle'] = auto_converge_throttle(guest)
            samples.append(sample)
            step, progress = ladder.decide(
                policy, progress, samples, time.monotonic(), memory_bytes,
                post_copy_possible=post_copy_possible)
            if step.action != ladder.WAIT:
                _apply(guest, instance, step)
                record.record(context, instance, migration, policy, step,
                              samples, time.monotonic() - progress.started_at)
            if info.memory_total:
                libvirt_migrate.save_stats(
                    instance, migration, info,
                    round(info.memory_remaining * 100 / info.memory_total))
        elif info.type == libvirt.VIR_DOMAIN_JOB_COMPLETED:
            LOG.info('Migration operation has completed (%d samples)',
                     len(samples), instance=instance)
            post_method(context, instance, dest, block_migration,
                        migrate_data)
            break
        elif info.type in (libvirt.VIR_DOMAIN_JOB_FAILED,
                           libvirt.VIR_DOMAIN_JOB_CANCELLED):
            libvirt_migrate.run_recover_tasks(driver._host, guest, instance,
                                              on_failure)
            status = ('cancelled' if info.type ==
                      libvirt.VIR_DOMAIN_JOB_CANCELLED else 'failed')
            LOG.warning('Migration operation ended: %s', status,
                        instance=instance)
            if status == 'cancelled':
                recover_method(context, instance, dest, migrate_data,
                               migration_status='cancelled')
            else:
                recover_method(context, instance, dest, migrate_data)
            break
        time.sleep(0.5)
    driver._clear_empty_migration(instance)


def auto_converge_throttle(guest):
    """QEMU's auto-converge CPU throttle (%), which Nova's JobInfo drops;
    None when libvirt does not report it."""
    try:
        return guest._domain.jobStats().get('auto_converge_throttle')
    except Exception:
        return None


def _apply(guest, instance, step):
    LOG.warning('Convergence: %s%s: %s', step.action,
                ' %s ms' % step.value if step.value else '', step.reason,
                instance=instance)
    if step.action == ladder.SET_DOWNTIME:
        guest.migrate_configure_max_downtime(step.value)
    elif step.action == ladder.POST_COPY:
        guest.migrate_start_postcopy()
    elif step.action == ladder.PAUSE:
        guest.pause()
    elif step.action == ladder.ABORT:
        guest.abort_job()
