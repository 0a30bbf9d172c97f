"""Two real libvirtd "hosts" on one machine, and a libvirt event recorder.

Each daemon runs in its own mount and UTS namespace (own hostname), where
its temporary directory is bind-mounted over /etc/libvirt, /run/libvirt,
/var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt, so the two
daemons share no state.  Both stay in the root network namespace: host A
listens on 127.0.0.2, host B on 127.0.0.3, each with its own libvirtd TCP
port and QEMU migration port range.  libvirt refuses to migrate to the
host it runs on by comparing host UUIDs, so each daemon gets its own.

Guests must be TCG (domain type 'qemu'): the machine's KVM device boots
firmware but not an unmodified Linux kernel.  Everything the fixture
starts is stopped by PID on cleanup, which also checks that nothing is
left: no process in a daemon's mount namespace, no mount of its directory.
"""

import collections
from concurrent import futures
import fcntl
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import fixtures

from nova_migration_guard.lab.embedded import processes

try:
    import libvirt
except ImportError:  # reported by environment_problem()
    libvirt = None

LIBVIRTD = '/usr/sbin/libvirtd'
QEMU = '/usr/bin/qemu-system-x86_64'

# name, listen address, host_uuid
_HOSTS = (
    ('A', '127.0.0.2', 'aaaaaaaa-0000-4000-8000-00000000000a'),
    ('B', '127.0.0.3', 'bbbbbbbb-0000-4000-8000-00000000000b'),
)

# QEMU migration ports.  libvirt picks a port that looks free and QEMU binds
# it later, so two pairs of daemons running at once (parallel test
# workers) with the same range pick the same port and one incoming
# migration fails.  Each fixture therefore holds a slot of its own: an
# exclusive lock on a slot file, for as long as its daemons run; slot N
# owns ports MIGRATION_PORT_BASE + N * 64 .. + 63 (32 per host).
MIGRATION_PORT_BASE = 49152
_PORTS_PER_HOST = 32
_PORT_SLOTS = 32
_SLOT_DIR = os.path.join(tempfile.gettempdir(),
                         'nova-migration-guard-libvirt-ports')


class _PortSlot(fixtures.Fixture):
    """An exclusive migration port range for one pair of daemons, across
    the processes of a test run."""

    def _setUp(self):
        os.makedirs(_SLOT_DIR, exist_ok=True)
        for slot in range(_PORT_SLOTS):
            handle = open(os.path.join(_SLOT_DIR, 'slot-%d' % slot), 'w')
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self.addCleanup(handle.close)  # closing releases the lock
            self.slot = slot
            return
        raise RuntimeError('all %d migration port slots in %s are in use'
                           % (_PORT_SLOTS, _SLOT_DIR))

    def ports(self, index):
        """(first, last) port of host ``index`` (0 or 1)."""
        first = (MIGRATION_PORT_BASE +
                 (self.slot * 2 + index) * _PORTS_PER_HOST)
        return first, first + _PORTS_PER_HOST - 1


# Subdirectory of a host's directory -> the system path it is mounted on.
_PRIVATE_DIRS = (
    ('etc', '/etc/libvirt'),
    ('run', '/run/libvirt'),
    ('lib', '/var/lib/libvirt'),
    ('cache', '/var/cache/libvirt'),
    ('log', '/var/log/libvirt'),
)

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0


def environment_problem():
    """None if this machine can run the real libvirt tests, else a one-line
    reason."""
    if os.geteuid() != 0:
        return 'real libvirt tests need root'
    for path in (LIBVIRTD, QEMU, shutil.which('gcc')):
        if not path or not os.access(path, os.X_OK):
            return ('%s missing: run tools/install-real-libvirt.sh'
                    % (path or 'gcc'))
    try:
        pwd.getpwnam('libvirt-qemu')
    except KeyError:
        return ('user libvirt-qemu missing (libvirtd needs it): run '
                'tools/install-real-libvirt.sh')
    if libvirt is None:
        return 'python module libvirt missing (pip install libvirt-python)'
    try:
        subprocess.run(['unshare', '--mount', '--uts', '--', 'true'],
                       check=True, timeout=10, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    except (OSError, subprocess.SubprocessError) as exc:
        return 'cannot create mount namespaces (unshare --mount): %s' % exc
    return None


class Process(object):
    """A process identified by PID and start time, so that a recycled PID
    is not mistaken for it."""

    def __init__(self, pid):
        self.pid = pid
        self.start_time = self._stat()[1]

    def _stat(self):
        """(state, start time) of the PID now; (None, None) if no such
        PID."""
        try:
            with open('/proc/%d/stat' % self.pid) as f:
                # The command name may hold spaces: fields follow its ')'.
                fields = f.read().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            return None, None
        return fields[0], fields[19]

    def alive(self):
        # Zombies count as gone: PID 1 of some containers reaps lazily.
        state, start_time = self._stat()
        return state not in (None, 'Z') and start_time == self.start_time

    def kill(self, sig):
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass


def _wait_gone(processes, timeout):
    """Those of the processes still alive after up to timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in processes if p.alive()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _copy_xml_files(source, dest):
    """Copy the *.xml files of source (if it exists) to dest, each
    atomically: another test process may be reading dest."""
    if not os.path.isdir(source):
        return
    os.makedirs(dest, exist_ok=True)
    for name in os.listdir(source):
        if name.endswith('.xml'):
            tmp = os.path.join(dest, '.%s.%d' % (name, os.getpid()))
            shutil.copyfile(os.path.join(source, name), tmp)
            os.rename(tmp, os.path.join(dest, name))


def mount_namespace(pid):
    try:
        return os.readlink('/proc/%d/ns/mnt' % pid)
    except OSError:
        return None


def processes_in_namespace(namespace):
    found = []
    if namespace is None:
        return found
    for entry in os.listdir('/proc'):
        if entry.isdigit() and mount_namespace(int(entry)) == namespace:
            process = Process(int(entry))
            if process.alive():
                found.append(process)
    return found


class _Adopted(Process):
    """A daemon another process started (a cloud's ``up``), known by its
    record: what LibvirtHost.stop() needs of a Popen, by PID."""

    def __init__(self, pid, start_time):
        self.pid = pid
        self.start_time = start_time

    def poll(self):
        return None if self.alive() else 0

    def send_signal(self, sig):
        Process.kill(self, sig)

    def wait(self, timeout=None):
        if _wait_gone([self], _STOP_TIMEOUT if timeout is None else timeout):
            raise subprocess.TimeoutExpired('libvirtd', timeout)
        return 0

    def kill(self, sig=signal.SIGKILL):
        Process.kill(self, sig)


class LibvirtHost(object):
    """One libvirtd: URIs to reach it and the paths of its files.

    ``tcp_port`` is the libvirtd TCP port (default: a free one); Nova's
    live migration reaches a destination on libvirt's default 16509 only
    (its URI carries no port), so a cloud of nova-compute processes
    passes 16509, one per listen address.  ``die_with_parent=False``
    lets the daemon outlive the process that starts it (a cloud started
    by ``up``); ``record()`` and ``from_record()`` then carry it to the
    process that stops it.  ``binds`` are more (directory, mount point)
    pairs to bind-mount in the daemon's namespace, set before start().
    """

    def __init__(self, name, address, host_uuid, migration_ports, base_dir,
                 tcp_port=None, die_with_parent=True):
        self.name = name
        self.address = address
        self.host_uuid = host_uuid
        self.migration_ports = tuple(migration_ports)
        self.base_dir = base_dir
        self.dir = os.path.join(base_dir, name)
        self.tcp_port = tcp_port or processes.free_port(address)
        self.die_with_parent = die_with_parent
        self.binds = []
        #: The daemon's host name (its UTS namespace): what libvirt and
        #: Nova's libvirt driver report as the hypervisor host name.
        self.hostname = 'host' + name
        self.socket = os.path.join(self.dir, 'sock', 'libvirt-sock')
        #: URI for the tests' clients (unix socket, outside the bind mounts).
        self.client_uri = 'qemu+unix:///system?socket=' + self.socket
        #: URI the other daemon reaches this one on (peer-to-peer).
        self.p2p_uri = 'qemu+tcp://%s:%d/system' % (address, self.tcp_port)
        #: Where QEMU sends the migration stream (VIR_MIGRATE_PARAM_URI).
        self.migrate_uri = 'tcp://' + address
        self.log_path = os.path.join(self.dir, 'libvirtd.log')
        self.output_path = os.path.join(self.dir, 'libvirtd.out')
        self.pid_file = os.path.join(self.dir, 'libvirtd.pid')
        self.capabilities_dir = os.path.join(self.dir, 'cache', 'qemu',
                                             'capabilities')
        self.process = None
        self.mount_namespace = None

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def __repr__(self):
        return '<LibvirtHost %s pid=%s %s>' % (self.name, self.pid,
                                               self.p2p_uri)

    def record(self):
        """What from_record() needs to reach and stop this running daemon
        from another process (JSON-serialisable)."""
        return {'name': self.name, 'address': self.address,
                'host_uuid': self.host_uuid,
                'migration_ports': list(self.migration_ports),
                'base_dir': self.base_dir, 'tcp_port': self.tcp_port,
                'pid': self.process.pid,
                'start_time': Process(self.process.pid).start_time,
                'mount_namespace': self.mount_namespace}

    @classmethod
    def from_record(cls, record):
        """The LibvirtHost of a record(); its stop() stops the recorded
        daemon, its QEMUs and what is left in its mount namespace, by
        PID (a recycled PID is not taken for it)."""
        host = cls(record['name'], record['address'], record['host_uuid'],
                   record['migration_ports'], record['base_dir'],
                   tcp_port=record['tcp_port'], die_with_parent=False)
        host.process = _Adopted(record['pid'], record['start_time'])
        host.mount_namespace = record['mount_namespace']
        return host

    def qemu_pids(self):
        """PIDs of the QEMUs this daemon runs (from its pid files)."""
        pids = []
        for name in os.listdir(os.path.join(self.dir, 'run', 'qemu')):
            # driver.pid is the QEMU driver's lock file: the daemon's PID.
            if name.endswith('.pid') and name != 'driver.pid':
                try:
                    with open(os.path.join(self.dir, 'run', 'qemu',
                                           name)) as f:
                        pids.append(int(f.read().strip()))
                except (OSError, ValueError):
                    pass  # removed or being written right now
        return pids

    def _write_config(self):
        for sub, _ in _PRIVATE_DIRS:
            os.makedirs(os.path.join(self.dir, sub))
        os.makedirs(os.path.join(self.dir, 'run', 'qemu'))
        os.makedirs(os.path.dirname(self.socket))
        with open(os.path.join(self.dir, 'etc', 'libvirtd.conf'), 'w') as f:
            f.write('\n'.join([
                'listen_tls = 0',
                'listen_tcp = 1',
                'listen_addr = "%s"' % self.address,
                'tcp_port = "%d"' % self.tcp_port,
                'auth_tcp = "none"',
                'auth_unix_ro = "none"',
                'auth_unix_rw = "none"',
                'unix_sock_dir = "%s"' % os.path.dirname(self.socket),
                'host_uuid = "%s"' % self.host_uuid,
                'log_filters = "1:qemu.qemu_migration 3:*"',
                'log_outputs = "1:file:%s"' % self.log_path,
                '']))
        with open(os.path.join(self.dir, 'etc', 'qemu.conf'), 'w') as f:
            f.write('\n'.join([
                'user = "root"',
                'group = "root"',
                'dynamic_ownership = 0',
                'remember_owner = 0',
                'security_driver = "none"',
                # QEMU's stdout/stderr to a file: no virtlogd to run.
                'stdio_handler = "file"',
                # QEMU stays in the daemon's mount namespace, where the
                # cleanup finds every process the daemon started.
                'namespaces = [ ]',
                # Both daemons number domains from 1: with cgroups the
                # source and destination QEMU would share a cgroup.
                'cgroup_controllers = [ ]',
                'migration_address = "%s"' % self.address,
                'migration_host = "%s"' % self.address,
                'migration_port_min = %d' % self.migration_ports[0],
                'migration_port_max = %d' % self.migration_ports[1],
                '']))

    def start(self, capabilities_cache=None):
        self._write_config()
        if capabilities_cache:
            _copy_xml_files(capabilities_cache, self.capabilities_dir)
        mounts = []
        for source, target in [(os.path.join(self.dir, sub), target)
                               for sub, target in _PRIVATE_DIRS] + self.binds:
            os.makedirs(target, exist_ok=True)  # mount point in the root ns
            mounts.append('mount --bind %s %s' % (shlex.quote(source),
                                                  shlex.quote(target)))
        script = ' && '.join(mounts + [
            'hostname ' + self.hostname,
            'exec %s --listen --config %s --pid-file %s' % (
                LIBVIRTD,
                shlex.quote(os.path.join(self.dir, 'etc', 'libvirtd.conf')),
                shlex.quote(self.pid_file))])
        # unshare and sh exec into libvirtd, so the child's PID is the
        # daemon's.  start_new_session is the setsid; the setsid command
        # would fork here (the child is already a group leader).
        with open(self.output_path, 'wb') as out:
            self.process = subprocess.Popen(
                ['unshare', '--mount', '--uts', '--propagation', 'private',
                 '--', '/bin/sh', '-c', script],
                stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=(processes.die_with_parent
                            if self.die_with_parent else None))
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError('libvirtd %s exited with code %s: %s' % (
                    self.name, self.process.returncode, self._logs()))
            if self._ready():
                break
            if time.monotonic() > deadline:
                raise RuntimeError('libvirtd %s not ready after %.0f s: %s'
                                   % (self.name, _START_TIMEOUT,
                                      self._logs()))
            time.sleep(0.05)
        namespace = mount_namespace(self.process.pid)
        if namespace is None:
            raise RuntimeError('libvirtd %s exited right after it started: '
                               '%s' % (self.name, self._logs()))
        # The cleanup kills every process in this namespace: never ours.
        if namespace == mount_namespace(os.getpid()):
            raise RuntimeError('libvirtd %s is not in a mount namespace of '
                               'its own' % self.name)
        self.mount_namespace = namespace

    def _ready(self):
        # The tests need the socket, the p2p migration the TCP listener.
        # The listener is looked up rather than connected to (a probe
        # connection logs an error in the daemon's log), and must be the
        # daemon's own, not another process's on the same port.
        if not os.path.exists(self.socket):
            return False
        local = '%s:%04X' % (
            socket.inet_aton(self.address)[::-1].hex().upper(),
            self.tcp_port)
        with open('/proc/net/tcp') as f:
            next(f)  # header
            # local address (little-endian hex), state (0A: LISTEN), inode
            listeners = {'socket:[%s]' % fields[9]
                         for fields in map(str.split, f)
                         if fields[1] == local and fields[3] == '0A'}
        fd_dir = '/proc/%d/fd' % self.process.pid
        try:
            return any(os.readlink(os.path.join(fd_dir, fd)) in listeners
                       for fd in os.listdir(fd_dir))
        except OSError:
            return False  # exited, or an fd closed while looking

    def _logs(self):
        return 'output: %s\nlog tail: %s' % (processes.tail(self.output_path),
                                             processes.tail(self.log_path))

    def stop(self):
        """Stop the QEMUs, the daemon and anything else left in its mount
        namespace, all by PID; a list of what could not be cleaned up."""
        if self.process is None:
            return []
        problems = []
        # Only QEMUs of this daemon: a PID file may be stale and its PID
        # reused.
        qemus = [p for p in map(Process, self.qemu_pids())
                 if p.alive() and self._executable(p.pid) == QEMU
                 and self._in_own_namespace(p.pid)]
        for qemu in qemus:
            qemu.kill(signal.SIGTERM)
        for qemu in _wait_gone(qemus, _STOP_TIMEOUT):
            qemu.kill(signal.SIGKILL)

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append('libvirtd %s (pid %d) ignored SIGTERM' % (
                    self.name, self.process.pid))
                self.process.kill()
                self.process.wait()

        # Whatever the daemon started and left behind (QEMU inherits the
        # daemon's mount namespace).
        stragglers = [p for p in processes_in_namespace(self.mount_namespace)
                      if self._in_own_namespace(p.pid)]
        for process in stragglers:
            process.kill(signal.SIGKILL)
        if stragglers:
            problems.append('host %s: processes left in its mount '
                            'namespace (killed): %s' % (
                                self.name, [p.pid for p in stragglers]))
        left = _wait_gone(qemus + stragglers, _STOP_TIMEOUT)
        if left:
            problems.append('host %s: still running: %s' % (
                self.name, [p.pid for p in left]))
        return problems

    def _in_own_namespace(self, pid):
        """``pid`` runs in this daemon's mount namespace, and that is the
        one with this host's directories mounted: Linux reuses the number
        of a namespace that is gone, so a recorded number alone may name
        another daemon's namespace by now."""
        if (self.mount_namespace is None
                or mount_namespace(pid) != self.mount_namespace):
            return False
        try:
            # /proc/PID/root resolves in the process's mount namespace.
            seen = os.stat('/proc/%d/root/run/libvirt' % pid)
            own = os.stat(os.path.join(self.dir, 'run'))
        except OSError:
            return False
        return (seen.st_dev, seen.st_ino) == (own.st_dev, own.st_ino)

    @staticmethod
    def _executable(pid):
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                return f.read().split(b'\0')[0].decode()
        except OSError:
            return None


class TwoLibvirtHosts(fixtures.Fixture):
    """Hosts ``A`` and ``B``: two running libvirtd, stopped on cleanUp.

    ``hosts`` maps the name to its LibvirtHost; ``a`` and ``b`` are the
    same objects.  ``connect(host)`` opens a client connection that is
    closed before the daemons stop.

    capabilities_cache, if given, is a directory that keeps the QEMU
    capabilities the daemons probed for the next daemons: a fresh libvirtd
    spends 4-8 s probing QEMU on its first domain.  libvirt validates what
    it finds there (QEMU and libvirt binaries, kernel, CPU) and probes
    again when it is out of date.
    """

    def __init__(self, capabilities_cache=None):
        super().__init__()
        self.capabilities_cache = capabilities_cache

    def _setUp(self):
        self.base_dir = self.useFixture(fixtures.TempDir()).path
        slot = self.useFixture(_PortSlot())
        self.a, self.b = pair(self.base_dir, slot.ports)
        self.hosts = {'A': self.a, 'B': self.b}
        # Before anything starts: a daemon that fails to start, or a test
        # that fails, still gets everything stopped.
        self.addCleanup(self._stop)
        for host in (self.a, self.b):
            host.start(self.capabilities_cache)

    def connect(self, host):
        ensure_event_loop()
        conn = libvirt.open(host.client_uri)
        self.addCleanup(conn.close)
        return conn

    def _stop(self):
        problems = stop_hosts((self.a, self.b), self.capabilities_cache)
        if problems:
            raise RuntimeError('TwoLibvirtHosts cleanup: ' +
                               '; '.join(problems))


def pair(base_dir, ports_of, tcp_port=None, die_with_parent=True):
    """Hosts A (127.0.0.2) and B (127.0.0.3), not started, their
    directories under base_dir; ``ports_of(index)`` is the (first, last)
    QEMU migration port of host 0 (A) or 1 (B).  See LibvirtHost for
    ``tcp_port`` and ``die_with_parent``."""
    return tuple(LibvirtHost(name, address, host_uuid, ports_of(index),
                             base_dir, tcp_port=tcp_port,
                             die_with_parent=die_with_parent)
                 for index, (name, address, host_uuid) in enumerate(_HOSTS))


def stop_hosts(libvirt_hosts, capabilities_cache=None):
    """Stop the daemons (LibvirtHost.stop), keep what they probed of QEMU
    in capabilities_cache, and check that none of their bind mounts
    leaked into this process's mount namespace; a list of problems."""
    # In parallel: libvirtd takes 1-2 s to shut down.
    with futures.ThreadPoolExecutor(len(libvirt_hosts)) as pool:
        problems = sum(pool.map(LibvirtHost.stop, libvirt_hosts), [])
    if capabilities_cache:
        for host in libvirt_hosts:
            _copy_xml_files(host.capabilities_dir, capabilities_cache)
    # The bind mounts live in the daemons' private mount namespaces,
    # which died with them; none may have leaked into ours.
    with open('/proc/self/mountinfo') as f:
        leaked = [line.strip() for line in f
                  if any(host.dir in line for host in libvirt_hosts)]
    if leaked:
        problems.append('mounts left: %s' % leaked)
    return problems


_event_loop_lock = threading.Lock()
_event_loop_started = False


def ensure_event_loop():
    """libvirt's default event loop, run by a daemon thread.  It must be
    registered before the first connection is opened, and only once per
    process."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        # Errors are raised as libvirtError anyway; without this handler
        # libvirt also prints each one on stderr.
        libvirt.registerErrorHandler(lambda ctx, error: None, None)
        libvirt.virEventRegisterDefaultImpl()

        def run():
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name='libvirt-events',
                         daemon=True).start()
        _event_loop_started = True


# Lifecycle event types; their detail constants are named
# VIR_DOMAIN_EVENT_<TYPE>_<DETAIL>.
_LIFECYCLE_TYPES = ('DEFINED', 'UNDEFINED', 'STARTED', 'SUSPENDED',
                    'RESUMED', 'STOPPED', 'SHUTDOWN', 'PMSUSPENDED',
                    'CRASHED')


def _lifecycle_names():
    names = {}
    for type_name in _LIFECYCLE_TYPES:
        prefix = 'VIR_DOMAIN_EVENT_%s_' % type_name
        names[getattr(libvirt, 'VIR_DOMAIN_EVENT_' + type_name)] = (
            type_name,
            {getattr(libvirt, key): key[len(prefix):] for key in dir(libvirt)
             if key.startswith(prefix) and not key.endswith('_LAST')})
    return names


#: One event: ``event`` is a lifecycle type (STARTED, ...),
#: MIGRATION_ITERATION or JOB_COMPLETED; ``detail`` is the lifecycle detail
#: (MIGRATED, ...), the iteration number, or the completed job's statistics.
Event = collections.namedtuple('Event', 'time host domain event detail')


class EventRecorder(fixtures.Fixture):
    """Records domain events of watched connections in arrival order.

    ``watch(conn, host_name)`` registers lifecycle, migration-iteration and
    job-completed callbacks (the latter two when this libvirt has them);
    they are deregistered on cleanUp.  ``events`` is the list of Event;
    ``wait_for()`` blocks until a given event arrived.
    """

    def _setUp(self):
        self.events = []
        self._changed = threading.Condition()
        self._names = _lifecycle_names()

    def watch(self, conn, host_name):
        def lifecycle(conn, dom, event, detail, opaque):
            type_name, details = self._names.get(event, (str(event), {}))
            self._record(host_name, dom.name(), type_name,
                         details.get(detail, str(detail)))

        def iteration(conn, dom, number, opaque):
            self._record(host_name, dom.name(), 'MIGRATION_ITERATION', number)

        def job_completed(conn, dom, stats, opaque):
            self._record(host_name, dom.name(), 'JOB_COMPLETED', stats)

        callbacks = [(libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle)]
        for name, callback in (('MIGRATION_ITERATION', iteration),
                               ('JOB_COMPLETED', job_completed)):
            event_id = getattr(libvirt, 'VIR_DOMAIN_EVENT_ID_' + name, None)
            if event_id is not None:
                callbacks.append((event_id, callback))
        for event_id, callback in callbacks:
            callback_id = conn.domainEventRegisterAny(None, event_id,
                                                      callback, None)
            self.addCleanup(self._deregister, conn, callback_id)

    @staticmethod
    def _deregister(conn, callback_id):
        try:
            conn.domainEventDeregisterAny(callback_id)
        except libvirt.libvirtError:
            pass  # the connection is already dead: nothing to deregister

    def _record(self, host, domain, event, detail):
        with self._changed:
            self.events.append(Event(time.monotonic(), host, domain, event,
                                     detail))
            self._changed.notify_all()

    def find(self, host, domain, event, detail=None, since=0.0):
        """The first matching event recorded at or after monotonic time
        since, or None."""
        with self._changed:
            for recorded in self.events:
                if (recorded.time >= since
                        and recorded[1:4] == (host, domain, event)
                        and detail in (None, recorded.detail)):
                    return recorded
        return None

    def wait_for(self, host, domain, event, detail=None, since=0.0,
                 timeout=30.0):
        """Like find(), but waits up to timeout seconds for the event and
        raises AssertionError, listing what arrived, if none does."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.find(host, domain, event, detail, since)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0:
                    break
                self._changed.wait(remaining)
        if found is None:
            raise AssertionError('no %s/%s event for %s on %s within %s s; '
                                 'got: %s' % (event, detail, domain, host,
                                              timeout,
                                              self.lifecycle(since=since)))
        return found

    def lifecycle(self, domain=None, since=0.0):
        """Lifecycle events recorded at or after since, as
        "HOST:TYPE/DETAIL" strings."""
        with self._changed:
            return ['%s:%s/%s' % (e.host, e.event, e.detail)
                    for e in self.events
                    if e.event in _LIFECYCLE_TYPES and e.time >= since
                    and domain in (None, e.domain)]
