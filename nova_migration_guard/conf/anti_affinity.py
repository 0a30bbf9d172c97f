"""The [migration_guard_anti_affinity] group: the anti-affinity guard."""

from oslo_config import cfg
from oslo_config import types

ENFORCE = 'enforce'
AUDIT = 'audit'

anti_affinity_group = cfg.OptGroup(
    'migration_guard_anti_affinity',
    title='nova-migration-guard anti-affinity guard',
    help="""
Used when ``anti_affinity`` is in ``[migration_guard] guards``: the scheduler
filter and weigher count both ends of every in-flight move of a server group
member, and each destination compute checks the group under a distributed
lock (``[migration_guard_coordination]``) before it claims.
""")

ALL_OPTS = [
    cfg.ListOpt(
        'policies',
        item_type=types.String(choices=('anti-affinity',
                                        'soft-anti-affinity')),
        default=['anti-affinity', 'soft-anti-affinity'],
        help="""
The server group policies the guard handles. ``anti-affinity`` enables the
filter and the late check on the destination; ``soft-anti-affinity`` the
weigher. Remove a policy to leave its groups to stock Nova.
"""),
    cfg.StrOpt(
        'mode',
        default=ENFORCE,
        choices=[
            (ENFORCE, 'Refuse a destination that would break the policy.'),
            (AUDIT, 'Only log the refusals the guard would make (with the '
                    'group, instance, host and counted moves); moves go on '
                    'as in stock Nova.'),
        ],
        help="""
Start with ``audit`` to see, in the logs of the computes, which moves the
guard would refuse before enforcing it.
"""),
]


def register_opts(conf):
    conf.register_group(anti_affinity_group)
    conf.register_opts(ALL_OPTS, group=anti_affinity_group)


def list_opts():
    return {anti_affinity_group: ALL_OPTS}
