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
    """[(t, Step)] of the non-WAIT steps over the trace (with the rate
    its dirty-rate probe measured, if it has one)."""
    rows = [s for s in trace.job_stats
            if s['host'] == host and s['domain'] == domain]
    progress = ladder.start(rows[0]['t'])
    taken = []
    for i, row in enumerate(rows):
        step, progress = ladder.decide(
            policy, progress, [r['stats'] for r in rows[:i + 1]], row['t'],
            memory_bytes, post_copy_possible=post_copy,
            probe_dirty_bps=trace.probe_dirty_bps)
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

    def test_no_downtime_step_when_none_can_fit(self):
        # 117 MiB at 30 MiB/s fits none of 500, 1000 and 2000 ms: no
        # downtime step is taken.  Without a probe the passes only bound
        # the dirty rate from below (26 MiB/s, under the 27 that shrinks
        # the passes): waited for until they stalled over 3 passes.
        steps = self.replay(policies.BUILTIN['minimal-downtime'],
                            post_copy=True)
        self.assertEqual([ladder.POST_COPY], [s.action for _, s in steps])
        reason = steps[0][1].reason
        self.assertIn('stalled over 3 passes although predicted '
                      'converging', reason)
        self.assertIn('117.3 MiB dirty at the pass start, dirtied at 26.0 '
                      'MiB/s (passes, a lower bound), sent at 30.0 MiB/s',
                      reason)

    def test_each_policys_last_resort_and_nothing_before(self):
        for name, post_copy, last in (
                # The default: post-copy where the migration allows it...
                ('minimal-downtime', True, ladder.POST_COPY),
                # ...else (vPMEM) abort, as pre-copy-only always does.
                ('minimal-downtime', False, ladder.ABORT),
                ('pre-copy-only', True, ladder.ABORT),
                ('post-copy', True, ladder.POST_COPY),
                ('suspend-workload', False, ladder.PAUSE)):
            steps = [(s.action, s.value)
                     for _, s in self.replay(policies.BUILTIN[name],
                                             post_copy=post_copy)]
            self.assertEqual([(last, None)], steps, name)

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
    """With auto-converge, the policy waits while the throttle is predicted
    to win (QEMU raising it towards what the dirty rate needs), and takes
    its last resort when not even QEMU's maximum would do."""

    def samples(self, throttle):
        # 120 MiB at the start of every pass (saturated), 15 MiB/s: each
        # pass lasts 8 s.
        return [{'type': 2, 'memory_iteration': i,
                 'memory_remaining': 120 * MIB, 'memory_bps': 15 * MIB,
                 'time_elapsed': 8000 * i,
                 'auto_converge_throttle': throttle} for i in range(1, 5)]

    def decide(self, throttle, probe_mib_s, name='minimal-downtime',
               post_copy=True):
        policy = policies.BUILTIN[name]
        return ladder.decide(policy, ladder.start(0), self.samples(throttle),
                             40, 256 * MIB, post_copy_possible=post_copy,
                             probe_dirty_bps=probe_mib_s * MIB)[0]

    def test_waits_while_the_throttle_can_win(self):
        # 20 MiB/s against 15: 33 % needed, two raises above the 20 % now.
        step = self.decide(20, 20)
        self.assertEqual(ladder.WAIT, step.action)
        self.assertIn('throttle: throttle 33% (now 20%) reached in 4 '
                      'passes', step.reason)

    def test_last_resort_when_not_even_the_maximum_would_do(self):
        step = self.decide(20, 2000)
        self.assertEqual(ladder.POST_COPY, step.action)
        self.assertIn('not even a 99% throttle would do', step.reason)
        self.assertEqual(ladder.ABORT,
                         self.decide(20, 2000, name='pre-copy-only').action)


class PredictorTracesTest(testtools.TestCase):
    """The default policy's decisions on real migrations recorded with the
    dirty-rate probe (tests/real_libvirt/test_convergence.py
    PredictorTraceTest): the ladder replayed on their samples decides what
    the guarded driver decided when they were recorded."""

    def replay(self, name):
        trace = traces.load(name)
        self.assertEqual('minimal-downtime', trace.policy)
        return trace, replay(policies.BUILTIN['minimal-downtime'], trace,
                             'A', 'dirty', 256 * MIB, post_copy=True)

    def test_throttle_not_enough_takes_post_copy_at_the_second_pass(self):
        trace, steps = self.replay('throttle_not_enough')
        # The probe saw about twice the 15 MiB/s stream.
        self.assertGreater(trace.probe_dirty_bps, 25 * MIB)
        self.assertEqual([ladder.POST_COPY], [s.action for _, s in steps])
        reason = steps[0][1].reason
        self.assertIn('predicted: the throttle needs', reason)
        self.assertIn('(probe)', reason)
        # And libvirt switched to post-copy there: the source's event.
        self.assertIn(('A', 'SUSPENDED', 'POSTCOPY'),
                      [(e['host'], e['event'], e['detail'])
                       for e in trace.events])

    def test_a_guest_that_calmed_down_only_waits(self):
        trace, steps = self.replay('guest_calms_down')
        self.assertEqual([], steps)
        # Pre-copy finished by itself: no post-copy event on either host.
        self.assertNotIn('POSTCOPY', [e['detail'] for e in trace.events])
        self.assertIn(('B', 'RESUMED', 'MIGRATED'),
                      [(e['host'], e['event'], e['detail'])
                       for e in trace.events])
