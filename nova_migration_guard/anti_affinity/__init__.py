"""Server group anti-affinity that holds under concurrent moves.

* ``policy``    -- pure decisions: which members occupy which host (counting
                   both ends of every in-flight move) and whether a host may
                   take one more member.
* ``occupancy`` -- reads members, their hosts and their in-flight moves from
                   Nova's database, in one query per cell.
* the scheduler filter and weigher live in ``nova_migration_guard.scheduler``;
  the late check on the destination in ``late_check``.
"""
