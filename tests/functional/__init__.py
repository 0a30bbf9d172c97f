# Apply Nova's test concurrency policy (nova.monkey_patch.patch(): eventlet by
# default, native threads with OS_NOVA_DISABLE_EVENTLET_PATCHING=true) before
# any functional test module imports eventlet, futurist or oslo_context.
import nova.tests.functional  # noqa: F401
