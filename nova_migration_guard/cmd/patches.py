"""``nova-migration-guard patches {status,check,apply,revert}``."""

from nova_migration_guard.patching import series as series_mod
from nova_migration_guard.patching import tree as tree_mod


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'patches', help='show, check, apply or revert the Nova patch set',
        description='The patch set adds hook points to Nova; with the '
                    'plugin disabled patched Nova behaves as stock Nova.')
    parser.add_argument(
        'action', choices=('status', 'check', 'apply', 'revert'),
        help='status: what is applied; check: would apply succeed; '
             'apply / revert: change Nova, all or nothing')
    parser.add_argument(
        '--nova-dir', metavar='DIR',
        help='the directory holding the nova package (a source tree or a '
             'site-packages); default: the Nova installed in this Python')
    parser.add_argument(
        '--nova-version', metavar='VERSION',
        help='the Nova version of --nova-dir when its metadata lacks it')
    parser.set_defaults(func=run)


def run(args):
    """Returns the exit code; refusals raise PatchError (one line)."""
    if args.nova_dir:
        nova = series_mod.nova_tree_at(args.nova_dir, args.nova_version)
    else:
        nova = series_mod.find_installed_nova()
    series = series_mod.series_for(nova.version)
    tree = tree_mod.PatchedTree(nova, series)
    total = len(series.patches)

    if args.action == 'apply':
        tree.apply()
        return 0
    if args.action == 'revert':
        tree.revert()
        return 0

    state, count = tree.status()
    if state == tree_mod.PARTIAL:
        state = '%s (%d of %d)' % (state, count, total)
    print('nova %s at %s: series %s (%d patches): %s'
          % (nova.version, nova.root, series.name, total, state))
    if state == tree_mod.STALE:
        print(tree.stale_reason(tree.stale_stamp()))
    if args.action == 'status':
        for i, patch in enumerate(series.patches):
            mark = 'applied' if count is not None and i < count else '-'
            print('  %-8s %s' % (mark, patch.name))
        return 0 if count is not None else 1
    # check: can apply succeed (or is there nothing left to do)?
    if state in (tree_mod.INTERRUPTED, tree_mod.STALE):
        return 1
    if count is None:
        print(tree._first_conflict())
        return 1
    return 0
