"""Where a live-migrated guest really runs, decided from what libvirt
reports on both hosts.

Nova's libvirt driver re-raises the migrate call's error (from 32.2 on;
older releases drop it) and its monitor reads only the source's job type,
so a migration that completed can end with the instance in ERROR, and one
that broke after the switch-over can leave Nova believing the guest is on
the source.  This decision uses every observation there is: the source's
completed-job statistics (with ``success`` where libvirt reports it),
whether its migration job still runs, and each host's domain state and
reason.  While
libvirt still migrates (post-copy pulling memory from the source) it
decides nothing (IN_FLIGHT).  It never picks a side it cannot justify: two
live copies, or nothing running anywhere, is UNKNOWN, for the caller to
lock the instance and tear nothing down.  A guest that stays on the
source keeps its own state there: a paused guest rolls back paused.

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
PAUSED_STARTING_UP = 11
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
ROLLED_BACK = 'rolled-back'      # the guest stays on the source
POSTCOPY_FAILED = 'postcopy-failed'  # ERROR with a fault; start nothing
IN_FLIGHT = 'in-flight'          # libvirt still migrates: ask again later
UNKNOWN = 'unknown'              # ERROR, locked; tear nothing down

Verdict = collections.namedtuple('Verdict', 'outcome reason')

_ACTIVE = (RUNNING, BLOCKED)
_POSTCOPY_FAILED = {(RUNNING, RUNNING_POSTCOPY_FAILED),
                    (PAUSED, PAUSED_POSTCOPY_FAILED)}
# A post-copy migration still runs: the destination's vCPUs run (or are
# paused) while its memory is still pulled from the source.
_POSTCOPY_RUNNING = {(RUNNING, RUNNING_POSTCOPY), (PAUSED, PAUSED_POSTCOPY)}
# Reasons for which a migration pauses a domain: the source for its
# switch-over, the destination's incoming copy until it is handed over.
_PAUSED_BY_MIGRATION = (PAUSED_MIGRATION, PAUSED_POSTCOPY,
                        PAUSED_POSTCOPY_FAILED)


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


def _kept_by_source(source):
    """The source still holds the guest as its own: running, or stopped
    for a reason of its own (paused by the user before or during the
    migration, an I/O error, a watchdog, shutting down, crashed, shut off
    but not by the migration), never for the migration's switch-over."""
    if source.state in (RUNNING, BLOCKED, SHUTDOWN, CRASHED, PMSUSPENDED):
        return True
    if source.state == PAUSED:
        return source.reason not in _PAUSED_BY_MIGRATION
    return source.state == SHUTOFF and source.reason != SHUTOFF_MIGRATED


def _never_ran_on(dest):
    """The destination visibly holds no copy that ever ran: nothing, or
    an incoming copy libvirt has not handed over (paused for the
    migration, or still starting)."""
    return dest.state == ABSENT or (
        dest.state == PAUSED and
        dest.reason in (PAUSED_MIGRATION, PAUSED_STARTING_UP))


def _arrived_paused(dest):
    """The destination holds a finished incoming copy of a paused guest
    (libvirt hands a paused guest over paused, reason user)."""
    return (dest.state == PAUSED and
            dest.reason not in _PAUSED_BY_MIGRATION + (PAUSED_STARTING_UP,))


def decide(source, dest, job=None, job_active=False):
    """The Verdict for a live migration whose end Nova could not see
    cleanly, from the ``source`` and ``dest`` Sides, the source's
    completed ``job`` (None if it has none) and whether a migration job
    still runs on the source (``job_active``).

    IN_FLIGHT while libvirt still migrates (the job runs, or post-copy
    still pulls the guest's memory from the source): no outcome can be
    told yet, and tearing down either half would kill the guest.  The
    caller asks again until another verdict comes, within a bound
    (:func:`waited_too_long`).
    """
    where = 'source %s, destination %s' % (describe(source), describe(dest))
    if {tuple(source), tuple(dest)} & _POSTCOPY_FAILED:
        # Memory is split between the hosts: neither copy may run alone.
        return Verdict(POSTCOPY_FAILED, 'post-copy failed: ' + where)
    source_active = source.state in _ACTIVE
    dest_active = dest.state in _ACTIVE
    if source_active and dest_active:
        return Verdict(UNKNOWN, 'running on both hosts: ' + where)
    if {tuple(source), tuple(dest)} & _POSTCOPY_RUNNING:
        return Verdict(IN_FLIGHT, 'post-copy still runs: ' + where)
    if job_active:
        return Verdict(IN_FLIGHT, 'the migration job still runs on the '
                       'source: ' + where)
    if dest_active:
        if (source.state in (ABSENT, SHUTOFF) or
                tuple(source) == (PAUSED, PAUSED_MIGRATION) or
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
    if _kept_by_source(source):
        if _job_succeeded(job):
            return Verdict(UNKNOWN, 'the job completed, yet the guest is '
                           'on the source: ' + where)
        if _never_ran_on(dest) or (
                source_active and dest.state in (SHUTOFF, UNREACHABLE)):
            # The switch-over never happened: the source's vCPUs run, or
            # it keeps the guest stopped for its own reason (a paused
            # guest stays paused), while the destination holds nothing
            # that ran.  Running vCPUs alone prove it: a destination
            # cannot resume without the source handing over, so one that
            # cannot be asked (often why the migration failed) changes
            # nothing.
            return Verdict(ROLLED_BACK, 'the guest is on the source: ' +
                           where)
        return Verdict(UNKNOWN, 'the guest is on the source, destination '
                       'not clean: ' + where)
    if (tuple(source) == (PAUSED, PAUSED_MIGRATION) and
            _never_ran_on(dest) and not _job_succeeded(job)):
        # The job ended without handing over: libvirt could not resume the
        # source after the failed switch-over.  Its copy is the only one.
        # (With the destination unreachable it could be running there:
        # libvirt's confirm step failed after the destination resumed.)
        return Verdict(ROLLED_BACK, 'paused on the source by the failed '
                       'switch-over: ' + where)
    if _arrived_paused(dest) and (
            source.state == ABSENT or _job_succeeded(job) or
            tuple(source) == (SHUTOFF, SHUTOFF_MIGRATED)):
        # A paused guest's migration finished: it is paused there.
        return Verdict(COMPLETED, 'paused on the destination: ' + where)
    if (_job_succeeded(job) and source.state in (ABSENT, SHUTOFF) and
            dest.state == UNREACHABLE):
        # libvirt says the switch-over completed and the source let go;
        # the destination cannot be asked right now.
        return Verdict(COMPLETED, 'job completed, destination unreachable: '
                       + where)
    if _job_failed(job) and source.state == UNREACHABLE:
        return Verdict(UNKNOWN, 'job failed, source unreachable: ' + where)
    return Verdict(UNKNOWN, 'running nowhere that can be seen: ' + where)


def waited_too_long(verdict, seconds):
    """The Verdict once an IN_FLIGHT ``verdict`` lasted ``seconds``, the
    caller's bound: UNKNOWN, so that the instance is held and nothing is
    torn down while libvirt may still be moving the guest."""
    if verdict.outcome != IN_FLIGHT:
        return verdict
    return Verdict(UNKNOWN, 'the migration was still in flight after %d s: '
                   '%s' % (seconds, verdict.reason))


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
