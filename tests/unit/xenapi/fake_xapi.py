"""A stub of the XenAPI session: the one part of the Nova 21 XenAPI driver
that these tests replace, since there is no XenServer here.

Nova's XenAPI driver talks to XenServer only through its session object
(``call_xenapi('SR.get_by_uuid', ...)``, ``session.VDI.get_uuid(...)``,
``call_plugin(...)``) and through ``os_xenapi``, the XenAPI client library,
whose modules turn a few calls into session calls.  This module stands in
for both:

* :class:`FakeSession` -- the session Nova's VMOps/VolumeOps get.  It
  answers the XenAPI calls of the live migration path from the records of
  one :class:`Pool` and logs every call in ``pool.calls``.  An unknown
  method raises ``NotImplementedError`` naming it, so a test never passes
  by an answer the stub made up.
* :class:`Pool` -- one XenServer pool as XenAPI shows it: hosts, SRs, PBDs,
  VDIs, VBDs, VMs and PIFs by opaque reference.  It follows the XenAPI
  semantics the driver relies on: ``SR.get_by_uuid`` of an unknown UUID
  fails with ``UUID_INVALID``; ``SR.introduce`` + ``PBD.create`` +
  ``PBD.plug`` + ``SR.scan`` connect an iSCSI SR, and the plug fails unless
  the PBD's device config names a target of the :class:`SAN`;
  ``VM.assert_can_migrate`` and ``VM.migrate_send`` fail with
  ``VDI_NOT_IN_MAP`` when a VDI of the VM is missing from the VDI map and
  move the VM to the destination pool, recording for each VDI whether XAPI
  found the same SR UUID at both ends or had to mirror (copy) the VDI.
* :class:`SAN` -- the iSCSI storage both pools reach: LUNs by target and
  IQN.  A LUN's VDI has the same UUID on every pool (the LUN-per-VDI SR
  derives it from the LUN's SCSI id).
* :func:`os_xenapi_modules` -- the ``os_xenapi.client`` modules Nova 21
  imports: ``XenAPI`` (its ``Failure``), ``host_xenstore`` (forwards to
  ``session.call_plugin`` as os_xenapi does) and empty stand-ins for the
  modules the live migration path never calls.
"""

import itertools
import types
import uuid


class Failure(Exception):
    """XenAPI.Failure: ``details[0]`` is the XenAPI error code."""

    def __init__(self, details):
        super().__init__(details)
        self.details = details

    def __str__(self):
        return 'XenAPI.Failure(%r)' % (self.details,)


def os_xenapi_modules():
    """{dotted name: module} for the os_xenapi names Nova 21 imports."""
    xenapi = types.ModuleType('os_xenapi.client.XenAPI')
    xenapi.Failure = Failure

    xenstore = types.ModuleType('os_xenapi.client.host_xenstore')

    def read_record(session, dom_id, path, ignore_missing_path=True):
        args = {'dom_id': dom_id, 'path': path,
                'ignore_missing_path': 'True' if ignore_missing_path
                else 'False'}
        return session.call_plugin('xenstore.py', 'read_record', args)

    def write_record(session, dom_id, path, value):
        args = {'dom_id': dom_id, 'path': path, 'value': value}
        return session.call_plugin('xenstore.py', 'write_record', args)

    def delete_record(session, dom_id, path):
        args = {'dom_id': dom_id, 'path': path}
        return session.call_plugin('xenstore.py', 'delete_record', args)

    xenstore.read_record = read_record
    xenstore.write_record = write_record
    xenstore.delete_record = delete_record

    session = types.ModuleType('os_xenapi.client.session')

    def XenAPISession(url, user, pw, originator='nova', timeout=None):
        """Log in to the pool registered under ``url`` (Pool.url)."""
        try:
            return FakeSession(POOLS[url])
        except KeyError:
            raise Failure(['SESSION_AUTHENTICATION_FAILED', user,
                           'stub: no pool at %r' % url])

    session.XenAPISession = XenAPISession

    return {'os_xenapi.client.XenAPI': xenapi,
            'os_xenapi.client.host_xenstore': xenstore,
            'os_xenapi.client.session': session}


# Pools by the URL that XenAPISession logs in to.
POOLS = {}


def unused_os_xenapi_module(name):
    """Any other os_xenapi module: importable, but using it fails."""
    return _Unused(name)


class _Unused(types.ModuleType):
    """An os_xenapi module the tested path imports but never calls."""

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        raise NotImplementedError(
            'stub os_xenapi: %s.%s is not stubbed (the live migration path '
            'was not expected to call it)' % (self.__name__, name))


class SAN(object):
    """iSCSI targets reachable from every pool."""

    def __init__(self):
        self.targets = {}   # (host, port, iqn) -> {lun: scsi_id}
        self.pools = {}     # host ref -> Pool, for migrate_send

    def add_lun(self, host, port, iqn, lun):
        scsi_id = 'scsi-%s-%s' % (iqn, lun)
        self.targets.setdefault((host, str(port), iqn), {})[str(lun)] = \
            scsi_id
        return self.vdi_uuid(scsi_id)

    @staticmethod
    def vdi_uuid(scsi_id):
        return str(uuid.uuid5(uuid.NAMESPACE_OID, scsi_id))

    def luns(self, device_config):
        key = (device_config.get('target'), str(device_config.get('port')),
               device_config.get('targetIQN'))
        return self.targets.get(key)


class Pool(object):
    """The XenAPI records of one single-host pool, and its call log."""

    _refs = itertools.count(1)

    def __init__(self, name, san, ip, platform_version='2.2.0'):
        self.name = name
        self.san = san
        self.calls = []
        self.failures = []       # (method, args, details) raised
        self.migrations = []     # what VM.migrate_send did, per VM
        self.records = {}
        self.url = 'http://%s.xenapi.test' % name
        POOLS[self.url] = self
        self.host_ref = self._add('host', {
            'name_label': name, 'uuid': str(uuid.uuid4()),
            'hostname': name, 'address': ip,
            'software_version': {'platform_name': 'XCP',
                                 'platform_version': platform_version,
                                 'product_version': '7.1.0'}})
        san.pools[self.host_ref] = self
        self.local_sr = self._add('SR', {
            'uuid': str(uuid.uuid4()), 'name_label': 'Local storage',
            'type': 'lvm', 'shared': False, 'PBDs': [], 'VDIs': [],
            'other_config': {}})
        self.pool_ref = self._add('pool', {'default_SR': self.local_sr})
        self.network_ref = self._add('network', {'name_label': 'mgmt'})
        self._add('PIF', {'management': True, 'host': self.host_ref,
                          'IP': ip, 'IPv6': '', 'uuid': str(uuid.uuid4()),
                          'network': self.network_ref})

    # -- records -----------------------------------------------------------

    def close(self):
        POOLS.pop(self.url, None)
        self.san.pools.pop(self.host_ref, None)

    def _add(self, cls, rec):
        ref = 'OpaqueRef:%s-%s-%d' % (self.name, cls, next(self._refs))
        self.records.setdefault(cls, {})[ref] = rec
        return ref

    def _rec(self, cls, ref):
        try:
            return self.records[cls][ref]
        except KeyError:
            raise Failure(['HANDLE_INVALID', cls, ref])

    def all(self, cls):
        return dict(self.records.get(cls, {}))

    def sr_by_uuid(self, sr_uuid):
        for ref, rec in self.all('SR').items():
            if rec['uuid'] == sr_uuid:
                return ref
        return None

    def sr_uuids(self):
        """The UUIDs of this pool's SRs other than its local storage."""
        return sorted(rec['uuid'] for ref, rec in self.all('SR').items()
                      if ref != self.local_sr)

    def vm_by_name(self, name):
        refs = [ref for ref, rec in self.all('VM').items()
                if rec['name_label'] == name]
        return refs[0] if refs else None

    def vm_volumes(self, name):
        """{userdevice: (VDI uuid, SR uuid)} of a VM of this pool."""
        vm = self._rec('VM', self.vm_by_name(name))
        result = {}
        for vbd in vm['VBDs']:
            vbd_rec = self._rec('VBD', vbd)
            vdi_rec = self._rec('VDI', vbd_rec['VDI'])
            result[vbd_rec['userdevice']] = (
                vdi_rec['uuid'], self._rec('SR', vdi_rec['SR'])['uuid'])
        return result

    # -- set-up (the state Nova left the source host in) -------------------

    def connect_iscsi_sr(self, sr_uuid, device_config):
        """An iSCSI SR plugged and scanned, as Nova's introduce_sr leaves
        it (pre-Mitaka Nova did the same under an old-style UUID)."""
        sr = self._SR_introduce(sr_uuid, 'tempSR-%s' % sr_uuid, '', 'iscsi',
                                '', False, dict(device_config))
        pbd = self._PBD_create({'host': self.host_ref, 'SR': sr,
                                'device_config': dict(device_config)})
        self._PBD_plug(pbd)
        self._SR_scan(sr)
        return sr

    def create_vm(self, name):
        return self._add('VM', {
            'uuid': str(uuid.uuid4()), 'name_label': name, 'VBDs': [],
            'VIFs': [], 'domid': '1', 'PV_kernel': '', 'PV_ramdisk': '',
            'other_config': {}, 'resident_on': self.host_ref})

    def attach(self, vm_ref, vdi_ref, userdevice):
        vbd = self._add('VBD', {'VM': vm_ref, 'VDI': vdi_ref,
                                'userdevice': str(userdevice),
                                'other_config': {'osvol': 'True'}})
        self._rec('VM', vm_ref)['VBDs'].append(vbd)
        self._rec('VDI', vdi_ref)['VBDs'].append(vbd)
        return vbd

    def vdi_in_sr(self, sr_ref, lun):
        for vdi in self._rec('SR', sr_ref)['VDIs']:
            if self._rec('VDI', vdi)['sm_config'].get('LUNid') == str(lun):
                return vdi
        raise AssertionError('no LUN %s in %s' % (lun, sr_ref))

    # -- the XenAPI calls ---------------------------------------------------

    def call(self, method, *args):
        self.calls.append((method,) + args)
        handler = getattr(self, '_' + method.replace('.', '_'), None)
        if handler is None:
            raise NotImplementedError('stub XenAPI: %s is not stubbed'
                                      % method)
        try:
            return handler(*args)
        except Failure as exc:
            self.failures.append((method, args, exc.details))
            raise

    def calls_of(self, method):
        return [call[1:] for call in self.calls if call[0] == method]

    def _SR_get_by_uuid(self, sr_uuid):
        ref = self.sr_by_uuid(sr_uuid)
        if ref is None:
            raise Failure(['UUID_INVALID', 'SR', sr_uuid])
        return ref

    def _SR_get_type(self, sr):
        return self._rec('SR', sr)['type']

    def _SR_get_record(self, sr):
        return dict(self._rec('SR', sr))

    def _SR_get_VDIs(self, sr):
        return list(self._rec('SR', sr)['VDIs'])

    def _SR_get_PBDs(self, sr):
        return list(self._rec('SR', sr)['PBDs'])

    def _SR_introduce(self, sr_uuid, label, desc, sr_type, content_type,
                      shared, sm_config):
        if self.sr_by_uuid(sr_uuid):
            raise Failure(['INTERNAL_ERROR', 'stub: SR %s exists' % sr_uuid])
        return self._add('SR', {'uuid': sr_uuid, 'name_label': label,
                                'name_description': desc, 'type': sr_type,
                                'shared': shared, 'PBDs': [], 'VDIs': [],
                                'other_config': {},
                                'sm_config': dict(sm_config)})

    def _PBD_create(self, rec):
        rec = dict(rec, currently_attached=False,
                   device_config=dict(rec['device_config']))
        ref = self._add('PBD', rec)
        self._rec('SR', rec['SR'])['PBDs'].append(ref)
        return ref

    def _PBD_plug(self, pbd):
        rec = self._rec('PBD', pbd)
        if self.san.luns(rec['device_config']) is None:
            raise Failure(['SR_BACKEND_FAILURE_96', '',
                           'no iSCSI target for device config %s'
                           % sorted(rec['device_config'].items())])
        rec['currently_attached'] = True

    def _PBD_unplug(self, pbd):
        self._rec('PBD', pbd)['currently_attached'] = False

    def _SR_scan(self, sr):
        sr_rec = self._rec('SR', sr)
        plugged = [self._rec('PBD', p) for p in sr_rec['PBDs']
                   if self._rec('PBD', p)['currently_attached']]
        if not plugged:
            raise Failure(['SR_HAS_NO_PBDS', sr])
        luns = self.san.luns(plugged[0]['device_config'])
        known = {self._rec('VDI', v)['sm_config']['LUNid']
                 for v in sr_rec['VDIs']}
        for lun, scsi_id in sorted(luns.items()):
            if lun not in known:
                self._new_vdi(sr, self.san.vdi_uuid(scsi_id), lun)

    def _new_vdi(self, sr, vdi_uuid, lun):
        vdi = self._add('VDI', {
            'uuid': vdi_uuid, 'SR': sr, 'name_label': '',
            'name_description': '', 'managed': True, 'type': 'user',
            'sharable': False, 'read_only': False, 'other_config': {},
            'location': vdi_uuid, 'xenstore_data': {},
            'sm_config': {'LUNid': str(lun)}, 'VBDs': []})
        self._rec('SR', sr)['VDIs'].append(vdi)
        return vdi

    def _SR_forget(self, sr):
        sr_rec = self.records['SR'].pop(sr)
        for vdi in sr_rec['VDIs']:
            self.records['VDI'].pop(vdi, None)
        for pbd in sr_rec['PBDs']:
            self.records['PBD'].pop(pbd, None)

    def _VDI_get_record(self, vdi):
        return dict(self._rec('VDI', vdi))

    def _VDI_get_uuid(self, vdi):
        return self._rec('VDI', vdi)['uuid']

    def _VDI_get_SR(self, vdi):
        return self._rec('VDI', vdi)['SR']

    def _VDI_get_VBDs(self, vdi):
        return list(self._rec('VDI', vdi)['VBDs'])

    def _VDI_get_by_uuid(self, vdi_uuid):
        for ref, rec in self.all('VDI').items():
            if rec['uuid'] == vdi_uuid:
                return ref
        raise Failure(['UUID_INVALID', 'VDI', vdi_uuid])

    def _VBD_create(self, rec):
        vbd = self._add('VBD', dict(rec, other_config=dict(
            rec.get('other_config', {}))))
        self._rec('VM', rec['VM'])['VBDs'].append(vbd)
        self._rec('VDI', rec['VDI'])['VBDs'].append(vbd)
        return vbd

    def _VBD_add_to_other_config(self, vbd, key, value):
        self._rec('VBD', vbd)['other_config'][key] = value

    def _VBD_get_VDI(self, vbd):
        return self._rec('VBD', vbd)['VDI']

    def _VM_get_by_name_label(self, name):
        return [ref for ref, rec in self.all('VM').items()
                if rec['name_label'] == name]

    def _VM_get_record(self, vm):
        return dict(self._rec('VM', vm))

    def _VM_get_VBDs(self, vm):
        return list(self._rec('VM', vm)['VBDs'])

    def _VM_get_VIFs(self, vm):
        return list(self._rec('VM', vm)['VIFs'])

    def _VM_get_domid(self, vm):
        return self._rec('VM', vm)['domid']

    def _VM_get_all_records_where(self, expr):
        if expr.replace(' ', '') != 'field"domid"="0"':
            raise NotImplementedError('stub XenAPI: VM query %s' % expr)
        return {'OpaqueRef:%s-dom0' % self.name: {
            'domid': '0', 'resident_on': self.host_ref}}

    def _host_get_record(self, host):
        return dict(self._rec('host', host))

    def _host_get_all_records(self):
        return self.all('host')

    def _host_get_by_name_label(self, name):
        return [ref for ref, rec in self.all('host').items()
                if rec['name_label'] == name]

    def _host_migrate_receive(self, host, network, options):
        return {'host': host, 'xenops': 'http://%s/services/xenops'
                % self.name, 'SM': 'http://%s/services/SM' % self.name,
                'session_id': 'OpaqueRef:%s-session' % self.name,
                'master': 'http://%s/' % self.name}

    def _pool_get_all(self):
        return list(self.all('pool'))

    def _pool_get_default_SR(self, pool):
        return self._rec('pool', pool)['default_SR']

    def _PIF_get_all_records_where(self, expr):
        return {ref: dict(rec) for ref, rec in self.all('PIF').items()
                if rec['management'] and rec['host'] == self.host_ref}

    def _check_migration(self, vm, dest, vdi_map):
        """The destination pool, and per VDI (uuid, source SR uuid,
        destination SR ref) as XAPI checks them before migrating."""
        target = self.san.pools.get(dest.get('host'))
        if target is None:
            raise Failure(['HOST_OFFLINE', dest.get('host')])
        plan = []
        for vbd in self._rec('VM', vm)['VBDs']:
            vdi = self._rec('VBD', vbd)['VDI']
            if vdi not in vdi_map:
                raise Failure(['VDI_NOT_IN_MAP', vdi])
            dest_sr = vdi_map[vdi]
            target._rec('SR', dest_sr)
            vdi_rec = self._rec('VDI', vdi)
            plan.append((vbd, vdi_rec, self._rec('SR', vdi_rec['SR']),
                         dest_sr))
        return target, plan

    def _VM_assert_can_migrate(self, vm, dest, live, vdi_map, vif_map,
                               options):
        self._check_migration(vm, dest, vdi_map)

    def _VM_migrate_send(self, vm, dest, live, vdi_map, vif_map, options):
        """Move the VM.  A VDI whose SR has the same UUID at the other end
        is taken over as is; any other VDI is mirrored (copied) into the
        destination SR, as XAPI's storage motion does."""
        target, plan = self._check_migration(vm, dest, vdi_map)
        vm_rec = self._rec('VM', vm)
        new_vm = target.create_vm(vm_rec['name_label'])
        outcome = {}
        for vbd, vdi_rec, src_sr, dest_sr in plan:
            dest_sr_rec = target._rec('SR', dest_sr)
            same = dest_sr_rec['uuid'] == src_sr['uuid']
            if same:
                dest_vdi = target._VDI_get_by_uuid(vdi_rec['uuid'])
            else:
                dest_vdi = target._new_vdi(dest_sr, str(uuid.uuid4()),
                                           vdi_rec['sm_config'].get('LUNid'))
            target.attach(new_vm, dest_vdi,
                          self._rec('VBD', vbd)['userdevice'])
            outcome[vdi_rec['uuid']] = {
                'source_sr': src_sr['uuid'],
                'destination_sr': dest_sr_rec['uuid'],
                'mirrored': not same}
        for vbd in vm_rec['VBDs']:
            vdi = self.records['VBD'].pop(vbd)['VDI']
            self._rec('VDI', vdi)['VBDs'].remove(vbd)
        del self.records['VM'][vm]
        self.migrations.append({'vm': vm_rec['name_label'],
                                'to': target.name, 'vdis': outcome})


class FakeSession(object):
    """What Nova 21's XenAPISession offers the live migration path."""

    XenAPI = types.SimpleNamespace(Failure=Failure)
    product_brand = 'XenServer'
    product_version = (7, 1, 0)

    def __init__(self, pool):
        self.pool = pool
        self.host_ref = pool.host_ref

    def call_xenapi(self, method, *args):
        return self.pool.call(method, *args)

    def call_plugin(self, plugin, fn, args):
        self.pool.calls.append(('plugin:%s/%s' % (plugin, fn), args))
        if (plugin, fn) == ('xenstore.py', 'read_record'):
            # The dom0 plugin's answer for a missing path: JSON "None".
            return '"None"'
        raise NotImplementedError('stub XenAPI plugin: %s %s' % (plugin, fn))

    def is_xsm_sr_check_relaxed(self):
        return True

    def get_rec(self, cls, ref):
        try:
            return self.call_xenapi('%s.get_record' % cls, ref)
        except Failure as exc:
            if exc.details[0] != 'HANDLE_INVALID':
                raise
        return None

    def __getattr__(self, name):
        # session.VM.get_record(ref) is call_xenapi('VM.get_record', ref)
        if name.startswith('_'):
            raise AttributeError(name)
        return _XenAPIClass(self, name)


class _XenAPIClass(object):

    def __init__(self, session, name):
        self._session = session
        self._name = name

    def __getattr__(self, method):
        def call(*args):
            return self._session.call_xenapi(
                '%s.%s' % (self._name, method), *args)
        return call
