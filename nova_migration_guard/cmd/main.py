"""The ``nova-migration-guard`` command."""

import argparse
import sys

from nova_migration_guard.cmd import audit
from nova_migration_guard.cmd import demo
from nova_migration_guard.cmd import patches
from nova_migration_guard.patching import PatchError


def build_parser():
    parser = argparse.ArgumentParser(
        prog='nova-migration-guard',
        description='Guards that keep Nova\'s instance moves safe.')
    subparsers = parser.add_subparsers(dest='command', required=True)
    audit.add_parser(subparsers)
    demo.add_parser(subparsers)
    patches.add_parser(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PatchError as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
