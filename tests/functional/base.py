"""Base class of the functional tests: the embedded in-process Nova cloud.

The cloud itself lives in the package (``nova_migration_guard.lab.embedded``)
because the ``nova-migration-guard demo`` command reuses it; this module only
re-exports it for the tests.
"""

from nova_migration_guard.lab.embedded.cloud import ANY  # noqa: F401
from nova_migration_guard.lab.embedded.cloud import EmbeddedCloudTestCase  # noqa
from nova_migration_guard.lab.embedded.cloud import OpenStackApiException  # noqa

__all__ = ['ANY', 'EmbeddedCloudTestCase', 'OpenStackApiException']
