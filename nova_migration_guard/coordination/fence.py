"""The self-fence of a lease holder: the process ends before its lease can
have run out in the backend, so that it never writes while another process
holds the lease.

Two mechanisms, armed at every confirmed renewal:

* a watchdog thread that, at the deadline, logs one CRITICAL line and ends
  the process (``os._exit``: no graceful stop, whose tasks in progress
  would go on writing);
* a kernel timer (``timer_create`` on ``CLOCK_BOOTTIME``, which also counts
  a system suspend) that sends SIGKILL a little later, still before the
  lease can run out.  It needs no thread of ours to run: a process frozen
  (SIGSTOP, a stalled host) past its deadline is killed by the kernel while
  frozen, before it could execute another instruction, and a process whose
  threads are starved or stuck dies all the same.

A :class:`~.lease.Lease` given a ``fence`` arms it; :func:`end_process`
is the immediate fence, for a loss the backend confirmed.
"""

import ctypes
import ctypes.util
import logging
import os
import signal
import threading
import time

LOG = logging.getLogger(__name__)

#: The exit status of a fenced process (EX_TEMPFAIL: it can start again
#: once the backend confirms its lease).
EXIT_CODE = 75


class _KernelTimer:
    """A POSIX timer sending SIGKILL to this process at an absolute
    CLOCK_BOOTTIME time (Linux; glibc)."""

    class _SigEvent(ctypes.Structure):
        # struct sigevent: sigval, signo, notify, then a union padding it
        # to 64 bytes.
        _fields_ = [('sigev_value', ctypes.c_void_p),
                    ('sigev_signo', ctypes.c_int),
                    ('sigev_notify', ctypes.c_int),
                    ('_pad', ctypes.c_byte * 48)]

    class _ITimerSpec(ctypes.Structure):
        # Two struct timespec {tv_sec, tv_nsec}.
        _fields_ = [('it_interval', ctypes.c_long * 2),
                    ('it_value', ctypes.c_long * 2)]

    _SIGEV_SIGNAL = 0
    _TIMER_ABSTIME = 1

    def __init__(self):
        self._libc = ctypes.CDLL(ctypes.util.find_library('c'),
                                 use_errno=True)
        self._id = ctypes.c_void_p()
        event = self._SigEvent(sigev_signo=signal.SIGKILL,
                               sigev_notify=self._SIGEV_SIGNAL)
        if self._libc.timer_create(time.CLOCK_BOOTTIME, ctypes.byref(event),
                                   ctypes.byref(self._id)):
            raise OSError(ctypes.get_errno(), 'timer_create')

    def set(self, monotonic_deadline):
        """Fire at ``monotonic_deadline`` (time.monotonic()); None
        disarms."""
        value = (0, 0)
        if monotonic_deadline is not None:
            at = max(monotonic_deadline - time.monotonic(), 0.0) + (
                time.clock_gettime(time.CLOCK_BOOTTIME))
            value = (int(at), max(int((at % 1) * 1e9), 1))
        spec = self._ITimerSpec(it_value=(ctypes.c_long * 2)(*value))
        if self._libc.timer_settime(self._id, self._TIMER_ABSTIME,
                                    ctypes.byref(spec), None):
            raise OSError(ctypes.get_errno(), 'timer_settime')


class SelfFence:
    """Ends this process at a deadline unless it is moved on or disarmed.

    ``what`` names what the process loses in the CRITICAL line (e.g. "the
    identity lease of nova-compute host1").  Thread-safe.
    """

    def __init__(self, what):
        self.what = what
        self._cond = threading.Condition()
        self._deadline = None
        self._kernel_timer = self._watchdog = None

    def arm(self, deadline, kill_at):
        """End the process at ``deadline`` (time.monotonic()) with a
        CRITICAL line, or be killed by the kernel at ``kill_at`` (later),
        unless armed again first."""
        with self._cond:
            if self._watchdog is None:
                self._start()
            self._deadline = deadline
            if self._kernel_timer is not None:
                self._kernel_timer.set(kill_at)
            self._cond.notify_all()

    def disarm(self):
        with self._cond:
            self._deadline = None
            if self._kernel_timer is not None:
                self._kernel_timer.set(None)
            self._cond.notify_all()

    def now(self, reason):
        """Log ``reason`` and end the process at once."""
        end_process(self.what, reason)

    def _start(self):
        """On first use: a lease without TTL (file://) never arms."""
        try:
            self._kernel_timer = _KernelTimer()
        except (OSError, AttributeError) as exc:
            # No timer_create (not Linux/glibc): the watchdog alone, which
            # a frozen process runs only after it resumes.
            LOG.warning('No kernel timer for the self-fence of %s (%s): a '
                        'frozen process is fenced only after it resumes',
                        self.what, exc)
        self._watchdog = threading.Thread(
            target=self._watch, daemon=True, name='migration-guard-fence')
        self._watchdog.start()

    def _watch(self):
        with self._cond:
            while True:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        self.now('its last renewal confirmed by the backend is too old')


def end_process(what, reason):
    """Log why in one CRITICAL line and end this process at once, without
    a graceful stop (whose tasks in progress would go on writing)."""
    LOG.critical('This process fences itself: it ends now (exit status '
                 '%d) because it can no longer prove that it holds %s: '
                 '%s. Another process may take over from now on; restart '
                 'this one once the coordination backend answers.',
                 EXIT_CODE, what, reason)
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # noqa: S110 -- ending anyway
            pass
    os._exit(EXIT_CODE)
