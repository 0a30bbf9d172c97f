"""The test guest: a Debian kernel, a busybox initramfs and its domain XML.

The guest has no disk and no network.  Its init (``guest/init``) prints
``GUEST-UP`` and then a numbered heartbeat every second on the serial
console, and can run a memory dirtier (``guest/dirty.c``, compiled static)
whose region, rate and CPU cost come from the kernel command line.

The kernel and busybox come from the Debian archive (``apt-get download``:
the machine's apt sources, no installation).  Everything is built once into
the cache directory, ``$NMG_REAL_LIBVIRT_CACHE`` or
``$XDG_CACHE_HOME/nova-migration-guard/real-libvirt`` (``~/.cache/...``);
the initramfs name carries a hash of its
inputs, so editing the guest sources rebuilds it.
"""

import collections
import fcntl
import glob
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from xml.sax import saxutils

_HERE = os.path.dirname(os.path.abspath(__file__))
_GUEST_SRC = os.path.join(_HERE, 'guest')

# Empty directories the init mounts proc, sysfs and devtmpfs on.
_INITRD_DIRS = ('bin', 'dev', 'proc', 'sys', 'tmp')

GuestImage = collections.namedtuple('GuestImage', 'kernel initrd')

# The non-converging setup of the real-tier tests, the benchmark, the demo
# and the real-services cloud's dirty guest: a guest rewriting 128 MiB at
# 30 MiB/s, twice what the migration stream (capped at BANDWIDTH_MIB_S)
# copies.  The per-page spin makes the writes cost vCPU time
# (auto-converge's throttle could slow them), the rate cap makes the dirty
# rate the same on any machine.
DIRTY_TWICE_THE_CAP = {'dirty_mb': 128, 'dirty_rate': 30, 'dirty_spin': 1000}
BANDWIDTH_MIB_S = 15


def cache_dir():
    return (os.environ.get('NMG_REAL_LIBVIRT_CACHE') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'),
        'nova-migration-guard', 'real-libvirt'))


def _run(cmd, cwd=None, stdout=subprocess.PIPE):
    proc = subprocess.run(cmd, cwd=cwd, stdout=stdout,
                          stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise RuntimeError('%s failed (exit %d): %s' % (
            ' '.join(cmd), proc.returncode,
            proc.stderr.decode('utf-8', 'replace').strip()[-2000:]))
    return proc.stdout


def _download(package, workdir):
    """``apt-get download`` one package into workdir; the .deb's path."""
    before = set(glob.glob(os.path.join(workdir, '*.deb')))
    try:
        _run(['apt-get', 'download', '-q', package], cwd=workdir)
    except RuntimeError as exc:
        raise RuntimeError('%s (are the apt lists there? run '
                           'tools/install-real-libvirt.sh)' % exc) from None
    (deb,) = set(glob.glob(os.path.join(workdir, '*.deb'))) - before
    return deb


def _extract(deb, member, dest, workdir):
    """Copy the file(s) matching ``member`` (a glob inside the package)
    from a .deb to dest, atomically."""
    root = tempfile.mkdtemp(dir=workdir)
    _run(['dpkg-deb', '-x', deb, root])
    (path,) = glob.glob(os.path.join(root, member))
    shutil.copyfile(path, dest + '.tmp')
    os.rename(dest + '.tmp', dest)


def _fetch_kernel(dest, workdir):
    # linux-image-amd64 is a metapackage: the kernel is in the versioned
    # package it depends on, e.g. "linux-image-6.1.0-28-amd64 (= 6.1.119-1)".
    meta = _download('linux-image-amd64', workdir)
    depends = _run(['dpkg-deb', '-f', meta, 'Depends']).decode()
    match = re.match(r'\s*(linux-image-[^\s,(]+)\s*(?:\(=\s*([^)\s]+)\))?',
                     depends)
    if match is None:
        raise RuntimeError('no kernel package in linux-image-amd64 '
                           'Depends: %r' % depends)
    package = match.group(1)
    if match.group(2):
        package += '=' + match.group(2)
    # The modules are not needed: serial, devtmpfs and the initramfs
    # support are built into Debian's kernel.
    _extract(_download(package, workdir), 'boot/vmlinuz-*', dest, workdir)


def _fetch_busybox(dest, workdir):
    _extract(_download('busybox-static', workdir), 'bin/busybox', dest,
             workdir)
    os.chmod(dest, 0o755)


def _sources_hash(busybox):
    digest = hashlib.sha256()
    for path in (os.path.join(_GUEST_SRC, 'init'),
                 os.path.join(_GUEST_SRC, 'dirty.c'), busybox):
        with open(path, 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def _build_initrd(dest, busybox, workdir):
    root = tempfile.mkdtemp(dir=workdir)
    for name in _INITRD_DIRS:
        os.mkdir(os.path.join(root, name))
    shutil.copy(busybox, os.path.join(root, 'bin', 'busybox'))
    shutil.copy(os.path.join(_GUEST_SRC, 'init'), os.path.join(root, 'init'))
    os.chmod(os.path.join(root, 'init'), 0o755)
    _run(['gcc', '-O2', '-static', '-o', os.path.join(root, 'dirty'),
          os.path.join(_GUEST_SRC, 'dirty.c')])
    # The kernel's built-in initramfs already provides /dev/console, so
    # the archive needs no device node (and no root-only mknod).
    names = sorted(os.path.relpath(os.path.join(top, name), root)
                   for top, dirs, files in os.walk(root)
                   for name in dirs + files)
    archive = subprocess.run(
        [busybox, 'cpio', '-o', '-H', 'newc'], cwd=root,
        input=''.join(n + '\n' for n in names).encode(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if archive.returncode != 0:
        raise RuntimeError('cpio failed: %s' % archive.stderr.decode())
    with open(dest + '.tmp', 'wb') as f:
        f.write(gzip.compress(archive.stdout, compresslevel=1))
    os.rename(dest + '.tmp', dest)


def ensure_image():
    """Build what is missing in the cache directory (under a file lock, so
    parallel test workers build it once) and return its GuestImage."""
    cache = cache_dir()
    os.makedirs(cache, exist_ok=True)
    kernel = os.path.join(cache, 'vmlinuz')
    busybox = os.path.join(cache, 'busybox')
    with open(os.path.join(cache, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        workdir = tempfile.mkdtemp(prefix='build-', dir=cache)
        try:
            if not os.path.exists(kernel):
                _fetch_kernel(kernel, workdir)
            if not os.path.exists(busybox):
                _fetch_busybox(busybox, workdir)
            initrd = os.path.join(
                cache, 'initrd-%s.img' % _sources_hash(busybox))
            if not os.path.exists(initrd):
                # Guests read their initrd only when they start.
                for stale in glob.glob(os.path.join(cache, 'initrd-*.img')):
                    os.unlink(stale)
                _build_initrd(initrd, busybox, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return GuestImage(kernel=kernel, initrd=initrd)


def cmdline(dirty_mb=0, dirty_rate=0, dirty_spin=0, dirty_for=0):
    """The guest kernel's command line: its console on ttyS0, a reboot
    right after a panic, and the memory dirtier's parameters (guest/init);
    also an image's ``os_command_line`` on the real-services cloud."""
    return ('console=ttyS0 quiet panic=-1 dirty_mb=%d dirty_rate=%d '
            'dirty_spin=%d dirty_for=%d' % (dirty_mb, dirty_rate, dirty_spin,
                                            dirty_for))


def domain_xml(name, uuid, memory_mib, vcpus, kernel, initrd, console_log,
               **dirty):
    """Domain XML of a TCG guest (type 'qemu': the guest kernel does not
    boot under this machine's KVM) booting kernel+initrd directly, with its
    serial console appended to console_log; no disk, no network, no USB, no
    balloon, so that migration moves only RAM and device state.  ``dirty``
    as cmdline() takes it."""
    q = saxutils.escape
    a = saxutils.quoteattr
    return """<domain type='qemu'>
  <name>%(name)s</name>
  <uuid>%(uuid)s</uuid>
  <memory unit='MiB'>%(memory)d</memory>
  <vcpu>%(vcpus)d</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%(kernel)s</kernel>
    <initrd>%(initrd)s</initrd>
    <cmdline>%(cmdline)s</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'>
      <source path=%(console)s append='on'/>
      <target port='0'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
""" % {'name': q(name), 'uuid': q(str(uuid)), 'memory': memory_mib,
       'vcpus': vcpus, 'kernel': q(kernel), 'initrd': q(initrd),
       'cmdline': q(cmdline(**dirty)), 'console': a(console_log)}
