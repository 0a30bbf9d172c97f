"""The audit's checks (findings.py) over plain API data, without a cloud."""

import datetime

import testtools

from nova_migration_guard.audit import findings

NOW = datetime.datetime(2025, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
A, B, C = ('aaaaaaaa-0000-0000-0000-000000000001',
           'bbbbbbbb-0000-0000-0000-000000000002',
           'cccccccc-0000-0000-0000-000000000003')
GROUP = 'group-0000-0000-0000-000000000001'


def server(uuid, host, name=None, status='ACTIVE', task_state=None):
    return {'id': uuid, 'name': name or uuid[:1] * 3, 'status': status,
            'OS-EXT-SRV-ATTR:host': host,
            'OS-EXT-STS:task_state': task_state}


def group(members, policy='anti-affinity', rules=None, uuid=GROUP):
    return {'id': uuid, 'name': 'web', 'policy': policy,
            'rules': rules or {}, 'members': list(members)}


def migration(mig_id, uuid, status, source, dest, age=60,
              mig_type='live-migration', updated_age=None):
    created = NOW - datetime.timedelta(seconds=age)
    updated = (None if updated_age is None else
               NOW - datetime.timedelta(seconds=updated_age))
    return {'id': mig_id, 'uuid': 'mig-%d' % mig_id, 'instance_uuid': uuid,
            'status': status, 'migration_type': mig_type,
            'source_compute': source, 'dest_compute': dest,
            'source_node': source, 'dest_node': dest,
            'created_at': created.strftime('%Y-%m-%dT%H:%M:%S.%f'),
            'updated_at': updated and updated.strftime(
                '%Y-%m-%dT%H:%M:%S.%f')}


def hypervisor(uuid, name, host):
    return {'id': uuid, 'hypervisor_hostname': name, 'state': 'up',
            'status': 'enabled',
            'service': {'id': 'svc-' + host, 'host': host,
                        'disabled_reason': None}}


HYPERVISORS = [hypervisor('n1', 'host1', 'host1'),
               hypervisor('n2', 'host2', 'host2'),
               hypervisor('n3', 'host3', 'host3')]


def audit(servers=(), groups=(), migrations=(), hypervisors=HYPERVISORS,
          stuck_after=3600):
    return findings.audit(list(servers), list(groups), list(migrations),
                          list(hypervisors), NOW, stuck_after)


class CleanTestCase(testtools.TestCase):

    def test_empty_cloud(self):
        self.assertEqual([], audit(hypervisors=()))

    def test_healthy_cloud_with_history(self):
        servers = [server(A, 'host3'), server(B, 'host2'),
                   server(C, 'host1', status='VERIFY_RESIZE')]
        migrations = [
            # A live-migrated host1 -> host3 long ago, then a failed
            # attempt that left it where it was.
            migration(1, A, 'completed', 'host1', 'host3', age=90000),
            migration(2, A, 'failed', 'host3', 'host2', age=500),
            # B evacuated, and a cold migration reverted.
            migration(3, B, 'done', 'host1', 'host2', age=80000,
                      mig_type='evacuation'),
            migration(4, B, 'reverted', 'host2', 'host3', age=7000,
                      mig_type='migration'),
            # C resized host2 -> host1, waiting for confirmation for
            # days: waiting for the user, not stuck.
            migration(5, C, 'finished', 'host2', 'host1', age=300000,
                      mig_type='resize'),
            # A migration of a deleted instance.
            migration(6, 'gone', 'confirmed', 'host1', 'host2'),
        ]
        groups = [group([A, B]), group([C], uuid='other')]
        self.assertEqual([], audit(servers, groups, migrations))

    def test_soft_anti_affinity_and_affinity_are_not_checked(self):
        servers = [server(A, 'host1'), server(B, 'host1')]
        for policy in ('soft-anti-affinity', 'affinity',
                       'soft-affinity'):
            self.assertEqual([], audit(servers, [group([A, B], policy)]))

    def test_unplaced_members_occupy_nothing(self):
        servers = [server(A, None, status='SHELVED_OFFLOADED'),
                   server(B, None, status='SHELVED_OFFLOADED')]
        self.assertEqual([], audit(servers, [group([A, B])]))


class AntiAffinityTestCase(testtools.TestCase):

    def test_two_members_on_one_host(self):
        servers = [server(A, 'host1', 'vm1'), server(B, 'host1', 'vm2')]
        found = audit(servers, [group([A, B])])
        self.assertEqual([(findings.ANTI_AFFINITY, 'server group ' + GROUP)],
                         [f[:2] for f in found])
        self.assertEqual(
            'server group web (%s, anti-affinity, max_server_per_host=1) '
            'has 2 members on host host1: vm1 (%s), vm2 (%s).'
            % (GROUP, A, B), found[0].message)

    def test_in_flight_move_counts_on_both_ends(self):
        servers = [server(A, 'host1', 'vm1'), server(B, 'host2', 'vm2')]
        moving = migration(7, B, 'running', 'host2', 'host1')
        found = audit(servers, [group([A, B])], [moving])
        self.assertEqual(1, len(found))
        self.assertEqual(
            'server group web (%s, anti-affinity, max_server_per_host=1) '
            'has 2 members on host host1, counting in-flight moves: '
            'vm1 (%s), vm2 (%s) moving host2->host1 (migration 7, running).'
            % (GROUP, A, B), found[0].message)

    def test_every_in_progress_status_counts(self):
        servers = [server(A, 'host1'), server(B, 'host2')]
        in_progress = sorted(findings.KNOWN_STATUSES -
                             findings.FINAL_STATUSES)
        self.assertIn('finished', in_progress)
        for status in in_progress:
            found = findings.anti_affinity_violations(
                servers, [group([A, B])],
                [migration(1, B, status, 'host2', 'host1')])
            self.assertEqual(1, len(found), status)

    def test_final_moves_do_not_count(self):
        servers = [server(A, 'host1'), server(B, 'host2')]
        for status in sorted(findings.FINAL_STATUSES):
            self.assertEqual([], findings.anti_affinity_violations(
                servers, [group([A, B])],
                [migration(1, B, status, 'host2', 'host1')]), status)

    def test_max_server_per_host(self):
        servers = [server(A, 'host1'), server(B, 'host1'),
                   server(C, 'host2')]
        pairs = group([A, B, C], rules={'max_server_per_host': 2})
        self.assertEqual([], audit(servers, [pairs]))
        moving = migration(1, C, 'queued', 'host2', 'host1')
        found = audit(servers, [pairs], [moving])
        self.assertEqual(1, len(found))
        self.assertIn('max_server_per_host=2) has 3 members on host host1',
                      found[0].message)

    def test_one_finding_per_crowded_host(self):
        servers = [server(A, 'host1'), server(B, 'host1'),
                   server(C, 'host2')]
        moving = migration(1, A, 'running', 'host1', 'host2')
        found = audit(servers, [group([A, B, C])], [moving])
        self.assertEqual(2, len(found))
        self.assertIn('has 2 members on host host1: ', found[0].message)
        self.assertIn('has 2 members on host host2, counting in-flight',
                      found[1].message)


class StuckTestCase(testtools.TestCase):

    def test_in_progress_too_long_is_stuck(self):
        servers = [server(A, 'host1', 'vm1')]
        old = migration(3, A, 'running', 'host1', 'host2', age=7530)
        found = audit(servers, migrations=[old])
        self.assertEqual([(findings.STUCK_MIGRATION, 'migration 3')],
                         [f[:2] for f in found])
        self.assertEqual(
            "live-migration host1->host2 (migration 3) of instance vm1 (%s) "
            "has been 'running' for 2 h 05 min without change (since "
            "2025-06-01 09:54:30Z), longer than the 3600 s allowed." % A,
            found[0].message)

    def test_updated_at_counts_over_created_at(self):
        servers = [server(A, 'host1')]
        recent = migration(3, A, 'running', 'host1', 'host2', age=7530,
                           updated_age=60)
        self.assertEqual([], audit(servers, migrations=[recent]))

    def test_threshold(self):
        servers = [server(A, 'host1')]
        moving = [migration(3, A, 'pre-migrating', 'host1', 'host2',
                            age=600, mig_type='migration')]
        self.assertEqual([], audit(servers, migrations=moving))
        self.assertEqual([findings.STUCK_MIGRATION], [
            f.kind for f in audit(servers, migrations=moving,
                                  stuck_after=599)])

    def test_final_and_waiting_statuses_are_never_stuck(self):
        servers = [server(A, 'host2')]
        for status in sorted(findings.FINAL_STATUSES | {'finished'}):
            old = migration(3, A, status, 'host1', 'host2', age=10 ** 6,
                            mig_type='resize')
            self.assertEqual([], findings.stuck_migrations(
                servers, [old], NOW, 3600), status)

    def test_timestamps_with_zone(self):
        moving = migration(3, A, 'running', 'host1', 'host2')
        moving['created_at'] = '2025-06-01T09:00:00Z'
        self.assertEqual(1, len(findings.stuck_migrations(
            [], [moving], NOW, 3600)))


class UnknownStateTestCase(testtools.TestCase):

    def test_error_instance_after_failed_move(self):
        servers = [server(A, 'host1', 'vm1', status='ERROR')]
        failed = migration(4, A, 'error', 'host1', 'host2')
        found = audit(servers, migrations=[failed])
        self.assertEqual([(findings.UNKNOWN_STATE, 'instance ' + A)],
                         [f[:2] for f in found])
        self.assertEqual(
            "instance vm1 (%s) is in ERROR on host host1 after its "
            "live-migration host1->host2 (migration 4) ended 'error': where "
            "its guest runs is unknown, check both hosts." % A,
            found[0].message)

    def test_task_state_left_after_failed_move(self):
        servers = [server(A, 'host1', task_state='migrating')]
        failed = migration(4, A, 'failed', 'host1', 'host2')
        found = audit(servers, migrations=[failed])
        self.assertEqual([findings.UNKNOWN_STATE], [f.kind for f in found])
        self.assertIn("still has task_state 'migrating'", found[0].message)

    def test_failed_move_that_left_the_instance_fine(self):
        servers = [server(A, 'host1')]
        failed = migration(4, A, 'error', 'host1', 'host2')
        self.assertEqual([], audit(servers, migrations=[failed]))

    def test_only_the_latest_migration_matters(self):
        servers = [server(A, 'host2', status='ERROR')]
        migrations = [migration(4, A, 'error', 'host1', 'host2', age=900),
                      migration(5, A, 'completed', 'host1', 'host2',
                                age=100)]
        self.assertEqual([], audit(servers, migrations=migrations))

    def test_post_copy_is_a_status_nova_sets(self):
        """'running (post-copy)': Nova's libvirt driver, once a live
        migration switched to post-copy (nova/virt/libvirt/migration.py)."""
        servers = [server(A, 'host2', 'vm1')]
        post_copy = migration(4, A, 'running (post-copy)', 'host1', 'host2',
                              age=7530)
        found = audit(servers, migrations=[post_copy])
        self.assertEqual([(findings.STUCK_MIGRATION, 'migration 4')],
                         [f[:2] for f in found])
        self.assertIn("has been 'running (post-copy)' for 2 h 05 min",
                      found[0].message)
        # In progress: the instance is on either end, and counts on both.
        self.assertEqual([findings.HOST_MISMATCH], [
            f.kind for f in audit([server(A, 'host3', 'vm1')],
                                  migrations=[post_copy],
                                  stuck_after=10 ** 6)])

    def test_status_nova_never_sets(self):
        servers = [server(A, 'host1')]
        odd = migration(4, A, 'half-done', 'host1', 'host2')
        found = audit(servers, migrations=[odd])
        self.assertEqual([(findings.UNKNOWN_STATE, 'migration 4')],
                         [f[:2] for f in found])
        self.assertIn("status 'half-done', which Nova never sets",
                      found[0].message)


class HostMismatchTestCase(testtools.TestCase):

    def _found(self, host, status, source='host1', dest='host2',
               mig_type='live-migration'):
        return audit([server(A, host, 'vm1')], migrations=[
            migration(9, A, status, source, dest, mig_type=mig_type)])

    def test_still_on_source_after_completed_live_migration(self):
        found = self._found('host1', 'completed')
        self.assertEqual([(findings.HOST_MISMATCH, 'instance ' + A)],
                         [f[:2] for f in found])
        self.assertEqual(
            "instance vm1 (%s) is on host host1, but its live-migration "
            "host1->host2 (migration 9) is 'completed', which puts it on its "
            "destination host2." % A, found[0].message)

    def test_succeeded_moves_put_the_instance_on_the_destination(self):
        for status, mig_type in (('done', 'evacuation'),
                                 ('confirmed', 'migration'),
                                 ('finished', 'resize')):
            self.assertEqual([], self._found('host2', status,
                                             mig_type=mig_type))
            self.assertEqual([findings.HOST_MISMATCH], [
                f.kind for f in self._found('host3', status,
                                            mig_type=mig_type)], status)

    def test_reverted_and_cancelled_leave_it_on_the_source(self):
        for status in ('reverted', 'cancelled'):
            self.assertEqual([], self._found('host1', status))
            found = self._found('host2', status)
            self.assertEqual([findings.HOST_MISMATCH],
                             [f.kind for f in found], status)
            self.assertIn('its source host1', found[0].message)

    def test_in_progress_on_either_end(self):
        self.assertEqual([], self._found('host1', 'running'))
        self.assertEqual([], self._found('host2', 'post-migrating'))
        found = self._found('host3', 'running')
        self.assertEqual([findings.HOST_MISMATCH], [f.kind for f in found])
        self.assertIn('either end (host1 or host2)', found[0].message)

    def test_failed_moves_and_unplaced_instances_are_not_checked(self):
        self.assertEqual([], self._found('host3', 'error'))
        self.assertEqual([], self._found('host3', 'failed'))
        self.assertEqual([], self._found(None, 'completed'))

    def test_live_migration_without_destination_yet(self):
        self.assertEqual([], self._found('host1', 'queued', dest=None))


class DuplicateHypervisorTestCase(testtools.TestCase):

    def test_one_name_under_two_hosts(self):
        found = audit(hypervisors=HYPERVISORS + [
            hypervisor('n4', 'host1', 'host3')])
        self.assertEqual([(findings.DUPLICATE_HYPERVISOR, 'hypervisor host1')],
                         [f[:2] for f in found])
        self.assertEqual(
            'hypervisor_hostname host1 appears under 2 hosts: host1 '
            '(compute node n1), host3 (compute node n4).', found[0].message)

    def test_many_nodes_under_one_host(self):
        # ironic: one service, many differently named nodes
        self.assertEqual([], audit(hypervisors=[
            hypervisor('n%d' % i, 'node-%d' % i, 'ironic1')
            for i in range(5)]))


class LatestTestCase(testtools.TestCase):

    def test_by_created_at_then_id(self):
        migrations = [migration(1, A, 'completed', 'h1', 'h2', age=100),
                      migration(3, A, 'error', 'h2', 'h3', age=300),
                      migration(2, A, 'failed', 'h2', 'h3', age=100)]
        self.assertEqual(2, findings.latest_migrations(migrations)[A]['id'])

    def test_kinds_in_report_order(self):
        servers = [server(A, 'host1', status='ERROR'), server(B, 'host1'),
                   server(C, 'host3')]
        migrations = [
            migration(1, A, 'error', 'host1', 'host2'),
            migration(2, C, 'completed', 'host3', 'host2', age=100),
            migration(3, 'gone', 'running', 'host1', 'host2', age=9999)]
        found = audit(servers, [group([A, B])], migrations,
                      HYPERVISORS + [hypervisor('n4', 'host2', 'host3')])
        self.assertEqual(list(findings.KINDS), [f.kind for f in found])
