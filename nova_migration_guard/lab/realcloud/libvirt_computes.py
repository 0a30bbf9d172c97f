"""Two nova-compute processes of the real cloud on real libvirt daemons.

``--real-libvirt`` adds the computes ``libvirt-a`` and ``libvirt-b`` to the
cloud: nova-compute with ``compute_driver =
migration_guard.GuardedLibvirtDriver``, each on a libvirtd of its own (the
real tier's hosts A and B, ``lab/real_libvirt/hosts.py``: a mount and UTS
namespace each, 127.0.0.2 and 127.0.0.3) that runs its guests as TCG QEMU.
A guest boots through Nova's API from the images uploaded here (the test
guest's kernel and initramfs, ``lab/real_libvirt/guest_image.py``, with an
empty root disk) and live-migrates through it: a block migration
(``block_migration=auto``: the computes share no instances_path),
peer-to-peer over libvirtd's TCP port to the destination's
``live_migration_inbound_addr``.

Both daemons listen on libvirt's default port, 16509, each on its own
address: Nova builds the destination's URI with no port
(``qemu+tcp://<inbound address>/system``).  Their QEMU migration ports are
the cloud's base port + 16 to + 79 (32 per host).  The daemons outlive the
process that ran ``up``: state.json records them (PID, start time, mount
namespace) and ``down`` stops them, their QEMUs and whatever else is left
in their namespaces, by PID.

Nova takes ``instances_path`` for the same path on every host: the
destination of a live migration gets the source's domain XML with the
source's disk, kernel and console log paths.  Each libvirt compute
therefore runs in its daemon's mount namespace (nsenter), where its own
``nova/<host>/instances`` is bind-mounted over the common
``nova/instances``: one path, a directory per host, as on two machines
(with the per-host paths, the destination's QEMU opened the source's disk:
"unable to execute QEMU command 'block-export-add': Block node is
read-only").

The fake computes never see these guests, nor these computes the fake
guests: the test guest's images say ``img_hv_type=qemu``, the cloud's
fake image says ``img_hv_type=fake``, and ImagePropertiesFilter matches
them against what each driver reports.
"""

import os

from nova_migration_guard.lab.real_libvirt import cloud as real_tier
from nova_migration_guard.lab.real_libvirt import guest_image
from nova_migration_guard.lab.real_libvirt import hosts
from nova_migration_guard.lab.realcloud import processes

#: Nova host name -> index of its daemon in hosts.pair() (A, B).
COMPUTES = {'libvirt-a': 0, 'libvirt-b': 1}
COMPUTE_DRIVER = 'migration_guard.GuardedLibvirtDriver'
LIBVIRTD_PORT = 16509
# base_port + this: the first QEMU migration port of host A; B's follow.
MIGRATION_PORT_OFFSET = 16
PORTS_PER_HOST = 32

GUEST_IMAGE = 'realcloud-guest'
#: The guest rewriting memory twice as fast as the stream copies it.
DIRTY_IMAGE = GUEST_IMAGE + '-dirty'
#: A guest whose 128 MiB converge under the stream's cap (at 5 MiB/s) in a
#: few passes, the first lasting many seconds: a migration that stays
#: under way long enough to act on, and then ends by itself.
SLOW_IMAGE = GUEST_IMAGE + '-slow'
GUEST_IMAGES = {
    GUEST_IMAGE: {},
    DIRTY_IMAGE: guest_image.DIRTY_TWICE_THE_CAP,
    SLOW_IMAGE: {'dirty_mb': 128, 'dirty_rate': 5},
}
ROOT_DISK_BYTES = 1 << 20
#: A flavor whose guests never run split across two hosts and whose
#: migration never ends by itself while the guest outruns the copy.
NEVER_SPLIT_FLAVOR = 'realcloud.never-split'
NEVER_SPLIT_POLICY = 'never-split'
CUSTOM_POLICIES = '%s:pre-copy-only,auto_converge=false' % NEVER_SPLIT_POLICY


def _ports_of(base_port):
    def ports(index):
        first = base_port + MIGRATION_PORT_OFFSET + index * PORTS_PER_HOST
        return first, first + PORTS_PER_HOST - 1
    return ports


def instances_path(cloud):
    """The libvirt computes' ``instances_path``: in each one's namespace,
    its own directory (own_instances())."""
    return cloud.path('nova', 'instances')


def own_instances(cloud, compute):
    """``compute``'s instances directory as seen from outside its
    namespace."""
    return cloud.path('nova', compute, 'instances')


def daemons(cloud):
    """{compute: LibvirtHost} of the cloud: the recorded running daemons
    once started, else the ones start() would start."""
    recorded = (cloud.state.get('libvirt') or {}).get('daemons')
    if recorded:
        return {compute: hosts.LibvirtHost.from_record(record)
                for compute, record in recorded.items()}
    pair = hosts.pair(cloud.path('libvirt'),
                      _ports_of(cloud.state['base_port']),
                      tcp_port=LIBVIRTD_PORT, die_with_parent=False)
    found = {}
    for compute, index in COMPUTES.items():
        found[compute] = pair[index]
        found[compute].binds.append((own_instances(cloud, compute),
                                     instances_path(cloud)))
    return found


def in_namespace(cloud, compute, argv):
    """``argv`` run in ``compute``'s daemon's mount namespace."""
    daemon = cloud.state['libvirt']['daemons'][compute]
    return ['nsenter', '--mount=/proc/%d/ns/mnt' % daemon['pid'],
            '--'] + list(argv)


def environment_problem(cloud):
    """None if the cloud can run its libvirt computes here, else a
    one-line reason."""
    problem = hosts.environment_problem()
    if problem:
        return problem
    if not os.access(cloud.bin('qemu-img'), os.X_OK):
        return ('qemu-img missing (Nova converts and creates disks with '
                'it): run tools/install-real-libvirt.sh')
    for host in daemons(cloud).values():
        if processes.port_taken(LIBVIRTD_PORT, host.address):
            return ('port %d on %s (libvirtd of host %s) is taken: stop '
                    'what listens there' % (LIBVIRTD_PORT, host.address,
                                            host.name))
        first, last = host.migration_ports
        taken = [port for port in range(first, last + 1)
                 if processes.port_taken(port, host.address)]
        if taken:
            return ('QEMU migration port(s) %s on %s are taken: choose '
                    'another --base-port' % (taken, host.address))
    return None


def start_daemons(cloud):
    """Start both daemons and record them in the cloud's state."""
    to_start = sorted(daemons(cloud).items())
    started = cloud.state['libvirt']['daemons'] = {}
    for compute, host in to_start:
        os.makedirs(own_instances(cloud, compute), exist_ok=True)
        try:
            host.start(real_tier.capabilities_cache())
        except RuntimeError as exc:
            # Not recorded yet: stopped here (down() stops the others).
            host.stop()
            raise processes.CloudError('libvirtd %s did not start: %s; see '
                                       '%s' % (host.name, str(exc).splitlines(
                                           )[0], host.output_path))
        started[compute] = host.record()
        cloud.save()


def stop_daemons(cloud):
    """Stop the recorded daemons, their QEMUs first; returns (the names
    of those that were running, problems).  A daemon already gone is
    nothing to stop."""
    if not (cloud.state.get('libvirt') or {}).get('daemons'):
        return [], []
    recorded = sorted(daemons(cloud).items())
    running = ['libvirtd-%s' % compute for compute, host in recorded
               if host.process.alive()]
    problems = hosts.stop_hosts([host for _, host in recorded],
                                real_tier.capabilities_cache())
    cloud.state['libvirt']['daemons'] = {}
    cloud.save()
    return running, problems


def host_conf(cloud, compute, config_files):
    """nova.conf sections of ``compute`` (read after the shared
    nova.conf): the guarded libvirt driver on its daemon.
    ``config_files`` are the compute's, in order."""
    host = daemons(cloud)[compute]
    files = ' '.join('--config-file %s' % path for path in config_files)
    return {
        'DEFAULT': {
            'compute_driver': COMPUTE_DRIVER, 'my_ip': host.address,
            'instances_path': instances_path(cloud)},
        'libvirt': {
            'virt_type': 'qemu', 'connection_uri': host.client_uri,
            # What the destination tells the source to migrate to: its
            # daemon's address (the host name resolves nowhere here).
            'live_migration_scheme': 'tcp',
            'live_migration_inbound_addr': host.address,
            'images_type': 'qcow2',
            # QEMU's default CPU (qemu64) under TCG, as the real tier.
            'cpu_mode': 'none',
            'live_migration_bandwidth': str(guest_image.BANDWIDTH_MIB_S),
            'mem_stats_period_seconds': '0',
        },
        # Nova 34 refetches an AMI-style guest's kernel on a block
        # migration's destination with the deep inspection that its
        # spawn skips (_fetch_instance_kernel_ramdisk -> fetch_to_raw),
        # and a bzImage's boot sector fails the MBR safety check: "Image
        # ... is unacceptable: Image does not pass safety check".
        'workarounds': {'disable_deep_image_inspection': 'true'},
        'vnc': {'enabled': 'false'},
        'spice': {'enabled': 'false'},
        # Nova's privileged helper as root, without sudo (oslo.privsep's
        # default command): the same configuration files as the compute.
        'nova_sys_admin': {'helper_command': '%s %s' % (
            cloud.bin('privsep-helper'), files)},
    }


def upload_guest_images(conn):
    """The test guest's kernel (aki) and initramfs (ari), and the images a
    server boots from (GUEST_IMAGES): an empty raw root disk with the
    kernel, the initramfs and the guest's command line."""
    image = guest_image.ensure_image()
    kernel = conn.image.create_image(
        name=GUEST_IMAGE + '-kernel', filename=image.kernel,
        disk_format='aki', container_format='aki', visibility='public')
    ramdisk = conn.image.create_image(
        name=GUEST_IMAGE + '-ramdisk', filename=image.initrd,
        disk_format='ari', container_format='ari', visibility='public')
    uploaded = [kernel, ramdisk]
    for name, dirty in sorted(GUEST_IMAGES.items()):
        uploaded.append(conn.image.create_image(
            name=name, data=b'\0' * ROOT_DISK_BYTES, disk_format='raw',
            container_format='bare', visibility='public',
            kernel_id=kernel.id, ramdisk_id=ramdisk.id,
            img_hv_type='qemu', os_command_line=guest_image.cmdline(**dirty)))
    return uploaded


def create_flavors(conn):
    flavor = conn.compute.create_flavor(
        name=NEVER_SPLIT_FLAVOR, ram=256, vcpus=1, disk=1, is_public=True)
    conn.compute.create_flavor_extra_specs(flavor, {
        'migration_guard:convergence_policy': NEVER_SPLIT_POLICY})


# ------------------------------------------------------ what tests read

def connect(cloud, compute):
    """A libvirt connection to ``compute``'s daemon (the caller closes
    it)."""
    hosts.ensure_event_loop()
    return hosts.libvirt.open(daemons(cloud)[compute].client_uri)


def domain_states(cloud, server_id):
    """{compute: (libvirt state, persistent)} of the daemons that have a
    domain of the server."""
    found = {}
    for compute in sorted(COMPUTES):
        conn = connect(cloud, compute)
        try:
            domain = conn.lookupByUUIDString(server_id)
            found[compute] = (domain.state()[0], bool(domain.isPersistent()))
        except hosts.libvirt.libvirtError as exc:
            if exc.get_error_code() != hosts.libvirt.VIR_ERR_NO_DOMAIN:
                raise
        finally:
            conn.close()
    return found


def console_log(cloud, compute, server_id):
    """The server's console log on ``compute`` (Nova's instances path),
    written by its QEMU there.  Nova's API appends what it reads from the
    console's pty to it as well (``get_console_output``)."""
    return os.path.join(own_instances(cloud, compute), server_id,
                        'console.log')


def qemu_log(cloud, compute, domain_name):
    """The daemon's QEMU log of a domain ('' if none)."""
    path = os.path.join(daemons(cloud)[compute].dir, 'log', 'qemu',
                        '%s.log' % domain_name)
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except OSError:
        return ''
