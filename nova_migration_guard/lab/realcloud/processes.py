"""Start, watch and stop the real cloud's processes, by PID.

Each service runs in its own session (process group), so stopping it also
stops its workers (gunicorn) or helpers (Erlang's), and nothing else.  A
process is known by its PID and the start time the kernel recorded for it,
so a recycled PID is never taken for one of ours.
"""

import dataclasses
import os
import signal
import socket
import subprocess
import time


class CloudError(Exception):
    """The cloud cannot start or answer; str() is one line for the
    operator (logs are named, never dumped)."""


@dataclasses.dataclass
class Started:
    name: str
    pid: int
    start_time: int
    log: str

    @classmethod
    def from_dict(cls, data):
        return cls(**data)


def _stat(pid):
    """(state, start time) of ``pid`` from /proc, or None."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    # after the command: state is field 3, starttime field 22
    return fields[0], int(fields[19])


def alive(started):
    stat = _stat(started.pid)
    return (stat is not None and stat[1] == started.start_time and
            stat[0] not in ('Z', 'X'))


def start(name, argv, log, env=None, cwd=None):
    """Start ``argv`` in a new session, output appended to ``log``."""
    with open(log, 'ab') as out:
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=env, cwd=cwd,
                start_new_session=True)
        except OSError as exc:
            raise CloudError('cannot start %s (%s): %s' % (name, argv[0], exc))
    stat = _stat(proc.pid)
    started = Started(name=name, pid=proc.pid,
                      start_time=stat[1] if stat else -1, log=log)
    _children[proc.pid] = proc
    return started


# pid -> Popen of the services this process started: stop() reaps them,
# exit_status() tells how they ended.
# A service started by another process (the cloud's controller, a test that
# restarted it) is reaped by that process.
_children = {}


def _reap(pid):
    proc = _children.get(pid)
    if proc is not None:
        proc.poll()


def stop(*services, timeout=30):
    """SIGTERM each service's process group, all at once, and SIGKILL what
    is left after ``timeout`` s.  Returns the names of those that were
    running."""
    running = [s for s in services if alive(s)]
    left = list(running)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        for service in left:
            try:
                os.killpg(service.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            for service in left:
                _reap(service.pid)
            left = [s for s in left if alive(s)]
            time.sleep(0.2)
        if not left:
            break
    for service in services:
        _reap(service.pid)
    return [s.name for s in running]


def kill(started, timeout=10):
    """SIGKILL ``started``'s process group; returns its exit status when
    this process started it (None otherwise), once it is gone."""
    if alive(started):
        try:
            os.killpg(started.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if started.pid in _children:
        return exit_status(started, timeout)
    deadline = time.monotonic() + timeout
    while alive(started) and time.monotonic() < deadline:
        time.sleep(0.1)
    return None


def exit_status(started, timeout=0):
    """The exit status of a process this process started (negative: the
    signal that ended it), once it ended within ``timeout`` s; None while
    it runs."""
    proc = _children[started.pid]
    try:
        status = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
    return status


def port_taken(port, address='127.0.0.1'):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return True
    return False


def port_open(port, address='127.0.0.1'):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((address, port)) == 0


def wait_until(ready, started, what, timeout=120):
    """Poll ``ready()`` until true; CloudError naming the log if the
    process dies or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except CloudError:
            raise
        except Exception:  # noqa: S110 - not ready yet, whatever it says
            pass
        if started is not None and not alive(started):
            raise CloudError('%s exited while starting; see %s'
                             % (started.name, started.log))
        if time.monotonic() > deadline:
            raise CloudError('%s not ready after %d s (%s); see %s' % (
                started.name if started else what, timeout, what,
                started.log if started else 'the logs'))
        time.sleep(0.3)


def run(name, argv, log, env=None, timeout=600):
    """Run a setup command to its end, output appended to ``log``."""
    with open(log, 'ab') as out:
        out.write(('$ %s\n' % ' '.join(argv)).encode())
        out.flush()
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    env=env, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CloudError('%s failed: %s; see %s' % (name, exc, log))
    if result.returncode != 0:
        raise CloudError('%s failed (exit %d); see %s'
                         % (name, result.returncode, log))
