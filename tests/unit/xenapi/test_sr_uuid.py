"""nova_migration_guard.xenapi.sr_uuid on its own: pure functions, no Nova,
nothing stubbed.  test_nova21_equivalence checks the same logic against the
copy in patched Nova 21."""

import uuid

import testtools

from nova_migration_guard.xenapi import sr_uuid as naming

VOLUME = 'a3f1c7d2-4b5e-4f60-8a71-9c2d3e4f5a6b'
DATA = {'volume_id': VOLUME,
        'target_portal': '192.0.2.10:3260',
        'target_iqn': 'iqn.2010-10.org.openstack:volume-%s' % VOLUME,
        'target_lun': 1}
OLD = 'FA15E-D15C-%s' % VOLUME


class NamingTestCase(testtools.TestCase):

    def test_namespace_is_novas(self):
        # nova/virt/xenapi/volume_utils.py: generated from
        # uuid.uuid5(uuid.UUID(int=0), 'volume_utils-SR_UUID')
        self.assertEqual(uuid.uuid5(uuid.UUID(int=0), 'volume_utils-SR_UUID'),
                         naming.SR_NAMESPACE)

    def test_new_style_known_value(self):
        # Computed by nova 21.2.4's volume_utils.parse_sr_info for
        # {'volume_id': 'v', 'target_portal': '1.2.3.4:3260',
        #  'target_iqn': 'iqn'}.
        self.assertEqual('8abeaf0e-272c-596c-be63-c3c7a1ec6890',
                         naming.new_style_sr_uuid('1.2.3.4', '3260', 'iqn'))
        self.assertEqual(
            '8abeaf0e-272c-596c-be63-c3c7a1ec6890',
            naming.new_style_sr_uuid_for({'volume_id': 'v',
                                          'target_portal': '1.2.3.4:3260',
                                          'target_iqn': 'iqn'}))

    def test_new_style_is_uuid5_of_target_port_iqn(self):
        self.assertEqual(
            str(uuid.uuid5(naming.SR_NAMESPACE, '192.0.2.10/3260/%s'
                           % DATA['target_iqn'])),
            naming.new_style_sr_uuid_for(DATA))

    def test_new_style_is_per_target_not_per_volume(self):
        other = dict(DATA, volume_id='other', target_lun=2)
        self.assertEqual(naming.new_style_sr_uuid_for(DATA),
                         naming.new_style_sr_uuid_for(other))

    def test_new_style_non_ascii_iqn(self):
        data = dict(DATA, target_iqn='iqn.2010-10.org.openstack:vol\u00e9')
        self.assertEqual(
            str(uuid.uuid5(naming.SR_NAMESPACE,
                           '192.0.2.10/3260/iqn.2010-10.org.openstack:'
                           'vol\u00e9')),
            naming.new_style_sr_uuid_for(data))

    def test_portal_parsing_as_nova(self):
        self.assertEqual(('h', '3260'), (naming.target_host('h:3260'),
                                         naming.target_port('h:3260')))
        # Nova keeps a TPGT suffix in the port.
        self.assertEqual('3260,1', naming.target_port('h:3260,1'))
        self.assertEqual(('h', 3260), (naming.target_host('h'),
                                       naming.target_port('h')))
        self.assertEqual((None, '3261'), (naming.target_host(':3261'),
                                          naming.target_port(':3261')))
        self.assertEqual(('cfg', 99), (naming.target_host('', 'cfg'),
                                       naming.target_port(None, 99)))
        # Nova's split on ':' does not understand IPv6 portals.
        self.assertEqual(('[2001', 'db8'),
                         (naming.target_host('[2001:db8::1]:3260'),
                          naming.target_port('[2001:db8::1]:3260')))

    def test_defaults_from_configuration(self):
        data = dict(DATA, target_portal='')
        self.assertRaises(naming.MissingTargetInfo,
                          naming.new_style_sr_uuid_for, data)
        self.assertEqual(
            naming.new_style_sr_uuid('cfg-host', 3261, DATA['target_iqn']),
            naming.new_style_sr_uuid_for(data, default_target_host='cfg-host',
                                         default_target_port=3261))

    def test_missing_target_info(self):
        for key in ('volume_id', 'target_portal', 'target_iqn'):
            self.assertRaises(naming.MissingTargetInfo,
                              naming.new_style_sr_uuid_for,
                              dict(DATA, **{key: None}))
            data = dict(DATA)
            del data[key]
            self.assertRaises(KeyError, naming.new_style_sr_uuid_for, data)

    def test_old_style(self):
        self.assertEqual(OLD, naming.old_style_sr_uuid(VOLUME))
        self.assertEqual('FA15E-D15C-7', naming.old_style_sr_uuid(7))
        self.assertTrue(naming.is_old_style_sr_uuid(OLD))
        self.assertTrue(naming.is_old_style_sr_uuid(OLD.lower()))
        self.assertFalse(naming.is_old_style_sr_uuid(
            naming.new_style_sr_uuid_for(DATA)))
        self.assertFalse(naming.is_old_style_sr_uuid(None))
        self.assertEqual(VOLUME, naming.volume_id_of_old_style(OLD))
        self.assertIsNone(naming.volume_id_of_old_style('FA15E-D15C-'))
        self.assertIsNone(naming.volume_id_of_old_style(str(uuid.uuid4())))

    def test_computed_sr_uuid(self):
        self.assertEqual(naming.new_style_sr_uuid_for(DATA),
                         naming.computed_sr_uuid(DATA))
        self.assertEqual('given', naming.computed_sr_uuid(
            {'sr_uuid': 'given', 'introduce_sr_keys': []}))
        # Stock Nova takes a given UUID without looking at iSCSI details.
        self.assertEqual('given', naming.computed_sr_uuid(
            dict(DATA, sr_uuid='given', target_portal='')))

    def test_parse_sr_uuid_checks_iscsi_details_of_a_given_uuid(self):
        self.assertEqual(OLD, naming.parse_sr_uuid(dict(DATA, sr_uuid=OLD)))
        self.assertRaises(naming.MissingTargetInfo, naming.parse_sr_uuid,
                          dict(DATA, sr_uuid=OLD, target_portal=''))
        self.assertEqual('given', naming.parse_sr_uuid(
            {'sr_uuid': 'given', 'introduce_sr_keys': [],
             'target_iqn': None}))

    def test_candidates(self):
        self.assertEqual([OLD, naming.new_style_sr_uuid_for(DATA)],
                         naming.candidate_sr_uuids(DATA))
        self.assertEqual(['given'], naming.candidate_sr_uuids(
            dict(DATA, sr_uuid='given')))


class SourceAndDestinationTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.new = naming.new_style_sr_uuid_for(DATA)

    def test_sr_uuid_in_use(self):
        self.assertEqual(OLD, naming.sr_uuid_in_use(DATA, {OLD}))
        self.assertEqual(self.new, naming.sr_uuid_in_use(DATA, {self.new}))
        # Old style first, as Nova's _destroy looks for them.
        self.assertEqual(OLD, naming.sr_uuid_in_use(DATA, {OLD, self.new}))
        self.assertIsNone(naming.sr_uuid_in_use(DATA, set()))
        self.assertEqual(self.new, naming.sr_uuid_in_use(
            DATA, lambda sr: sr == self.new))

    def test_volume_sr_uuids_mixed(self):
        other = dict(DATA, volume_id='other-volume',
                     target_iqn='iqn.2010-10.org.openstack:other')
        missing = dict(DATA, volume_id=5, target_iqn='iqn:missing')
        other_new = naming.new_style_sr_uuid_for(other)
        self.assertEqual(
            {VOLUME: OLD, 'other-volume': other_new},
            naming.volume_sr_uuids([DATA, other, missing],
                                   {OLD, other_new}))

    def test_with_reported_sr_uuid(self):
        data = dict(DATA)
        result = naming.with_reported_sr_uuid(data, {VOLUME: OLD})
        self.assertEqual(dict(DATA, sr_uuid=OLD), result)
        self.assertEqual(DATA, data)
        self.assertIs(data, naming.with_reported_sr_uuid(data, None))
        self.assertIs(data, naming.with_reported_sr_uuid(data, {}))
        self.assertIs(data, naming.with_reported_sr_uuid(data, {'x': OLD}))
        given = dict(DATA, sr_uuid=OLD)
        self.assertIs(given, naming.with_reported_sr_uuid(given,
                                                          {VOLUME: OLD}))

    def test_integer_volume_id_key(self):
        data = dict(DATA, volume_id=7)
        self.assertEqual({'7': 'FA15E-D15C-7'},
                         naming.volume_sr_uuids([data], {'FA15E-D15C-7'}))
        self.assertEqual('FA15E-D15C-7', naming.destination_sr_uuid(
            data, {'7': 'FA15E-D15C-7'}))

    def test_destination_sr_uuid(self):
        # Older source: nothing reported, today's computed UUID.
        self.assertEqual(self.new, naming.destination_sr_uuid(DATA))
        self.assertEqual(self.new, naming.destination_sr_uuid(DATA, {}))
        # Patched source: exactly what it reported.
        self.assertEqual(OLD, naming.destination_sr_uuid(DATA, {VOLUME: OLD}))
        self.assertEqual(self.new,
                         naming.destination_sr_uuid(DATA, {VOLUME: self.new}))

    def test_round_trip_keeps_each_volumes_sr(self):
        """What the source reports is what the destination connects, for
        an instance mixing both conventions."""
        vols = [dict(DATA, volume_id='v%d' % i,
                     target_iqn='iqn.2010-10.org.openstack:v%d' % i)
                for i in range(4)]
        on_source = {naming.old_style_sr_uuid('v0'),
                     naming.new_style_sr_uuid_for(vols[1]),
                     naming.old_style_sr_uuid('v2'),
                     naming.new_style_sr_uuid_for(vols[3])}
        reported = naming.volume_sr_uuids(vols, on_source)
        self.assertEqual(on_source, {naming.destination_sr_uuid(v, reported)
                                     for v in vols})
        # Without the report the destination gets the old-style ones wrong.
        self.assertNotEqual(on_source,
                            {naming.destination_sr_uuid(v) for v in vols})
