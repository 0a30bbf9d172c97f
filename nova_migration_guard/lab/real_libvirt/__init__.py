"""The real hypervisor tier: two libvirt daemons on one machine, real QEMU
guests (TCG), and Nova's own libvirt driver on each (``nova_driver``).
Used by tests/real_libvirt, benchmarks/ and ``nova-migration-guard demo
--real``; needs root and tools/install-real-libvirt.sh."""
