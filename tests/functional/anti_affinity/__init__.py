import nova.tests.functional  # noqa: F401  Nova's monkey patching, first
