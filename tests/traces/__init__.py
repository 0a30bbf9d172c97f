"""Traces of real live migrations, recorded on the real libvirt tier, for
the unit tests of decision logic (which then run without libvirt).

A trace is one JSON file under ``tests/traces/libvirt/``, written by the
real tier when ``NMG_RECORD_TRACES`` names a directory
(``tools/record-traces.sh``)::

    {"name": ..., "description": ...,
     "versions": {"libvirt": ..., "qemu": ...},
     "settings": {nova.conf [libvirt] options the test set},
     "events": [{"t": s, "host": "A", "domain": ..., "event": "STARTED",
                 "detail": "MIGRATED"}, ...],
     "job_stats": [{"t": s, "host": "A", "domain": ..., "stats": {...}}]}

``t`` is seconds since the trace began.  ``events`` are libvirt domain
events seen on both daemons (lifecycle type/detail, MIGRATION_ITERATION
with its number, JOB_COMPLETED with the job's statistics); ``job_stats``
are the samples Nova's migration monitor took (Guest.get_job_info), with
the field names of nova.virt.libvirt.guest.JobInfo.
"""

import collections
import json
import os

DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         'libvirt')

#: ``policy``: the flavor's convergence policy of a guarded migration;
#: ``probe_dirty_bps``: what the dirty-rate probe measured as it started
#: (None: no probe, or a trace recorded before the probe existed).
Trace = collections.namedtuple(
    'Trace', 'name description versions settings events job_stats policy '
    'probe_dirty_bps', defaults=(None, None))


def load(name, directory=DIRECTORY):
    with open(os.path.join(directory, name + '.json')) as f:
        data = json.load(f)
    return Trace(**data)


def names(directory=DIRECTORY):
    return sorted(n[:-len('.json')] for n in os.listdir(directory)
                  if n.endswith('.json'))


def write(directory, trace):
    """Write ``trace`` (a Trace) as ``<directory>/<name>.json``."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, trace.name + '.json')
    with open(path, 'w') as f:
        json.dump(trace._asdict(), f, indent=1, sort_keys=True,
                  default=str)
        f.write('\n')
    return path
