"""Which SR UUID Nova's XenAPI driver uses for an iSCSI volume.

Nova's XenAPI driver connects each volume through a storage repository
(SR) whose UUID it derives from the volume's connection data, and it has
done so under two conventions:

* before Mitaka, ``FA15E-D15C-<volume id>`` (the *old style*): one SR per
  volume;
* since Mitaka, ``uuid5(SR_NAMESPACE, "<target>/<port>/<iqn>")`` (the *new
  style*): one SR per iSCSI target, computed by
  ``nova.virt.xenapi.volume_utils.parse_sr_info``.

SRs of the old style remain on hosts that attached the volume back then.
XenAPI live migration needs a volume's SR to have the same UUID on the
source and the destination host, but stock Nova 21 lets the destination
compute the new-style UUID, so an instance with an old-style volume cannot
live-migrate (Launchpad bug 1566622).  The ``patches/nova/21.x`` series
has the source report the UUID it uses for each volume
(``XenapiLiveMigrateData.volume_sr_uuids``) and the destination connect
the SR with exactly that UUID.

This module is that naming logic as pure functions: no Nova, no XenAPI.
The patched Nova carries its own copy (patched Nova must not import the
plugin); ``tests/unit/xenapi`` checks that both give the same UUIDs for
the same inputs.  ``connection_data`` is the ``data`` dict of a volume's
``connection_info`` as Cinder returns it (``volume_id``,
``target_portal``, ``target_iqn``, ...).
"""

import uuid

# nova.virt.xenapi.volume_utils.SR_NAMESPACE:
# uuid.uuid5(uuid.UUID(int=0), 'volume_utils-SR_UUID')
SR_NAMESPACE = uuid.UUID('3cca4135-a809-5bb3-af62-275fbfe87178')

# The prefix of the pre-Mitaka SR UUIDs.
OLD_STYLE_PREFIX = 'FA15E-D15C-'

# Nova's [xenserver] target_host and target_port defaults: used when the
# target portal lacks the host or the port.
DEFAULT_TARGET_HOST = None
DEFAULT_TARGET_PORT = 3260


class MissingTargetInfo(ValueError):
    """The connection data lacks the volume id, target host or IQN (Nova
    raises StorageError there)."""


def old_style_sr_uuid(volume_id):
    """The UUID Nova gave the SR of ``volume_id`` before Mitaka."""
    return '%s%s' % (OLD_STYLE_PREFIX, volume_id)


def is_old_style_sr_uuid(sr_uuid):
    """Whether ``sr_uuid`` follows the pre-Mitaka convention (the prefix in
    any case)."""
    return (isinstance(sr_uuid, str) and
            sr_uuid.upper().startswith(OLD_STYLE_PREFIX))


def volume_id_of_old_style(sr_uuid):
    """The volume id an old-style SR UUID names, else None."""
    if not is_old_style_sr_uuid(sr_uuid):
        return None
    return sr_uuid[len(OLD_STYLE_PREFIX):] or None


def target_host(target_portal, default=DEFAULT_TARGET_HOST):
    """The host part of an iSCSI portal, as Nova 21's
    ``volume_utils._get_target_host`` takes it."""
    if target_portal:
        host = target_portal.split(':')[0]
        if len(host) > 0:
            return host
    return default


def target_port(target_portal, default=DEFAULT_TARGET_PORT):
    """The port part of an iSCSI portal (whatever follows the first colon
    up to the next), as Nova 21's ``volume_utils._get_target_port``."""
    if target_portal and ':' in target_portal:
        return target_portal.split(':')[1]
    return default


def new_style_sr_uuid(target, port, target_iqn):
    """The UUID Nova gives the SR of an iSCSI target since Mitaka."""
    return str(uuid.uuid5(SR_NAMESPACE,
                          '%s/%s/%s' % (target, port, target_iqn)))


def new_style_sr_uuid_for(connection_data,
                          default_target_host=DEFAULT_TARGET_HOST,
                          default_target_port=DEFAULT_TARGET_PORT):
    """The new-style SR UUID of a volume's connection data.

    :raises KeyError: without a ``volume_id``, ``target_portal`` or
        ``target_iqn`` key, as Nova does.
    :raises MissingTargetInfo: when the volume id, the target host (portal
        and default) or the IQN is None.
    """
    volume_id = connection_data['volume_id']
    portal = connection_data['target_portal']
    host = target_host(portal, default_target_host)
    port = target_port(portal, default_target_port)
    iqn = connection_data['target_iqn']
    if volume_id is None or host is None or iqn is None:
        raise MissingTargetInfo(
            'volume %s: the connection data lacks the volume id, the target '
            'host or the target IQN' % volume_id)
    return new_style_sr_uuid(host, port, iqn)


def computed_sr_uuid(connection_data, **defaults):
    """The SR UUID a stock Nova 21 host connects a volume with: the one the
    volume provider put in the connection data, else the new style
    (``parse_sr_info``).  ``defaults``: ``default_target_host``,
    ``default_target_port``."""
    if 'sr_uuid' in connection_data:
        return connection_data['sr_uuid']
    return new_style_sr_uuid_for(connection_data, **defaults)


def parse_sr_uuid(connection_data, **defaults):
    """The SR UUID that ``parse_sr_info`` of patched Nova 21 returns: as
    :func:`computed_sr_uuid`, except that a given ``sr_uuid`` with iSCSI
    details (``target_iqn``, no ``introduce_sr_keys``) needs those details
    complete, since patched Nova connects the SR with them."""
    if ('sr_uuid' in connection_data and
            'introduce_sr_keys' not in connection_data and
            'target_iqn' in connection_data):
        new_style_sr_uuid_for(connection_data, **defaults)
        return connection_data['sr_uuid']
    return computed_sr_uuid(connection_data, **defaults)


def candidate_sr_uuids(connection_data, **defaults):
    """The SR UUIDs a host may have for a volume, in the order to look for
    them: the volume provider's, else the old style then the new style."""
    if 'sr_uuid' in connection_data:
        return [connection_data['sr_uuid']]
    return [old_style_sr_uuid(connection_data['volume_id']),
            new_style_sr_uuid_for(connection_data, **defaults)]


def sr_uuid_in_use(connection_data, known_sr_uuids, **defaults):
    """Which candidate UUID names an SR the host has, else None.

    :param known_sr_uuids: the SR UUIDs of the host (a container), or a
        callable telling whether a UUID names one of its SRs.
    """
    known = (known_sr_uuids if callable(known_sr_uuids)
             else known_sr_uuids.__contains__)
    for sr_uuid in candidate_sr_uuids(connection_data, **defaults):
        if known(sr_uuid):
            return sr_uuid
    return None


def volume_key(connection_data):
    """The key of a volume in ``volume_sr_uuids``: its id as a string."""
    return str(connection_data.get('volume_id'))


def volume_sr_uuids(connection_datas, known_sr_uuids, **defaults):
    """What a patched source reports: {volume id: UUID of the SR the host
    has for it}, for the volumes whose SR it has."""
    found = {}
    for data in connection_datas:
        sr_uuid = sr_uuid_in_use(data, known_sr_uuids, **defaults)
        if sr_uuid is not None:
            found[volume_key(data)] = sr_uuid
    return found


def with_reported_sr_uuid(connection_data, reported):
    """The connection data a patched destination connects a volume with: a
    copy with ``sr_uuid`` set to the UUID the source reported for the
    volume, or the data itself when the source did not report it."""
    if not reported:
        return connection_data
    sr_uuid = reported.get(volume_key(connection_data))
    if sr_uuid is None or connection_data.get('sr_uuid') == sr_uuid:
        return connection_data
    return dict(connection_data, sr_uuid=sr_uuid)


def destination_sr_uuid(connection_data, reported=None, **defaults):
    """The SR UUID a patched destination connects a volume with, given
    what the source reported (None: an unpatched source)."""
    return parse_sr_uuid(with_reported_sr_uuid(connection_data, reported),
                         **defaults)
