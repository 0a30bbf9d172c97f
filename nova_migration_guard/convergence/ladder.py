"""The escalation ladder: what to do next with a live migration that is
not converging, decided from job-statistics samples (pure).

Rungs, in order:

1. raise the allowed downtime to one of the policy's steps;
2. auto-converge: QEMU throttles the guest's vCPUs (a start-time flag in
   libvirt: with a policy that has it, QEMU throttles by itself);
3. switch to post-copy, if the policy and the migration allow it;
4. pause the guest, if the policy allows disrupting the workload;
5. abort.

From the second pass on, ``predictor.forecast`` says which rung can
finish the migration, from the rates the passes (and the dirty-rate
probe) show: the ladder waits while the passes converge or the throttle
is predicted to win, sets the first downtime step that fits (skipping the
ones that cannot), or takes the policy's last resort (post-copy, pause,
abort) at once.  A prediction that does not hold (the passes stall over
the policy's ``stall_passes`` passes, plus, for the throttle, the passes
QEMU takes to raise it to its target) takes the last resort.

The completion deadline (``seconds_per_gib`` per GiB of the data Nova's
completion timeout counts: the guest's RAM, at least 2 GiB, and the disks
of a block migration) jumps straight to the last resort the policy allows
(post-copy, pause, abort).  A paused guest dirties no more memory: what is
left is sent once, within one more deadline, or the migration is aborted
(and Nova's monitor unpauses the guest on its source).  An abort is asked
once; libvirt then ends the job.

``decide(policy, progress, samples, now, data_bytes)`` returns a Step and
the new Progress; the caller (the hook adapter in the guarded driver's
``convergence`` module) hands the Step to Nova's monitor, which applies it,
and logs its ``reason``, which carries the numbers that triggered it.
"""

import collections

from nova_migration_guard.convergence import passes as passes_mod
from nova_migration_guard.convergence import predictor

WAIT = 'wait'
SET_DOWNTIME = 'set-downtime'
POST_COPY = 'post-copy'
PAUSE = 'pause'
ABORT = 'abort'

MIB = 2 ** 20
GIB = 2 ** 30

#: Where a migration is on the ladder: the downtime step in force (an
#: index into the policy's steps), whether post-copy or pause was used,
#: the pass at which the last step was taken, when it started, when the
#: guest was paused (None: it was not) and whether the abort was asked.
Progress = collections.namedtuple(
    'Progress', 'downtime_index post_copy paused last_step_pass started_at '
    'paused_at aborted', defaults=(None, False))

Step = collections.namedtuple('Step', 'action value reason')


def start(now):
    return Progress(0, False, False, 0, now)


def deadline(policy, data_bytes):
    """Seconds a migration of ``data_bytes`` may take."""
    return policy.seconds_per_gib * max(1.0, data_bytes / float(GIB))


def decide(policy, progress, samples, now, data_bytes,
           post_copy_possible=False, probe_dirty_bps=None):
    """The next Step for a running migration, and the updated Progress.

    ``samples`` are the job statistics so far (oldest first);
    ``data_bytes`` what the migration copies at least (RAM and disks);
    ``post_copy_possible`` whether the migration was started with post-copy
    enabled (the policy and the host allow it); ``probe_dirty_bps`` the
    guest's dirty rate measured as the migration started (None: unknown).
    """
    all_passes = passes_mod.passes(samples)
    downtime = policy.downtime_steps_ms[progress.downtime_index]
    limit = deadline(policy, data_bytes)
    if progress.aborted:
        return Step(WAIT, None, 'abort asked, libvirt ends the job'), progress
    if progress.paused:
        if now - progress.paused_at > limit:
            return (Step(ABORT, None, 'paused %d s ago and still not '
                         'complete (deadline %d s)' % (
                             now - progress.paused_at, limit)),
                    progress._replace(aborted=True))
        return Step(WAIT, None, 'paused: sending what is left'), progress
    if not all_passes:
        return Step(WAIT, None, 'nothing to decide yet'), progress
    latest = all_passes[-1]
    numbers = ('pass %d started with %.1f MiB to send at %.1f MiB/s; '
               'allowed downtime %d ms' % (
                   latest.iteration, latest.left_bytes / MIB,
                   latest.bandwidth_bps / MIB, downtime))
    elapsed = now - progress.started_at
    if elapsed > limit:
        return _last_resort(policy, progress, post_copy_possible, now,
                            'deadline of %d s passed (%s)' % (limit,
                                                              numbers))
    if passes_mod.switchover_fits(latest, downtime):
        return Step(WAIT, None, 'converging: ' + numbers), progress
    finishes = bool(_finishing_rungs(policy, progress, post_copy_possible))
    forecast = predictor.forecast(
        policy, progress.downtime_index, all_passes, probe_dirty_bps,
        throttle=samples[-1].get('auto_converge_throttle') or 0,
        last_resort_finishes=finishes)
    if forecast.rung == predictor.DOWNTIME:
        index = forecast.downtime_index
        return (Step(SET_DOWNTIME, policy.downtime_steps_ms[index],
                     'predicted: ' + forecast.reason),
                progress._replace(downtime_index=index,
                                  last_step_pass=latest.iteration))
    if forecast.rung == predictor.LAST_RESORT:
        return _last_resort(policy, progress._replace(
            last_step_pass=latest.iteration), post_copy_possible, now,
            'predicted: ' + forecast.reason)
    since = [p for p in all_passes if p.iteration >= progress.last_step_pass]
    # The passes stall while QEMU raises its throttle to the target.
    window = policy.stall_passes + forecast.ramp_passes
    if not passes_mod.stalled(since, window=window):
        return Step(WAIT, None, '%s: %s' % (
            forecast.rung, forecast.reason or numbers)), progress
    return _last_resort(policy, progress._replace(
        last_step_pass=latest.iteration), post_copy_possible, now,
        'stalled over %d passes although predicted %s (%s): %s' % (
            window, forecast.rung, forecast.reason, numbers))


def _finishing_rungs(policy, progress, post_copy_possible):
    """The last-resort rungs that finish the migration (post-copy, pause)
    still open to it."""
    rungs = []
    if policy.post_copy and post_copy_possible and not progress.post_copy:
        rungs.append(POST_COPY)
    if policy.pause and not progress.paused and not progress.post_copy:
        rungs.append(PAUSE)
    return rungs


def _last_resort(policy, progress, post_copy_possible, now, reason):
    """Post-copy, then pause, then abort: the first that the policy
    allows and that was not used yet."""
    rungs = _finishing_rungs(policy, progress, post_copy_possible)
    if not progress.post_copy:
        rungs.append(ABORT)
    if not rungs:
        # Post-copy is running: it cannot be aborted or paused usefully.
        return Step(WAIT, None, 'post-copy running: ' + reason), progress
    action = rungs[0]
    new = {POST_COPY: progress._replace(post_copy=True),
           PAUSE: progress._replace(paused=True, paused_at=now),
           ABORT: progress._replace(aborted=True)}[action]
    return Step(action, None, reason), new
