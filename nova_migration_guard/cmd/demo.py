"""``nova-migration-guard demo``: stock Nova against guarded Nova."""

import os
import tempfile


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'demo', help='run the seed scenarios on the embedded cloud, stock '
                     'and guarded, and print what a user would see',
        description='Boots Nova\'s in-process services (API, conductor, '
                    'scheduler, placement, fake computes) on the patched '
                    'Nova installed here; needs Nova\'s test dependencies '
                    '(test-requirements.txt).')
    parser.add_argument('--json', action='store_true',
                        help='print the results as JSON on stdout')
    parser.add_argument('--real', action='store_true',
                        help='also run the real hypervisor scenarios (two '
                             'libvirt daemons and a QEMU guest on this '
                             'machine; root, after '
                             'tools/install-real-libvirt.sh; ~5 minutes)')
    parser.add_argument('--scenario', action='append', metavar='NAME',
                        help='run only this scenario (repeatable)')
    parser.add_argument('--log-file', metavar='PATH',
                        default=os.path.join(tempfile.gettempdir(),
                                             'nova-migration-guard-demo.log'),
                        help='where the embedded services\' own output goes '
                             '(default: %(default)s)')
    parser.set_defaults(func=run)


def run(args):
    # The in-process services log to stdout/stderr through handlers that
    # hold the original streams: keep our own copies of the terminal's file
    # descriptors for the results and progress, and point 1 and 2 at the
    # log file.
    out = os.fdopen(os.dup(1), 'w')
    progress = os.fdopen(os.dup(2), 'w')
    with open(args.log_file, 'ab') as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    os.environ.setdefault('OS_LOG_CAPTURE', '1')
    print('nova-migration-guard demo: services log to %s' % args.log_file,
          file=progress, flush=True)
    # Imported here: it loads Nova's test harness, which other commands
    # (patches) must not need.
    from nova_migration_guard.demo import runner
    code = runner.run(names=args.scenario, as_json=args.json, out=out,
                      progress=progress, real=args.real)
    out.flush()
    progress.flush()
    return code
