"""Memory passes of a live migration, read from job-statistics samples.

QEMU pre-copies memory in passes (``memory_iteration``).  At the start of a
pass it syncs the guest's dirty log, so ``memory_remaining`` right then is
everything the pass has to send: the figure that decides whether the
switch-over would fit in the allowed downtime.  Within a pass
``memory_remaining`` falls towards zero as the pass copies; read on its
own it looks like progress even when the guest dirties memory as fast as
the network copies it, which is why Nova dropped its progress timeout.
Comparing the passes' starting figures does not have that flaw.

Samples are dicts with the field names of Nova's
``nova.virt.libvirt.guest.JobInfo`` (as libvirt's ``jobStats()`` returns
them), oldest first.
"""

import collections

# libvirt's VIR_DOMAIN_JOB_UNBOUNDED: a migration job that is running.  A
# constant here so that the decisions do not need libvirt to import.
JOB_UNBOUNDED = 2

#: One memory pass: its number, what it had to send when it started
#: (bytes), the transfer rate last seen during it (bytes/s) and when it was
#: first sampled (the job's ``time_elapsed``, ms).
Pass = collections.namedtuple(
    'Pass', 'iteration left_bytes bandwidth_bps started_ms', defaults=(0,))


def passes(samples):
    """The passes seen in ``samples``, in order.

    A pass's ``left_bytes`` is the largest ``memory_remaining`` sampled
    during it, i.e. the sample nearest its start; a monitor that samples
    less often than passes end misses passes, which are then absent.
    """
    seen = collections.OrderedDict()
    for sample in samples:
        iteration = sample.get('memory_iteration', 0)
        if sample.get('type') != JOB_UNBOUNDED or iteration < 1:
            continue
        left = sample.get('memory_remaining', 0)
        rate = sample.get('memory_bps', 0)
        known = seen.get(iteration)
        if known is None:
            seen[iteration] = Pass(iteration, left, rate,
                                   sample.get('time_elapsed', 0))
        else:
            seen[iteration] = known._replace(
                left_bytes=max(left, known.left_bytes),
                bandwidth_bps=rate or known.bandwidth_bps)
    return list(seen.values())


def switchover_fits(memory_pass, downtime_ms):
    """Whether the pass's data could be sent within ``downtime_ms`` at the
    pass's rate (False while the rate is unknown)."""
    return (memory_pass.bandwidth_bps > 0 and
            memory_pass.left_bytes <=
            memory_pass.bandwidth_bps * downtime_ms / 1000.0)


def stalled(memory_passes, window=3, min_shrink=0.1):
    """True when each of the last ``window`` passes started with more than
    (1 - ``min_shrink``) of what the pass before it started with: the guest
    dirties memory about as fast as the passes copy it, so waiting for more
    passes will not make the switch-over fit."""
    if len(memory_passes) < window + 1:
        return False
    recent = memory_passes[-(window + 1):]
    return all(later.left_bytes > (1 - min_shrink) * earlier.left_bytes
               for earlier, later in zip(recent, recent[1:]))
