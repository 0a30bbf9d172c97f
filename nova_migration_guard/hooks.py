"""The extension object Nova's ``nova.plugin_hooks`` namespace loads.

Nova (with the patch set applied) instantiates MigrationGuardHooks once per
process and calls its methods at the hook points described in Nova's
``nova/plugin_hooks.py``.  This class only dispatches: each guard's logic
lives in its own sub-package, and a hook does nothing unless the guard that
needs it is listed in ``[migration_guard] guards``.
"""

import contextlib

from oslo_log import log as logging

from nova_migration_guard import conf
from nova_migration_guard.conf import guard as guard_conf

LOG = logging.getLogger(__name__)


class MigrationGuardHooks(object):

    def service_starting(self, service):
        """Refuse to start a service whose guard options are invalid."""
        if _disabled():
            LOG.debug('nova-migration-guard: no guard listed, disabled')
            return
        from nova_migration_guard.convergence import in_force
        from nova_migration_guard import validation
        try:
            validation.validate(conf.CONF)
        except conf.ConfigurationError as exc:
            refusal = exc
        else:
            refusal = None
        if refusal is not None:
            # Logged outside the except block: there oslo.log's formatter
            # appends the exception being handled, the message again.  The
            # exit status is 1 and the interpreter prints nothing more.
            LOG.critical('%s', refusal)
            raise refusal
        # Mutable options (SIGHUP): checked again at every reload.
        in_force.configuration(conf.CONF)
        conf.CONF.register_mutate_hook(in_force.on_reload)
        guards = conf.CONF.migration_guard.guards
        if guards:
            LOG.info('nova-migration-guard: %s on %s: guards %s',
                     service.binary, service.host, ', '.join(guards))
        for name in guards:
            if name in guard_conf.PLANNED_GUARDS:
                LOG.warning('nova-migration-guard: guard %s is not available '
                            'in this release and has no effect', name)
        if 'host_identity' in guards and service.binary == 'nova-compute':
            from nova_migration_guard.host_identity import single_writer
            single_writer.take(service)

    def init_host(self, manager, context, **kwargs):
        """Compute start, before Nova initialises its instances."""
        if _enabled('host_identity'):
            # First: a compute that is not who it claims to be touches
            # nothing.
            from nova_migration_guard.host_identity import startup
            startup.check_identity(manager, context)
        if _enabled('migration_outcome'):
            from nova_migration_guard.migration_outcome import recovery
            recovery.init_host(manager, context)
        if _enabled('anti_affinity') or _enabled('host_identity'):
            from nova_migration_guard.coordination import reach
            reach.warn_if_machine_local(manager, context)

    def destroying_evacuated_instances(self, **kwargs):
        """Compute start, before Nova destroys evacuated guests (0009)."""
        if _enabled('host_identity'):
            from nova_migration_guard.host_identity import destroy_brake
            destroy_brake.check(**kwargs)

    def instance_action(self, **kwargs):
        """An API request to act on an instance (patch 0008)."""
        if _enabled('migration_outcome'):
            from nova_migration_guard.migration_outcome import start_guard
            start_guard.instance_action(**kwargs)

    def live_migration_next_action(self, **kwargs):
        """A sample of Nova's live migration monitor (patch 0011): the
        convergence policy's next action, None to let Nova decide."""
        if not _enabled('convergence'):
            return None
        from nova_migration_guard.virt.libvirt import convergence
        try:
            return convergence.next_action(**kwargs)
        except Exception:
            # Never let a failure of ours end the migration: Nova's own
            # completion timeout and downtime steps decide this sample.
            LOG.exception('Convergence policy failed to decide; Nova '
                          'decides this sample', instance=kwargs.get(
                              'instance'))
            return None

    def move_claim(self, **kwargs):
        """Around a move's destination check and claim (compute)."""
        if _enabled('anti_affinity'):
            return _late_check().move_claim(**kwargs)
        return contextlib.nullcontext()

    def move_requested(self, **kwargs):
        """A move to a named host was requested (API)."""
        if _enabled('anti_affinity'):
            _late_check().move_requested(**kwargs)

    def move_failed(self, **kwargs):
        """The conductor gave up on a move (after Nova set the states):
        say why, and take a refused evacuation out of ERROR."""
        if not _enabled('anti_affinity'):
            return
        from nova_migration_guard.anti_affinity import failed_move
        try:
            failed_move.move_failed(**kwargs)
        except Exception:
            # Never let it disturb Nova's handling of the failed move,
            # which is re-raising its own exception.
            LOG.exception('Could not record why the move of %s failed',
                          kwargs.get('instance'))


def _disabled():
    """``[migration_guard] guards`` is empty: the plugin reads none of its
    other options, so that a bad value cannot stop a stock service.  A value
    that cannot be read lists something: validation then names it."""
    try:
        return not conf.CONF.migration_guard.guards
    except ValueError:
        return False


def _enabled(guard):
    return guard in conf.CONF.migration_guard.guards


def _late_check():
    # Imported on use: it needs Nova's objects, which the hook module's
    # other users (service start) do not.
    from nova_migration_guard.anti_affinity import late_check
    return late_check
