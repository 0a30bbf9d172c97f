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
class Release:
    """A Nova release line that has a patch series, patches/nova/<series>."""
    series: str
    openstack: str
    tested: str

    def __str__(self):
        return 'nova %s (%s, tested on %s)' % (self.series, self.openstack,
                                               self.tested)


# Every supported Nova release line: the command picks the row of the
# installed Nova's major version, and refuses any other version.  A new
# release line is a new row here plus its directory under patches/nova/.
RELEASES = (
    Release('34.x', '2026.2', '34.0.0'),
    Release('33.x', '2026.1, SLURP', '33.0.2'),
    Release('32.x', '2025.2', '32.2.1'),
    Release('31.x', '2025.1, SLURP', '31.3.1'),
    Release('21.x', '2020.1 Ussuri, the XenAPI fix only', '21.2.4'),
)


@dataclasses.dataclass(frozen=True)
class Series:
    """An ordered list of -p1 patches for one Nova release line."""
    name: str
    directory: pathlib.Path
    patches: tuple
    release: Release

    @property
    def files(self):
        """Every path (relative to the tree root) the series touches."""
        paths = []
        for patch in self.patches:
            for path in touched_paths(patch.read_text()):
                if path not in paths:
                    paths.append(path)
        return paths

    @property
    def created(self):
        """The paths the series adds to Nova (patches from /dev/null)."""
        paths = []
        for patch in self.patches:
            for old, new in _HEADER.findall(patch.read_text()):
                path = new.split('/', 1)[1]
                if old == '/dev/null' and path not in paths:
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


def release_of(version):
    """The supported release line of a Nova version, or None."""
    major = version.split('.', 1)[0]
    for release in RELEASES:
        if release.series == '%s.x' % major:
            return release
    return None


def series_for(version):
    """The series for a Nova version: ``patches/nova/<major>.x``."""
    release = release_of(version)
    if release is None:
        raise PatchError(
            'nova-migration-guard: nova %s is not supported; supported '
            'releases: %s' % (version, '; '.join(map(str, RELEASES))))
    directory = patches_root() / 'nova' / release.series
    names = [line.strip() for line in
             (directory / 'series').read_text().splitlines()
             if line.strip() and not line.lstrip().startswith('#')]
    return Series(name=release.series, directory=directory,
                  patches=tuple(directory / n for n in names),
                  release=release)


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
