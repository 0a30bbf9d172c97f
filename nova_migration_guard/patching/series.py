"""Locate Nova installations and the patch series that fits them."""

import dataclasses
import email.parser
import importlib.metadata
import pathlib
import re
import sys

from nova_migration_guard.patching import PatchError

# Where pbr installs patches/ (setup.cfg [files] data_files), and where it
# is in a source checkout.
_INSTALLED = pathlib.Path(sys.prefix, 'share', 'nova-migration-guard',
                          'patches')
_CHECKOUT = pathlib.Path(__file__).resolve().parents[2] / 'patches'


def patches_root():
    for root in (_CHECKOUT, _INSTALLED):
        if (root / 'nova').is_dir():
            return root
    raise PatchError('nova-migration-guard: patch data not found in %s or %s '
                     '(reinstall the package)' % (_CHECKOUT, _INSTALLED))


@dataclasses.dataclass(frozen=True)
class NovaTree:
    """A directory that holds the ``nova`` package, and its version."""
    root: pathlib.Path
    version: str


@dataclasses.dataclass(frozen=True)
class Series:
    """An ordered list of -p1 patches for one Nova release line."""
    name: str
    directory: pathlib.Path
    patches: tuple

    @property
    def files(self):
        """Every path (relative to the tree root) the series touches."""
        paths = []
        for patch in self.patches:
            for path in touched_paths(patch.read_text()):
                if path not in paths:
                    paths.append(path)
        return paths


def find_installed_nova():
    try:
        dist = importlib.metadata.distribution('nova')
    except importlib.metadata.PackageNotFoundError:
        raise PatchError('nova-migration-guard: Nova is not installed in '
                         'this Python (%s); pass --nova-dir' % sys.prefix)
    root = pathlib.Path(dist.locate_file('nova')).parent
    return NovaTree(root=root, version=dist.version)


def nova_tree_at(directory, version=None):
    """A Nova source tree or site-packages directory given on the command
    line; the version comes from its metadata unless given."""
    root = pathlib.Path(directory).resolve()
    if not (root / 'nova' / '__init__.py').is_file():
        raise PatchError('nova-migration-guard: %s does not contain the nova '
                         'package (nova/__init__.py)' % root)
    version = version or _version_from_metadata(root)
    if not version:
        raise PatchError('nova-migration-guard: cannot tell the Nova version '
                         'of %s; pass --nova-version' % root)
    return NovaTree(root=root, version=version)


def _version_from_metadata(root):
    candidates = [root / 'PKG-INFO']
    candidates += sorted(root.glob('nova-*.dist-info/METADATA'))
    candidates += sorted(root.glob('nova.egg-info/PKG-INFO'))
    for path in candidates:
        if path.is_file():
            meta = email.parser.Parser().parsestr(path.read_text())
            if meta.get('Name', '').lower() == 'nova' and meta.get('Version'):
                return meta['Version']
    return None


def available_series():
    root = patches_root() / 'nova'
    return sorted(p.name for p in root.iterdir() if (p / 'series').is_file())


def series_for(version):
    """The series for a Nova version: ``patches/nova/<major>.x``."""
    match = re.match(r'(\d+)\.', version)
    name = '%s.x' % match.group(1) if match else None
    available = available_series()
    if name not in available:
        raise PatchError(
            'nova-migration-guard: nova %s is not supported; patch series '
            'exist for nova %s' % (version, ', '.join(available)))
    directory = patches_root() / 'nova' / name
    names = [line.strip() for line in
             (directory / 'series').read_text().splitlines()
             if line.strip() and not line.lstrip().startswith('#')]
    return Series(name=name, directory=directory,
                  patches=tuple(directory / n for n in names))


# A file header of a unified diff: the old name, then the new name.
_HEADER = re.compile(r'^--- (\S+).*\n\+\+\+ (\S+)', re.MULTILINE)


def touched_paths(patch_text):
    """The -p1 paths of a unified diff (new and old names, no /dev/null)."""
    paths = []
    for pair in _HEADER.findall(patch_text):
        for path in pair:
            if path == '/dev/null':
                continue
            path = path.split('/', 1)[1]
            if path not in paths:
                paths.append(path)
    return paths
