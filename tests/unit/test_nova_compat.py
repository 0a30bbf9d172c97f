"""nova_compat against the Nova installed in this environment: what it
tells of the release is what the release's code does (tox runs this on
every release line, NMG_NOVA_RELEASE)."""

import inspect
import threading

from nova.virt.libvirt import driver as libvirt_driver
import testtools

from nova_migration_guard import nova_compat


class ReleaseDifferencesTestCase(testtools.TestCase):

    def test_migrate_error_raised_is_what_live_migration_does(self):
        # Stock _live_migration re-raises the migrate call's error exactly
        # where it collects the Future it hands the monitor.
        source = inspect.getsource(
            libvirt_driver.LibvirtDriver._live_migration)
        self.assertEqual('future.result()' in source,
                         nova_compat.migrate_error_raised())

    def test_native_threading_events_from_33(self):
        major = int(nova_compat.nova_version().split('.')[0])
        self.assertEqual(major >= 33,
                         nova_compat.native_threading_libvirt_events())

    @staticmethod
    def _wait(handle):
        # A Future, or on 31.x a GreenThread (which runs once this thread
        # yields to eventlet's hub, as a monkey-patched nova-compute does).
        return (handle.result if hasattr(handle, 'result') else
                handle.wait)()

    def test_spawn_runs_in_novas_pool(self):
        def work(value, key=None):
            return value, key

        self.assertEqual((1, 'k'),
                         self._wait(nova_compat.spawn(work, 1, key='k')))

    def test_spawn_after_reset(self):
        self.addCleanup(nova_compat.reset_thread_pools)
        nova_compat.reset_thread_pools()
        self.assertEqual('ran', self._wait(nova_compat.spawn(lambda: 'ran')))


class MigrateCallTestCase(testtools.TestCase):

    def test_not_ended(self):
        call = nova_compat.MigrateCall()
        self.assertFalse(call.ended())
        self.assertIsNone(call.error)

    def test_success(self):
        call = nova_compat.MigrateCall()
        self.assertEqual('done', call.run(lambda a, b=None: 'done', 1, b=2))
        self.assertTrue(call.ended())
        self.assertIsNone(call.error)
        call.wait()  # returns at once

    def test_error_recorded_and_raised(self):
        call = nova_compat.MigrateCall()
        error = ValueError('migrate failed')

        def migrate():
            raise error

        raised = self.assertRaises(ValueError, call.run, migrate)
        self.assertIs(error, raised)
        self.assertTrue(call.ended())
        self.assertIs(error, call.error)

    def test_wait_until_ended_in_another_thread(self):
        call = nova_compat.MigrateCall()
        release = threading.Event()
        thread = threading.Thread(target=call.run, args=(release.wait,))
        thread.start()
        self.assertFalse(call.ended())
        release.set()
        call.wait()
        self.assertTrue(call.ended())
        thread.join()
