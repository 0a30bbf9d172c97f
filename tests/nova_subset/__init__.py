"""Nova's own tests, run on patched Nova: the modules named in the
NOVA_TEST_MODULES environment variable (set by tox.ini, [nova] section).

A load_tests hook instead of discovery over Nova's whole test tree, which
imports modules that need extra tools (hacking) or another concurrency mode.
"""

import os


def load_tests(loader, standard_tests, pattern):
    names = os.environ.get('NOVA_TEST_MODULES', '').split()
    if not names:
        raise RuntimeError('NOVA_TEST_MODULES is empty: run through '
                           '`tox -e nova-patched`')
    return loader.loadTestsFromNames(names)
