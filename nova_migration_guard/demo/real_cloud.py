"""``nova-migration-guard demo --cloud real``: the anti-affinity races on
the real-services cloud (nova_migration_guard.lab.realcloud: MariaDB,
RabbitMQ, Keystone, placement, Glance, etcd, and Nova's API, 2 conductors,
2 schedulers and 4 fake computes as separate processes), stock Nova and
then guarded Nova (``guards = anti_affinity``: the in-flight filter, the
late check under an etcd lock), and the same table as on the embedded
cloud.

Each scenario is ``realcloud.races.MoveRace``: three members of one hard
anti-affinity group on three of the four computes, two of them moved at
once, ``rounds`` times (even rounds together, odd rounds spread).  Stock
Nova stops at the first round that breaks something (later rounds would
start from the broken state).  The computes run a fake virt driver (no
guest to run twice); what the table counts comes through Nova's API.
"""

import json
import tempfile
import textwrap
import time

from nova_migration_guard.lab.realcloud import cloud as cloud_mod
from nova_migration_guard.lab.realcloud import races
from nova_migration_guard import report

STOCK = 'stock'
GUARDED = 'guarded'
GUARDS = ('anti_affinity',)

#: (name, title, the two moves of each round)
SCENARIOS = (
    ('live-live', 'Two live migrations of one anti-affinity group at once',
     ('live', 'live')),
    ('cold-cold', 'Two cold migrations of one anti-affinity group at once',
     ('cold', 'cold')),
    ('live-cold', 'A live and a cold migration of one group at once',
     ('live', 'cold')),
    ('cold-evacuate', 'An evacuation and a cold migration of one group '
     'at once', ('cold', 'evacuate')),
    ('live-unshelve', 'An unshelve and a live migration of one group at '
     'once', ('live', 'unshelve')),
)


class _Race(races.Session, races.MoveRace):
    def __init__(self, cloud, kinds):
        races.Session.__init__(self, cloud, cloud_mod.IMAGE,
                               cloud_mod.FLAVOR)
        self.KINDS = kinds


def broken(outcome):
    """What a user would call broken after this round (None: nothing)."""
    if not races.policy_kept(outcome):
        return 'policy violated'
    if 'ERROR' in outcome['states']:
        return 'an instance in ERROR'
    if any(status and status >= 500 for status in outcome['api']):
        return 'HTTP %s' % outcome['api']
    return None


def run_race(cloud, kinds, rounds, mode, say):
    """Run one scenario's rounds; returns MoveRace.counts() plus what
    broke first."""
    with _Race(cloud, kinds) as race:
        race.start_race()
        first_broken = None
        for round_no in range(rounds):
            outcome = race.race_round(round_no)
            what = broken(outcome)
            say('      round %d (%s): %s; hosts %s; served by %s' % (
                round_no + 1, outcome['start'], '; '.join(outcome['moves']),
                ' '.join(outcome['hosts']), ' | '.join(outcome['served_by'])))
            if what and first_broken is None:
                first_broken = 'round %d: %s' % (round_no + 1, what)
            if what and mode == STOCK:
                break
        counts = race.counts()
        counts['first_broken'] = first_broken
        return counts


def summary(counts, mode):
    if counts.get('could_not_run'):
        return 'could not run: %s' % counts['could_not_run']
    text = ('%d round%s: %d violated, %d ERROR, %d 5xx, %d refused, '
            '%d crossed' % (counts['rounds'],
                            '' if counts['rounds'] == 1 else 's',
                            counts['violated'], counts['error'],
                            counts['http_5xx'], counts['refused'],
                            counts['crossed']))
    if mode == STOCK and counts['first_broken']:
        text = '%s; %s' % (counts['first_broken'], text)
    return text


#: Under the table: what its counts are.
LEGEND = ('rounds: rounds run (stock stops at the first broken one); '
          'violated: rounds that ended with two members on one host; '
          'ERROR: rounds that left an instance in ERROR; 5xx: rounds with '
          'an HTTP 5xx answer; refused: rounds in which a move did not '
          'finish (refused or failed, its member ACTIVE where it was); '
          'crossed: rounds whose two requests two different conductor '
          'processes served')


def run(rounds=5, as_json=False, out=None, progress=None):
    """Start the cloud, run every scenario stock and guarded, print the
    table, stop the cloud; returns the exit code (1 if a guarded round
    broke something or a scenario could not run, 2 if the cloud could not
    start)."""
    def say(line):
        print(line, file=progress, flush=True)

    state_dir = tempfile.mkdtemp(prefix='nova-migration-guard-realcloud-')
    cloud = cloud_mod.Cloud(state_dir)
    say('nova-migration-guard demo --cloud real: the cloud lives in %s '
        '(logs/ per service)' % state_dir)
    started = time.monotonic()
    try:
        cloud.up()
    except cloud_mod.CloudError as exc:
        say('realcloud: %s' % exc)
        _down(cloud, say)
        return 2
    rows = {name: {'scenario': name, 'title': title}
            for name, title, _ in SCENARIOS}
    status = 0
    try:
        for mode, guards in ((STOCK, ()), (GUARDED, GUARDS)):
            if list(cloud.state['guards']) != list(guards):
                cloud.restart_nova(list(guards))
            for i, (name, title, kinds) in enumerate(SCENARIOS, 1):
                say('[%d/%d] %s: %s ...' % (i, len(SCENARIOS), title, mode))
                began = time.monotonic()
                try:
                    counts = run_race(cloud, kinds, rounds, mode, say)
                except Exception as exc:
                    counts = {'could_not_run': '%s: %s' % (
                        type(exc).__name__, exc)}
                    status = 1
                counts['seconds'] = round(time.monotonic() - began, 1)
                if mode == GUARDED and counts.get('first_broken'):
                    status = 1
                rows[name][mode] = counts
                say('      %s (%.0f s)' % (summary(counts, mode),
                                           counts['seconds']))
    finally:
        _down(cloud, say)
    say('demo --cloud real: %.0f s in all' % (time.monotonic() - started))
    for row in rows.values():   # a mode that was not reached
        for mode in (STOCK, GUARDED):
            row.setdefault(mode, {'could_not_run': 'not reached'})
    table = [rows[name] for name, _, _ in SCENARIOS]
    if as_json:
        json.dump({'cloud': 'real', 'rounds': rounds, 'scenarios': table,
                   'ok': status == 0}, out, indent=2)
        out.write('\n')
    else:
        for line in report.table(
                ('scenario (%d rounds each)' % rounds, 'stock Nova',
                 'with nova-migration-guard'),
                [(r['title'], summary(r[STOCK], STOCK),
                  summary(r[GUARDED], GUARDED)) for r in table]):
            print(line, file=out)
        print('\n' + textwrap.fill(LEGEND, 79), file=out)
    return status


def _down(cloud, say):
    try:
        stopped = cloud.down()
        say('realcloud stopped: %d processes' % len(stopped))
    except cloud_mod.CloudError as exc:
        say('realcloud: %s' % exc)
