"""XenAPI live migration between two Nova 21 hosts, stock and patched
(``patches/nova/21.x``), with volumes in SRs of both naming conventions.

What runs: Nova 21.2.4's own ``XenAPIDriver`` (``__init__`` included),
``VMOps``, ``VolumeOps``, ``volume_utils``, ``vm_utils`` and
``XenapiLiveMigrateData`` from NMG_NOVA21_TREE, through the driver calls
that Nova's compute manager makes for a live migration
(:func:`hosts.live_migrate`), with the migrate data crossing between the
hosts as over RPC (serialised, backported to an older receiver's version by
``obj_make_compatible``, rebuilt with the receiver's class).

What is stubbed, in every test: the XenAPI session and the os_xenapi
client modules (:mod:`fake_xapi`), because there is no XenServer here.
Each host is its own stub pool; both reach the same stub iSCSI SAN.  The
stub answers as XAPI does: ``SR.get_by_uuid`` of an unknown UUID fails with
``UUID_INVALID``, an SR only plugs with the iSCSI target in its device
config, and ``VM.migrate_send`` mirrors (copies) a VDI unless its SR has
the same UUID on both hosts.  Nova 34's compute API and compute RPC API,
which the driver's constructors build but a live migration never uses, are
placeholders (see :mod:`nova21`).
"""

from nova_migration_guard.xenapi import sr_uuid as naming
from tests.unit.xenapi import fake_xapi
from tests.unit.xenapi import hosts
from tests.unit.xenapi import nova21


class LiveMigrationTestCase(nova21.Nova21TestCase):

    def setUp(self):
        super().setUp()
        self.san = fake_xapi.SAN()

    def _hosts(self, source='patched', dest='patched'):
        src = hosts.Host(self, getattr(self, source), self.san, 'source')
        dst = hosts.Host(self, getattr(self, dest), self.san, 'dest')
        return src, dst

    def _boot(self, src, *styles):
        """An instance on src with one volume per style ('old'/'new')."""
        instance = hosts.make_instance(src)
        volumes = [hosts.volume(self.san, 'vol-%d' % i)
                   for i in range(len(styles))]
        src.boot_from_volumes(instance, list(zip(volumes, styles)))
        return instance, volumes

    @staticmethod
    def _sr_uuid(volume, style):
        data = volume['data']
        if style == 'old':
            return naming.old_style_sr_uuid(data['volume_id'])
        return naming.new_style_sr_uuid_for(data)

    def _assert_migrated(self, src, dst, instance, out, expected_sr_uuids):
        """The migration succeeded and every volume's VDI kept its SR UUID
        (XAPI did not mirror it); the destination connected exactly those
        SRs and the source sent VM.migrate_send a VDI map onto them."""
        self.assertIsNone(out.error)
        self.assertEqual([dst.name], out.post)
        self.assertEqual([], out.recover)
        self.assertEqual(sorted(set(expected_sr_uuids)), dst.pool.sr_uuids())
        self.assertEqual(set(expected_sr_uuids),
                         set(out.pre_live_migration.sr_uuid_map))
        [(vm, send_data, live, vdi_map, vif_map, options)] = \
            src.pool.calls_of('VM.migrate_send')
        self.assertTrue(live)
        self.assertEqual(
            sorted(expected_sr_uuids),
            sorted(dst.pool.all('SR')[sr]['uuid']
                   for sr in vdi_map.values()))
        [migration] = src.pool.migrations
        self.assertEqual(instance['name'], migration['vm'])
        for vdi in migration['vdis'].values():
            self.assertFalse(vdi['mirrored'], vdi)
            self.assertEqual(vdi['source_sr'], vdi['destination_sr'])
        self.assertIsNotNone(dst.pool.vm_by_name(instance['name']))
        self.assertIsNone(src.pool.vm_by_name(instance['name']))

    def _assert_uuid_invalid(self, src, dst, instance, out, new_style):
        """Today's failure (bug 1566622): the destination connected the
        SR under the new-style UUID, the source's SR.get_by_uuid of it
        failed with UUID_INVALID and the migration was rolled back."""
        self.assertIsNotNone(out.error)
        self.assertIn('Migrate Send failed', str(out.error))
        self.assertEqual([], out.post)
        self.assertEqual([dst.name], out.recover)
        self.assertIn(new_style, out.pre_live_migration.sr_uuid_map)
        self.assertIn(('SR.get_by_uuid', (new_style,),
                       ['UUID_INVALID', 'SR', new_style]),
                      src.pool.failures)
        self.assertEqual([], src.pool.calls_of('VM.migrate_send'))
        self.assertIsNotNone(src.pool.vm_by_name(instance['name']))

    def test_stock_nova21_fails_with_an_old_style_sr(self):
        """Stock Nova 21 at both ends, boot-from-volume instance whose
        volume is in an SR named ``FA15E-D15C-<volume id>``: the failure of
        the bug report.  Stubbed: the XenAPI session (no XenServer here),
        which answers UUID_INVALID for an unknown SR UUID as XAPI does."""
        src, dst = self._hosts('stock', 'stock')
        instance, [vol] = self._boot(src, 'old')
        self.assertEqual([self._sr_uuid(vol, 'old')], src.pool.sr_uuids())

        out = hosts.live_migrate(src, dst, instance, [vol])

        self.assertNotIn('volume_sr_uuids', out.source_check)
        self._assert_uuid_invalid(src, dst, instance, out,
                                  self._sr_uuid(vol, 'new'))

    def test_old_style_source_to_destination_computing_new_style(self):
        """Patched Nova 21 at both ends, volume in an old-style SR on the
        source: the source reports the SR UUID it uses, the destination
        introduces the SR under that UUID (with the volume's iSCSI
        parameters) and the migration succeeds without mirroring.
        Stubbed: the XenAPI session (no XenServer here)."""
        src, dst = self._hosts()
        instance, [vol] = self._boot(src, 'old')
        old_style = self._sr_uuid(vol, 'old')

        out = hosts.live_migrate(src, dst, instance, [vol])

        volume_id = vol['data']['volume_id']
        self.assertEqual({volume_id: old_style},
                         out.source_check.volume_sr_uuids)
        self.assertEqual({volume_id: old_style},
                         out.at_destination.volume_sr_uuids)
        [(sr_uuid, label, desc, sr_type, _ct, _shared, device_config)] = \
            dst.pool.calls_of('SR.introduce')
        self.assertEqual(old_style, sr_uuid)
        self.assertEqual('iscsi', sr_type)
        self.assertEqual(
            ('192.0.2.50', '3260', vol['data']['target_iqn']),
            (device_config['target'], device_config['port'],
             device_config['targetIQN']))
        self._assert_migrated(src, dst, instance, out, [old_style])
        # The source tidied up its SR after the VM left.
        self.assertEqual([], src.pool.sr_uuids())

    def test_new_style_to_new_style(self):
        """Patched Nova 21 at both ends, volume in a new-style SR: the
        reported UUID is the one the destination computes anyway.
        Stubbed: the XenAPI session (no XenServer here)."""
        src, dst = self._hosts()
        instance, [vol] = self._boot(src, 'new')
        new_style = self._sr_uuid(vol, 'new')
        self.assertEqual([new_style], src.pool.sr_uuids())

        out = hosts.live_migrate(src, dst, instance, [vol])

        self.assertEqual({vol['data']['volume_id']: new_style},
                         out.source_check.volume_sr_uuids)
        self._assert_migrated(src, dst, instance, out, [new_style])

    def test_mixed_old_and_new_style_volumes(self):
        """Patched Nova 21 at both ends, an instance with an old-style
        volume, a new-style one and an old-style one again: each SR keeps
        its own convention.  Stubbed: the XenAPI session (no XenServer
        here)."""
        src, dst = self._hosts()
        styles = ('old', 'new', 'old')
        instance, vols = self._boot(src, *styles)
        expected = [self._sr_uuid(v, s) for v, s in zip(vols, styles)]
        self.assertEqual(sorted(expected), src.pool.sr_uuids())

        out = hosts.live_migrate(src, dst, instance, vols)

        self.assertEqual(
            {v['data']['volume_id']: u for v, u in zip(vols, expected)},
            out.source_check.volume_sr_uuids)
        self._assert_migrated(src, dst, instance, out, expected)
        self.assertEqual(
            {str(i): (vdi, sr) for i, (vdi, sr) in enumerate(
                (self.san.vdi_uuid('scsi-%s-1' % v['data']['target_iqn']),
                 u) for v, u in zip(vols, expected))},
            dst.pool.vm_volumes(instance['name']))

    def test_unpatched_source_patched_destination(self):
        """Stock source, patched destination: the migrate data carries no
        volume_sr_uuids, so the destination computes the SR UUIDs as
        today: a new-style volume migrates, an old-style one fails as
        today.  Stubbed: the XenAPI session (no XenServer here)."""
        src, dst = self._hosts('stock', 'patched')
        instance, [vol] = self._boot(src, 'new')
        out = hosts.live_migrate(src, dst, instance, [vol])
        self.assertEqual('1.4', out.at_destination.VERSION)
        self.assertNotIn('volume_sr_uuids', out.at_destination)
        self._assert_migrated(src, dst, instance, out,
                              [self._sr_uuid(vol, 'new')])

        src, dst = self._hosts('stock', 'patched')
        instance, [vol] = self._boot(src, 'old')
        out = hosts.live_migrate(src, dst, instance, [vol])
        self.assertNotIn('volume_sr_uuids', out.at_destination)
        self._assert_uuid_invalid(src, dst, instance, out,
                                  self._sr_uuid(vol, 'new'))

    def test_patched_source_unpatched_destination(self):
        """Patched source, stock destination: the source reports the SR
        UUIDs, but the object reaches the older destination backported to
        1.4 by obj_make_compatible, without volume_sr_uuids, and the
        destination behaves as today: a new-style volume migrates, an
        old-style one fails as today.  Stubbed: the XenAPI session (no
        XenServer here)."""
        src, dst = self._hosts('patched', 'stock')
        instance, [vol] = self._boot(src, 'new')
        out = hosts.live_migrate(src, dst, instance, [vol])
        self.assertIn('volume_sr_uuids', out.source_check)
        self.assertEqual('1.4', out.at_destination.VERSION)
        self.assertNotIn('volume_sr_uuids', out.at_destination)
        self._assert_migrated(src, dst, instance, out,
                              [self._sr_uuid(vol, 'new')])

        src, dst = self._hosts('patched', 'stock')
        instance, [vol] = self._boot(src, 'old')
        out = hosts.live_migrate(src, dst, instance, [vol])
        self.assertEqual({vol['data']['volume_id']:
                          self._sr_uuid(vol, 'old')},
                         out.source_check.volume_sr_uuids)
        self.assertNotIn('volume_sr_uuids', out.at_destination)
        self._assert_uuid_invalid(src, dst, instance, out,
                                  self._sr_uuid(vol, 'new'))

    def test_rollback_at_destination_forgets_the_source_named_sr(self):
        """Patched Nova 21: when the migration is rolled back, the
        destination forgets the SR it connected under the source's
        old-style UUID (stock Nova would look for the new-style one and
        leave it behind).  Stubbed: the XenAPI session (no XenServer
        here)."""
        src, dst = self._hosts()
        instance, [vol] = self._boot(src, 'old')
        dest_check = dst.driver.check_can_live_migrate_destination(
            None, instance, {}, {}, block_migration=None,
            disk_over_commit=False)
        checked = src.driver.check_can_live_migrate_source(
            None, instance, src.nova.receive(dest_check),
            hosts.block_device_info([vol]))
        migrate_data = dst.nova.receive(checked)
        dst.driver.pre_live_migration(
            None, instance, hosts.block_device_info([vol]), [], None,
            migrate_data)
        self.assertEqual([self._sr_uuid(vol, 'old')], dst.pool.sr_uuids())

        dst.driver.rollback_live_migration_at_destination(
            None, instance, [], hosts.block_device_info([vol]),
            destroy_disks=True, migrate_data=migrate_data)

        self.assertEqual([], dst.pool.sr_uuids())
        self.assertEqual([self._sr_uuid(vol, 'old')], src.pool.sr_uuids())


class MigrateDataVersionTestCase(nova21.Nova21TestCase):
    """XenapiLiveMigrateData of patched Nova 21 (1.5) against stock (1.4).
    Nothing is stubbed: the objects are Nova 21's own classes on
    oslo.versionedobjects; only their registry is private to the loader."""

    def _patched_data(self):
        cls = self.patched.object_class('XenapiLiveMigrateData')
        return cls(block_migration=True, sr_uuid_map={'sr': 'ref'},
                   volume_sr_uuids={'vol-1': 'FA15E-D15C-vol-1'})

    def test_versions(self):
        """Patched 1.5 with volume_sr_uuids, stock 1.4 without.  Nothing
        stubbed."""
        self.assertEqual(
            '1.5', self.patched.object_class('XenapiLiveMigrateData').VERSION)
        self.assertEqual(
            '1.4', self.stock.object_class('XenapiLiveMigrateData').VERSION)
        self.assertNotIn(
            'volume_sr_uuids',
            self.stock.object_class('XenapiLiveMigrateData').fields)

    def test_obj_make_compatible_drops_the_field_for_1_4(self):
        """Nova 21's obj_make_compatible drops the field for 1.4 and keeps
        the rest.  Nothing stubbed."""
        data = self._patched_data()
        primitive = data.obj_to_primitive(target_version='1.4')
        self.assertEqual('1.4', primitive['nova_object.version'])
        self.assertNotIn('volume_sr_uuids', primitive['nova_object.data'])
        self.assertEqual({'sr': 'ref'},
                         primitive['nova_object.data']['sr_uuid_map'])
        primitive = data.obj_to_primitive()
        self.assertEqual({'vol-1': 'FA15E-D15C-vol-1'},
                         primitive['nova_object.data']['volume_sr_uuids'])

    def test_stock_receives_patched(self):
        """An unpatched peer gets the object backported to 1.4 without the
        field.  Nothing stubbed."""
        received = self.stock.receive(self._patched_data())
        self.assertEqual('1.4', received.VERSION)
        self.assertEqual({'sr': 'ref'}, received.sr_uuid_map)
        self.assertNotIn('volume_sr_uuids', received)

    def test_patched_receives_stock(self):
        """A 1.4 object from an unpatched peer has no volume_sr_uuids for
        a patched receiver.  Nothing stubbed."""
        cls = self.stock.object_class('XenapiLiveMigrateData')
        received = self.patched.receive(cls(block_migration=True))
        self.assertTrue(received.block_migration)
        self.assertNotIn('volume_sr_uuids', received)

    def test_patched_receives_patched(self):
        """Between patched peers the field survives.  Nothing stubbed."""
        received = self.patched.receive(self._patched_data())
        self.assertEqual({'vol-1': 'FA15E-D15C-vol-1'},
                         received.volume_sr_uuids)
