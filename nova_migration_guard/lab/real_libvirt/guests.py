"""Test guests on the real daemons: define, boot, and read the serial
console (``GUEST-UP``, then a numbered heartbeat every second)."""

import os
import re
import time
import uuid

from nova_migration_guard.lab.real_libvirt import guest_image

# How long a TCG guest may take from create() to GUEST-UP on its console.
BOOT_TIMEOUT = 60.0

_HEARTBEAT = re.compile(r'^heartbeat (\d+) ', re.MULTILINE)
# What a guest kernel prints when it crashes (it then reboots: panic=-1).
_KERNEL_CRASH = re.compile(r'Kernel panic|Oops: |BUG: |general protection')


class GuestError(Exception):
    """A guest did not boot, or stopped printing heartbeats."""


class GuestKernelCrashed(GuestError):
    """The guest's kernel crashed (its console shows it) and rebooted in
    the same QEMU.  ``console`` is the console text of the boot that
    crashed."""

    def __init__(self, message, console):
        super().__init__(message)
        self.console = console

    def detail(self):
        """What a test records of it (a detail named 'guest kernel
        crash')."""
        return '%s (QEMU/TCG memory corruption after migration):\n%s' % (
            self, self.console)


def create(conn, image, name, console_dir, memory_mib=128, **dirty):
    """Define and start a guest on conn; returns (domain, console log
    path).  dirty takes dirty_mb, dirty_rate, dirty_spin and
    dirty_for."""
    console_path = os.path.join(console_dir, 'console-%s.log' % name)
    xml = guest_image.domain_xml(
        name=name, uuid=uuid.uuid4(), memory_mib=memory_mib, vcpus=1,
        kernel=image.kernel, initrd=image.initrd, console_log=console_path,
        **dirty)
    domain = conn.defineXML(xml)
    domain.create()
    return domain, console_path


def wait_booted(name, console_path, timeout=BOOT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while 'GUEST-UP' not in console(console_path):
        if time.monotonic() > deadline:
            raise GuestError('guest %s did not boot within %s s; console: '
                             '%s' % (name, timeout, console(console_path)))
        time.sleep(0.1)


def console(path):
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except FileNotFoundError:
        return ''


def last_heartbeat_in(text):
    """last_heartbeat() of a console's text."""
    beats = _HEARTBEAT.findall(text[max(0, text.rfind('GUEST-UP')):])
    return int(beats[-1]) if beats else -1


def last_heartbeat(console_path):
    """Number of the guest's last heartbeat line in its latest boot, -1
    before the first.  A console log that a migration's destination
    started (Nova's, opened anew there) has no ``GUEST-UP``: all of it is
    the latest boot."""
    return last_heartbeat_in(console(console_path))


def boots(console_path):
    """How many times the guest booted: the console is appended to across
    a reboot (a guest kernel panic reboots it, panic=-1), and heartbeats
    start again from 0 after one."""
    return console(console_path).count('GUEST-UP')


def wait_for_heartbeat_after(console_path, number, timeout=20.0,
                             on_kernel_crash=None):
    """Wait until the guest printed a heartbeat numbered above number,
    in the boot that printed it.

    With ``on_kernel_crash``, a guest kernel that crashed meanwhile (its
    console shows it, then a new boot) is handed to it as the
    GuestKernelCrashed, and the guest must then print a heartbeat in its
    new boot: a caller that does not judge what the guest's own kernel
    does (QEMU/TCG corrupting a migrated guest's memory now and then) still
    sees it run.  Any other silence, and a reboot without a kernel crash,
    raise GuestError."""
    try:
        _wait_for_heartbeat_after(console_path, number, timeout)
    except GuestKernelCrashed as crash:
        if on_kernel_crash is None:
            raise
        on_kernel_crash(crash)
        _wait_for_heartbeat_after(console_path, -1, timeout)


def _wait_for_heartbeat_after(console_path, number, timeout):
    deadline = time.monotonic() + timeout
    booted = boots(console_path)
    while True:
        # One read per look: the heartbeat and the boot count agree.
        text = console(console_path)
        if text.count('GUEST-UP') != booted:
            crashed = text[:text.rindex('GUEST-UP')]
            crashed = crashed[crashed.rfind('GUEST-UP'):]
            if _KERNEL_CRASH.search(crashed):
                raise GuestKernelCrashed(
                    'the guest kernel crashed after heartbeat #%d and '
                    'rebooted' % number, crashed)
            raise GuestError('the guest rebooted after heartbeat #%d (its '
                             'kernel panicked or it was reset); console '
                             'tail: %s' % (number, text[-2000:]))
        if last_heartbeat_in(text) > number:
            return
        if time.monotonic() > deadline:
            raise GuestError('no heartbeat after #%d within %s s (booted '
                             '%d times); console tail: %s' % (
                                 number, timeout, booted, text[-500:]))
        time.sleep(0.1)
