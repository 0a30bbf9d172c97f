"""Concurrent moves of one anti-affinity group on the real-services cloud,
as a user drives them through Nova's API (openstacksdk): the races of
``tests/realcloud`` and of ``nova-migration-guard demo --cloud real``.

Three members of a hard anti-affinity group run on three of the four
computes, so a moving member's only possible destination is the free host:
when two members move at once, only one of them may land there.  The two
requests go through nova-api (gunicorn) and are served by whichever of the
nova-conductor and nova-scheduler processes takes them from RabbitMQ; each
round records which processes served each request (by its request id in
their logs, with their PIDs), so a round shows whether the race crossed
processes.  Even rounds start both moves at once, odd rounds start the
second after a random delay of up to ``MAX_SPREAD`` seconds.

Kinds of move: ``live``, ``cold`` (confirmed once it waits in
VERIFY_RESIZE), ``evacuate`` (the evacuee's nova-compute is SIGKILLed and
its service forced down through the API, as an operator does once a host
is fenced; started again after the round) and ``unshelve`` (the member is
shelved and its former host disabled for the round).

Used as mixins: ``CloudActions`` needs ``conn`` (an openstacksdk
Connection), ``image`` and ``flavor`` (what ``boot`` boots), ``addCleanup``
and ``fail`` (a testtools TestCase has both; ``Session`` provides them
outside tests), ``MoveRace`` also ``cloud`` (a ``realcloud.cloud.Cloud``).
"""

import collections
import os
import random
import threading
import time

from nova_migration_guard.anti_affinity import policy

#: How a move that was not refused ends (unshelve has no migration).
FINISHED = frozenset(('completed', 'confirmed', 'done', 'unshelved'))
MICROVERSION = '2.80'
MAX_SPREAD = 0.6
#: The status code of an accepted request, per kind of move.
API_ACCEPTED = {'live': 202, 'cold': 202, 'evacuate': 200, 'unshelve': 202}


class ScenarioFailed(Exception):
    """The cloud did not do what the scenario needs (a timeout, an API
    answer that stops the scenario)."""


class CloudActions(object):
    """What a user (an admin of the cloud) does through Nova's API."""

    def fail(self, message):
        raise ScenarioFailed(message)

    def check(self, condition, message):
        if not condition:
            self.fail(message)

    # ----------------------------------------------------------- servers

    def create_group(self, name, policy='anti-affinity'):
        group = self.conn.compute.create_server_group(name=name,
                                                      policy=policy)
        self.addCleanup(self.conn.compute.delete_server_group, group,
                        ignore_missing=True)
        return group

    def boot(self, name, group=None, host=None, timeout=120):
        kwargs = {}
        if group is not None:
            kwargs['scheduler_hints'] = {'group': group.id}
        if host is not None:
            kwargs['host'] = host
        server = self.conn.compute.create_server(
            name=name, image_id=self.image.id, flavor_id=self.flavor.id,
            networks='none', **kwargs)
        self.addCleanup(self._delete, server)
        return self.conn.compute.wait_for_server(server, wait=timeout)

    def _delete(self, server):
        self.conn.compute.delete_server(server, ignore_missing=True)
        self.conn.compute.wait_for_delete(server, wait=120)

    def server(self, server):
        return self.conn.compute.get_server(server.id)

    def wait_until_settled(self, server, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            fresh = self.server(server)
            if fresh.task_state is None:
                return fresh
            if time.monotonic() > deadline:
                self.fail('%s still has task %s after %d s'
                          % (server.name, fresh.task_state, timeout))
            time.sleep(0.5)

    # -------------------------------------------------------- migrations

    def action(self, server, body, conn=None):
        """POST a server action; returns (status, request id)."""
        resp = (conn or self.conn).compute.post(
            '/servers/%s/action' % server.id, json=body,
            microversion=MICROVERSION, raise_exc=False)
        return resp.status_code, resp.headers.get('x-openstack-request-id')

    def live_migrate(self, server, host=None, conn=None):
        return self.action(server, {'os-migrateLive': {
            'host': host, 'block_migration': 'auto'}}, conn)

    def cold_migrate(self, server, conn=None):
        return self.action(server, {'migrate': None}, conn)

    def evacuate(self, server, conn=None):
        return self.action(server, {'evacuate': {}}, conn)

    def unshelve(self, server, conn=None):
        return self.action(server, {'unshelve': None}, conn)

    def shelve_offload(self, server, timeout=120):
        """Shelve ``server`` (Nova offloads it at once by default) and wait
        until it is SHELVED_OFFLOADED."""
        status, _ = self.action(server, {'shelve': None})
        self.check(status == 202, 'shelve answered %s' % status)
        deadline = time.monotonic() + timeout
        while True:
            fresh = self.server(server)
            if (fresh.status == 'SHELVED_OFFLOADED' and
                    fresh.task_state is None):
                return fresh
            if time.monotonic() > deadline:
                self.fail('%s is %s/%s, not offloaded after %d s' % (
                    server.name, fresh.status, fresh.task_state, timeout))
            time.sleep(0.5)

    def compute_service(self, host):
        found = [s for s in self.conn.compute.services()
                 if s.binary == 'nova-compute' and s.host == host]
        self.check(len(found) == 1, 'compute services of %s: %s'
                   % (host, found))
        return found[0]

    def wait_for_compute_up(self, host, timeout=180):
        """Until Nova's API shows ``host``'s compute service up.  A
        restarted nova-compute logs that it joined its service group at
        once, but sends its first heartbeat seconds later (Nova's
        INITIAL_REPORTING_DELAY); until then the scheduler's ComputeFilter
        skips the host, and a boot or move onto it fails."""
        deadline = time.monotonic() + timeout
        while True:
            service = self.compute_service(host)
            if service.state == 'up':
                return service
            if time.monotonic() > deadline:
                self.fail('the compute service of %s is %s/%s after %d s'
                          % (host, service.state, service.status, timeout))
            time.sleep(0.5)

    def update_compute_service(self, host, **body):
        """PUT os-services/{id} of ``host``'s compute (2.53: status,
        forced_down)."""
        resp = self.conn.compute.put(
            '/os-services/%s' % self.compute_service(host).id, json=body,
            microversion='2.53')
        self.check(resp.status_code == 200, 'PUT os-services: %s %s'
                   % (resp.status_code, resp.text))

    def confirm_if_waiting(self, server, timeout=120):
        """Confirm a resize that waits for it (VERIFY_RESIZE), as a user
        would; returns the fresh server."""
        fresh = self.wait_until_settled(server, timeout)
        if fresh.status == 'VERIFY_RESIZE':
            status, _ = self.action(server, {'confirmResize': None})
            self.check(status == 204, 'confirmResize answered %s' % status)
            fresh = self.wait_until_settled(server, timeout)
            deadline = time.monotonic() + timeout
            while fresh.status == 'VERIFY_RESIZE':
                if time.monotonic() > deadline:
                    self.fail('%s still VERIFY_RESIZE' % server.name)
                time.sleep(0.5)
                fresh = self.server(server)
        return fresh

    def migrations(self, server):
        return sorted(self.conn.compute.migrations(instance_uuid=server.id),
                      key=lambda m: m.id, reverse=True)

    def newest_migration_id(self, server):
        found = self.migrations(server)
        return found[0].id if found else 0

    def wait_for_migration_end(self, server, after_id, timeout=120):
        """The first migration of ``server`` newer than ``after_id`` once
        its status is final."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.migrations(server) if m.id > after_id]
            # 'finished': a resize waiting for confirmation.
            if found and found[-1].status in (policy.FINAL_MIGRATION_STATUSES |
                                              {'finished'}):
                return found[-1]
            if time.monotonic() > deadline:
                self.fail('migration of %s not ended after %d s: %s' % (
                    server.name, timeout,
                    [(m.id, m.status) for m in found]))
            time.sleep(0.5)


class Session(CloudActions):
    """CloudActions outside a test: the cleanups run, newest first, when
    the session closes (also when the scenario failed)."""

    def __init__(self, cloud, image, flavor):
        self.cloud = cloud
        self.conn = cloud.connection()
        self.image = self.conn.image.find_image(image)
        self.flavor = self.conn.compute.find_flavor(flavor)
        self._cleanups = []

    def addCleanup(self, function, *args, **kwargs):
        self._cleanups.append((function, args, kwargs))

    def close(self):
        while self._cleanups:
            function, args, kwargs = self._cleanups.pop()
            function(*args, **kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class ServiceLogs(object):
    """Which Nova process served a request: each process's log from a
    mark on, searched for the request id (oslo.messaging carries it to
    the conductor and the scheduler with the RPC context)."""

    def __init__(self, cloud, names):
        self.cloud = cloud
        self.names = list(names)
        self.offsets = {}

    def mark(self):
        for name in self.names:
            try:
                self.offsets[name] = os.path.getsize(self.cloud.log(name))
            except OSError:
                self.offsets[name] = 0

    def served(self, request_ids):
        """{request id: [names of the processes whose log has it]}."""
        found = {rid: [] for rid in request_ids if rid}
        for name in self.names:
            with open(self.cloud.log(name), 'rb') as f:
                f.seek(self.offsets.get(name, 0))
                text = f.read().decode('utf-8', 'replace')
            for rid in found:
                if rid in text:
                    found[rid].append(name)
        return found

    def pid(self, name):
        started = self.cloud.process(name)
        return started.pid if started else None


def policy_kept(outcome):
    """No two members of the round's group on one host."""
    placed = [h for h in outcome['hosts'] if h != '-']
    return len(placed) == len(set(placed))


class MoveRace(CloudActions):
    """Two members of one anti-affinity group moved at once, round after
    round.  ``KINDS``: the two moves of each round."""

    KINDS = ('live', 'live')

    def start_race(self):
        """Boot the group's three members; call once before the rounds."""
        group = self.create_group('race')
        self.members = [self.boot('race-%d' % i, group=group)
                        for i in range(3)]
        self.logs = ServiceLogs(
            self.cloud,
            ['nova-conductor-%s' % h for h in self.cloud.conductors] +
            ['nova-scheduler-%s' % h for h in self.cloud.schedulers])
        # One client per concurrent caller.
        self.clients = [self.cloud.connection() for _ in range(2)]
        self.rng = random.Random(time.time_ns())
        self.rounds = []

    def prepare(self, movers):
        """Before the race: make the moves of KINDS possible."""
        if 'evacuate' in self.KINDS:
            self._fence(self._mover(movers, 'evacuate'))
        if 'unshelve' in self.KINDS:
            self._shelve(self._mover(movers, 'unshelve'))

    def restore(self, movers):
        """After the race, once its outcome is recorded: make the next
        round's moves possible."""
        if 'evacuate' in self.KINDS:
            self._unfence()
        if 'unshelve' in self.KINDS:
            self._unshelve_if_refused(self._mover(movers, 'unshelve'))

    def _mover(self, movers, kind):
        return movers[self.KINDS.index(kind)]

    def _fence(self, evacuee):
        self.down_host = self.server(evacuee).compute_host
        self.cloud.kill(self.cloud.process('nova-compute-%s'
                                           % self.down_host))
        self.update_compute_service(self.down_host, forced_down=True)

    def _unfence(self):
        self.cloud.start_compute(self.down_host)
        # Nova forces a host up only once its restarted compute has
        # completed the evacuations from it.
        self.update_compute_service(self.down_host, forced_down=False)
        self.wait_for_compute_up(self.down_host)

    def _shelve(self, shelved):
        self.former_host = self.server(shelved).compute_host
        self.shelve_offload(shelved)
        self.update_compute_service(self.former_host, status='disabled')

    def _unshelve_if_refused(self, shelved):
        self.update_compute_service(self.former_host, status='enabled')
        if self.server(shelved).status == 'SHELVED_OFFLOADED':
            status, _ = self.unshelve(shelved)
            self.check(status == 202, 'unshelve answered %s' % status)
            fresh = self.wait_until_settled(shelved)
            self.check(fresh.status == 'ACTIVE',
                       'unshelved %s is %s' % (shelved.name, fresh.status))

    def start_move(self, kind, server, conn):
        return {'live': self.live_migrate, 'cold': self.cold_migrate,
                'evacuate': self.evacuate,
                'unshelve': self.unshelve}[kind](server, conn=conn)

    def move_end(self, kind, server, mark):
        """How the move ended: its migration's status, or for an unshelve
        (which has no migration record) 'unshelved' or the server's status
        once it has no task."""
        if kind != 'unshelve':
            return self.wait_for_migration_end(server, mark).status
        fresh = self.wait_until_settled(server)
        return ('unshelved' if fresh.status == 'ACTIVE'
                else fresh.status.lower())

    def race_round(self, round_no):
        movers = self.rng.sample(self.members, 2)
        self.prepare(movers)
        try:
            return self._race(round_no, movers)
        finally:
            self.restore(movers)

    def _race(self, round_no, movers):
        marks = {m.id: self.newest_migration_id(m) for m in movers}
        delay = 0.0 if round_no % 2 == 0 else self.rng.uniform(
            0, MAX_SPREAD)
        answers = [None, None]
        barrier = threading.Barrier(2)

        def move(i):
            barrier.wait()
            if i == 1 and delay:
                time.sleep(delay)
            answers[i] = self.start_move(self.KINDS[i], movers[i],
                                         self.clients[i])
        self.logs.mark()
        threads = [threading.Thread(target=move, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        ends = [self.move_end(kind, m, marks[m.id])
                for kind, m in zip(self.KINDS, movers)]
        fresh = [self.confirm_if_waiting(m) for m in self.members]
        ends = [self.migrations(m)[0].status if e == 'finished' else e
                for m, e in zip(movers, ends)]
        served = self.logs.served([rid for _, rid in answers])
        outcome = {
            'round': round_no,
            'start': 'spread %.2f s' % delay if delay else 'together',
            'api': [status for status, _ in answers],
            'migrations': sorted(ends),
            # In KINDS order: how each move ended, its member's status.
            'moves': ['%s %s %s' % (kind, end, self.server(m).status)
                      for kind, end, m in zip(self.KINDS, ends, movers)],
            'states': sorted(s.status for s in fresh),
            'hosts': sorted(s.compute_host or '-' for s in fresh),
            'conductors': [self._one(served.get(rid), 'conductor')
                           for _, rid in answers],
            'schedulers': [self._one(served.get(rid), 'scheduler')
                           for _, rid in answers],
            # Per request: the processes whose log has it, with their PIDs.
            'served_by': [', '.join('%s pid %s' % (n, self.logs.pid(n))
                                    for n in served.get(rid) or ()) or '?'
                          for _, rid in answers],
        }
        self.rounds.append(outcome)
        return outcome

    @staticmethod
    def _one(names, kind):
        names = [n.rsplit('-', 1)[1] for n in names or () if kind in n]
        return ','.join(names) or '?'

    def refused(self, outcome):
        """The round had a move that did not finish (refused or failed)."""
        return bool(set(outcome['migrations']) - FINISHED)

    def crossed(self):
        """Rounds whose two requests were served by different conductor
        processes, and every process that served one (with its count)."""
        crossed = sum(1 for r in self.rounds
                      if len(set(r['conductors'])) == 2 and
                      '?' not in r['conductors'])
        served = collections.Counter(
            name for r in self.rounds
            for name in r['conductors'] + r['schedulers'])
        return crossed, served

    def processes(self):
        """Every process whose log holds a request of the rounds, with its
        PID ('nova-conductor-conductor1 pid 4711'), and how many requests
        it served."""
        return collections.Counter(
            process for r in self.rounds for served in r['served_by']
            for process in served.split(', ') if process != '?')

    def counts(self):
        """What a user saw over the rounds so far: rounds, rounds whose
        policy was violated, with an instance in ERROR, with an HTTP 5xx
        answer, with a refused move; rounds crossing conductors."""
        crossed, _ = self.crossed()
        return {
            'rounds': len(self.rounds),
            'violated': sum(not policy_kept(r) for r in self.rounds),
            'error': sum('ERROR' in r['states'] for r in self.rounds),
            'http_5xx': sum(any(s >= 500 for s in r['api'] if s)
                            for r in self.rounds),
            'refused': sum(self.refused(r) for r in self.rounds),
            'crossed': crossed,
        }
