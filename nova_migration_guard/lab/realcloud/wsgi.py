"""The OpenStack WSGI applications, loaded for gunicorn.

Nova's and Keystone's WSGI entry points parse ``sys.argv`` as their own
command line; under gunicorn that is gunicorn's, which they refuse.  They
read their config files from the environment instead (OS_NOVA_CONFIG_DIR,
OS_KEYSTONE_CONFIG_FILES, ...).  gunicorn calls the factory::

    gunicorn 'nova_migration_guard.lab.realcloud.wsgi:app("keystone.wsgi.api")'
"""

import importlib
import sys


def app(module):
    """The ``application`` of ``module``, imported with an empty command
    line."""
    sys.argv = sys.argv[:1]
    return importlib.import_module(module).application
