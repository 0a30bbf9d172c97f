"""The escalation ladder replayed on traces recorded from real migrations
(tests/traces/libvirt): each sample is fed as the monitor would see it,
and every Step is applied to the Progress."""

import dataclasses

import testtools

from nova_migration_guard.convergence import ladder
from nova_migration_guard.convergence import policies
from tests import traces

MIB = 2 ** 20


def replay(policy, trace, host, domain, memory_bytes, post_copy=False):
    """[(t, Step)] of the non-WAIT steps over the trace."""
    rows = [s for s in trace.job_stats
            if s['host'] == host and s['domain'] == domain]
    progress = ladder.start(rows[0]['t'])
    taken = []
    for i, row in enumerate(rows):
        step, progress = ladder.decide(
            policy, progress, [r['stats'] for r in rows[:i + 1]], row['t'],
            memory_bytes, post_copy_possible=post_copy)
        if step.action != ladder.WAIT:
            taken.append((row['t'], step))
        if step.action in (ladder.ABORT, ladder.PAUSE, ladder.POST_COPY):
            break
    return taken


class DirtyingGuestTest(testtools.TestCase):
    """128 MiB rewritten under a 30 MiB/s cap (256 MiB guest): never
    converges on its own."""

    def setUp(self):
        super().setUp()
        self.trace = traces.load('does_not_converge_and_is_aborted_cleanly')

    def replay(self, policy, **kwargs):
        return replay(policy, self.trace, 'A', 'dirty', 256 * MIB, **kwargs)

    def test_downtime_raised_once_the_passes_stall(self):
        steps = self.replay(policies.BUILTIN['minimal-downtime'])
        self.assertEqual([(ladder.SET_DOWNTIME, 1000)],
                         [(s.action, s.value) for _, s in steps])
        reason = steps[0][1].reason
        # The numbers that triggered it: the pass, what it had to send
        # (the cap's 30 MiB/s could not send it in 500 ms).
        self.assertIn('stalled over 3 passes: pass 5 started with '
                      '117.3 MiB', reason)
        self.assertIn('allowed downtime 500 ms', reason)

    def test_every_rung_then_post_copy_or_abort(self):
        for name, post_copy, last in (
                # The default: post-copy where the migration allows it...
                ('minimal-downtime', True, ladder.POST_COPY),
                # ...else (vPMEM) abort, as pre-copy-only always does.
                ('minimal-downtime', False, ladder.ABORT),
                ('pre-copy-only', True, ladder.ABORT)):
            quick = dataclasses.replace(policies.BUILTIN[name],
                                        stall_passes=1,
                                        downtime_steps_ms=(500, 1000))
            steps = [(s.action, s.value)
                     for _, s in self.replay(quick, post_copy=post_copy)]
            self.assertEqual([(ladder.SET_DOWNTIME, 1000), (last, None)],
                             steps, name)

    def test_deadline_takes_the_policys_last_resort(self):
        for name, post_copy, expected in (
                ('minimal-downtime', True, ladder.POST_COPY),
                ('pre-copy-only', True, ladder.ABORT),
                ('post-copy', True, ladder.POST_COPY),
                # Post-copy not enabled for this migration: the next rung.
                ('post-copy', False, ladder.ABORT),
                ('suspend-workload', False, ladder.PAUSE)):
            policy = dataclasses.replace(policies.BUILTIN[name],
                                         seconds_per_gib=10)
            steps = self.replay(policy, post_copy=post_copy)
            action = steps[-1][1].action
            self.assertEqual(expected, action, name)
            self.assertIn('deadline of 10 s passed', steps[-1][1].reason)
            # Not before the deadline (trace time starts near 0).
            self.assertGreater(steps[-1][0], 10)


class IdleGuestTest(testtools.TestCase):

    def test_nothing_but_waiting(self):
        trace = traces.load('there_and_back_through_nova')
        for host in ('A', 'B'):
            self.assertEqual([], replay(
                policies.BUILTIN['minimal-downtime'], trace, host, 'idle',
                128 * MIB))


class SyntheticTest(testtools.TestCase):

    def sample(self, iteration, left_mib, mib_s=30):
        return {'type': 2, 'memory_iteration': iteration,
                'memory_remaining': left_mib * MIB,
                'memory_bps': mib_s * MIB}

    def test_converging_passes_wait(self):
        samples = [self.sample(i, left) for i, left in
                   enumerate((200, 100, 50, 25, 12), 1)]
        step, _ = ladder.decide(policies.BUILTIN['minimal-downtime'],
                                ladder.start(0), samples, 5, 256 * MIB)
        self.assertEqual(ladder.WAIT, step.action)
        self.assertIn('converging', step.reason)

    def test_post_copy_running_is_never_aborted(self):
        progress = ladder.start(0)._replace(post_copy=True)
        samples = [self.sample(i, 100) for i in range(1, 6)]
        step, _ = ladder.decide(policies.BUILTIN['post-copy'], progress,
                                samples, 10 ** 6, 256 * MIB)
        self.assertEqual(ladder.WAIT, step.action)

    def test_paused_waits_then_aborts_one_deadline_after_the_pause(self):
        # suspend-workload: 300 s per GiB, 256 MiB counted as 1 GiB.
        policy = policies.BUILTIN['suspend-workload']
        samples = [self.sample(i, 100) for i in range(1, 6)]
        # Paused at its deadline: the copy of what is left gets one more.
        progress = ladder.start(0)._replace(paused=True, paused_at=301)
        step, progress = ladder.decide(policy, progress, samples, 601,
                                       256 * MIB)
        self.assertEqual(ladder.WAIT, step.action)
        self.assertIn('paused', step.reason)
        step, progress = ladder.decide(policy, progress, samples, 602,
                                       256 * MIB)
        self.assertEqual(ladder.ABORT, step.action)
        self.assertIn('paused 301 s ago and still not complete', step.reason)
        # Asked once: libvirt ends the job.
        step, _ = ladder.decide(policy, progress, samples, 603, 256 * MIB)
        self.assertEqual(ladder.WAIT, step.action)

    def test_pause_at_the_deadline_then_abort(self):
        policy = policies.BUILTIN['suspend-workload']
        samples = [self.sample(i, 100) for i in range(1, 6)]
        step, progress = ladder.decide(policy, ladder.start(0), samples, 301,
                                       256 * MIB)
        self.assertEqual((ladder.PAUSE, 301), (step.action,
                                               progress.paused_at))
        self.assertEqual(ladder.ABORT, ladder.decide(
            policy, progress, samples, 602, 256 * MIB)[0].action)

    def test_abort_is_asked_once(self):
        policy = policies.BUILTIN['pre-copy-only']
        samples = [self.sample(i, 100) for i in range(1, 6)]
        step, progress = ladder.decide(policy, ladder.start(0), samples, 301,
                                       256 * MIB)
        self.assertEqual(ladder.ABORT, step.action)
        step, _ = ladder.decide(policy, progress, samples + [
            self.sample(6, 100)], 302, 256 * MIB)
        self.assertEqual(ladder.WAIT, step.action)

    def test_deadline_counts_all_the_data(self):
        policy = policies.BUILTIN['pre-copy-only']
        self.assertEqual(300, ladder.deadline(policy, 256 * MIB))
        self.assertEqual(3600, ladder.deadline(policy, 12 * 1024 * MIB))


class AutoConvergeTest(testtools.TestCase):
    """After its last downtime step, a policy with auto-converge waits
    while QEMU is still raising the CPU throttle."""

    def samples(self, throttle):
        return [{'type': 2, 'memory_iteration': i,
                 'memory_remaining': 120 * MIB, 'memory_bps': 15 * MIB,
                 'auto_converge_throttle': throttle} for i in range(1, 9)]

    def decide(self, throttle, name='minimal-downtime', post_copy=True):
        policy = policies.BUILTIN[name]
        progress = ladder.start(0)._replace(
            downtime_index=len(policy.downtime_steps_ms) - 1)
        return ladder.decide(policy, progress, self.samples(throttle), 10,
                             256 * MIB, post_copy_possible=post_copy)[0]

    def test_waits_while_the_throttle_rises(self):
        step = self.decide(60)
        self.assertEqual(ladder.WAIT, step.action)
        self.assertIn('auto-converge throttling the guest at 60%',
                      step.reason)

    def test_last_resort_once_the_throttle_is_at_its_maximum(self):
        self.assertEqual(ladder.POST_COPY, self.decide(99).action)
        self.assertEqual(ladder.ABORT,
                         self.decide(99, name='pre-copy-only').action)
