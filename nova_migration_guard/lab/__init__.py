"""The lab: the clouds the tests, the demo and the benchmarks run on.  Not
guard code: no guard imports it, and what it needs beyond the plugin's own
requirements is declared in the extras of setup.cfg (``demo``,
``real-libvirt``, ``realcloud``).

``embedded/``
    Nova's in-process services (API, conductor, scheduler, placement, fake
    and fake-libvirt computes) in one process, on Nova's own test harness.
``real_libvirt/``
    Two real libvirt daemons on loopback addresses, a QEMU test guest and
    Nova's libvirt driver (stock or guarded) driving them.
``realcloud/``
    The real-services cloud: MariaDB, RabbitMQ, Keystone, placement,
    Glance, etcd and Nova's services as separate processes on 127.0.0.1,
    and the races a user drives on it through Nova's API.
"""
