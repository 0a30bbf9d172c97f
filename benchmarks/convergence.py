"""Benchmark: live migrations of idle, moderately and heavily dirtying
guests under each convergence policy, beside stock Nova's settings, on
the real libvirt tier (two libvirtd on loopback, real QEMU guests under
TCG; as root after tools/install-real-libvirt.sh).  Run from the
repository root with an interpreter that has Nova (patched) and
libvirt-python::

    PYTHONPATH=. .tox/real-libvirt/bin/python benchmarks/convergence.py \
        [N [WORKLOAD...]]

N migrations per policy per workload (default 1); WORKLOADs among idle,
moderate, heavy (default all).  The stream is capped at
15 MiB/s; the heavy guest rewrites 128 MiB at 30 MiB/s (twice the cap;
the real-tier tests' guest), the moderate one 64 MiB at 8 MiB/s, the idle
one nothing.
Stock Nova runs LibvirtDriver with Nova's defaults; a migration still
running after LIMIT seconds is aborted and counted as not completed (Nova's
own completion timeout, 800 s per GiB, would let it run far longer).

Prints a table (completion rate, median time, passes, peak auto-converge
throttle, QEMU's switch-over downtime and the longest gap in the guest's
once-a-second heartbeat, i.e. what the workload felt, pauses included,
and how many guests still printed heartbeats afterwards)
to stdout and benchmarks/out/convergence.txt, and draws memory remaining
over time for the heavy guest per policy to benchmarks/out/convergence.png
(needs matplotlib).
"""

import json
import os
import statistics
import sys
import threading
import time
import unittest

import fixtures

from nova_migration_guard.convergence import ladder
from nova_migration_guard.lab.real_libvirt import guests
from nova_migration_guard.lab.real_libvirt.hosts import libvirt
from nova_migration_guard.lab.real_libvirt import nova_driver
from nova_migration_guard import report
from nova_migration_guard.virt.libvirt import driver as guarded
from tests.real_libvirt import base
from tests.real_libvirt import test_convergence
from tests.real_libvirt import test_nova_driver

import convergence_plot
import ladder_before_predictor

BANDWIDTH_MIB_S = nova_driver.BANDWIDTH_MIB_S
LIMIT = 240
MIB = 2 ** 20
WORKLOADS = {
    'idle': {},
    'moderate': {'dirty_mb': 64, 'dirty_rate': 8},
    'heavy': nova_driver.DIRTY_TWICE_THE_CAP,
}
# What operators run instead (stock Nova, the guard off), by [libvirt]
# options: auto-converge, the usual workaround; and a tuning reported to
# complete drains (auto-converge, post-copy permitted, which Nova then uses
# instead of auto-converge, and a 15 s/GiB completion timeout whose action
# forces completion: post-copy).
STOCK = {
    'stock Nova': {},
    'stock, auto-converge': {'live_migration_permit_auto_converge': True},
    'stock, tuned': {'live_migration_permit_auto_converge': True,
                     'live_migration_permit_post_copy': True,
                     'live_migration_timeout_action': 'force_complete',
                     'live_migration_completion_timeout': 15},
}
#: The default policy decided by the ladder before the predictor (its
#: escalation over stalled passes), for the heavy guest only: the others
#: converge before any step.
BEFORE_PREDICTOR = 'minimal-downtime, before predictor'
POLICIES = tuple(STOCK) + ('minimal-downtime', 'post-copy',
                           'suspend-workload', BEFORE_PREDICTOR)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'out')


class _Run(test_nova_driver.NovaDriverTestCase):
    """One migration; the result goes to ``RESULT``."""

    LIBVIRT_OPTIONS = {'live_migration_bandwidth': BANDWIDTH_MIB_S}
    POLICY = None
    WORKLOAD = None
    RESULT = None

    def setUp(self):
        base.RealLibvirtTestCase.setUp(self)
        stock = self.POLICY in STOCK
        self.nova = self.useFixture(nova_driver.NovaLibvirtHosts(
            self.hosts,
            driver_class=None if stock else guarded.GuardedLibvirtDriver,
            guards=() if stock else ('convergence', 'migration_outcome'),
            **dict(self.LIBVIRT_OPTIONS, **STOCK.get(self.POLICY, {}))))

    def test_migrate(self):
        instance, console = self.boot('bench', memory_mib=256,
                                      **WORKLOADS[self.WORKLOAD])
        # As the real tier's tests do: QEMU 7.2 under TCG left guests
        # migrated within seconds of their boot silent now and then.
        self.wait_for_heartbeat_after(
            console, test_convergence.SETTLED_HEARTBEAT, timeout=90)
        if self.POLICY == BEFORE_PREDICTOR:
            self.useFixture(fixtures.MockPatchObject(
                ladder, 'decide', ladder_before_predictor.decide))
            instance.flavor.extra_specs = {
                'migration_guard:convergence_policy': 'minimal-downtime'}
        elif self.POLICY not in STOCK:
            instance.flavor.extra_specs = {
                'migration_guard:convergence_policy': self.POLICY}
        domain = self.conn['A'].lookupByName('bench')
        curve, stop = [], threading.Event()
        beats = []   # (when the guest's heartbeat number changed, number)

        def watch():   # heartbeats, and the source's memory remaining
            t0 = time.monotonic()
            while not stop.wait(0.2):
                beat = self.last_heartbeat(console)
                if not beats or beat != beats[-1][1]:
                    beats.append((time.monotonic(), beat))
                try:
                    stats = domain.jobStats()
                except Exception:
                    continue
                if 'memory_remaining' in stats:
                    curve.append((time.monotonic() - t0,
                                  stats['memory_remaining'] / MIB))
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.monotonic()
        migrating, result = self.migrate_in_background(instance)
        migrating.join(LIMIT)
        if migrating.is_alive():
            self.nova.drivers['A'].live_migration_abort(instance)
            migrating.join(60)
        seconds = time.monotonic() - started
        completed = bool(result.get('post') and result['post'].calls)
        alive = True
        try:
            # The guest's next heartbeat (on the destination if it moved)
            # ends its stall and shows it survived.
            guests.wait_for_heartbeat_after(console,
                                            self.last_heartbeat(console))
        except guests.GuestError:
            alive = False
        stop.set()
        watcher.join(5)
        self.RESULT.update(
            completed=completed, alive=alive,
            seconds=seconds, curve=curve,
            throttle=self.nova.stats.peak_throttle('bench', since=started),
            downtime_ms=self._qemu_downtime(),
            stall=_longest_stall(beats) if alive else None,
            passes=self.nova.stats.passes('bench', since=started))

    def _qemu_downtime(self):
        """QEMU's switch-over downtime (ms) of a completed migration, from
        the destination's completed-job statistics (None if unknown)."""
        try:
            domain = self.conn['B'].lookupByName('bench')
            return domain.jobStats(
                libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED).get('downtime')
        except libvirt.libvirtError:
            return None


def _longest_stall(beats):
    """Seconds the guest printed no heartbeat (one a second while it
    runs), the longest gap while migrating: what the workload felt,
    pauses included."""
    gaps = [later - earlier for (earlier, _), (later, _) in
            zip(beats, beats[1:])]
    return max(gaps or [0.0])


def run_one(policy, workload):
    result = {}
    case = type('Run', (_Run,), {'POLICY': policy, 'WORKLOAD': workload,
                                 'RESULT': result})('test_migrate')
    outcome = unittest.TestResult()
    case.run(outcome)
    problems = outcome.errors + outcome.failures
    if problems:
        report.progress(problems[0][1])
        raise RuntimeError(problems[0][1].strip().splitlines()[-1])
    return result


def _run_with_one_retry(policy, workload):
    """One migration; a run whose set-up failed (a guest that did not
    boot, a daemon that did not start: no migration was measured) is
    retried once."""
    try:
        return run_one(policy, workload)
    except RuntimeError as exc:
        report.progress('      set-up failed, once more: %s' % exc)
        return run_one(policy, workload)


def _append_json(path, record):
    """Each run's numbers as one JSON line, as it ends: a run cut short
    keeps what it measured."""
    with open(path, 'a') as f:
        f.write(json.dumps(record) + '\n')


def main(argv):
    count = int(argv[1]) if len(argv) > 1 else 1
    # The heavy guest first: its runs are the longest and the ones that
    # matter most if the run is cut short.
    workloads = argv[2:] or list(reversed(list(WORKLOADS)))
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        report.progress('unknown workload %s; accepted: %s' % (
            ', '.join(unknown), ', '.join(WORKLOADS)))
        return 2
    rows = []
    runs_file = os.path.join(OUT, 'convergence-runs.jsonl')
    os.makedirs(OUT, exist_ok=True)
    open(runs_file, 'w').close()   # this run's runs only
    plan = [(workload, policy) for workload in workloads
            for policy in POLICIES
            if policy != BEFORE_PREDICTOR or workload == 'heavy']
    total = count * len(plan)
    done = 0
    for workload, policy in plan:
        runs = []
        for _ in range(count):
            done += 1
            report.progress('[%d/%d] %s guest, %s' % (
                done, total, workload, policy))
            runs.append(_run_with_one_retry(policy, workload))
            report.progress('      %s in %.0f s' % (
                'completed' if runs[-1]['completed'] else
                'not completed', runs[-1]['seconds']))
            _append_json(runs_file,
                         dict(runs[-1], workload=workload, policy=policy))
        rate = sum(r['completed'] for r in runs) / float(len(runs))
        rows.append((workload, policy, '%.0f%%' % (rate * 100),
                     '%.0f' % statistics.median(r['seconds']
                                                for r in runs),
                     '%d' % max(r['passes'] for r in runs),
                     '%d%%' % max(r['throttle'] for r in runs),
                     _median_or_dash([r['downtime_ms'] for r in runs
                                      if r['completed']], '%.0f'),
                     _median_or_dash([r['stall'] for r in runs
                                      if r['completed']], '%.1f'),
                     '%d/%d' % (sum(r['alive'] for r in runs),
                                len(runs))))
    # Each time against the idle guest's under stock Nova, same run.
    idle = {r[1]: float(r[3]) for r in rows if r[0] == 'idle'}
    base_s = idle.get('stock Nova')
    # And against stock Nova's time for the same guest.
    stock = {r[0]: float(r[3]) for r in rows if r[1] == 'stock Nova'}
    rows = [row[:4] + (_ratio(row[3], base_s),
                       _ratio(row[3], stock.get(row[0]))) + row[4:]
            for row in rows]
    lines = list(report.table(
        ('workload', 'policy', 'completed', 'median s', 'vs idle stock',
         'vs stock', 'passes', 'peak throttle', 'downtime ms',
         'guest stall s', 'alive after'),
        rows, right=(2, 3, 4, 5, 6, 7, 8, 9, 10)))
    if idle:
        lines.append('')
        lines.append('idle guest, minimal-downtime / stock Nova time: '
                     '%.2fx' % (idle['minimal-downtime'] /
                                idle['stock Nova']))
    report.publish('\n'.join(lines) + '\n',
                   os.path.join(OUT, 'convergence.txt'))
    convergence_plot.plot(
        convergence_plot.load(runs_file),
        os.path.join(OUT, 'convergence.png'), BANDWIDTH_MIB_S, LIMIT,
        report.progress)


def _ratio(seconds, base):
    return '%.2fx' % (float(seconds) / base) if base else '-'


def _median_or_dash(values, fmt):
    values = [v for v in values if v is not None]
    return fmt % statistics.median(values) if values else '-'


if __name__ == '__main__':
    sys.exit(main(sys.argv))
