"""What the source of a live migration needs to end it with Nova's own
flows after its nova-compute restarted.

Nova's post-migration (``_post_live_migration_update_host``) and rollback
(``_rollback_live_migration``) steps take the migration's
``migrate_data`` and the block device mappings as they were before the
destination changed them (``source_bdms``: the source's volume attachment
ids and connection info).  Nova keeps both only in the memory of the
source's nova-compute, so a restart loses them, and with them the means to
delete the source's volume attachments, unplug its VIFs, clean its
instance directory or restore the attachments on rollback.

The guarded driver therefore writes them, when a live migration starts,
to a file of the source host (``$state_path/migration_guard/
live-migrations/<migration uuid>.json``, mode 0600: connection info can
hold volume credentials, as Nova's own database does), and removes it
when the migration ends while the process runs.  A record that is still
there at start belongs to a migration the process did not see end; the
restart recovery reads it and calls Nova's flows with it.
"""

import json
import os

from nova import conf as nova_conf
from nova import objects
from nova.objects import base as objects_base
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

CONF = nova_conf.CONF


class Record(object):
    """One live migration's ``dest``, ``block_migration``,
    ``migrate_data`` and ``source_bdms``, as Nova's flows take them."""

    def __init__(self, dest, block_migration, migrate_data, source_bdms):
        self.dest = dest
        self.block_migration = block_migration
        self.migrate_data = migrate_data
        self.source_bdms = source_bdms

    @property
    def destination_address(self):
        return destination_address(self.dest, self.migrate_data)


def destination_address(dest, migrate_data):
    """The address at which the source reaches the destination's libvirt,
    as Nova's libvirt driver does for the migration itself: the
    destination's ``[libvirt] live_migration_inbound_addr``
    (``target_connect_addr``, e.g. on a migration network), else its host
    name ``dest``."""
    if ('target_connect_addr' in migrate_data and
            migrate_data.target_connect_addr):
        return migrate_data.target_connect_addr
    return dest


def directory():
    return os.path.join(CONF.state_path, 'migration_guard', 'live-migrations')


def _path(migration_uuid):
    return os.path.join(directory(), '%s.json' % migration_uuid)


def write(migration_uuid, dest, block_migration, migrate_data, source_bdms):
    """Record a live migration as it starts (atomically: a record is either
    whole or absent)."""
    os.makedirs(directory(), mode=0o700, exist_ok=True)
    body = json.dumps({
        'dest': dest,
        'block_migration': bool(block_migration),
        'migrate_data': migrate_data.obj_to_primitive(),
        'source_bdms': (source_bdms.obj_to_primitive()
                        if source_bdms is not None else None),
    })
    path = _path(migration_uuid)
    partial = path + '.partial'
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def read(context, migration_uuid):
    """The Record of the migration, its objects bound to ``context``, or
    None when there is none or it cannot be read."""
    path = _path(migration_uuid)
    try:
        with open(path) as source:
            body = json.load(source)
        source_bdms = body['source_bdms']
        return Record(
            body['dest'], body['block_migration'],
            # Nova's registry picks the class (LibvirtLiveMigrateData).
            objects_base.NovaObject.obj_from_primitive(
                body['migrate_data'], context=context),
            objects.BlockDeviceMappingList.obj_from_primitive(
                source_bdms, context=context)
            if source_bdms is not None else None)
    except FileNotFoundError:
        return None
    except Exception as exc:
        LOG.error('Cannot read the record of live migration %s (%s): %s',
                  migration_uuid, path, exc)
        return None


def recorded():
    """The uuids of the migrations that have a record on this host."""
    try:
        names = os.listdir(directory())
    except FileNotFoundError:
        return []
    return [name[:-len('.json')] for name in names if name.endswith('.json')]


def remove(migration_uuid):
    if migration_uuid is None:
        return
    try:
        os.unlink(_path(migration_uuid))
    except FileNotFoundError:
        pass
