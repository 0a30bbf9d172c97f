"""``nova-migration-guard audit``: what is wrong with a live cloud's moves.

* ``findings`` -- pure checks over the plain JSON the Nova API returns
                  (servers, server groups, migrations, hypervisors): each
                  problem becomes a ``Finding(kind, subject, message)``.
* ``collect``  -- reads those lists from a cloud through openstacksdk, as an
                  admin, all projects, page by page.
* the command itself lives in ``nova_migration_guard.cmd.audit``.
"""
