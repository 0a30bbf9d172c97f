"""``nova-migration-guard demo``: stock Nova against guarded Nova."""

import argparse
import os
import sys
import tempfile

# The scenarios' names only: the module loads no Nova.
from nova_migration_guard.demo import scenarios


def _scenario_list():
    width = max(len(scenario.name) for scenario in scenarios.SCENARIOS)
    return 'scenarios:\n' + ''.join(
        '  %-*s  %s\n' % (width, scenario.name, scenario.title)
        for scenario in scenarios.SCENARIOS)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'demo', help='run the seed scenarios on the embedded cloud, stock '
                     'and guarded, and print what a user would see',
        description='Boots Nova\'s in-process services (API, conductor, '
                    'scheduler, placement, fake computes) on the patched '
                    'Nova installed here; needs Nova\'s test dependencies '
                    '(test-requirements.txt).',
        epilog=_scenario_list(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--json', action='store_true',
                        help='print the results as JSON on stdout')
    parser.add_argument('--real', action='store_true',
                        help='also run the real hypervisor scenarios (two '
                             'libvirt daemons and a QEMU guest on this '
                             'machine; root, after '
                             'tools/install-real-libvirt.sh; ~5 minutes)')
    names = [scenario.name for scenario in scenarios.SCENARIOS]
    parser.add_argument('--scenario', action='append', metavar='NAME',
                        choices=names,
                        help='run only this scenario (repeatable; the '
                             'names are listed below)')
    parser.add_argument('--cloud', choices=('embedded', 'real'),
                        default='embedded',
                        help='embedded (default): Nova\'s in-process '
                             'services, every scenario, about 3 minutes; '
                             'real: the real-services cloud (MariaDB, '
                             'RabbitMQ, Keystone, placement, Glance, etcd '
                             'and Nova\'s services as separate processes, '
                             'on 127.0.0.1) and its anti-affinity races, '
                             'about 15 minutes; tools/demo.sh --cloud real '
                             'installs what it needs')
    parser.add_argument('--rounds', type=_rounds, default=5,
                        metavar='N',
                        help='--cloud real: rounds of each race (default '
                             '5; the tests run 20)')
    parser.add_argument('--log-file', metavar='PATH',
                        help='where the embedded services\' own output goes '
                             '(default: services.log in a new directory of '
                             'this run under %s, printed at the start)'
                             % tempfile.gettempdir())
    parser.set_defaults(func=run)


def _rounds(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            'expected a whole number of rounds, 1 or more; got %r' % text)
    return value


def run(args):
    if args.cloud == 'real':
        return _run_real(args)
    # The in-process services log to stdout/stderr through handlers that
    # hold the original streams: keep our own copies of the terminal's file
    # descriptors for the results and progress, and point 1 and 2 at the
    # log file.
    out = os.fdopen(os.dup(1), 'w')
    progress = os.fdopen(os.dup(2), 'w')
    # A log of this run's own unless asked: a fixed file in the shared
    # temporary directory would mix every checkout's and user's runs.
    log_file = args.log_file or os.path.join(
        tempfile.mkdtemp(prefix='nova-migration-guard-demo-'), 'services.log')
    with open(log_file, 'ab') as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    os.environ.setdefault('OS_LOG_CAPTURE', '1')
    print('nova-migration-guard demo: services log to %s' % log_file,
          file=progress, flush=True)
    # Imported here: it loads Nova's test harness, which other commands
    # (patches) must not need.
    from nova_migration_guard.demo import runner
    code = runner.run(names=args.scenario, as_json=args.json, out=out,
                      progress=progress, real=args.real)
    out.flush()
    progress.flush()
    return code


def _run_real(args):
    """The real-services cloud: its services are processes with their own
    logs, so stdout and stderr stay the terminal's."""
    if args.real or args.scenario or args.log_file:
        print('nova-migration-guard demo: --real, --scenario and '
              '--log-file apply to --cloud embedded only', file=sys.stderr)
        return 2
    from nova_migration_guard.demo import real_cloud
    return real_cloud.run(rounds=args.rounds, as_json=args.json,
                          out=sys.stdout, progress=sys.stderr)
