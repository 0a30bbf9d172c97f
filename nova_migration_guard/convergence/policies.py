"""Named convergence policies, and which one a guest gets.

A policy says how far the convergence engine may go to finish the live
migration of a guest that dirties memory faster than the network copies
it: the escalation ladder (raise the allowed downtime stepwise, then
auto-converge throttling, then post-copy, then pausing the guest, then
abort) and the completion deadline per GiB to copy.  Selection, most
specific first: the flavor extra spec ``migration_guard:convergence_policy``,
the image property ``migration_guard_convergence_policy``, then
``[migration_guard_convergence] default_policy``.

Pure: options and specs in, a Policy out.
"""

import dataclasses

EXTRA_SPEC = 'migration_guard:convergence_policy'
IMAGE_PROPERTY = 'migration_guard_convergence_policy'
# Nova keeps an instance's image properties in its system metadata.
IMAGE_SYSMETA = 'image_' + IMAGE_PROPERTY


class PolicyError(ValueError):
    """An unknown policy name, or an invalid custom policy."""


@dataclasses.dataclass(frozen=True)
class Policy:
    name: str
    #: Allowed downtime steps (ms), raised one step per stalled stretch.
    downtime_steps_ms: tuple = (500, 1000, 2000)
    #: The policy's patience (convergence.predictor): the passes a
    #: predicted convergence may take, the throttle raises it may wait for
    #: (twice as many passes), the stalled passes that refute a prediction.
    stall_passes: int = 3
    #: Auto-converge: QEMU throttles the guest's vCPUs while its dirty
    #: rate outruns the copy, starting at ``auto_converge_initial`` % and
    #: adding ``auto_converge_increment`` % per pass that still outruns it.
    auto_converge: bool = True
    auto_converge_initial: int = 20
    auto_converge_increment: int = 10
    #: Then switch to post-copy, where the migration allows it.
    post_copy: bool = False
    #: Then pause the guest (workload disruption) to finish.
    pause: bool = False
    #: Seconds allowed per GiB to copy before the last resort; GiB as
    #: Nova's completion timeout counts them: the guest's RAM (at least 2
    #: GiB) and the disks of a block migration.  A paused guest's copy
    #: gets as long again from its pause before the abort.
    seconds_per_gib: int = 300

    def describe(self):
        rungs = ['downtime %s ms' % '/'.join(
            str(ms) for ms in self.downtime_steps_ms)]
        if self.auto_converge:
            rungs.append('auto-converge %d%%+%d%%' % (
                self.auto_converge_initial, self.auto_converge_increment))
        if self.post_copy:
            rungs.append('post-copy')
        if self.pause:
            rungs.append('pause')
        return '%s: %s, then abort; %d s/GiB' % (
            self.name, ' -> '.join(rungs), self.seconds_per_gib)


BUILTIN = {p.name: p for p in (
    # The default: the guest keeps running throughout.  Downtime steps and
    # auto-converge first; when the guest still outruns the copy with the
    # CPU throttle at its maximum (or the deadline passes), post-copy: the
    # guest runs on the destination at once and fetches its remaining
    # pages from the source.  Only a migration that cannot use post-copy
    # (vPMEM) is aborted.
    Policy('minimal-downtime', post_copy=True),
    # Never split the guest across two hosts: if the network failed during
    # post-copy, neither half could run.  Throttle, then give up (abort;
    # the guest stays on its source).
    Policy('pre-copy-only'),
    # Prefer finishing quickly through post-copy (guests that tolerate the
    # page-fault latency after the switch-over) over throttling the CPU.
    Policy('post-copy', downtime_steps_ms=(500, 1000), auto_converge=False,
           post_copy=True),
    # Batch workloads: a pause is acceptable if that is what it takes, and
    # is preferred to post-copy.
    Policy('suspend-workload', downtime_steps_ms=(500, 2000),
           pause=True),
    # Large guests: more time and larger downtime steps before escalating.
    Policy('large-guest', downtime_steps_ms=(500, 1000, 2000, 4000),
           stall_passes=4, post_copy=True, seconds_per_gib=600),
)}

_FIELDS = {f.name: f for f in dataclasses.fields(Policy) if f.name != 'name'}


def parse_custom(spec):
    """A Policy from ``NAME:BASE,key=value,...`` (a custom_policies entry),
    e.g. ``gold:post-copy,seconds_per_gib=120,pause=true``."""
    name, _, rest = spec.partition(':')
    name = name.strip()
    parts = [p.strip() for p in rest.split(',') if p.strip()]
    if not name or not parts or '=' in parts[0]:
        raise PolicyError('%r is not NAME:BASE[,key=value...]' % spec)
    base = BUILTIN.get(parts[0])
    if base is None:
        raise PolicyError('custom policy %s: unknown base %r; accepted: %s'
                          % (name, parts[0], ', '.join(sorted(BUILTIN))))
    changes = {'name': name}
    for part in parts[1:]:
        key, _, value = part.partition('=')
        key = key.strip()
        if key not in _FIELDS:
            raise PolicyError('custom policy %s: unknown key %r; accepted: '
                              '%s' % (name, key, ', '.join(sorted(_FIELDS))))
        changes[key] = _convert(name, key, value.strip())
    return dataclasses.replace(base, **changes)


def _convert(name, key, value):
    kind = _FIELDS[key].type
    try:
        if kind in ('bool', bool):
            if value.lower() not in ('true', 'false'):
                raise ValueError(value)
            return value.lower() == 'true'
        if kind in ('int', int):
            number = int(value)
            if number < 1 or (key.startswith('auto_converge_') and
                              number > 99):
                raise ValueError(value)
            return number
        steps = tuple(int(v) for v in value.split('/'))
        if not steps or min(steps) < 1 or list(steps) != sorted(steps):
            raise ValueError(value)
        return steps
    except ValueError:
        raise PolicyError('custom policy %s: invalid %s %r' % (name, key,
                                                               value))


def available(custom_specs=()):
    """{name: Policy}: the built-in policies and the custom ones."""
    policies = dict(BUILTIN)
    for spec in custom_specs:
        policy = parse_custom(spec)
        policies[policy.name] = policy
    return policies


def select(extra_specs, system_metadata, default, custom_specs=()):
    """The Policy for a guest, and where its name came from."""
    policies = available(custom_specs)
    for source, name in (
            ('flavor extra spec %s' % EXTRA_SPEC,
             (extra_specs or {}).get(EXTRA_SPEC)),
            ('image property %s' % IMAGE_PROPERTY,
             (system_metadata or {}).get(IMAGE_SYSMETA)),
            ('[migration_guard_convergence] default_policy', default)):
        if name:
            if name not in policies:
                raise PolicyError('%s = %r is not a convergence policy; '
                                  'accepted: %s' % (source, name, ', '.join(
                                      sorted(policies))))
            return policies[name], source
    raise PolicyError('no convergence policy')
