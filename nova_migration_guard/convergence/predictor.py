"""Which rung of its policy can finish a live migration, predicted from the
rates the migration shows instead of waited for over stalled passes (pure).

The model.  QEMU pre-copies memory in passes; pass i+1 starts with what the
guest dirtied while pass i copied, and pass i lasted ``left_i / transfer``
seconds, so::

    left_{i+1} = min(working set, dirty * left_i / transfer)

With ``dirty`` below ``transfer`` the passes shrink by ``dirty / transfer``
each; otherwise every pass starts with the whole working set (the dirty set
saturates).  The switch-over fits once ``left <= transfer * downtime``.

The rates:

* transfer: the latest pass's ``memory_bps``;
* dirty: the passes' own figure (what a pass found dirty, divided by the
  duration of the pass before it) while the passes shrink; while they do
  not, that figure is only a lower bound and the dirty-rate probe (QEMU's
  page-sampling measurement over the migration's first second, libvirt's
  dirty-rate calculation, started with the migration) is used if higher.
  The passes cannot show a rate above the transfer rate once the working
  set saturates, which is why the probe is taken; without it
  (libvirt < 7.2, QEMU < 5.2) nothing is predicted before the third pass,
  the prediction is optimistic about the throttle and the stall check
  below catches it.

What it predicts, at every sample from the second pass on (the first pass
copies all of RAM and says nothing about the guest but what the probe
measured):

1. converging: the passes shrink and fit the allowed downtime within the
   policy's ``stall_passes`` passes: wait;
2. a larger downtime: the first of the policy's downtime steps that the
   dirty set fits (now, or within ``stall_passes`` passes): set it, skipping
   the steps in between; failing that, passes that shrink at all (slowly)
   are waited for;
3. the throttle (policies with auto-converge): the CPU throttle at which
   the guest's dirty rate falls under the transfer rate, and how many passes
   QEMU takes to reach it (QEMU raises it once every two passes in which
   the guest dirtied more than half of what was sent: first to the initial
   value, then by the increment).  The throttle can win if it reaches that
   value within ``stall_passes`` raises (twice as many passes) where the
   policy's last resort finishes the migration (post-copy, pause), or by
   99 % where the last resort is the abort, which fails it;
4. otherwise the policy's last resort, at once; an abort (which fails the
   migration) only once a pass after the second confirmed what the probe
   said.

A prediction is checked against what follows: if the passes then stall over
``stall_passes`` passes (``passes.stalled``; for the throttle, over its
ramp from no throttle to its target and ``stall_passes`` more), the ladder
takes the last resort.  The throttle's effect is an assumption: dirtying
that is not bound by the vCPU (or a TCG guest, where QEMU's throttle slows
the guest's writes less than the model says) does not slow down as
predicted, and only the stall check sees that.
"""

import collections
import math

#: QEMU's largest CPU throttle (cpu-throttle-percentage).
MAX_THROTTLE = 99
#: The shrink per pass below which passes are converging: the throttle is
#: aimed at a dirty rate of (1 - MARGIN) times the transfer rate.
MARGIN = 0.1

CONVERGING = 'converging'
DOWNTIME = 'downtime'
THROTTLE = 'throttle'
LAST_RESORT = 'last-resort'
UNKNOWN = 'unknown'

#: transfer_bps, dirty_bps: bytes/s; dirty_set_bytes: what the latest pass
#: started with; dirty_from: where dirty_bps comes from ('probe', 'passes'
#: or 'passes, a lower bound'); confirmed: the passes after the first have
#: shown how the dirty set evolves (False: the probe alone).
Rates = collections.namedtuple(
    'Rates', 'transfer_bps dirty_bps dirty_set_bytes dirty_from confirmed')

#: rung: one of the constants above; reason: the numbers;
#: downtime_index: the step to set (DOWNTIME); throttle: the target (%)
#: and ramp_passes: the passes QEMU takes to reach it from no throttle
#: (THROTTLE).
Forecast = collections.namedtuple(
    'Forecast', 'rung reason downtime_index throttle ramp_passes',
    defaults=(None, None, 0))

MIB = 2 ** 20


def rates(memory_passes, probe_dirty_bps=None):
    """The Rates that the passes and the probe show, or None while neither
    says anything (before the third pass without a probe) or the transfer
    rate is unknown.

    The passes' own figure comes from the latest pass that followed a
    later-than-first pass: what it found dirty over the duration of the
    pass before it (the first pass copies all of RAM, zero pages included,
    and would understate the rate).  While the passes shrink, the dirty
    set is not saturated and that figure is the guest's rate now (a guest
    that calmed down since the probe shows it); while they do not, it is
    only a lower bound, and the probe, if higher, is used."""
    later = [p for p in memory_passes if p.iteration >= 2]
    if not later or later[-1].bandwidth_bps <= 0:
        return None
    latest = later[-1]
    observed, saturated = None, True
    for before, after in zip(later, later[1:]):
        # A monitor that samples less often than passes end misses some:
        # the passes in between are taken as equally long.
        seconds = ((after.started_ms - before.started_ms) / 1000.0 /
                   (after.iteration - before.iteration))
        if seconds > 0:
            observed = after.left_bytes / seconds
            saturated = after.left_bytes >= (1 - MARGIN) * before.left_bytes
    if observed is not None and not saturated:
        dirty, source = observed, 'passes'
    elif probe_dirty_bps and probe_dirty_bps > (observed or 0):
        dirty, source = float(probe_dirty_bps), 'probe'
    elif observed is not None:
        dirty, source = observed, 'passes, a lower bound'
    else:
        return None
    return Rates(float(latest.bandwidth_bps), dirty, latest.left_bytes,
                 source, observed is not None)


def passes_to_fit(left_bytes, transfer_bps, dirty_bps, downtime_ms):
    """Passes until the switch-over fits ``downtime_ms`` (0: it fits now),
    or None if pre-copy does not shrink the dirty set."""
    target = transfer_bps * downtime_ms / 1000.0
    if left_bytes <= target:
        return 0
    shrink = dirty_bps / transfer_bps
    if shrink >= 1 - MARGIN:
        return None
    if shrink <= 0:
        return 1
    return int(math.ceil(math.log(target / left_bytes) / math.log(shrink)))


def throttle_needed(transfer_bps, dirty_bps):
    """The CPU throttle (%) that brings the dirty rate to (1 - MARGIN)
    times the transfer rate, assuming the guest dirties in proportion to
    its vCPU time; None above MAX_THROTTLE."""
    needed = 100.0 * (1 - (1 - MARGIN) * transfer_bps / dirty_bps)
    # (rounded first: 55.000000001 % is 55 %)
    needed = int(math.ceil(round(max(0.0, needed), 6)))
    return needed if needed <= MAX_THROTTLE else None


def passes_to_throttle(policy, current, target):
    """Passes QEMU takes to raise its throttle from ``current`` to
    ``target`` %: two passes per raise, the first to the policy's initial
    value, then by its increment."""
    if current >= target:
        return 0
    raises = 0
    if current <= 0:
        raises, current = 1, policy.auto_converge_initial
    if target > current:
        raises += int(math.ceil(float(target - current) /
                                policy.auto_converge_increment))
    return 2 * raises


def forecast(policy, downtime_index, memory_passes, probe_dirty_bps=None,
             throttle=0, last_resort_finishes=True):
    """The Forecast for a migration under ``policy`` whose allowed downtime
    is the policy's step ``downtime_index``, at its latest pass.

    ``throttle`` is QEMU's auto-converge throttle now (%);
    ``last_resort_finishes``: the policy's last resort for this migration
    is post-copy or pause (True) or the abort (False)."""
    found = rates(memory_passes, probe_dirty_bps)
    if found is None:
        return Forecast(UNKNOWN, reason='no rates yet (the second pass '
                        'with the probe, the third without)')
    transfer, dirty, left, source, confirmed = found
    numbers = ('%.1f MiB dirty at the pass start, dirtied at %.1f MiB/s '
               '(%s), sent at %.1f MiB/s' % (
                   left / MIB, dirty / MIB, source, transfer / MIB))
    patience = policy.stall_passes
    steps = policy.downtime_steps_ms
    now = passes_to_fit(left, transfer, dirty, steps[downtime_index])
    if now is not None and now <= patience:
        return Forecast(CONVERGING, reason='fits %d ms in %d more passes: '
                        '%s' % (steps[downtime_index], now, numbers))
    for index in range(downtime_index + 1, len(steps)):
        needed = passes_to_fit(left, transfer, dirty, steps[index])
        if needed is not None and needed <= patience:
            return Forecast(DOWNTIME, downtime_index=index,
                            reason='fits %d ms in %d passes: %s' % (
                                steps[index], needed, numbers))
    if now is not None:
        # Shrinking, only slowly: waiting still gets there, and the stall
        # check catches a guest that stops shrinking.
        return Forecast(CONVERGING, reason='fits %d ms in %d more passes '
                        '(slowly): %s' % (steps[downtime_index], now,
                                          numbers))
    if policy.auto_converge:
        target = throttle_needed(transfer, dirty)
        if target is not None:
            passes = passes_to_throttle(policy, throttle, target)
            # QEMU raises its throttle every other pass: the policy's
            # patience counts raises here.
            horizon = 2 * patience if last_resort_finishes else None
            if horizon is None or passes <= horizon:
                return Forecast(THROTTLE, throttle=target,
                                ramp_passes=passes_to_throttle(
                                    policy, 0, target),
                                reason='throttle %d%% (now %d%%) reached in '
                                '%d passes: %s' % (target, throttle, passes,
                                                   numbers))
            reason = ('the throttle needs %d%% (now %d%%), %d passes away, '
                      'more than %d' % (target, throttle, passes, horizon))
        else:
            reason = 'not even a %d%% throttle would do' % MAX_THROTTLE
    else:
        reason = 'no downtime step fits'
    if not (confirmed or last_resort_finishes):
        # The abort fails the migration: not on the probe alone, which a
        # guest that calmed down since would contradict at the next pass.
        return Forecast(UNKNOWN, reason='%s by the probe; the abort waits '
                        'for the next pass: %s' % (reason, numbers))
    return Forecast(LAST_RESORT, reason='%s: %s' % (reason, numbers))
