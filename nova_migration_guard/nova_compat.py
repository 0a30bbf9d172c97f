"""What differs, for the plugin, between the Nova releases it supports
(31.x to 34.x, ``patching.series.RELEASES``): the one place that knows.

The guards call these instead of the Nova internals that differ, so each
guard behaves the same on every release.  Each difference is told from
the installed Nova's code itself (a module, a class, a parameter name),
never from its version number: 32.x changed its live-migration threading
between point releases.

* Nova's thread pools: ``nova.thread_pool_factory`` (34.x),
  ``nova.utils``' default executor (32.x, 33.x) or its eventlet green
  pool (31.x): ``spawn``, ``reset_thread_pools``.
* The migrate call's error.  The libvirt driver runs the migrate call
  (``_live_migration_operation``) in its own thread and hands its monitor
  something that says when it ended: a Future (32.2 and later), which
  ``_live_migration`` then collects, re-raising the call's error; a
  ``threading.Event`` (32.0, 32.1) or an eventlet Event (31.x), which
  carry no error, and ``_live_migration`` returns as if the call had
  succeeded.  ``migrate_error_raised()`` tells which; the guarded driver
  records the call's end and error itself (``MigrateCall``), the same
  way on every release.
* libvirt's events in Nova's native-threading mode
  (``_ThreadingLibvirtEventHandler``, 33.x and 34.x), which the real
  libvirt tier runs in: ``native_threading_libvirt_events()``.
"""

import functools
import importlib.metadata
import inspect
import threading

from nova import utils as nova_utils

try:
    from nova import thread_pool_factory
except ImportError:  # 33.x and older: nova.utils' pool
    thread_pool_factory = None


def spawn(func, *args, **kwargs):
    """Run ``func`` in Nova's default thread pool (a greenthread under
    eventlet), with the caller's request context; returns at once, a
    Future (32.x and later) or an eventlet GreenThread (31.x)."""
    if thread_pool_factory is not None:
        return thread_pool_factory.spawn(func, *args, **kwargs)
    return nova_utils.spawn(func, *args, **kwargs)


def reset_thread_pools():
    """Shut down Nova's thread pools of this process, waiting for their
    workers (until then, interpreter exit waits for them); the next spawn
    creates them anew."""
    if thread_pool_factory is not None:
        thread_pool_factory.reset_all_executors()
    elif hasattr(nova_utils, 'destroy_default_executor'):  # 32.x, 33.x
        nova_utils.destroy_default_executor()
    # 31.x: an eventlet green pool, whose greenthreads never hold up exit.


def nova_version():
    """The installed Nova's version, for messages (never for decisions:
    those read the code, see above)."""
    try:
        return importlib.metadata.version('nova')
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'


@functools.cache
def migrate_error_raised():
    """Whether stock ``LibvirtDriver._live_migration`` re-raises the
    migrate call's error (the compute manager then puts the instance and
    the migration in ERROR, G3): where its monitor is handed a Future."""
    from nova.virt.libvirt import driver as libvirt_driver
    return 'future' in inspect.signature(
        libvirt_driver.LibvirtDriver._live_migration_monitor).parameters


@functools.cache
def native_threading_libvirt_events():
    """Whether Nova's libvirt Host delivers libvirt's events with native
    threads in Nova's threading mode, as the real libvirt tier needs."""
    from nova.virt.libvirt import host as libvirt_host
    return hasattr(libvirt_host, '_ThreadingLibvirtEventHandler')


class MigrateCall(object):
    """The migrate call of one live migration, as the guarded driver's
    ``_live_migration_operation`` runs it: whether it ended, and its
    error.  Set before the handle Nova's monitor watches says it ended."""

    def __init__(self):
        self._ended = threading.Event()
        self.error = None

    def run(self, operation, *args, **kwargs):
        try:
            return operation(*args, **kwargs)
        except Exception as error:
            self.error = error
            raise
        finally:
            self._ended.set()

    def ended(self):
        return self._ended.is_set()

    def wait(self):
        """Until the call ended, as stock ``_live_migration`` waits for it
        where it re-raises its error."""
        self._ended.wait()
