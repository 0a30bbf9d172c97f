"""Where a live-migrated guest really runs, decided from what libvirt
reports on both hosts.

Nova 34's libvirt driver re-raises the migrate call's error and its
monitor reads only the source's job type, so a migration that completed
can end with the instance in ERROR, and one that broke after the
switch-over can leave Nova believing the guest is on the source.  This
decision uses every observation there is: the source's completed-job
statistics (with ``success`` where libvirt reports it) and each host's
domain state and reason.  It never picks a side it cannot justify: two
live copies, or nothing running anywhere, is UNKNOWN, for the caller to
lock the instance and tear nothing down.

Pure: the observations are plain values; the driver gathers them.
"""

import collections

# libvirt's virDomainState and the reasons used here (copied, so that the
# decision needs no libvirt to import and test).
RUNNING, BLOCKED, PAUSED, SHUTDOWN, SHUTOFF, CRASHED, PMSUSPENDED = range(
    1, 8)
RUNNING_MIGRATED = 2
RUNNING_POSTCOPY = 10
RUNNING_POSTCOPY_FAILED = 11
PAUSED_MIGRATION = 2
PAUSED_POSTCOPY = 12
PAUSED_POSTCOPY_FAILED = 13
SHUTOFF_MIGRATED = 5
# virDomainJobType
JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED = 3, 4, 5
# virErrorNumber of a migrate call whose job was aborted
ERR_OPERATION_ABORTED = 78

#: A host's view of the domain: ``state`` is a virDomainState, ABSENT (no
#: such domain there) or UNREACHABLE (the host could not be asked).
Side = collections.namedtuple('Side', 'state reason')
ABSENT = 'absent'
UNREACHABLE = 'unreachable'

#: The source's statistics of its last completed job: ``type`` is a
#: virDomainJobType, ``success`` True/False, or None where libvirt does not
#: report it.
Job = collections.namedtuple('Job', 'type success')

COMPLETED = 'completed'          # finish: host = destination, ACTIVE
ROLLED_BACK = 'rolled-back'      # the guest runs on the source: ACTIVE there
POSTCOPY_FAILED = 'postcopy-failed'  # ERROR with a fault; start nothing
UNKNOWN = 'unknown'              # ERROR, locked; tear nothing down

Verdict = collections.namedtuple('Verdict', 'outcome reason')

_ACTIVE = (RUNNING, BLOCKED)
_POSTCOPY_FAILED = {(RUNNING, RUNNING_POSTCOPY_FAILED),
                    (PAUSED, PAUSED_POSTCOPY_FAILED)}


def describe(side):
    if side.state in (ABSENT, UNREACHABLE):
        return side.state
    names = {RUNNING: 'running', BLOCKED: 'blocked', PAUSED: 'paused',
             SHUTDOWN: 'shutting down', SHUTOFF: 'shut off',
             CRASHED: 'crashed', PMSUSPENDED: 'suspended'}
    return '%s (reason %s)' % (names.get(side.state, side.state),
                               side.reason)


def _job_succeeded(job):
    return (job is not None and job.type == JOB_COMPLETED and
            job.success is not False)


def _job_failed(job):
    return job is not None and (job.type in (JOB_FAILED, JOB_CANCELLED) or
                                job.success is False)


def decide(source, dest, job=None):
    """The Verdict for a live migration whose end Nova could not see
    cleanly, from the ``source`` and ``dest`` Sides and the source's
    completed ``job`` (None if it has none)."""
    where = 'source %s, destination %s' % (describe(source), describe(dest))
    if {tuple(source), tuple(dest)} & _POSTCOPY_FAILED:
        # Memory is split between the hosts: neither copy may run alone.
        return Verdict(POSTCOPY_FAILED, 'post-copy failed: ' + where)
    source_active = source.state in _ACTIVE
    dest_active = dest.state in _ACTIVE
    if source_active and dest_active:
        return Verdict(UNKNOWN, 'running on both hosts: ' + where)
    if dest_active:
        if (source.state in (ABSENT, SHUTOFF, PAUSED) or
                _job_succeeded(job) or
                (source.state == UNREACHABLE and
                 dest.reason == RUNNING_MIGRATED)):
            # The switch-over happened: the source is gone, stopped, or
            # still paused for the migration it finished.  A destination
            # only resumes an incoming guest (reason MIGRATED) once the
            # source has handed it over, so that alone settles it when
            # the source cannot be asked (its compute died mid-migration).
            return Verdict(COMPLETED, 'running on the destination: ' + where)
        return Verdict(UNKNOWN, 'running on the destination, but the source '
                       'is not accounted for: ' + where)
    if source_active:
        if _job_succeeded(job):
            return Verdict(UNKNOWN, 'the job completed, yet the guest runs '
                           'on the source: ' + where)
        if (dest.state in (ABSENT, SHUTOFF, UNREACHABLE) or
                (dest.state, dest.reason) == (PAUSED, PAUSED_MIGRATION)):
            # The source's vCPUs run, so the switch-over never happened:
            # whatever the destination holds (nothing, or an incoming copy
            # still paused) never ran, and it cannot resume without the
            # source handing over; a destination that cannot be asked
            # (often why the migration failed) changes nothing.
            return Verdict(ROLLED_BACK, 'running on the source: ' + where)
        return Verdict(UNKNOWN, 'running on the source, destination not '
                       'clean: ' + where)
    if (_job_succeeded(job) and source.state in (ABSENT, SHUTOFF) and
            dest.state == UNREACHABLE):
        # libvirt says the switch-over completed and the source let go;
        # the destination cannot be asked right now.
        return Verdict(COMPLETED, 'job completed, destination unreachable: '
                       + where)
    if _job_failed(job) and source.state == UNREACHABLE:
        return Verdict(UNKNOWN, 'job failed, source unreachable: ' + where)
    return Verdict(UNKNOWN, 'running nowhere that can be seen: ' + where)


def rollback_status(migrate_error_code):
    """The status a rolled-back migration records: 'cancelled' when the
    migrate call failed with libvirt's error ``migrate_error_code``
    OPERATION_ABORTED (the job was aborted: by the operator, Nova's
    completion timeout or a convergence policy), else None (Nova's own).

    Nova's monitor cannot tell: libvirt's current job reads CANCELLED only
    for a moment after an abort and libvirt keeps no completed-job
    statistics for a migration that did not complete, so a monitor that
    polls after that moment finds no job, and Nova's find_job_type calls
    the migration failed.  The migrate call's error keeps the difference.
    """
    return 'cancelled' if migrate_error_code == ERR_OPERATION_ABORTED else None
