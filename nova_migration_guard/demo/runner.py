"""Run the scenarios stock and guarded, print progress and the table."""

import json
import sys
import time

from nova_migration_guard.conf import guard as guard_conf
from nova_migration_guard.demo import scenarios as scenarios_mod
from nova_migration_guard.lab.embedded import cloud as cloud_mod
from nova_migration_guard import report

STOCK = 'stock'
GUARDED = 'guarded'

GUARD_FILTERS = {'anti_affinity': (
    'nova_migration_guard.scheduler.filters.InFlightAntiAffinityFilter',)}
GUARD_WEIGHERS = {'anti_affinity': (
    'nova_migration_guard.scheduler.weighers.'
    'InFlightSoftAntiAffinityWeigher',)}


class DemoError(Exception):
    pass


def run_on_cloud(scenario, guards, progress=None):
    """Run the scenario on an embedded cloud with ``guards``; returns the
    Outcome."""
    if scenario.logic_only:
        return scenario.run_logic(guarded=bool(guards))
    if scenario.real_only:
        try:
            return scenario.run_real(bool(guards), progress or (
                lambda line: None))
        except Exception as exc:
            raise DemoError('%s (%s) did not run to the end: %s: %s' % (
                scenario.name, guards or 'stock', type(exc).__name__, exc))
    if scenario.cloud_class is None:
        attributes = dict(
            NUMBER_OF_COMPUTES=scenario.computes,
            # Configured as the README says for each guard.
            EXTRA_FILTERS=(GUARD_FILTERS.get(scenario.guard, ())
                           if guards else ()),
            EXTRA_WEIGHERS=(GUARD_WEIGHERS.get(scenario.guard, ())
                            if guards else ()))
    else:
        # Libvirt clouds: the guarded driver when guarded.
        attributes = dict(GUARDED=bool(guards))
    try:
        return cloud_mod.run_in_cloud(
            scenario.run, cloud_class=scenario.cloud_class,
            GUARDS=tuple(guards), **attributes)
    except cloud_mod.CloudRunError as exc:
        raise DemoError('%s (%s) did not run to the end: %s'
                        % (scenario.name, guards or 'stock', exc))


def real_tier_problem(real):
    """Why the real-tier scenarios do not run (None: they do)."""
    if not real:
        return 'skipped: needs --real (two libvirt daemons, QEMU)'
    from nova_migration_guard.lab.real_libvirt import cloud
    try:
        cloud.check_environment()
    except cloud.Unavailable as exc:
        return 'skipped: %s' % exc
    return None


def run(names=None, as_json=False, out=sys.stdout, progress=sys.stderr,
        real=False):
    """Run the scenarios; returns the exit code (1 if a guarded outcome is
    wrong or a scenario could not run).  ``real``: also the scenarios of
    the real hypervisor tier."""
    chosen = [s for s in scenarios_mod.SCENARIOS
              if not names or s.name in names]
    rows = []
    status = 0
    skip_real = (real_tier_problem(real)
                 if any(s.real_only for s in chosen) else None)

    def say(line):
        print(line, file=progress, flush=True)

    for i, scenario in enumerate(chosen, 1):
        row = {'scenario': scenario.name, 'title': scenario.title,
               'guard': scenario.guard}
        modes = [(STOCK, ())]
        if scenario.real_only and skip_real:
            for mode in (STOCK, GUARDED):
                row[mode] = {'summary': skip_real, 'ok': None,
                             'details': {}}
            say('[%d/%d] %s: %s' % (i, len(chosen), scenario.title,
                                    skip_real))
            rows.append(row)
            continue
        if scenario.guard in guard_conf.PLANNED_GUARDS:
            row[GUARDED] = {'summary': 'guard %s not available yet'
                                       % scenario.guard,
                            'ok': None, 'details': {}}
        else:
            modes.append((GUARDED, (scenario.guard,)))
        for mode, guards in modes:
            print('[%d/%d] %s: %s ...' % (i, len(chosen), scenario.title,
                                          mode), file=progress, flush=True)
            started = time.monotonic()
            try:
                outcome = run_on_cloud(scenario, guards, say)
            except DemoError as exc:
                row[mode] = {'summary': 'could not run: %s' % exc,
                             'ok': False, 'details': {}}
                status = 1
                continue
            row[mode] = {'summary': outcome.summary, 'ok': outcome.ok,
                         'details': outcome.details,
                         'seconds': round(time.monotonic() - started, 1)}
            print('      %s (%.0f s)' % (outcome.summary,
                                         row[mode]['seconds']),
                  file=progress, flush=True)
            if mode == GUARDED and not outcome.ok:
                status = 1
        rows.append(row)
    if as_json:
        json.dump({'scenarios': rows, 'ok': status == 0}, out, indent=2)
        out.write('\n')
    else:
        print_table(rows, out)
    return status


def print_table(rows, out):
    headers = ('scenario', 'stock Nova', 'with nova-migration-guard')
    table = [(r['title'], r[STOCK]['summary'], r[GUARDED]['summary'])
             for r in rows]
    for line in report.table(headers, table):
        print(line, file=out)
