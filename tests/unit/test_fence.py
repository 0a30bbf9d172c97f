"""coordination.SelfFence, in child processes (it ends the process it runs
in): re-arming moves the end, disarming cancels it, the watchdog ends a
running process with a CRITICAL line and exit status 75, and the kernel
timer kills a frozen one while it is frozen."""

import os
import signal
import subprocess
import sys
import time

from oslotest import base

from nova_migration_guard.coordination import fence

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

CHILD = '''
import logging, sys, time
from nova_migration_guard.coordination import fence
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
the_fence = fence.SelfFence('the test lease')
step = sys.argv[1]
if step == 'rearm':
    # Armed 0.5 s ahead, again and again: never reached.
    for _ in range(10):
        now = time.monotonic()
        the_fence.arm(now + 0.5, now + 0.7)
        time.sleep(0.1)
    the_fence.disarm()
    time.sleep(1.0)
    print('ALIVE', flush=True)
elif step == 'expire':
    now = time.monotonic()
    the_fence.arm(now + 0.2, now + 5.0)
    time.sleep(30)
    print('ALIVE', flush=True)
elif step == 'frozen':
    now = time.monotonic()
    # The watchdog far later: only the kernel can end it in time.
    the_fence.arm(now + 30.0, now + 0.5)
    print('ARMED', flush=True)
    time.sleep(30)
    print('ALIVE', flush=True)
'''


class SelfFenceTest(base.BaseTestCase):

    def child(self, step):
        process = subprocess.Popen(
            [sys.executable, '-c', CHILD, step], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=REPO))
        self.addCleanup(self._kill, process)
        return process

    @staticmethod
    def _kill(process):
        if process.poll() is None:
            process.kill()
        process.communicate()

    def test_rearmed_then_disarmed_does_not_end_the_process(self):
        out, err = self.child('rearm').communicate(timeout=60)
        self.assertEqual(b'ALIVE\n', out, err)

    def test_watchdog_ends_the_process_with_a_critical_line(self):
        process = self.child('expire')
        out, err = process.communicate(timeout=60)
        self.assertEqual(fence.EXIT_CODE, process.returncode, err)
        self.assertEqual(b'', out)
        self.assertIn(b'CRITICAL', err)
        self.assertIn(b'This process fences itself: it ends now (exit status '
                      b'75) because it can no longer prove that it holds the '
                      b'test lease: its last renewal confirmed by the backend '
                      b'is too old.', err)

    def test_kernel_timer_kills_a_frozen_process(self):
        process = self.child('frozen')
        self.assertEqual(b'ARMED\n', process.stdout.readline())
        os.kill(process.pid, signal.SIGSTOP)
        try:
            # Killed while frozen: no SIGCONT needed.
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
        self.assertEqual(-signal.SIGKILL, process.wait(60))
        self.assertEqual(b'', process.stdout.read())
