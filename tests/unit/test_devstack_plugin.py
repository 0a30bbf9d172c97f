"""The DevStack plugin (devstack/plugin.sh) run phase by phase in a fake
DevStack layout, as stack.sh, unstack.sh and clean.sh source it.

The fake layout: a ``functions`` file with DevStack's ini helpers (the
semantics of DevStack's inc/ini-config) and stand-ins of the few
functions-common helpers the plugin calls; Nova's config files as DevStack
writes them; a virtualenv whose ``pip`` only records its calls, whose
``python`` sees a copy of the installed (stock) Nova's patched files as
"Nova's checkout", and whose ``nova-migration-guard`` records its calls and
runs the real command.  So the patch set really is applied to, and reverted
from, the copy.
"""

import hashlib
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from oslo_config import cfg
import testtools

from nova_migration_guard import conf as nmg_conf
from nova_migration_guard.patching import series as series_mod

REPO = pathlib.Path(__file__).resolve().parents[2]
PLUGIN = REPO / 'devstack' / 'plugin.sh'
SETTINGS = REPO / 'devstack' / 'settings'

NOVA_VERSION = importlib.metadata.version('nova')
SERIES = series_mod.series_for(NOVA_VERSION)
INSTALLED_NOVA = pathlib.Path(
    importlib.metadata.distribution('nova').locate_file('nova'))

FILTER = 'nova_migration_guard.scheduler.filters.InFlightAntiAffinityFilter'
WEIGHER = ('nova_migration_guard.scheduler.weighers.'
           'InFlightSoftAntiAffinityWeigher')
GUARDED_DRIVER = 'migration_guard.GuardedLibvirtDriver'
ALL_GUARDS = 'anti_affinity,migration_outcome,host_identity,convergence'
DEVSTACK_FILTERS = ('ComputeFilter,ComputeCapabilitiesFilter,'
                    'ImagePropertiesFilter,ServerGroupAntiAffinityFilter,'
                    'ServerGroupAffinityFilter,SameHostFilter,'
                    'DifferentHostFilter')

# A stand-in for DevStack's ``functions`` (see the file).
FUNCTIONS = pathlib.Path(__file__).with_name('fake_devstack') / 'functions'


# Nova's config files as DevStack writes them before the post-config phase
# (abridged): nova.conf, nova-compute's copy of it from an earlier stack.sh
# run, and the cell conductor's nova_cell1.conf.
NOVA_CONF = """[DEFAULT]
debug = True
compute_driver = libvirt.LibvirtDriver
state_path = /opt/stack/data/nova

[filter_scheduler]
enabled_filters = %s
track_instance_changes = False

[libvirt]
virt_type = qemu
""" % DEVSTACK_FILTERS

NOVA_CPU_CONF = NOVA_CONF + """
[workarounds]
disable_group_policy_check_upcall = True
"""

NOVA_CELL1_CONF = """
[database]
connection = mysql+pymysql://root:secret@127.0.0.1/nova_cell1

[conductor]
workers = 2
"""

CONTROLLER_SERVICES = ('key,n-api,n-api-meta,n-sch,n-super-cond,'
                       'n-cond-cell1,n-cpu,placement-api,etcd3,mysql,rabbit')
COMPUTE_SERVICES = 'n-cpu,placement-client,ovn-controller'


def _digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes())
            .hexdigest()
            for p in sorted(root.rglob('*'))
            if p.is_file() and '__pycache__' not in p.parts}


def read_ini(path):
    """{section: [(option, value), ...]} with repeated options kept."""
    sections = {}
    current = None
    for line in pathlib.Path(path).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith('#'):
            continue
        if stripped.startswith('['):
            current = sections.setdefault(stripped[1:-1], [])
            continue
        key, _, value = stripped.partition('=')
        current.append((key.strip(), value.strip()))
    return sections


class FakeDevstack(object):
    """A DevStack layout in a temporary directory (see the module doc)."""

    def __init__(self, tmp):
        self.tmp = pathlib.Path(tmp)
        self.etc = self.tmp / 'etc' / 'nova'
        self.etc.mkdir(parents=True)
        self.nova_conf = self.etc / 'nova.conf'
        self.cpu_conf = self.etc / 'nova-cpu.conf'
        self.cell_conf = self.etc / 'nova_cell1.conf'
        self.nova_conf.write_text(NOVA_CONF)
        self.cpu_conf.write_text(NOVA_CPU_CONF)
        self.cell_conf.write_text(NOVA_CELL1_CONF)
        self.originals = {p: p.read_text() for p in self.confs}

        self.functions = FUNCTIONS
        self.calls = self.tmp / 'calls.log'
        self.calls.write_text('')
        self.requirements = self.tmp / 'requirements'
        self.requirements.mkdir()
        (self.requirements / 'upper-constraints.txt').write_text(
            'tooz===9.1.0\n')

        # "Nova's checkout": the files the series touches, stock.
        self.nova_tree = self.tmp / 'nova-checkout'
        for rel in SERIES.files + ['nova/__init__.py']:
            src = INSTALLED_NOVA.parent / rel
            if src.is_file():
                dst = self.nova_tree / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        self.stock_digest = _digest(self.nova_tree)

        self.venv = self.tmp / 'venv'
        bin_dir = self.venv / 'bin'
        bin_dir.mkdir(parents=True)
        self._script(bin_dir / 'pip', 'echo "pip $*" >> "%s"\n' % self.calls)
        self._script(bin_dir / 'python',
                     'PYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" '
                     'exec "%s" "$@"\n'
                     % (self.nova_tree, sys.executable))
        self._script(bin_dir / 'nova-migration-guard',
                     'echo "nova-migration-guard $*" >> "%s"\n'
                     'exec "%s" -m nova_migration_guard.cmd.main "$@"\n'
                     % (self.calls, sys.executable))

        self.env = {
            'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
            'HOME': str(self.tmp),
            'LC_ALL': 'C',
            'PYTHONPATH': os.environ.get('PYTHONPATH', ''),
            'DEST': str(self.tmp / 'opt' / 'stack'),
            'DEVSTACK_VENV': str(self.venv),
            'REQUIREMENTS_DIR': str(self.requirements),
            'NOVA_CONF_DIR': str(self.etc),
            'NOVA_CONF': str(self.nova_conf),
            'NOVA_CPU_CONF': str(self.cpu_conf),
            'NOVA_NUM_CELLS': '1',
            'ENABLED_SERVICES': CONTROLLER_SERVICES,
            'VIRT_DRIVER': 'libvirt',
            'SERVICE_HOST': '192.0.2.10',
            'ETCD_PORT': '2379',
            'FAKE_DEVSTACK_CALLS': str(self.calls),
        }

    @staticmethod
    def _script(path, body):
        path.write_text('#!/bin/sh\n' + body)
        path.chmod(0o755)

    @property
    def confs(self):
        return (self.nova_conf, self.cpu_conf, self.cell_conf)

    def texts(self):
        return {p: p.read_text() for p in self.confs}

    def run(self, *phases, **settings):
        """Source functions, settings and then plugin.sh once per phase in
        one shell, as stack.sh does (errexit on, and nounset too)."""
        script = ('set -o errexit -o nounset\n'
                  'source "$FAKE_FUNCTIONS"\n'
                  'source "$FAKE_SETTINGS"\n'
                  'for phase in "$@"; do\n'
                  '    source "$FAKE_PLUGIN" $phase\n'
                  'done\n')
        env = dict(self.env, FAKE_FUNCTIONS=str(self.functions),
                   FAKE_SETTINGS=str(SETTINGS), FAKE_PLUGIN=str(PLUGIN))
        env.update(settings)
        return subprocess.run(['bash', '-c', script, 'fake-stack'] +
                              list(phases), env=env, cwd=str(self.tmp),
                              capture_output=True, text=True, timeout=300)

    def take_calls(self):
        """The recorded calls since the last take, one per line."""
        lines = self.calls.read_text().splitlines()
        self.calls.write_text('')
        return lines

    def patch_state(self):
        out = subprocess.run(
            [str(self.venv / 'bin' / 'nova-migration-guard'), 'patches',
             'status', '--nova-dir', str(self.nova_tree), '--nova-version',
             NOVA_VERSION], capture_output=True, text=True, timeout=120)
        self.take_calls()
        return out.stdout.splitlines()[0].rsplit(': ', 1)[-1]


class DevstackPluginTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.mkdtemp(prefix='nmg-devstack-')
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        self.ds = FakeDevstack(tmp)
        self.patch_args = '--nova-dir %s --nova-version %s' % (
            self.ds.nova_tree, NOVA_VERSION)

    def assertRan(self, result):
        self.assertEqual(0, result.returncode,
                         'exit %d\n--- stdout\n%s\n--- stderr (end)\n%s' % (
                             result.returncode, result.stdout,
                             result.stderr[-6000:]))

    def oslo_conf(self, path):
        """The file as Nova's services read it (oslo.config)."""
        conf = cfg.ConfigOpts()
        conf.register_opts([cfg.StrOpt('compute_driver')])
        conf.register_opts([
            cfg.MultiStrOpt('available_filters',
                            default=['nova.scheduler.filters.all_filters']),
            cfg.ListOpt('enabled_filters'),
            cfg.ListOpt('weight_classes',
                        default=['nova.scheduler.weights.all_weighers']),
            cfg.BoolOpt('track_instance_changes')],
            group='filter_scheduler')
        for group, opts in nmg_conf.list_opts():
            conf.register_opts(opts, group=group)
        conf(['--config-file', str(path)], project='nova',
             default_config_files=[], default_config_dirs=[])
        return conf

    # ------------------------------------------------------------ the flow

    def assert_configured(self):
        ini = read_ini(self.ds.nova_conf)
        fs = ini['filter_scheduler']
        self.assertEqual(
            [('available_filters', 'nova.scheduler.filters.all_filters'),
             ('available_filters', FILTER)],
            [kv for kv in fs if kv[0] == 'available_filters'])
        self.assertEqual(
            [('enabled_filters',
              DEVSTACK_FILTERS + ',InFlightAntiAffinityFilter')],
            [kv for kv in fs if kv[0] == 'enabled_filters'])
        self.assertEqual(
            [('weight_classes',
              'nova.scheduler.weights.all_weighers,' + WEIGHER)],
            [kv for kv in fs if kv[0] == 'weight_classes'])
        for path in self.ds.confs:
            ini = read_ini(path)
            self.assertEqual([('guards', ALL_GUARDS)],
                             ini['migration_guard'], path)
            self.assertEqual(
                [('backend_url', 'etcd3+http://192.0.2.10:2379')],
                ini['migration_guard_coordination'], path)
            self.assertNotIn('migration_guard_anti_affinity', ini)
        for path in (self.ds.nova_conf, self.ds.cpu_conf):
            self.assertEqual(
                [('compute_driver', GUARDED_DRIVER)],
                [kv for kv in read_ini(path)['DEFAULT']
                 if kv[0] == 'compute_driver'], path)
        # The cell conductor's file gets the guards only.
        self.assertEqual(
            {'database', 'conductor', 'migration_guard',
             'migration_guard_coordination'},
            set(read_ini(self.ds.cell_conf)))
        # Every line exactly once, and Nova reads what was meant.
        for path in self.ds.confs:
            lines = [line for line in path.read_text().splitlines()
                     if line.strip()]
            self.assertEqual(len(lines), len(set(lines)), path)
        conf = self.oslo_conf(self.ds.nova_conf)
        self.assertEqual(ALL_GUARDS.split(','), conf.migration_guard.guards)
        self.assertEqual(['nova.scheduler.filters.all_filters', FILTER],
                         conf.filter_scheduler.available_filters)
        self.assertEqual('InFlightAntiAffinityFilter',
                         conf.filter_scheduler.enabled_filters[-1])
        self.assertEqual(['nova.scheduler.weights.all_weighers', WEIGHER],
                         conf.filter_scheduler.weight_classes)
        self.assertEqual('etcd3+http://192.0.2.10:2379',
                         conf.migration_guard_coordination.backend_url)
        self.assertEqual(GUARDED_DRIVER, conf.compute_driver)

    def test_stack_twice_then_unstack_and_clean(self):
        ds = self.ds
        pip_calls = [
            'pip install -c %s/upper-constraints.txt -e %s'
            % (ds.requirements, REPO),
            'pip install -c %s/upper-constraints.txt etcd3gw'
            % ds.requirements]

        # stack.sh: install, post-config, extra in one shell.
        self.assertRan(ds.run('stack install', 'stack post-config',
                              'stack extra'))
        self.assertEqual(pip_calls + [
            'nova-migration-guard patches status ' + self.patch_args,
            'nova-migration-guard patches apply ' + self.patch_args],
            ds.take_calls())
        self.assertEqual('applied', ds.patch_state())
        self.assert_configured()
        after_first = ds.texts()

        # stack.sh again: the same files; the patch set is not applied twice
        # and no service was restarted (stack.sh starts them after
        # post-config).
        self.assertRan(ds.run('stack install', 'stack post-config',
                              'stack extra'))
        self.assertEqual(pip_calls + [
            'nova-migration-guard patches status ' + self.patch_args],
            ds.take_calls())
        self.assertEqual(after_first, ds.texts())
        self.assertEqual('applied', ds.patch_state())

        # unstack.sh: the lines go, the files are as DevStack wrote them;
        # the patch set stays (patched Nova without the lines is stock).
        self.assertRan(ds.run('unstack'))
        self.assertEqual([], ds.take_calls())
        self.assertEqual(ds.originals, ds.texts())
        self.assertEqual('applied', ds.patch_state())
        self.assertRan(ds.run('unstack'))
        self.assertEqual(ds.originals, ds.texts())

        # clean.sh: the patch set is reverted byte for byte, the package
        # uninstalled; twice is harmless.
        self.assertRan(ds.run('stack post-config'))
        ds.take_calls()
        self.assertRan(ds.run('clean'))
        self.assertEqual([
            'nova-migration-guard patches status ' + self.patch_args,
            'nova-migration-guard patches revert ' + self.patch_args,
            'pip uninstall -y nova-migration-guard'], ds.take_calls())
        self.assertEqual(ds.originals, ds.texts())
        self.assertEqual('not applied', ds.patch_state())
        self.assertEqual(ds.stock_digest, _digest(ds.nova_tree))
        self.assertRan(ds.run('clean'))
        self.assertEqual([
            'nova-migration-guard patches status ' + self.patch_args,
            'pip uninstall -y nova-migration-guard'], ds.take_calls())
        self.assertEqual(ds.originals, ds.texts())

    def test_compute_node(self):
        """A compute-only node: the guards and the guarded driver, no
        scheduler lines."""
        self.ds.cell_conf.unlink()
        self.assertRan(self.ds.run('stack post-config',
                                   ENABLED_SERVICES=COMPUTE_SERVICES))
        for path in (self.ds.nova_conf, self.ds.cpu_conf):
            ini = read_ini(path)
            self.assertEqual([('guards', ALL_GUARDS)],
                             ini['migration_guard'])
            self.assertIn(('compute_driver', GUARDED_DRIVER), ini['DEFAULT'])
            self.assertEqual([('enabled_filters', DEVSTACK_FILTERS),
                              ('track_instance_changes', 'False')],
                             ini['filter_scheduler'])

    def test_other_virt_driver_untouched(self):
        self.assertRan(self.ds.run('stack post-config', VIRT_DRIVER='fake'))
        self.assertIn(('compute_driver', 'libvirt.LibvirtDriver'),
                      read_ini(self.ds.nova_conf)['DEFAULT'])

    def test_changed_settings_remove_stale_lines(self):
        self.assertRan(self.ds.run('stack post-config'))
        self.assertRan(self.ds.run(
            'stack post-config', NOVA_MIGRATION_GUARD_GUARDS='host_identity',
            NOVA_MIGRATION_GUARD_BACKEND_URL=''))
        ini = read_ini(self.ds.nova_conf)
        self.assertEqual([('enabled_filters', DEVSTACK_FILTERS),
                          ('track_instance_changes', 'False')],
                         ini['filter_scheduler'])
        self.assertIn(('compute_driver', 'libvirt.LibvirtDriver'),
                      ini['DEFAULT'])
        self.assertEqual([('guards', 'host_identity')],
                         ini['migration_guard'])
        self.assertNotIn('migration_guard_coordination', ini)

        # Options of the settings, and an empty guard list: no lines at all.
        self.assertRan(self.ds.run(
            'stack post-config',
            NOVA_MIGRATION_GUARD_GUARDS='anti_affinity, anti_affinity',
            NOVA_MIGRATION_GUARD_ANTI_AFFINITY_MODE='audit',
            NOVA_MIGRATION_GUARD_ON_BACKEND_FAILURE='proceed_unlocked',
            NOVA_MIGRATION_GUARD_BACKEND_URL='redis://192.0.2.11:6379'))
        conf = self.oslo_conf(self.ds.nova_conf)
        self.assertEqual(['anti_affinity'], conf.migration_guard.guards)
        self.assertEqual('audit', conf.migration_guard_anti_affinity.mode)
        self.assertEqual('proceed_unlocked',
                         conf.migration_guard_coordination.on_backend_failure)
        self.assertEqual('redis://192.0.2.11:6379',
                         conf.migration_guard_coordination.backend_url)
        self.assertEqual(['nova.scheduler.filters.all_filters', FILTER],
                         conf.filter_scheduler.available_filters)
        self.assertEqual('libvirt.LibvirtDriver', conf.compute_driver)
        self.assertRan(self.ds.run('stack post-config',
                                   NOVA_MIGRATION_GUARD_GUARDS=''))
        self.assertEqual(self.ds.originals, self.ds.texts())

    def test_ipv6_service_host(self):
        self.assertRan(self.ds.run('stack post-config',
                                   SERVICE_HOST='2001:db8::10',
                                   ETCD_PORT='2390'))
        self.assertEqual(
            [('backend_url', 'etcd3+http://[2001:db8::10]:2390')],
            read_ini(self.ds.nova_conf)['migration_guard_coordination'])

    def test_unknown_guard_refused(self):
        result = self.ds.run('stack post-config',
                             NOVA_MIGRATION_GUARD_GUARDS='anti_affinity,bogus')
        self.assertNotEqual(0, result.returncode)
        self.assertIn("unknown guard 'bogus' in NOVA_MIGRATION_GUARD_GUARDS "
                      "(known: anti_affinity, migration_outcome, "
                      "host_identity, convergence)", result.stderr)
        self.assertEqual(self.ds.originals, self.ds.texts())

    def test_refused_patch_set_stops_stack(self):
        """Local edits in Nova: the command refuses, Nova stays as it was and
        stack.sh stops in the install phase."""
        service = self.ds.nova_tree / 'nova' / 'service.py'
        service.write_text('# a local rewrite of nova/service.py\n')
        before = _digest(self.ds.nova_tree)
        result = self.ds.run('stack install', 'stack post-config')
        self.assertNotEqual(0, result.returncode)
        self.assertIn('nova-migration-guard: cannot apply series %s'
                      % SERIES.name, result.stderr)
        self.assertIn('nova-migration-guard patches apply refused',
                      result.stderr)
        self.assertEqual(before, _digest(self.ds.nova_tree))
        self.assertEqual(self.ds.originals, self.ds.texts())

    def test_restart_only_when_asked(self):
        self.assertRan(self.ds.run('stack extra'))
        self.assertEqual([], self.ds.take_calls())
        self.assertRan(self.ds.run(
            'stack extra', NOVA_MIGRATION_GUARD_RESTART_SERVICES='True'))
        self.assertEqual(
            ['restart_service devstack@%s' % s for s in (
                'n-api', 'n-api-meta', 'n-sch', 'n-super-cond',
                'n-cond-cell1', 'n-cpu')],
            self.ds.take_calls())

    def test_bash_syntax(self):
        for path in (PLUGIN, SETTINGS):
            result = subprocess.run(['bash', '-n', str(path)],
                                    capture_output=True, text=True)
            self.assertEqual(0, result.returncode, result.stderr)
