"""A compute identity's writer, run as its own OS process by
test_fencing.py: ``python -m tests.functional.host_identity.identity_writer
BACKEND_URL RECORD ON_DUPLICATE ON_BACKEND_FAILURE``.

It takes the identity lease of ``host1`` through the real code path of
nova-compute's ``service_starting`` hook, ``single_writer.take(service)``,
with a minimal service object instead of a nova-compute (whose start needs
a database, a message bus and a virt driver per process).  Once take()
returns it prints ``HOLDING`` and the service starts one task that runs
until the process ends: every 20 ms it appends ``PID MONOTONIC`` to RECORD
(O_APPEND, so the file's order is the order of the writes).  The task
stands for nova-compute work in progress (a live migration, a periodic
task writing to the hypervisor and the database): like Nova 34's graceful
stop, ``stop()`` only stops taking new work and leaves the task running.
time.monotonic() is CLOCK_MONOTONIC, one clock for every process of the
machine, so the records of several writers can be compared.
"""

import logging
import os
import sys
import threading
import time

from nova_migration_guard import conf as mg_conf
from nova_migration_guard.host_identity import single_writer

HOST = 'host1'
WRITE_EVERY = 0.02


class WritingService:
    """What single_writer.take() uses of a nova Service: host, start(),
    stop()."""

    def __init__(self, record):
        self.host = HOST
        self.record = record
        self.task = threading.Thread(target=self._write, daemon=True,
                                     name='task-in-progress')

    def start(self):
        self.task.start()

    def stop(self):
        logging.getLogger(__name__).warning(
            'service stop: no new work; the task in progress goes on')

    def _write(self):
        fd = os.open(self.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                     0o600)
        pid = os.getpid()
        while True:
            os.write(fd, b'%d %.6f\n' % (pid, time.monotonic()))
            time.sleep(WRITE_EVERY)


def main(url, record, on_duplicate, on_backend_failure):
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format='%(asctime)s %(process)d %(threadName)s %(levelname)s '
               '%(name)s %(message)s')
    conf = mg_conf.CONF
    conf(args=[], default_config_files=[], default_config_dirs=[])
    mg_conf.ensure_state_path(conf)
    conf.set_override('backend_url', url,
                      group='migration_guard_coordination')
    conf.set_override('on_backend_failure', on_backend_failure,
                      group='migration_guard_coordination')
    conf.set_override('on_duplicate', on_duplicate,
                      group='migration_guard_host_identity')
    service = WritingService(record)
    single_writer.take(service)
    print('HOLDING', flush=True)
    service.start()
    service.task.join()


if __name__ == '__main__':
    main(*sys.argv[1:5])
