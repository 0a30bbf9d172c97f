"""Benchmark: what does the guard's server-group lock cost concurrent moves?

Run with an interpreter that has Nova (patched) and its test dependencies,
from the repository root::

    PYTHONPATH=. .tox/functional/bin/python benchmarks/concurrent_groups.py

On the embedded cloud, rounds of 8 live migrations started at once, each
round timed from the first API call to the last migration 'completed'.
The destination check of the virt driver takes DEST_CHECK_SECONDS (a real
libvirt destination check takes a few hundred ms; the fake driver's takes
none).  Two scenarios:

* unrelated groups (12 computes): 8 anti-affinity groups of 2 members;
  every round moves one member of each group (scheduler-chosen
  destinations).  Do moves of different groups wait for each other?
* one group drained (16 computes): one group of 8 members; every round
  moves all 8 at once, each to a named free host, as a host drain or an
  operator's script does.  Do moves of one group wait for each other?

Configurations, in the same run:

* stock: no guard (Nova's own checks only);
* guarded: ``[migration_guard] guards = anti_affinity`` and the in-flight
  filter, as the README configures it;
* guarded, late check only: the same without the filter, to tell the two
  costs apart;
* lock over the whole check (before): guarded, but the group lock is held
  across the whole destination check (driver check, RPC to the source,
  NUMA/PCI claims), as the guard did before it released the lock once
  the move is published;
* one lock for all (control): guarded, but every group's lock has the
  same name, i.e. what a global lock would cost.

The tables go to stdout and to ``benchmarks/out/concurrent_groups.txt``;
progress lines go to stderr.
"""

import logging
import os
import statistics
import time

import fixtures
from nova.virt import fake

from nova_migration_guard.demo import runner
from nova_migration_guard.lab.embedded import cloud as cloud_mod
from nova_migration_guard import report

ROUNDS = 5
MOVES = 8
DEST_CHECK_SECONDS = 0.5
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'out',
                   'concurrent_groups.txt')


class SlowDestinationCheckDriver(fake.MediumFakeDriver):
    """The fake driver, with a destination check that takes time."""

    def check_can_live_migrate_destination(self, *args, **kwargs):
        time.sleep(DEST_CHECK_SECONDS)
        return super().check_can_live_migrate_destination(*args, **kwargs)


def lock_over_whole_check(cloud):
    """The lock scope before: never released before Nova's body ran."""
    cloud.useFixture(fixtures.MonkeyPatch(
        'nova_migration_guard.anti_affinity.late_check._visible',
        lambda migration, host, nodename: False))


def one_lock_for_all(cloud):
    """Every group shares one lock, held over the whole check."""
    lock_over_whole_check(cloud)
    cloud.useFixture(fixtures.MonkeyPatch(
        'nova_migration_guard.anti_affinity.late_check.lock_name',
        lambda group_uuid: 'server-group.all'))


def unrelated_groups(cloud, round_no, state):
    """8 groups of 2: one member of each group moves, destination chosen by
    the scheduler."""
    if not state:
        state['groups'] = [
            cloud.boot_servers_in_group(
                cloud.create_anti_affinity_group('bench-%d' % g), 2)
            for g in range(MOVES)]
    return [(members[round_no % 2], None) for members in state['groups']]


def one_group_drained(cloud, round_no, state):
    """One group of 8: every member moves at once to its own named free
    host."""
    if not state:
        state['members'] = cloud.boot_servers_in_group(
            cloud.create_anti_affinity_group('bench-drain'), MOVES)
    occupied = {cloud.server_host(s) for s in state['members']}
    free = sorted(({'host%d' % i
                    for i in range(1, cloud.NUMBER_OF_COMPUTES + 1)} -
                   occupied), key=lambda h: int(h[4:]))
    return list(zip(state['members'], free))


SCENARIOS = (
    # title, moves per round, computes, configurations:
    #   (name, guards, in-flight filter, extra setup)
    ('unrelated groups: one member of each of 8 groups of 2, '
     'scheduler-chosen destinations', unrelated_groups, 12, (
         ('stock', (), False, None),
         ('guarded', ('anti_affinity',), True, None),
         ('guarded, late check only', ('anti_affinity',), False, None),
         ('one lock for all (control)', ('anti_affinity',), True,
          one_lock_for_all))),
    ('one group drained: all 8 members of one group at once, each to a '
     'named free host', one_group_drained, 16, (
         ('stock', (), False, None),
         ('guarded', ('anti_affinity',), True, None),
         ('guarded, late check only', ('anti_affinity',), False, None),
         ('lock over the whole check (before)', ('anti_affinity',), True,
          lock_over_whole_check))),
)


def run_rounds(cloud, moves_of, setup):
    if setup is not None:
        setup(cloud)
    cloud.flags(instances=-1, cores=-1, ram=-1, group='quota')
    state = {}
    seconds = []
    for round_no in range(ROUNDS):
        moves = moves_of(cloud, round_no, state)
        start = time.monotonic()
        answers = cloud.run_concurrently(
            *[lambda s=s, h=h: cloud.live_migrate(s, host=h)
              for s, h in moves])
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        for server, _host in moves:
            cloud.wait_for_migration(server, timeout=120)
        seconds.append(time.monotonic() - start)
        report.progress('    round %d: %.2f s' % (round_no + 1, seconds[-1]))
    return seconds


def main():
    # Nova's thread pools log their shutdown at INFO outside the cloud's
    # log capture; keep stderr for progress.
    logging.getLogger('nova.thread_pool_factory').setLevel(logging.WARNING)
    lines = []
    total = sum(len(configurations) for *_, configurations in SCENARIOS)
    done = 0
    for title, moves_of, computes, configurations in SCENARIOS:
        rows = []
        for name, guards, in_flight_filter, setup in configurations:
            done += 1
            report.progress('[%d/%d] %s; %s: %d rounds ...' % (
                done, total, title.split(':')[0], name, ROUNDS))
            seconds = cloud_mod.run_in_cloud(
                lambda cloud, moves_of=moves_of, setup=setup: run_rounds(
                    cloud, moves_of, setup),
                NUMBER_OF_COMPUTES=computes,
                COMPUTE_DRIVER=SlowDestinationCheckDriver,
                TRACK_INSTANCE_CHANGES=False,
                GUARDS=guards,
                EXTRA_FILTERS=(runner.GUARD_FILTERS['anti_affinity']
                               if in_flight_filter else ()))
            rows.append((name, seconds))
        stock = statistics.median(rows[0][1])
        lines += ['%d concurrent live migrations, %s; %d computes; '
                  'destination check %.1f s; median of %d rounds'
                  % (MOVES, title, computes, DEST_CHECK_SECONDS, ROUNDS), '']
        header = ('configuration', 'median s', 'min s', 'max s', 'vs stock')
        table = [(name, '%.2f' % statistics.median(s), '%.2f' % min(s),
                  '%.2f' % max(s), '%.2fx' % (statistics.median(s) / stock))
                 for name, s in rows]
        lines += report.table(header, table, right=range(1, len(header)))
        lines.append('')
    report.publish('\n'.join(lines), OUT)


if __name__ == '__main__':
    main()
