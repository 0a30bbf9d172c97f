"""Two XenAPI compute hosts running Nova 21 code, and Nova's live migration
sequence between them.

A :class:`Host` is one XenServer pool (the stub of :mod:`fake_xapi`) with a
real Nova 21 ``XenAPIDriver`` (stock or patched, from :mod:`nova21`) logged
in to it.  The driver's ``__init__`` runs unchanged: its
``os_xenapi.client.session.XenAPISession`` is the stub's, which returns a
:class:`fake_xapi.FakeSession` on the host's pool.

:func:`live_migrate` drives the driver calls in the order Nova 21's compute
manager and conductor make them for a live migration, passing the
XenapiLiveMigrateData between the hosts as RPC does (:meth:`Nova21.receive`:
serialised at the sender's version, backported for an older receiver).
"""

import copy
import itertools
import uuid

from nova_migration_guard.xenapi import sr_uuid as naming
from tests.unit.xenapi import fake_xapi

_hosts = itertools.count(1)


class Instance(dict):
    """What the XenAPI driver reads of an instance: ['name'], .uuid,
    .host."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)


def make_instance(source):
    instance_uuid = str(uuid.uuid4())
    return Instance(uuid=instance_uuid, name='instance-%s' % instance_uuid,
                    host=source.name)


def volume(san, iqn_suffix, lun=1, host='192.0.2.50', port='3260',
           volume_id=None):
    """A Cinder iSCSI volume: a LUN on the SAN and its connection info."""
    volume_id = volume_id or str(uuid.uuid4())
    iqn = 'iqn.2010-10.org.openstack:%s' % iqn_suffix
    san.add_lun(host, port, iqn, lun)
    return {'driver_volume_type': 'iscsi',
            'serial': volume_id,
            'data': {'volume_id': volume_id,
                     'target_portal': '%s:%s' % (host, port),
                     'target_iqn': iqn,
                     'target_lun': lun,
                     'target_discovered': False}}


def block_device_info(connection_infos):
    """What the compute manager passes the driver: fresh copies (the
    destination refreshes the connection info from Cinder)."""
    return {'root_device_name': '/dev/xvda', 'ephemerals': [], 'swap': None,
            'block_device_mapping': [
                {'connection_info': copy.deepcopy(info),
                 'mount_device': '/dev/xvd%s' % 'abcdefgh'[i],
                 'boot_index': 0 if i == 0 else None,
                 'delete_on_termination': False}
                for i, info in enumerate(connection_infos)]}


class Host(object):
    """A compute host: a stub XenServer pool and Nova 21's XenAPIDriver."""

    def __init__(self, testcase, nova, san, role):
        n = next(_hosts)
        self.name = '%s-%d' % (role, n)
        self.nova = nova
        self.pool = fake_xapi.Pool(self.name, san, ip='192.0.2.%d' % n)
        testcase.addCleanup(self.pool.close)
        driver_mod = nova.module('nova.virt.xenapi.driver')
        nova.conf.set_override('connection_url', self.pool.url, 'xenserver')
        nova.conf.set_override('connection_password', 'secret', 'xenserver')
        try:
            self.driver = driver_mod.XenAPIDriver(virtapi=None)
        finally:
            nova.conf.clear_override('connection_url', 'xenserver')
            nova.conf.clear_override('connection_password', 'xenserver')
        self.session = self.driver._session
        self.volume_utils = nova.module('nova.virt.xenapi.volume_utils')

    def boot_from_volumes(self, instance, volumes):
        """The instance running here with its volumes attached, each
        ``(connection_info, style)``.  A ``'new'`` volume is attached by
        this host's Nova 21 (VolumeOps.attach_volume), so its SR gets the
        UUID Nova computes; an ``'old'`` one is left as pre-Mitaka Nova
        left it: an iSCSI SR named ``FA15E-D15C-<volume id>``."""
        vm = self.pool.create_vm(instance['name'])
        for i, (info, style) in enumerate(volumes):
            data = info['data']
            if style == 'new':
                self.driver._volumeops.attach_volume(
                    copy.deepcopy(info), instance['name'],
                    '/dev/xvd%s' % 'abcdefgh'[i], hotplug=False)
                continue
            assert style == 'old', style
            sr_uuid = naming.old_style_sr_uuid(data['volume_id'])
            portal = data['target_portal']
            sr = self.pool.connect_iscsi_sr(sr_uuid, {
                'target': naming.target_host(portal),
                'port': naming.target_port(portal),
                'targetIQN': data['target_iqn']})
            self.pool.attach(vm, self.pool.vdi_in_sr(sr, data['target_lun']),
                             i)
        return vm


class Outcome(object):
    """What happened in a live migration, for assertions."""

    def __init__(self):
        self.source_check = None      # check_can_live_migrate_source result
        self.at_destination = None    # migrate data pre_live_migration got
        self.pre_live_migration = None
        self.at_source = None         # migrate data live_migration got
        self.error = None
        self.post = []
        self.recover = []


def live_migrate(source, dest, instance, volumes):
    """A block live migration of ``instance`` from ``source`` to ``dest``
    in Nova 21's order: the destination check, the source check (the
    destination asks the source), pre_live_migration on the destination
    (the source asks the destination) and the source's live_migration.
    ``volumes``: the connection infos of the instance's volumes."""
    out = Outcome()
    ctxt = None
    dest_check = dest.driver.check_can_live_migrate_destination(
        ctxt, instance, {}, {}, block_migration=None, disk_over_commit=False)
    out.source_check = source.driver.check_can_live_migrate_source(
        ctxt, instance, source.nova.receive(dest_check),
        block_device_info(volumes))
    # The source answers the destination, which answers the conductor,
    # which casts live_migration to the source.
    at_source = source.nova.receive(dest.nova.receive(out.source_check))
    out.at_destination = dest.nova.receive(at_source)
    out.pre_live_migration = dest.driver.pre_live_migration(
        ctxt, instance, block_device_info(volumes), [], None,
        out.at_destination)
    out.at_source = source.nova.receive(out.pre_live_migration)

    def post_method(context, instance, dest_name, block_migration,
                    migrate_data):
        out.post.append(dest_name)

    def recover_method(context, instance, dest_name, migrate_data):
        out.recover.append(dest_name)

    try:
        source.driver.live_migration(ctxt, instance, dest.name, post_method,
                                     recover_method, block_migration=True,
                                     migrate_data=out.at_source)
    except Exception as exc:
        out.error = exc
    return out
