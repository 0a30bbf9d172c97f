"""The escalation ladder: what to do next with a live migration that is
not converging, decided from job-statistics samples (pure).

Rungs, in order, each taken only when the passes since the last step
stalled (``passes.stalled``: every pass starts with nearly as much to send
as the one before, whatever ``memory_remaining`` says within a pass) and
the switch-over still does not fit:

1. raise the allowed downtime to the policy's next step;
2. switch to post-copy, if the policy and the migration allow it;
3. pause the guest, if the policy allows disrupting the workload;
4. abort.

Auto-converge (CPU throttling) is a start-time flag in libvirt: with a
policy that has it, QEMU throttles by itself while the rungs above wait.
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

WAIT = 'wait'
SET_DOWNTIME = 'set-downtime'
POST_COPY = 'post-copy'
PAUSE = 'pause'
ABORT = 'abort'

MIB = 2 ** 20
GIB = 2 ** 30
#: QEMU's largest CPU throttle (cpu-throttle-percentage).
MAX_THROTTLE = 99

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
           post_copy_possible=False):
    """The next Step for a running migration, and the updated Progress.

    ``samples`` are the job statistics so far (oldest first);
    ``data_bytes`` what the migration copies at least (RAM and disks);
    ``post_copy_possible`` whether the migration was started with post-copy
    enabled (the policy and the host allow it).
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
    since = [p for p in all_passes if p.iteration >= progress.last_step_pass]
    if not passes_mod.stalled(since, window=policy.stall_passes):
        return Step(WAIT, None, 'copying: ' + numbers), progress
    reason = 'stalled over %d passes: %s' % (policy.stall_passes, numbers)
    throttle = samples[-1].get('auto_converge_throttle')
    if (policy.auto_converge and throttle is not None and
            throttle < MAX_THROTTLE and
            progress.downtime_index + 1 >= len(policy.downtime_steps_ms)):
        # QEMU still raises its CPU throttle pass after pass: give it the
        # time, until the deadline, before anything more drastic.
        return Step(WAIT, None, 'auto-converge throttling the guest at '
                    '%d%%: %s' % (throttle, reason)), progress
    if progress.downtime_index + 1 < len(policy.downtime_steps_ms):
        index = progress.downtime_index + 1
        return (Step(SET_DOWNTIME, policy.downtime_steps_ms[index], reason),
                progress._replace(downtime_index=index,
                                  last_step_pass=latest.iteration))
    return _last_resort(policy, progress._replace(
        last_step_pass=latest.iteration), post_copy_possible, now, reason)


def _last_resort(policy, progress, post_copy_possible, now, reason):
    """Post-copy, then pause, then abort: the first that the policy
    allows and that was not used yet."""
    rungs = []
    if policy.post_copy and post_copy_possible and not progress.post_copy:
        rungs.append((POST_COPY, progress._replace(post_copy=True)))
    if policy.pause and not progress.paused and not progress.post_copy:
        rungs.append((PAUSE, progress._replace(paused=True, paused_at=now)))
    if not progress.post_copy:
        rungs.append((ABORT, progress._replace(aborted=True)))
    if not rungs:
        # Post-copy is running: it cannot be aborted or paused usefully.
        return Step(WAIT, None, 'post-copy running: ' + reason), progress
    action, new = rungs[0]
    return Step(action, None, reason), new
