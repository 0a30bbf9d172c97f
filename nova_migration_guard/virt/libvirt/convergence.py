"""The convergence guard in the guarded libvirt driver: the I/O around
``convergence.ladder``.

* At start, the migration's policy (``convergence.policies.select``) adds
  the libvirt flags it needs: auto-converge, and post-copy where the
  policy may use it.  They are added to the one migrate call of this
  migration (a wrapper of its Guest), not to the driver's flags, which
  other migrations share.
* Right before the migrate call, the dirty-rate probe: libvirt's dirty-rate
  calculation (QEMU's page sampling over one second), whose result is read
  during the migration; it sees the guest's write rate where the passes,
  once the guest's working set saturates, cannot.
* While it runs, Nova's own monitor loop asks, at each job-stats sample,
  the ``live_migration_next_action`` hook point (patch 0011): the sample
  (and the probe's rate) goes to ``ladder.decide`` and the Step, logged
  with its numbers and
  recorded (``convergence.record``), goes back to Nova's loop as its
  MonitorAction, which Nova carries out in place of its completion
  timeout and downtime steps (set the downtime, switch to post-copy,
  pause with its unpause on failure, abort).  Completion, failure,
  cancellation, force-complete and the stats are Nova's.
"""

import copy

from nova.virt.libvirt import migration as libvirt_migrate
from oslo_log import log as logging

from nova_migration_guard import conf as mg_conf
from nova_migration_guard.convergence import in_force
from nova_migration_guard.convergence import ladder
from nova_migration_guard.convergence import policies
from nova_migration_guard.convergence import record

LOG = logging.getLogger(__name__)

GUARD = 'convergence'
SAMPLE_FIELDS = ('type', 'memory_iteration', 'memory_remaining',
                 'memory_bps', 'memory_total', 'memory_processed',
                 'downtime', 'time_elapsed')
#: The dirty-rate probe's measuring time (s; libvirt's minimum).
PROBE_SECONDS = 1
# libvirt's VIR_DOMAIN_STATS_DIRTYRATE and VIR_DOMAIN_DIRTYRATE_MEASURED.
_STATS_DIRTYRATE = 512
_DIRTYRATE_MEASURED = 2


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


def start_dirty_rate_probe(domain):
    """Ask QEMU to measure how fast the guest dirties its memory over the
    next PROBE_SECONDS (libvirt's dirty-rate calculation, page sampling).
    Started right before the migrate call: libvirt refuses to start it
    while the migration job runs, but one started before goes on, and its
    result can be read during the migration.  False where libvirt or QEMU
    cannot measure (libvirt < 7.2, QEMU < 5.2)."""
    try:
        domain.startDirtyRateCalc(PROBE_SECONDS, 0)
    except Exception as exc:  # libvirtError, or a binding without it
        LOG.info('No dirty-rate probe for this live migration (%s): the '
                 'convergence policy decides from the passes alone', exc)
        return False
    return True


def dirty_rate_probe(domain):
    """The probe's result (bytes/s), None while it measures or when
    libvirt does not say."""
    try:
        stats = domain.connect().domainListGetStats(
            [domain], _STATS_DIRTYRATE)[0][1]
    except Exception:
        return None
    if stats.get('dirtyrate.calc_status') != _DIRTYRATE_MEASURED:
        return None
    return stats.get('dirtyrate.megabytes_per_second', 0) * ladder.MIB


class GuestForPolicy(object):
    """A Guest whose migrate() adds one migration's flags and parameters
    (the driver's own flags are shared by all its migrations) and first
    calls ``before_migrate`` with its libvirt domain."""

    def __init__(self, guest, flags, params, before_migrate=None):
        self._guest = guest
        self._flags = flags
        self._params = params
        self._before_migrate = before_migrate

    def migrate(self, *args, **kwargs):
        if self._before_migrate is not None:
            self._before_migrate(self._guest._domain)
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


class Run(object):
    """One live migration under a policy, between the guarded driver's
    start of it and its end: the samples and where it is on the ladder."""

    def __init__(self, policy, post_copy_possible):
        self.policy = policy
        self.post_copy_possible = post_copy_possible
        self.samples = []
        # Nova's monitor counts elapsed seconds from its own start.
        self.progress = ladder.start(0.0)
        self.probing = False
        self.probe_dirty_bps = None

    def start_probe(self, domain):
        self.probing = start_dirty_rate_probe(domain)

    def next_action(self, context, instance, guest, migration, info,
                    elapsed, data_gb):
        """The MonitorAction for Nova's monitor at this sample."""
        sample = {f: getattr(info, f, 0) for f in SAMPLE_FIELDS}
        sample['auto_converge_throttle'] = auto_converge_throttle(guest)
        self.samples.append(sample)
        if self.probing and self.probe_dirty_bps is None:
            self.probe_dirty_bps = dirty_rate_probe(guest._domain)
            if self.probe_dirty_bps is not None:
                LOG.info('Dirty-rate probe: the guest dirties %.1f MiB/s',
                         self.probe_dirty_bps / ladder.MIB,
                         instance=instance)
        if len(self.samples) == 1:
            # Where Nova's monitor sets its first downtime step.
            return libvirt_migrate.MonitorAction(
                libvirt_migrate.MONITOR_SET_DOWNTIME,
                self.policy.downtime_steps_ms[0])
        step, self.progress = ladder.decide(
            self.policy, self.progress, self.samples, elapsed,
            data_gb * ladder.GIB, post_copy_possible=self.post_copy_possible,
            probe_dirty_bps=self.probe_dirty_bps)
        if step.action != ladder.WAIT:
            LOG.warning('Convergence: %s%s: %s', step.action,
                        ' %s ms' % step.value if step.value else '',
                        step.reason, instance=instance)
            record.record(context, instance, migration, self.policy, step,
                          self.samples, elapsed)
        return libvirt_migrate.MonitorAction(step.action, step.value)


# {instance uuid: Run} of the live migrations this process runs.
_runs = {}


def begin(instance, dest, post_copy_possible):
    """Put the live migration of ``instance`` to ``dest`` under its
    policy; returns its Run."""
    policy, source = policy_for(instance)
    LOG.info('Live migration to %s follows convergence policy %s (from %s)',
             dest, policy.describe(), source, instance=instance)
    run = _runs[instance.uuid] = Run(
        policy, policy.post_copy and post_copy_possible)
    return run


def end(instance):
    _runs.pop(instance.uuid, None)


def run_of(instance):
    """The Run of the live migration of ``instance``, None if it has none
    (not started by the guarded driver under the convergence guard)."""
    return _runs.get(instance.uuid)


def next_action(context, instance, guest, migration, info, elapsed,
                data_gb, **kwargs):
    """Nova's live_migration_next_action hook point (patch 0011): the
    policy's decision for a migration with a Run, else None (Nova's own
    completion timeout and downtime steps)."""
    run = run_of(instance)
    if run is None:
        return None
    return run.next_action(context, instance, guest, migration, info,
                           elapsed, data_gb)


def auto_converge_throttle(guest):
    """QEMU's auto-converge CPU throttle (%), which Nova's JobInfo drops;
    None when libvirt does not report it."""
    try:
        return guest._domain.jobStats().get('auto_converge_throttle')
    except Exception:
        return None
