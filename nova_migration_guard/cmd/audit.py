"""``nova-migration-guard audit``: find what moves left wrong in a cloud."""

import argparse
import json
import os
import sys

EXIT_CLEAN, EXIT_FINDINGS, EXIT_UNREACHABLE, EXIT_AUDIT_FAILED = 0, 1, 2, 3

FINDINGS_HELP = """\
findings (an admin reads every project through the compute API):
  anti-affinity         a hard anti-affinity server group has more than
                        max_server_per_host members on one host, counting a
                        moving member on its host and on both ends of each
                        in-flight move (migration not completed, done,
                        confirmed, reverted, error, failed or cancelled)
  stuck-migration       a migration in progress (not 'finished', which waits
                        for the user's confirm) whose record has not changed
                        for more than --stuck-after seconds, by the API's clock
  unknown-state         an instance whose latest migration ended 'error' or
                        'failed' and that is in ERROR or still has a
                        task_state (where the guest runs is unknown), or a
                        migration with a status Nova never sets
  host-mismatch         an instance whose host is not where its latest
                        migration puts it: the destination after completed,
                        done, confirmed or finished, the source after
                        reverted or cancelled, either end while in progress
  duplicate-hypervisor  one hypervisor_hostname under two compute hosts

exit status: 0 nothing found, 1 findings, 2 the cloud could not be read,
3 the audit itself failed (a defect of the audit: please report it)
"""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'audit', help='list anti-affinity violations, stuck migrations and '
                      'other leftovers of moves in a live cloud',
        description='Reads servers, server groups, migrations and '
                    'hypervisors of every project through the compute API\n'
                    '(openstacksdk, admin credentials) and lists what moves '
                    'left wrong.  Changes nothing.',
        epilog=FINDINGS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--os-cloud', metavar='NAME',
                        default=os.environ.get('OS_CLOUD'),
                        help='cloud of clouds.yaml to use (default: '
                             '$OS_CLOUD, else the OS_* environment)')
    parser.add_argument('--json', action='store_true',
                        help='print the findings as JSON on stdout')
    parser.add_argument('--stuck-after', metavar='SECONDS', type=_seconds,
                        default=3600,
                        help='a migration in progress whose record has not '
                             'changed for longer is stuck (default: '
                             '%(default)s)')
    parser.set_defaults(func=run)


def _seconds(text):
    """A number of seconds, 0 or more (argparse names the option)."""
    try:
        seconds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            'invalid value %r: a whole number of seconds, 0 or more' % text)
    if seconds < 0:
        raise argparse.ArgumentTypeError(
            'invalid value %r: seconds must be 0 or more' % text)
    return seconds


def _one_line(exc):
    text = str(exc).strip().splitlines()
    return '%s: %s' % (type(exc).__name__, text[0]) if text else (
        type(exc).__name__)


def _unreachable_errors():
    """The exceptions that mean "cannot read the cloud"."""
    from keystoneauth1 import exceptions as ksa_exc
    from openstack import exceptions as sdk_exc
    import requests
    from nova_migration_guard.audit import collect
    # Not ValueError: raised by the audit's own code, it says nothing about
    # the cloud (an answer that is not JSON is requests' JSONDecodeError, a
    # RequestException).
    return (collect.CollectError, sdk_exc.SDKException,
            ksa_exc.ClientException, requests.RequestException, OSError)


def run(args, out=None, err=None):
    out = out or sys.stdout
    err = err or sys.stderr
    cloud = args.os_cloud or '(OS_* environment)'

    def progress(text):
        print('audit %s: %s' % (cloud, text), file=err, flush=True)

    try:
        errors = _unreachable_errors()
    except ImportError as exc:
        print('nova-migration-guard audit: openstacksdk is needed: %s'
              % _one_line(exc), file=err)
        return EXIT_UNREACHABLE
    from nova_migration_guard.audit import collect
    from nova_migration_guard.audit import findings
    from nova_migration_guard import report
    try:
        progress('connecting')
        conn = collect.connect(args.os_cloud)
        inventory = collect.collect(conn, progress)
    except errors as exc:
        print('nova-migration-guard audit: cannot read cloud %s: %s'
              % (cloud, _one_line(exc)), file=err)
        return EXIT_UNREACHABLE
    except ValueError as exc:
        print('nova-migration-guard audit: the audit failed on cloud %s: %s '
              '(an error of the audit, not of the cloud: please report it)'
              % (cloud, _one_line(exc)), file=err)
        return EXIT_AUDIT_FAILED
    found = findings.audit(
        inventory.servers, inventory.server_groups, inventory.migrations,
        inventory.hypervisors, inventory.now, args.stuck_after)
    counts = {'servers': len(inventory.servers),
              'server_groups': len(inventory.server_groups),
              'migrations': len(inventory.migrations),
              'hypervisors': len(inventory.hypervisors)}
    progress('read %s' % ', '.join('%s: %d' % (name.replace('_', ' '), n)
                                   for name, n in counts.items()))
    if args.json:
        json.dump({'cloud': args.os_cloud, 'clean': not found,
                   'checked_at': inventory.now.isoformat(),
                   'counts': counts,
                   'findings': [f._asdict() for f in found]},
                  out, indent=2)
        out.write('\n')
    elif found:
        for line in report.table(('kind', 'subject', 'finding'),
                                 [tuple(f) for f in found]):
            print(line.rstrip(), file=out)
    else:
        print('clean: nothing found', file=out)
    out.flush()
    return EXIT_FINDINGS if found else EXIT_CLEAN


def main(argv=None, out=None, err=None):
    """``nova-migration-guard audit ARGS``, in-process; returns the exit
    status."""
    from nova_migration_guard.cmd import main as cmd_main
    args = cmd_main.build_parser().parse_args(
        ['audit'] + list(sys.argv[1:] if argv is None else argv))
    return run(args, out=out, err=err)
