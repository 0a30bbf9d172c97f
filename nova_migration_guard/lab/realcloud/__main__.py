"""Start, stop or run a command inside the real cloud.

    python -m nova_migration_guard.lab.realcloud up   --state-dir DIR
    python -m nova_migration_guard.lab.realcloud down --state-dir DIR
    python -m nova_migration_guard.lab.realcloud run  --state-dir DIR -- CMD...

``run`` starts the cloud, runs CMD with NMG_REALCLOUD_STATE=DIR and
OS_CLIENT_CONFIG_FILE set (OS_CLOUD=realcloud-admin), stops the cloud
whatever happened (also on SIGTERM), and exits with CMD's status.  A cloud
that cannot start is one line on stderr and exit status 2.

``--real-libvirt`` (``up``, ``run``) adds two nova-compute processes on
real libvirt daemons (``libvirt_computes``: hosts libvirt-a and libvirt-b,
TCG QEMU guests); a machine that cannot run them (root,
tools/install-real-libvirt.sh) starts the cloud without them and says why,
except under CI=true, where that is a failure.
"""

import argparse
import os
import signal
import subprocess
import sys

from nova_migration_guard.lab.realcloud import cloud as cloud_mod


def _parser():
    parser = argparse.ArgumentParser(
        prog='python -m nova_migration_guard.lab.realcloud',
        description=__doc__.splitlines()[0])
    parser.add_argument('action', choices=('up', 'down', 'run'))
    parser.add_argument('--state-dir', required=True)
    parser.add_argument('--base-port', type=int,
                        default=cloud_mod.DEFAULT_BASE_PORT)
    parser.add_argument('--computes', type=int, default=4,
                        help='fake computes (compute1..N)')
    parser.add_argument('--real-libvirt', action='store_true',
                        help='also two computes on real libvirt daemons '
                        '(libvirt-a, libvirt-b; libvirtd on 127.0.0.2 and '
                        '127.0.0.3, port 16509)')
    parser.add_argument('--guards', default='',
                        help='[migration_guard] guards at start '
                        '(comma-separated; default: none, stock Nova)')
    return parser


class _Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise _Stop('signal %d' % signum)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[argv.index('--') + 1:] if '--' in argv else []
    args = _parser().parse_args(argv[:len(argv) - len(command) - (
        1 if '--' in argv else 0)])
    if args.action == 'down':
        try:
            cloud = cloud_mod.Cloud.load(args.state_dir)
            print('stopped: %s' % (', '.join(cloud.down()) or 'nothing'))
        except cloud_mod.CloudError as exc:
            print('realcloud: %s' % exc, file=sys.stderr)
            return 2
        return 0
    if args.action == 'run' and not command:
        print('realcloud: run needs a command after --', file=sys.stderr)
        return 2
    os.makedirs(args.state_dir, exist_ok=True)
    cloud = cloud_mod.Cloud(args.state_dir, base_port=args.base_port,
                            computes=args.computes,
                            real_libvirt=args.real_libvirt)
    cloud.state['guards'] = [g.strip() for g in args.guards.split(',')
                             if g.strip()]
    signal.signal(signal.SIGTERM, _on_signal)
    status = 0
    try:
        cloud.up()
        if args.action == 'up':
            return 0
        env = dict(os.environ, NMG_REALCLOUD_STATE=cloud.state_dir,
                   OS_CLIENT_CONFIG_FILE=cloud.clouds_yaml,
                   OS_CLOUD='realcloud-admin')
        status = subprocess.call(command, env=env)
    except cloud_mod.CloudError as exc:
        print('realcloud: %s' % exc, file=sys.stderr)
        status = 2
    except (_Stop, KeyboardInterrupt) as exc:
        print('realcloud: stopping (%s)' % (exc or 'interrupted'),
              file=sys.stderr)
        status = 1
    finally:
        if args.action == 'run' or status:
            try:
                cloud.down()
            except cloud_mod.CloudError as exc:
                print('realcloud: %s' % exc, file=sys.stderr)
                status = status or 2
    return status


if __name__ == '__main__':
    sys.exit(main())
