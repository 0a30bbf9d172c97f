#!/usr/bin/env bash
# Install what the real hypervisor test tier (tests/real_libvirt) and the
# real-services cloud's libvirt computes need on a Debian 12 machine, as
# root: libvirtd with its QEMU driver, QEMU (the guests run under TCG),
# qemu-img (Nova's libvirt driver creates and converts disks with it), the
# libvirt headers that libvirt-python builds against, and a C toolchain for
# the guest's static memory dirtier.  Idempotent: a second run installs
# nothing.
set -uo pipefail

say() { printf 'install-real-libvirt: %s\n' "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

APT_PKGS="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
qemu-system-x86 qemu-utils libvirt-dev pkg-config gcc libc6-dev util-linux"

[ "$(id -u)" = 0 ] || die "must run as root"

missing=$(for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
# The guest image build (nova_migration_guard/lab/real_libvirt/
# guest_image.py) fetches these with `apt-get download`, which needs the
# package lists too.
GUEST_PKGS="linux-image-amd64 busybox-static"
if [ -n "$missing" ]; then
    # Without starting the packaged libvirtd: the tests start their own
    # daemons.  (It updates the package lists first.)
    bash "$(dirname "$0")/install-apt.sh" --no-install-recommends \
        $missing || die "installing $missing failed"
else
    say "apt packages already installed"
    if ! apt-cache show $GUEST_PKGS >/dev/null 2>&1; then
        say "apt-get update"
        apt-get update -qq || die "apt-get update failed"
    fi
fi

# libvirtd's QEMU driver looks up its build-time default user even when
# qemu.conf says root.  libvirt-daemon-system normally creates it, but that
# package also brings the systemd units this machine does not use.
if ! getent group libvirt-qemu >/dev/null; then
    say "creating group libvirt-qemu"
    groupadd -r libvirt-qemu || die "groupadd libvirt-qemu failed"
fi
if ! getent passwd libvirt-qemu >/dev/null; then
    say "creating user libvirt-qemu"
    useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin \
        libvirt-qemu || die "useradd libvirt-qemu failed"
fi

for bin in /usr/sbin/libvirtd /usr/bin/qemu-system-x86_64 /usr/bin/qemu-img; do
    [ -x "$bin" ] || die "$bin missing after install"
done
say "done: $(/usr/sbin/libvirtd --version), $(/usr/bin/qemu-system-x86_64 --version | head -n 1)"
