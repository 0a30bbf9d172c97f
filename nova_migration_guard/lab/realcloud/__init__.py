"""A real-services cloud for tests and demos, started as plain processes.

Nova's services run as separate processes (nova-api under gunicorn, two
nova-conductor, two nova-scheduler, four or more nova-compute) on MariaDB,
RabbitMQ and Keystone, with placement, Glance and an etcd server, all on
127.0.0.1, all from Debian and PyPI packages.  DevStack needs systemd, which
the test machines lack; this starts what DevStack would, with every process
by PID and a log per service.  Neutron is the one stub (``neutron_stub``):
the guards never depend on networking.

Not part of any guard: the guards never import this package.
"""
