"""The escalation ladder as it decided before the predictor (commit
42e6148 to 8280452^ of nova_migration_guard/convergence/ladder.py), kept
here only so that benchmarks/convergence.py can run it beside today's in
the same run: each downtime step waits for ``stall_passes`` stalled
passes, auto-converge's throttle is waited for until it peaks, then the
policy's last resort.  Same signature as ``ladder.decide``; the probe's
dirty rate is ignored (this ladder had none).  Not shipped code."""

from nova_migration_guard.convergence import ladder
from nova_migration_guard.convergence import passes as passes_mod
from nova_migration_guard.convergence import predictor


def decide(policy, progress, samples, now, data_bytes,
           post_copy_possible=False, probe_dirty_bps=None):
    all_passes = passes_mod.passes(samples)
    downtime = policy.downtime_steps_ms[progress.downtime_index]
    limit = ladder.deadline(policy, data_bytes)
    if progress.aborted:
        return (ladder.Step(ladder.WAIT, None, 'abort asked'), progress)
    if progress.paused:
        if now - progress.paused_at > limit:
            return (ladder.Step(ladder.ABORT, None, 'paused too long'),
                    progress._replace(aborted=True))
        return ladder.Step(ladder.WAIT, None, 'paused'), progress
    if not all_passes:
        return ladder.Step(ladder.WAIT, None, 'nothing yet'), progress
    latest = all_passes[-1]
    if now - progress.started_at > limit:
        return ladder._last_resort(policy, progress, post_copy_possible,
                                   now, 'deadline of %d s passed' % limit)
    if passes_mod.switchover_fits(latest, downtime):
        return ladder.Step(ladder.WAIT, None, 'converging'), progress
    since = [p for p in all_passes if p.iteration >= progress.last_step_pass]
    if not passes_mod.stalled(since, window=policy.stall_passes):
        return ladder.Step(ladder.WAIT, None, 'copying'), progress
    reason = 'stalled over %d passes (ladder before the predictor)' % (
        policy.stall_passes)
    throttle = samples[-1].get('auto_converge_throttle')
    if (policy.auto_converge and throttle is not None and
            throttle < predictor.MAX_THROTTLE and
            progress.downtime_index + 1 >= len(policy.downtime_steps_ms)):
        return (ladder.Step(ladder.WAIT, None, 'throttle at %d%%: %s' % (
            throttle, reason)), progress)
    if progress.downtime_index + 1 < len(policy.downtime_steps_ms):
        index = progress.downtime_index + 1
        return (ladder.Step(ladder.SET_DOWNTIME,
                            policy.downtime_steps_ms[index], reason),
                progress._replace(downtime_index=index,
                                  last_step_pass=latest.iteration))
    return ladder._last_resort(policy, progress._replace(
        last_step_pass=latest.iteration), post_copy_possible, now, reason)
