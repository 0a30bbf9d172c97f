"""Benchmark: does the per-group lock serialise moves of unrelated groups?

Run with an interpreter that has Nova (patched) and its test dependencies,
from the repository root::

    PYTHONPATH=. .tox/functional/bin/python benchmarks/concurrent_groups.py

On the embedded cloud (12 computes), 8 anti-affinity groups of 2 members
each; every round live-migrates one member of each group, all 8 at once
(scheduler-chosen destinations), and times the round from the first API
call to the last migration 'completed'.  The destination check of the
virt driver takes DEST_CHECK_SECONDS (a real libvirt destination check
takes a few hundred ms; the fake driver's takes none), and the guard holds
its group lock around that check, so a lock shared by all groups would
show up as 8 checks in a row.  Three configurations, in the same run:

* stock: no guard (Nova's own checks only);
* guarded: ``[migration_guard] guards = anti_affinity`` and the in-flight
  filter, as the README configures it;
* guarded, late check only: the same without the filter, to tell the two
  costs apart;
* one lock for all (control): guarded, but every group's lock has the same
  name, i.e. what a global lock would cost.  It shows that the benchmark
  can see serialisation at all.

The table goes to stdout and to ``benchmarks/out/concurrent_groups.txt``;
progress lines go to stderr.
"""

import logging
import os
import statistics
import time

import fixtures
from nova.virt import fake

from nova_migration_guard.demo import runner
from nova_migration_guard.embedded import cloud as cloud_mod
from nova_migration_guard import report

GROUPS = 8
MEMBERS = 2
COMPUTES = 12
ROUNDS = 5
DEST_CHECK_SECONDS = 0.5
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'out',
                   'concurrent_groups.txt')


class SlowDestinationCheckDriver(fake.MediumFakeDriver):
    """The fake driver, with a destination check that takes time."""

    def check_can_live_migrate_destination(self, *args, **kwargs):
        time.sleep(DEST_CHECK_SECONDS)
        return super().check_can_live_migrate_destination(*args, **kwargs)


def one_lock_for_all(cloud):
    cloud.useFixture(fixtures.MonkeyPatch(
        'nova_migration_guard.anti_affinity.late_check.lock_name',
        lambda group_uuid: 'server-group.all'))


CONFIGURATIONS = (
    # name, guards, in-flight filter, extra setup
    ('stock', (), False, None),
    ('guarded', ('anti_affinity',), True, None),
    ('guarded, late check only', ('anti_affinity',), False, None),
    ('one lock for all (control)', ('anti_affinity',), True,
     one_lock_for_all),
)


def run_rounds(cloud, setup):
    if setup is not None:
        setup(cloud)
    cloud.flags(instances=-1, cores=-1, ram=-1, group='quota')
    groups = []
    for g in range(GROUPS):
        group = cloud.create_anti_affinity_group('bench-%d' % g)
        groups.append(cloud.boot_servers_in_group(group, MEMBERS))
    seconds = []
    for round_no in range(ROUNDS):
        movers = [members[round_no % MEMBERS] for members in groups]
        start = time.monotonic()
        answers = cloud.run_concurrently(
            *[lambda s=s: cloud.live_migrate(s) for s in movers])
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        for server in movers:
            cloud.wait_for_migration(server, timeout=120)
        seconds.append(time.monotonic() - start)
        report.progress('    round %d: %.2f s' % (round_no + 1, seconds[-1]))
    return seconds


def main():
    rows = []
    # Nova's thread pools log their shutdown at INFO outside the cloud's
    # log capture; keep stderr for progress.
    logging.getLogger('nova.thread_pool_factory').setLevel(logging.WARNING)
    for i, (name, guards, in_flight_filter, setup) in enumerate(
            CONFIGURATIONS, 1):
        report.progress(
            '[%d/%d] %s: %d groups x %d members, %d rounds of %d concurrent '
            'live migrations ...' % (i, len(CONFIGURATIONS), name, GROUPS,
                                     MEMBERS, ROUNDS, GROUPS))
        seconds = cloud_mod.run_in_cloud(
            lambda cloud, setup=setup: run_rounds(cloud, setup),
            NUMBER_OF_COMPUTES=COMPUTES,
            COMPUTE_DRIVER=SlowDestinationCheckDriver,
            TRACK_INSTANCE_CHANGES=False,
            GUARDS=guards,
            EXTRA_FILTERS=(runner.GUARD_FILTERS['anti_affinity']
                           if in_flight_filter else ()))
        rows.append((name, seconds))
    stock = statistics.median(rows[0][1])
    lines = ['%d concurrent live migrations, one member of each of %d '
             'groups; destination check %.1f s; median of %d rounds'
             % (GROUPS, GROUPS, DEST_CHECK_SECONDS, ROUNDS), '']
    header = ('configuration', 'median s', 'min s', 'max s', 'vs stock')
    table = [(name, '%.2f' % statistics.median(s), '%.2f' % min(s),
              '%.2f' % max(s), '%.2fx' % (statistics.median(s) / stock))
             for name, s in rows]
    lines += report.table(header, table, right=range(1, len(header)))
    report.publish('\n'.join(lines) + '\n', OUT)


if __name__ == '__main__':
    main()
