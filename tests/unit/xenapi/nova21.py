"""Run modules of a patched Nova 21.2.4 tree on Python 3.11, beside Nova 34.

Nova 21 as a whole does not import on Python 3.11 next to the installed
Nova 34 (same package name, removed modules, older dependencies).  The
XenAPI fix only needs a few of its modules, so :class:`Nova21` executes
those files from the tree (``NMG_NOVA21_TREE``, see
``tools/check-nova21-series.sh``) as private module objects and resolves
their imports itself; ``sys.modules`` and Nova 34 are left untouched, so
other tests in the same process are unaffected.  How a name imported by a
Nova 21 module resolves:

* ``nova.virt.xenapi.*``, ``nova.objects.migrate_data``,
  ``nova.conf.xenserver``, ``nova.privsep.xenapi`` and any ``nova`` module
  that Nova 34 no longer has: the Nova 21 file from the tree, executed by
  this loader (the real patched code; package ``__init__`` files of these
  are not executed: ``nova/virt/xenapi/__init__.py`` only re-exports the
  driver);
* any other ``nova`` module (``nova.exception``, ``nova.i18n``,
  ``nova.utils``, ``nova.objects.fields``, ``nova.network.model``, ...):
  the installed Nova 34 module, a real dependency;
* ``nova.conf``: Nova 34's, except that ``CONF.xenserver`` is a private
  ConfigOpts carrying Nova 21's own ``[xenserver]`` options
  (``Nova21.conf``), so tests can override them without touching the global
  configuration;
* ``nova.objects`` / ``nova.objects.base``: Nova 34's, except that the
  objects of Nova 21's ``migrate_data.py`` (``XenapiLiveMigrateData`` ...)
  are registered in a registry private to the loader instead of oslo's
  process-wide one (where they would clash with Nova 34's objects);
  ``obj_to_primitive``/``obj_make_compatible`` run unchanged;
* ``nova.compute.api`` and ``nova.compute.rpcapi``: Nova 34's, except
  ``API`` and ``ComputeAPI`` (:data:`RPC_CLIENTS`): XenAPIDriver.__init__
  builds them (VMOps for a reboot path, ResourcePool for host aggregates)
  and Nova 34's would need an RPC transport, so Nova 21 code gets
  placeholders that fail if used -- the tested paths never use them;
* ``oslo_utils.importutils``: the real one, except that ``nova.*`` class
  paths (the image handler) resolve through this loader;
* ``os_xenapi.*``: the stubs of :mod:`fake_xapi` -- with
  :class:`fake_xapi.FakeSession`, what the tests stub: the XenAPI client
  library and session, since there is no XenServer here (besides them only
  the unused RPC clients above are placeholders);
* everything else (oslo libraries, eventlet, six, ...): the installed
  package.

:func:`stock_sources` gives the unpatched files of the same tree: the
series reverted on copies by the package's own patch machinery, so one
tree yields both a patched and a stock Nova 21 for mixed-version tests.
"""

import builtins
import importlib
import importlib.util
import linecache
import os
import pathlib
import shutil
import sys
import tempfile
import types

from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslo_versionedobjects import base as ovo_base
from oslotest import base

from nova_migration_guard.patching import series as series_mod
from nova_migration_guard.patching import tree as tree_mod
from tests.unit.xenapi import fake_xapi

ENV = 'NMG_NOVA21_TREE'
NOVA_VERSION = '21.2.4'

# Nova 34 RPC clients that Nova 21 constructors build but the live
# migration path never calls: replaced by placeholders.
RPC_CLIENTS = (('nova.compute.api', 'API'),
               ('nova.compute.rpcapi', 'ComputeAPI'))

# Prefixes of the Nova names always taken from the Nova 21 tree.
NOVA21_ONLY = ('nova.virt.xenapi', 'nova.objects.migrate_data',
               'nova.conf.xenserver', 'nova.privsep.xenapi')


def tree_from_env(testcase):
    """The patched tree named by NMG_NOVA21_TREE; skip the test (printing
    why) when unset, fail instead when CI=true or when the tree is not a
    nova 21.2.4 tree carrying the whole 21.x series."""
    path = os.environ.get(ENV)
    if not path:
        reason = ('%s is not set: run tools/check-nova21-series.sh and export '
                  '%s=<the patched tree it prints> to run the Nova 21 XenAPI '
                  'tests' % (ENV, ENV))
        if os.environ.get('CI', '').lower() == 'true':
            testcase.fail(reason + ' (required when CI=true)')
        print('SKIP: ' + reason, file=sys.stderr)
        testcase.skipTest(reason)
    root = pathlib.Path(path)
    if not (root / 'nova' / 'virt' / 'xenapi' / 'volume_utils.py').is_file():
        testcase.fail('%s=%s holds no nova/virt/xenapi: not a nova %s tree'
                      % (ENV, path, NOVA_VERSION))
    series = series_mod.series_for(NOVA_VERSION)
    state, _count = tree_mod.PatchedTree(
        series_mod.NovaTree(root, NOVA_VERSION), series).status()
    if state != tree_mod.APPLIED:
        testcase.fail('%s=%s: series %s is %s, not applied (run '
                      'tools/check-nova21-series.sh)'
                      % (ENV, path, series.name, state))
    return root


_STOCK_CACHE = {}


def stock_sources(root):
    """{relative path: text} of the series' files in stock Nova 21: copies
    of them reverted with the package's patch machinery (PatchedTree)."""
    root = pathlib.Path(root)
    if root not in _STOCK_CACHE:
        series = series_mod.series_for(NOVA_VERSION)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix='nmg-nova21-stock-'))
        try:
            for rel in series.files + ['nova/__init__.py']:
                if (root / rel).is_file():
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(root / rel, tmp / rel)
            stock = series_mod.NovaTree(tmp, NOVA_VERSION)
            tree_mod.PatchedTree(stock, series).revert(
                progress=lambda *a: None)
            _STOCK_CACHE[root] = {
                rel: (tmp / rel).read_text() for rel in series.files
                if (tmp / rel).is_file()}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _STOCK_CACHE[root]


class _Overlay(types.ModuleType):
    """A module that answers ``overrides`` and defers to ``real``."""

    def __init__(self, name, real, overrides):
        super().__init__(name)
        self._real = real
        self.__dict__.update(overrides)

    def __getattr__(self, attr):
        if attr.startswith('__'):
            raise AttributeError(attr)
        return getattr(self._real, attr)


class _Package(types.ModuleType):
    """A package as Nova 21 code sees it: submodules through the loader,
    other attributes from the real (Nova 34) package if any."""

    def __init__(self, loader, name, real=None):
        super().__init__(name)
        self.__path__ = []
        self._loader = loader
        self._real = real

    def __getattr__(self, attr):
        if attr.startswith('__'):
            raise AttributeError(attr)
        try:
            value = self._loader.module('%s.%s' % (self.__name__, attr))
        except ModuleNotFoundError:
            if self._real is None or not hasattr(self._real, attr):
                raise AttributeError('%s has no attribute %s'
                                     % (self.__name__, attr))
            value = getattr(self._real, attr)
        setattr(self, attr, value)
        return value


class _ObjectsPackage(_Package):
    """nova.objects: Nova 21's migrate_data objects first."""

    def __getattr__(self, attr):
        classes = self._loader.registry.classes
        if attr in classes:
            return classes[attr]
        return super().__getattr__(attr)


class _Registry(object):
    """NovaObjectRegistry for Nova 21 objects, private to one loader."""

    def __init__(self):
        self.classes = {}

    def register(self, cls):
        ovo_base._make_class_properties(cls)
        self.classes[cls.obj_name()] = cls
        return cls

    def register_if(self, condition):
        def wrap(cls):
            if condition:
                return self.register(cls)
            ovo_base._make_class_properties(cls)
            return cls
        return wrap


def _unavailable(name):
    class Unavailable(object):
        """A Nova 34 RPC-backed API that Nova 21 code builds but the tested
        paths never use: building it works, using it fails loudly."""

        def __init__(self, *args, **kwargs):
            pass

        def __getattr__(self, attr):
            raise NotImplementedError(
                'nova21 loader: %s.%s is not available to Nova 21 code in '
                'these tests' % (name, attr))

    Unavailable.__name__ = name.rpartition('.')[2]
    return Unavailable


class _ConfProxy(object):
    """nova.conf.CONF for Nova 21 code: [xenserver] from a private
    ConfigOpts, everything else from Nova 34's CONF."""

    def __init__(self, own, groups, fallback):
        self._own = own
        self._groups = groups
        self._fallback = fallback

    def __getattr__(self, name):
        if name in self._groups:
            return getattr(self._own, name)
        return getattr(self._fallback, name)


class Nova21(object):
    """One load of Nova 21 modules from a tree (optionally with some files'
    text replaced, e.g. by :func:`stock_sources`)."""

    def __init__(self, root, sources=None, label='patched'):
        self.root = pathlib.Path(root)
        self.sources = dict(sources or {})
        self.label = label
        self._cache = {}
        self.registry = _Registry()
        self._builtins = dict(builtins.__dict__, __import__=self._import)

        self.conf = cfg.ConfigOpts()
        self._cache.update(fake_xapi.os_xenapi_modules())
        real_conf = importlib.import_module('nova.conf')
        xenserver_opts = self.module('nova.conf.xenserver')
        xenserver_opts.register_opts(self.conf)
        self._cache['nova.conf'] = _Overlay('nova.conf', real_conf, {
            'CONF': _ConfProxy(self.conf, {'xenserver'}, real_conf.CONF)})
        real_base = importlib.import_module('nova.objects.base')
        self._cache['nova.objects.base'] = _Overlay(
            'nova.objects.base', real_base,
            {'NovaObjectRegistry': self.registry})
        self._cache['nova.objects'] = _ObjectsPackage(
            self, 'nova.objects', importlib.import_module('nova.objects'))
        for dotted, name in RPC_CLIENTS:
            self._cache[dotted] = _Overlay(
                dotted, importlib.import_module(dotted),
                {name: _unavailable('%s.%s' % (dotted, name))})
        real_importutils = importlib.import_module('oslo_utils.importutils')
        self._importutils = _Overlay(
            'oslo_utils.importutils', real_importutils, {
                'import_class': self._import_class,
                'import_object': self._import_object})
        self.module('nova.objects.migrate_data')

    # -- resolving names ----------------------------------------------------

    def module(self, dotted):
        """The module object Nova 21 code gets for ``dotted``."""
        if dotted in self._cache:
            return self._cache[dotted]
        if dotted.partition('.')[0] == 'os_xenapi':
            module = (_Package(self, dotted)
                      if dotted in ('os_xenapi', 'os_xenapi.client')
                      else fake_xapi.unused_os_xenapi_module(dotted))
        elif dotted.startswith(NOVA21_ONLY) or not _in_nova34(dotted):
            module = self._load_from_tree(dotted)
        else:
            real = importlib.import_module(dotted)
            module = (_Package(self, dotted, real)
                      if hasattr(real, '__path__') else real)
        self._cache[dotted] = module
        return module

    def _load_from_tree(self, dotted):
        rel = dotted.replace('.', '/')
        if (self.root / rel / '__init__.py').is_file():
            return _Package(self, dotted)
        rel += '.py'
        filename = str(self.root / rel)
        if rel in self.sources:
            # Text that differs from the file: tracebacks must show it.
            text = self.sources[rel]
            filename = '%s (%s)' % (filename, self.label)
            linecache.cache[filename] = (len(text), None,
                                         text.splitlines(True), filename)
        elif (self.root / rel).is_file():
            text = (self.root / rel).read_text()
        else:
            raise ModuleNotFoundError(
                'nova21 loader: no module %s in Nova 34 nor in %s'
                % (dotted, self.root), name=dotted)
        module = types.ModuleType(dotted)
        module.__file__ = filename
        module.__package__ = dotted.rpartition('.')[0]
        module.__dict__['__builtins__'] = self._builtins
        self._cache[dotted] = module
        try:
            exec(compile(text, module.__file__, 'exec'), module.__dict__)
        except BaseException:
            del self._cache[dotted]
            raise
        return module

    def _import(self, name, globals=None, locals=None, fromlist=(),
                level=0):
        if level:
            package = (globals or {}).get('__package__') or ''
            base = package.rsplit('.', level - 1)[0] if level > 1 \
                else package
            name = '%s.%s' % (base, name) if name else base
        top = name.partition('.')[0]
        if name == 'oslo_utils' and fromlist and 'importutils' in fromlist:
            return _Overlay('oslo_utils', importlib.import_module(name),
                            {'importutils': self._importutils})
        if top not in ('nova', 'os_xenapi'):
            return builtins.__import__(name, globals, locals, fromlist or (),
                                       0)
        module = self.module(name)
        if not fromlist:
            parts = name.split('.')
            for i in range(1, len(parts)):
                self.module('.'.join(parts[:i]))
            return self.module(top)
        for item in fromlist:
            try:
                getattr(module, item)
            except AttributeError:
                raise ImportError('nova21 loader: cannot import %s from %s'
                                  % (item, name), name=name)
        return module

    def _import_class(self, import_str):
        module, _sep, cls = import_str.rpartition('.')
        if module.partition('.')[0] == 'nova':
            return getattr(self.module(module), cls)
        return importlib.import_module(module).__dict__[cls]

    def _import_object(self, import_str, *args, **kwargs):
        return self._import_class(import_str)(*args, **kwargs)

    # -- objects over "RPC" -------------------------------------------------

    def object_class(self, name):
        return self.registry.classes[name]

    def receive(self, obj):
        """``obj`` as this Nova receives it over RPC from another Nova: sent
        at the sender's version, backported by obj_to_primitive (what the
        conductor does for an older receiver), rebuilt with this Nova's
        class."""
        cls = self.object_class(obj.obj_name())
        if _vtuple(obj.VERSION) > _vtuple(cls.VERSION):
            primitive = obj.obj_to_primitive(target_version=cls.VERSION)
        else:
            primitive = obj.obj_to_primitive()
        return cls._obj_from_primitive(
            None, primitive['nova_object.version'], primitive)


def _vtuple(version):
    return tuple(int(x) for x in version.split('.'))


def _in_nova34(dotted):
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


_LOADERS = {}


def patched(root):
    """The patched Nova 21 of ``root``, loaded once per process."""
    key = ('patched', pathlib.Path(root))
    if key not in _LOADERS:
        _LOADERS[key] = Nova21(root, label='patched')
    return _LOADERS[key]


def stock(root):
    """Stock Nova 21 from the same tree (the series reverted), loaded once
    per process."""
    key = ('stock', pathlib.Path(root))
    if key not in _LOADERS:
        _LOADERS[key] = Nova21(root, sources=stock_sources(root),
                               label='stock')
    return _LOADERS[key]


class Nova21TestCase(base.BaseTestCase):
    """Tests that run Nova 21 code from NMG_NOVA21_TREE (skipped without
    it, failing instead when CI=true).  ``self.patched`` and
    ``self.stock`` are the patched and the stock Nova 21 of that tree;
    their private ``[xenserver]`` options are reset after each test."""

    def setUp(self):
        super().setUp()
        self.tree = tree_from_env(self)
        self.patched = patched(self.tree)
        self.useFixture(config_fixture.Config(self.patched.conf))

    @property
    def stock(self):
        nova = stock(self.tree)
        if not getattr(self, '_stock_conf_fixture', False):
            self.useFixture(config_fixture.Config(nova.conf))
            self._stock_conf_fixture = True
        return nova
