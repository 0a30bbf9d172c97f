"""Anti-affinity under concurrent moves, on a live cloud with the
anti_affinity guard (DevStack with the plugin, or the embedded cloud).

Each test boots two members of a hard anti-affinity group on two of the
computes; with 3 computes one host is free for both.  Moving both at once,
each can only go to that host: the guard lets one of them go and refuses
the other, which stays ACTIVE where it was.
"""

from openstack import exceptions as sdk_exc
from testtools.content import text_content

from tests.devstack import base


def live_migrate(conn, server):
    conn.compute.live_migrate_server(server, host=None, force=False,
                                     block_migration='auto')


def cold_migrate(conn, server):
    conn.compute.migrate_server(server)


def describe(servers, records, before, refused):
    """One line per member: where it was, where it is, how its move
    ended."""
    lines = []
    for server, record in zip(servers, records):
        how = ('refused by the API' if server.id in refused and
               record is None else 'migration %s' % record['status'])
        lines.append('%s: %s -> %s, %s, %s' % (
            server.name, before[server.id], server.compute_host, how,
            server.status))
    return '\n'.join(lines)


class AntiAffinityScenarioTestCase(base.ScenarioTestCase):

    def setUp(self):
        super().setUp()
        self.group = self.create_group()
        self.vm1, self.vm2 = self.boot_members(self.group)

    def test_concurrent_live_migrations_keep_policy(self):
        fresh, records, before, refused = self.race_moves(
            [self.vm1, self.vm2], live_migrate)
        for record in records:
            if record is not None:
                self.assertEqual('live-migration', record['migration_type'])
                self.assertIn(record['status'],
                              ('completed', 'error', 'failed'), record)
        self.addDetail('outcome', text_content(describe(fresh, records,
                                                        before, refused)))

    def test_concurrent_cold_migrations_keep_policy(self):
        fresh, records, before, refused = self.race_moves(
            [self.vm1, self.vm2], cold_migrate, confirm=True)
        for record in records:
            if record is not None:
                self.assertEqual('migration', record['migration_type'])
                self.assertIn(record['status'],
                              ('confirmed', 'error', 'failed'), record)
        self.addDetail('outcome', text_content(describe(fresh, records,
                                                        before, refused)))

    def test_forced_live_migration_onto_member_host_refused(self):
        """A forced live migration (no scheduler) of vm1 onto vm2's host
        breaks the group: 409 naming the group, and nothing moves."""
        host1, host2 = self.host_of(self.vm1), self.host_of(self.vm2)
        self.mark(self.vm1)
        exc = self.assertRaises(
            sdk_exc.ConflictException, self.conn.compute.live_migrate_server,
            self.vm1, host=host2, force=True, block_migration='auto')
        text = exc.response.text if exc.response is not None else str(exc)
        self.assertEqual(409, exc.status_code, text)
        self.assertIn(self.group.id, text)
        server = self.server(self.vm1)
        self.assertEqual('ACTIVE', server.status)
        self.assertIsNone(server.task_state)
        self.assertEqual(host1, server.compute_host)
        self.assertEqual([], self.new_migrations(self.vm1))
