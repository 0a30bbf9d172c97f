"""The plugin's naming logic (nova_migration_guard.xenapi.sr_uuid) against
the copy that the 21.x series puts into Nova: same inputs, same UUIDs.

Patched Nova cannot import the plugin (with the plugin disabled it must
behave as stock Nova), so the series carries its own copy of the logic in
``nova/virt/xenapi/volume_utils.py`` and ``vmops.py``.  These tests run
that copy, from NMG_NOVA21_TREE, on the same inputs as the plugin: a set
of hand-picked connection data and a few hundred generated ones (portals
with and without host or port, IPv6, a TPGT suffix, non-ASCII IQNs,
integer volume ids, provider-given SR UUIDs), under default and changed
``[xenserver] target_host/target_port``.

What is stubbed: where Nova looks SRs up, the XenAPI session
(:class:`fake_xapi.FakeSession` on a pool holding the SRs the case says the
host has), since there is no XenServer here.  Everything else is Nova 21's
code.
"""

import random
import uuid

import testtools

from nova_migration_guard.xenapi import sr_uuid as naming
from tests.unit.xenapi import fake_xapi
from tests.unit.xenapi import nova21

HAND_PICKED = [
    {'volume_id': 'vol-1', 'target_portal': '192.0.2.10:3260',
     'target_iqn': 'iqn.2010-10.org.openstack:volume-1', 'target_lun': 1},
    {'volume_id': 7, 'target_portal': '192.0.2.10:3260,1',
     'target_iqn': 'iqn.2010-10.org.openstack:volume-7'},
    {'volume_id': 'v', 'target_portal': '192.0.2.10',
     'target_iqn': 'iqn'},
    {'volume_id': 'v', 'target_portal': ':3261', 'target_iqn': 'iqn'},
    {'volume_id': 'v', 'target_portal': '', 'target_iqn': 'iqn'},
    {'volume_id': 'v', 'target_portal': None, 'target_iqn': 'iqn'},
    {'volume_id': 'v', 'target_iqn': 'iqn'},
    {'volume_id': 'v', 'target_portal': '[2001:db8::1]:3260',
     'target_iqn': 'iqn'},
    {'volume_id': 'v', 'target_portal': 'san.example.org:3260',
     'target_iqn': 'iqn.2010-10.org.openstack:volume-\u00e9\u4e2d'},
    {'volume_id': 'v', 'target_portal': 'h:1', 'target_iqn': 'iqn',
     'auth_method': 'CHAP', 'auth_username': 'u', 'auth_password': 'p'},
    # The volume provider names the SR.
    {'volume_id': 'v', 'sr_uuid': 'provider-sr',
     'introduce_sr_keys': ['server'], 'server': 'nfs'},
    {'volume_id': 'v', 'sr_uuid': 'provider-sr'},
    # Given SR UUID with iSCSI details: the live migration case.
    {'volume_id': 'v', 'sr_uuid': 'FA15E-D15C-v',
     'target_portal': '192.0.2.10:3260', 'target_iqn': 'iqn'},
]

# (target_host, target_port) configured in [xenserver]; Nova's defaults
# first.
CONFIGS = [(None, 3260), ('cfg-host', 3261)]


def generated(count=300, seed=1566622):
    rnd = random.Random(seed)
    hosts = ['192.0.2.%d' % rnd.randint(1, 254) for _ in range(5)] + [
        'san-%d.example.org' % i for i in range(3)] + ['', '[2001:db8::5]']
    for i in range(count):
        host = rnd.choice(hosts)
        port = rnd.choice(['', ':3260', ':3261', ':3260,1'])
        data = {'volume_id': rnd.choice(
                    [str(uuid.UUID(int=rnd.getrandbits(128))), i]),
                'target_portal': host + port,
                'target_iqn': 'iqn.2010-10.org.openstack:%s-%d' % (
                    rnd.choice(['volume', 'vol\u00e9', 'v']), i),
                'target_lun': rnd.randint(0, 4)}
        if rnd.random() < 0.1:
            data['sr_uuid'] = rnd.choice(
                ['FA15E-D15C-%s' % data['volume_id'], str(uuid.uuid4())])
        yield data


def all_cases():
    return HAND_PICKED + list(generated())


def nova_raises(nova, func, *args):
    """func's result, or the StorageError/KeyError it raised."""
    exception = nova.module('nova.exception')
    try:
        return func(*args)
    except (exception.StorageError, KeyError) as exc:
        return type(exc)


def plugin_raises(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except naming.MissingTargetInfo:
        return 'StorageError'
    except KeyError:
        return KeyError


def same_outcome(nova_result, plugin_result):
    if isinstance(nova_result, type):
        name = nova_result.__name__
        return name == plugin_result or nova_result is plugin_result
    return nova_result == plugin_result


class EquivalenceTestCase(nova21.Nova21TestCase):

    def setUp(self):
        super().setUp()
        self.vu = self.patched.module('nova.virt.xenapi.volume_utils')
        self.vmops = self.patched.module('nova.virt.xenapi.vmops')

    def _configure(self, nova, target_host, target_port):
        nova.conf.set_override('target_host', target_host, 'xenserver')
        nova.conf.set_override('target_port', target_port, 'xenserver')
        return {'default_target_host': target_host,
                'default_target_port': target_port}

    def _check(self, description, nova_result, plugin_result):
        self.assertTrue(same_outcome(nova_result, plugin_result),
                        '%s: Nova %r, plugin %r'
                        % (description, nova_result, plugin_result))

    def test_old_style(self):
        """Pure functions, nothing stubbed."""
        for volume_id in ['vol-1', 7, str(uuid.uuid4()), '']:
            self.assertEqual(naming.old_style_sr_uuid(volume_id),
                             self.vu.old_style_sr_uuid(volume_id))
        for sr_uuid in ['FA15E-D15C-x', 'fa15e-d15c-x', 'FA15E-D15C-',
                        str(uuid.uuid4()), 'FA15E', '', None, 5]:
            self.assertEqual(naming.is_old_style_sr_uuid(sr_uuid),
                             self.vu.is_old_style_sr_uuid(sr_uuid), sr_uuid)

    def test_computed_and_candidate_sr_uuids(self):
        """What a host computes for a volume (parse_sr_info, stock and
        patched) and the UUIDs it may use for it (candidate_sr_uuids).
        Pure functions, nothing stubbed."""
        stock_vu = self.stock.module('nova.virt.xenapi.volume_utils')
        for config in CONFIGS:
            defaults = self._configure(self.patched, *config)
            self._configure(self.stock, *config)
            for data in all_cases():
                for nova, vu, func in (
                        ('patched', self.vu, naming.parse_sr_uuid),
                        ('stock', stock_vu, naming.computed_sr_uuid)):
                    self._check('%s parse_sr_info %s %s' % (nova, config,
                                                            data),
                                nova_raises(self.patched,
                                            lambda d: vu.parse_sr_info(d)[0],
                                            dict(data)),
                                plugin_raises(func, data, **defaults))
                self._check('candidates %s %s' % (config, data),
                            nova_raises(self.patched,
                                        self.vu.candidate_sr_uuids,
                                        dict(data)),
                            plugin_raises(naming.candidate_sr_uuids, data,
                                          **defaults))

    def test_new_style_sr_uuid(self):
        """Pure functions, nothing stubbed."""
        for data in all_cases():
            portal = data.get('target_portal')
            args = (naming.target_host(portal), naming.target_port(portal),
                    data.get('target_iqn'))
            self.assertEqual(naming.new_style_sr_uuid(*args),
                             self.vu.new_style_sr_uuid(*args))

    def test_sr_uuid_the_source_reports(self):
        """What a patched source finds for each volume and reports
        (find_sr_uuid_for_volume, VMOps._get_volume_sr_uuids) when the host
        has the old-style SR, the new-style one, both or neither.  Stubbed:
        the XenAPI session that answers SR.get_by_uuid (no XenServer
        here)."""
        vmops = object.__new__(self.vmops.VMOps)
        for config in CONFIGS:
            defaults = self._configure(self.patched, *config)
            cases = [d for d in all_cases()
                     if plugin_raises(naming.candidate_sr_uuids, d,
                                      **defaults) not in ('StorageError',
                                                          KeyError)]
            rnd = random.Random(str(config))
            host_srs = set()
            for data in cases:
                candidates = naming.candidate_sr_uuids(data, **defaults)
                host_srs.update(c for c in candidates if rnd.random() < 0.5)
            pool = fake_xapi.Pool('equiv', fake_xapi.SAN(), '192.0.2.1')
            self.addCleanup(pool.close)
            for sr_uuid in host_srs:
                pool.call('SR.introduce', sr_uuid, 'l', '', 'iscsi', '',
                          False, {})
            session = fake_xapi.FakeSession(pool)
            kinds = set()
            for data in cases:
                found = naming.sr_uuid_in_use(data, host_srs, **defaults)
                kinds.add('none' if found is None else 'old'
                          if naming.is_old_style_sr_uuid(found) else 'new')
                self._check('find_sr_uuid_for_volume %s %s' % (config, data),
                            self.vu.find_sr_uuid_for_volume(session,
                                                            dict(data)),
                            found)
            self.assertEqual({'none', 'old', 'new'}, kinds)
            self.assertGreater(len(cases), 250)
            vmops._session = session
            bdi = {'block_device_mapping': [
                {'connection_info': {'driver_volume_type': 'iscsi',
                                     'data': dict(d)}} for d in cases]}
            self.assertEqual(
                naming.volume_sr_uuids(cases, host_srs, **defaults),
                vmops._get_volume_sr_uuids({'uuid': 'i', 'name': 'i'}, bdi))

    def test_sr_uuid_the_destination_connects(self):
        """The UUID a patched destination connects a volume's SR with,
        given what the source reported (nothing: an older source) -- the
        connection info VMOps gives VolumeOps, through parse_sr_info.  Pure
        functions, nothing stubbed."""
        rnd = random.Random(8)
        for config in CONFIGS:
            defaults = self._configure(self.patched, *config)
            for data in all_cases():
                key = str(data.get('volume_id'))
                for reported in (None, {}, {key: 'FA15E-D15C-%s' % key},
                                 {key: str(uuid.UUID(
                                     int=rnd.getrandbits(128)))},
                                 {'other': 'x'}):
                    info = {'driver_volume_type': 'iscsi',
                            'data': dict(data)}
                    nova_result = nova_raises(
                        self.patched,
                        lambda i: self.vu.parse_sr_info(
                            self.vmops._with_source_sr_uuid(
                                i, reported)['data'])[0],
                        info)
                    self._check('destination %s %s %s' % (config, data,
                                                          reported),
                                nova_result,
                                plugin_raises(naming.destination_sr_uuid,
                                              data, reported, **defaults))
                    self.assertEqual({'driver_volume_type': 'iscsi',
                                      'data': data}, info)

    def test_nova_attach_names_the_sr_as_the_plugin(self):
        """Nova 21's own VolumeOps.attach_volume on a host creates the SR
        under the UUID the plugin computes.  Stubbed: the XenAPI session (no
        XenServer here)."""
        san = fake_xapi.SAN()
        san.add_lun('192.0.2.60', '3260', 'iqn.2010-10.org.openstack:x', 2)
        pool = fake_xapi.Pool('attach', san, '192.0.2.2')
        self.addCleanup(pool.close)
        pool.create_vm('instance-1')
        data = {'volume_id': 'x', 'target_portal': '192.0.2.60:3260',
                'target_iqn': 'iqn.2010-10.org.openstack:x',
                'target_lun': 2}
        volumeops = self.patched.module('nova.virt.xenapi.volumeops')
        volumeops.VolumeOps(fake_xapi.FakeSession(pool)).attach_volume(
            {'driver_volume_type': 'iscsi', 'data': dict(data)},
            'instance-1', '/dev/xvdb', hotplug=False)
        self.assertEqual([naming.new_style_sr_uuid_for(data)],
                         pool.sr_uuids())


class CasesTestCase(testtools.TestCase):
    """The generated cases cover what they claim (no Nova needed)."""

    def test_generated_cases_cover_the_shapes(self):
        cases = list(generated())
        self.assertEqual(300, len(cases))
        portals = [c['target_portal'] for c in cases]
        self.assertTrue(any(p.startswith(':') for p in portals))
        self.assertTrue(any(':' not in p for p in portals))
        self.assertTrue(any(p.endswith(',1') for p in portals))
        self.assertTrue(any('sr_uuid' in c for c in cases))
        self.assertTrue(any(isinstance(c['volume_id'], int) for c in cases))
        self.assertTrue(any(not c['target_iqn'].isascii() for c in cases))
