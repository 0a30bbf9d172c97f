"""The demo's real-tier scenario, run as ``python -m
nova_migration_guard.demo.real_tier stock|guarded`` (a child process in
native-threading mode): two libvirt daemons on loopback and a QEMU guest
that rewrites 128 MiB at 30 MiB/s, twice what the migration stream (capped
at 15 MiB/s) copies.

Stock: Nova's LibvirtDriver and its migration monitor, with the completion
timeout shortened to 60 s/GiB (120 s) to keep the demo short.  Guarded: the
convergence and migration_outcome guards with the default policy.  Real:
Nova's libvirt driver, libvirtd, QEMU, the guest.  Stubbed as in the
real-tier tests: Nova's cloud side (database, RPC, the destination's
compute service), see nova_migration_guard/lab/real_libvirt/
nova_driver.py.

Progress goes to stderr as ``progress: ...`` lines; the outcome to stdout
as one JSON object (summary, ok, details).
"""

import json
import sys
import time

MIB = 2.0 ** 20


def progress(line):
    print('progress: ' + line, file=sys.stderr, flush=True)


def migrate(guarded):
    """Boot the guest on A, live-migrate it to B; returns what happened."""
    from nova_migration_guard.lab.real_libvirt import cloud
    from nova_migration_guard.lab.real_libvirt import nova_driver
    from nova_migration_guard.virt.libvirt import driver

    with cloud.RealLibvirtCloud() as real, \
            nova_driver.ConvergenceStepLog() as steps, \
            nova_driver.NovaLibvirtHosts(
                real.hosts,
                driver_class=driver.GuardedLibvirtDriver if guarded else None,
                guards=('convergence', 'migration_outcome')
                if guarded else (),
                live_migration_bandwidth=nova_driver.BANDWIDTH_MIB_S,
                live_migration_completion_timeout=(
                    nova_driver.SHORT_COMPLETION_TIMEOUT_S_PER_GIB)) as nova:
        domain, _ = real.start_guest('A', 'dirty', memory_mib=256,
                                     **nova_driver.DIRTY_TWICE_THE_CAP)
        instance = nova.instance(domain.UUIDString(), 'dirty', 256)
        started = time.monotonic()
        migrating, result = nova.live_migrate_in_background(
            real.hosts.a, real.hosts.b, instance)
        while migrating.is_alive():
            migrating.join(15)
            samples = nova.stats.of('dirty', since=started)
            if samples and migrating.is_alive():
                progress('      %.0f s: pass %d, %.0f MiB left' % (
                    time.monotonic() - started,
                    samples[-1]['memory_iteration'],
                    samples[-1]['memory_remaining'] / MIB))
        return describe(
            completed=bool(result['post'].calls),
            seconds=time.monotonic() - started,
            passes=nova.stats.passes('dirty', since=started),
            throttle=nova.stats.peak_throttle('dirty', since=started),
            running_on=real.running_on('dirty'), actions=steps.actions(),
            error=result['error'])


def describe(completed, seconds, passes, throttle, running_on, actions,
             error):
    """The outcome, in words, and whether it is what a user wants: the
    migration completed, the guest runs on B only, nothing raised."""
    where = ('guest runs on %s' % ' and '.join(
        'host %s' % h for h in running_on) if running_on
        else 'guest runs nowhere')
    # What finished it: the ladder's steps, and QEMU's auto-converge
    # throttle if the policy started the migration with it.
    how = actions + (['auto-converge throttle up to %d%%' % throttle]
                     if throttle else [])
    if completed:
        summary = 'converged in %.0f s (%d passes; %s); %s' % (
            seconds, passes, ', '.join(how) or 'pre-copy', where)
    else:
        why = ('aborted by the policy after %s' % ', '.join(actions[:-1])
               if actions else "aborted by Nova's completion timeout")
        summary = 'not converged: %s after %.0f s (%d passes); %s' % (
            why, seconds, passes, where)
        if error is not None:
            summary += '; the migrate call raised (instance goes to ERROR)'
    return {'summary': summary,
            'ok': completed and running_on == ['B'] and error is None,
            'details': {'completed': completed,
                        'seconds': round(seconds, 1), 'passes': passes,
                        'peak_throttle': throttle,
                        'running_on': running_on, 'steps': actions,
                        'error': str(error) if error else None}}


def main(argv):
    if argv[1:] not in (['stock'], ['guarded']):
        print('usage: python -m nova_migration_guard.demo.real_tier '
              'stock|guarded', file=sys.stderr)
        return 2
    json.dump(migrate(argv[1] == 'guarded'), sys.stdout)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
