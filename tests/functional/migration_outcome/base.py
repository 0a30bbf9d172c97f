"""The cloud of the migration_outcome tests: two libvirt computes on
Nova's fake libvirt, with a live migration that fails at a chosen step
(what is stubbed and why:
nova_migration_guard/lab/embedded/libvirt_migration.py, shared with the
demo)."""

from nova.tests.fixtures import libvirt as fakelibvirt  # noqa: F401

from nova_migration_guard.lab.embedded import libvirt_migration
from nova_migration_guard.migration_outcome import reconcile  # noqa: F401

LateFailureTestCase = libvirt_migration.MigrationCloud
set_state = libvirt_migration.set_state


class ComputeDied(BaseException):
    """Ends a "dead" compute's migration thread without running any of
    Nova's handlers (nothing runs in a dead process)."""
