"""The predictor (convergence.predictor) and the ladder that follows it,
on migrations generated from the model the predictor assumes (a guest
rewriting a working set at a dirty rate, the stream at a transfer rate,
QEMU raising its throttle every other pass) and on one where the throttle
does not slow the guest (as under TCG).  The recorded real traces are
replayed in test_ladder."""

import dataclasses

import testtools

from nova_migration_guard.convergence import ladder
from nova_migration_guard.convergence import passes
from nova_migration_guard.convergence import policies
from nova_migration_guard.convergence import predictor

MIB = 2 ** 20
RAM = 256 * MIB


def simulate(policy, working_set_mib, dirty_mib_s, transfer_mib_s=15,
             n_passes=30, throttle_effect=1.0, calm_after_pass=None):
    """Job-stats samples (two per pass: at its start and halfway) of a
    pre-copy migration of a 256 MiB guest.  ``throttle_effect``: how much
    of QEMU's throttle slows the guest's writes (1: in proportion);
    ``calm_after_pass``: the guest stops writing after that pass."""
    transfer = transfer_mib_s * MIB
    left, elapsed_ms, throttle, high = float(RAM), 0.0, 0, 0
    samples = []
    for iteration in range(1, n_passes + 1):
        for part in (0, 0.5):
            samples.append({
                'type': passes.JOB_UNBOUNDED, 'memory_iteration': iteration,
                'memory_remaining': int(left * (1 - part)),
                'memory_bps': transfer,
                'time_elapsed': int(elapsed_ms + part * 1000 * left /
                                    transfer),
                'auto_converge_throttle': throttle})
        # The first pass copies RAM's zero pages almost for free.
        sent = working_set_mib * MIB if iteration == 1 else left
        seconds = sent / transfer
        elapsed_ms += 1000 * seconds
        rate = dirty_mib_s * MIB * (1 - throttle_effect * throttle / 100.0)
        if calm_after_pass is not None and iteration >= calm_after_pass:
            rate = 0.0
        left = min(working_set_mib * MIB, rate * seconds) or 4096
        # QEMU: a raise once the guest dirtied more than half of what was
        # sent in two passes (cpu-throttle-initial, then -increment).
        if policy.auto_converge and left > sent / 2:
            high += 1
            if high >= 2:
                throttle = min(predictor.MAX_THROTTLE,
                               throttle + policy.auto_converge_increment
                               if throttle else
                               policy.auto_converge_initial)
                high = 0
    return samples


def replay(policy, samples, probe_mib_s=None, post_copy=True):
    """[(pass, action, value, reason)] of the ladder's non-WAIT steps, up
    to its first one that ends pre-copy; a switch-over that fits the
    allowed downtime ends the replay as 'switch-over'."""
    progress = ladder.start(0.0)
    taken = []
    probe = probe_mib_s * MIB if probe_mib_s else None
    for i, sample in enumerate(samples):
        step, progress = ladder.decide(
            policy, progress, samples[:i + 1], sample['time_elapsed'] / 1e3,
            RAM, post_copy_possible=post_copy, probe_dirty_bps=probe)
        downtime = policy.downtime_steps_ms[progress.downtime_index]
        if step.action != ladder.WAIT:
            taken.append((sample['memory_iteration'], step.action,
                          step.value, step.reason))
        if step.action in (ladder.ABORT, ladder.PAUSE, ladder.POST_COPY):
            break
        if (sample['memory_iteration'] > 1 and sample['memory_remaining'] <=
                sample['memory_bps'] * downtime / 1000.0):
            taken.append((sample['memory_iteration'], 'switch-over',
                          downtime, step.reason))
            break
    return taken


def actions(taken):
    return [(n, action) for n, action, _, _ in taken]


BUILTIN = policies.BUILTIN
# The real tier's heavy guest: 128 MiB rewritten at 30 MiB/s, 15 MiB/s
# stream; the probe measures 26-28 MiB/s of it.
HEAVY = dict(working_set_mib=128, dirty_mib_s=30)


class HeavyGuestTest(testtools.TestCase):
    """Twice the transfer rate: no downtime step fits and the throttle
    would need about half the vCPU, four raises away."""

    def test_last_resort_at_the_second_pass_with_the_probe(self):
        for name, expected in (('minimal-downtime', ladder.POST_COPY),
                               ('post-copy', ladder.POST_COPY),
                               ('suspend-workload', ladder.PAUSE)):
            policy = BUILTIN[name]
            taken = replay(policy, simulate(policy, **HEAVY), probe_mib_s=27)
            self.assertEqual([(2, expected)], actions(taken), name)
            self.assertIn('predicted', taken[0][3])
            self.assertIn('dirtied at 27.0 MiB/s (probe)', taken[0][3])

    def test_large_guest_policy_is_patient_enough_for_the_throttle(self):
        # stall_passes 4: four raises (eight passes) reach the 50 %.
        policy = BUILTIN['large-guest']
        taken = replay(policy, simulate(policy, **HEAVY), probe_mib_s=27)
        self.assertEqual('switch-over', taken[-1][1], taken)
        self.assertNotIn(ladder.POST_COPY, [a for _, a in actions(taken)])

    def test_pre_copy_only_gives_the_throttle_its_chance_then_aborts(self):
        policy = BUILTIN['pre-copy-only']
        # The throttle slows the guest in proportion: it converges.
        taken = replay(policy, simulate(policy, **HEAVY), probe_mib_s=27)
        self.assertEqual('switch-over', taken[-1][1], taken)
        self.assertNotIn(ladder.ABORT, [a for _, a in actions(taken)])
        # The throttle does not slow it (TCG): aborted once the passes
        # stalled over the ramp to 49 % and the policy's 3 passes.
        taken = replay(policy, simulate(policy, throttle_effect=0, **HEAVY),
                       probe_mib_s=27)
        self.assertEqual([ladder.ABORT], [a for _, a in actions(taken)])
        self.assertIn('stalled over 11 passes although predicted throttle',
                      taken[-1][3])

    def test_without_a_probe_the_throttle_is_tried_then_given_up(self):
        # The passes alone see the working set saturated at about the
        # transfer rate: a small throttle looks enough until it is not.
        policy = BUILTIN['minimal-downtime']
        taken = replay(policy, simulate(policy, throttle_effect=0, **HEAVY))
        self.assertEqual([ladder.POST_COPY], [a for _, a in actions(taken)])
        self.assertIn('although predicted throttle', taken[-1][3])
        # Later than with the probe, sooner than the stall ladder's 20
        # passes.
        self.assertLess(2, taken[-1][0])
        self.assertGreater(12, taken[-1][0])


class ThrottleCanWinTest(testtools.TestCase):
    """17 MiB/s against 15: a 21 % throttle does it, two raises away."""

    def test_minimal_downtime_waits_for_the_throttle(self):
        policy = BUILTIN['minimal-downtime']
        taken = replay(policy, simulate(policy, 128, 17), probe_mib_s=17)
        self.assertEqual('switch-over', taken[-1][1], taken)
        self.assertNotIn(ladder.POST_COPY, [a for _, a in actions(taken)])

    def test_post_copy_policy_has_no_throttle(self):
        policy = BUILTIN['post-copy']
        taken = replay(policy, simulate(policy, 128, 17), probe_mib_s=17)
        self.assertEqual([(2, ladder.POST_COPY)], actions(taken))


class DowntimeStepTest(testtools.TestCase):

    def test_the_first_step_that_fits_skipping_the_others(self):
        # A 24 MiB working set rewritten at 40 MiB/s: never shrinks, and
        # fits 2000 ms (30 MiB at 15 MiB/s) but not 1000 ms (15 MiB).
        policy = BUILTIN['minimal-downtime']
        taken = replay(policy, simulate(policy, 24, 40), probe_mib_s=40)
        self.assertEqual([(2, ladder.SET_DOWNTIME), (2, 'switch-over')],
                         actions(taken))
        self.assertEqual(2000, taken[0][2])
        self.assertIn('fits 2000 ms in 0 passes', taken[0][3])


class ConvergingGuestTest(testtools.TestCase):

    def test_moderate_guest_only_waits(self):
        # 64 MiB at 8 MiB/s against 15: shrinks by half a pass.
        policy = BUILTIN['minimal-downtime']
        taken = replay(policy, simulate(policy, 64, 8), probe_mib_s=8)
        self.assertEqual(['switch-over'], [a for _, a in actions(taken)])

    def test_guest_that_calms_down_after_the_probe(self):
        # The probe saw the heavy rate, the guest stops writing during
        # pass 2: the shrinking passes win over the probe.
        policy = dataclasses.replace(BUILTIN['pre-copy-only'],
                                     auto_converge=False)
        taken = replay(policy, simulate(policy, calm_after_pass=2, **HEAVY),
                       probe_mib_s=27)
        self.assertEqual(['switch-over'], [a for _, a in actions(taken)])


class RatesTest(testtools.TestCase):

    def pass_(self, iteration, left_mib, started_s):
        return passes.Pass(iteration, left_mib * MIB, 15 * MIB,
                           int(started_s * 1000))

    def test_nothing_before_the_second_pass(self):
        self.assertIsNone(predictor.rates([self.pass_(1, 256, 0)], 30))

    def test_probe_only_at_the_second_pass(self):
        found = predictor.rates([self.pass_(1, 256, 0),
                                 self.pass_(2, 120, 9)], 27 * MIB)
        self.assertEqual((27 * MIB, 'probe'),
                         (found.dirty_bps, found.dirty_from))
        self.assertIsNone(predictor.rates([self.pass_(1, 256, 0),
                                           self.pass_(2, 120, 9)]))

    def test_saturated_passes_are_a_lower_bound(self):
        ps = [self.pass_(1, 256, 0), self.pass_(2, 120, 9),
              self.pass_(3, 118, 17)]
        found = predictor.rates(ps)
        self.assertEqual('passes, a lower bound', found.dirty_from)
        self.assertAlmostEqual(118 / 8.0, found.dirty_bps / MIB)
        self.assertEqual('probe', predictor.rates(ps, 27 * MIB).dirty_from)

    def test_shrinking_passes_beat_the_probe(self):
        ps = [self.pass_(1, 256, 0), self.pass_(2, 120, 9),
              self.pass_(3, 40, 17)]
        found = predictor.rates(ps, 27 * MIB)
        self.assertEqual(('passes', 5 * MIB),
                         (found.dirty_from, found.dirty_bps))


class ArithmeticTest(testtools.TestCase):

    def test_passes_to_fit(self):
        self.assertEqual(0, predictor.passes_to_fit(10, 20, 5, 1000))
        # 100 -> 50 -> 25 -> 12.5 at half the rate: 3 passes to fit 15.
        self.assertEqual(3, predictor.passes_to_fit(100, 15, 7.5, 1000))
        self.assertIsNone(predictor.passes_to_fit(100, 15, 14, 1000))

    def test_throttle_needed(self):
        self.assertEqual(55, predictor.throttle_needed(15, 30))
        self.assertIsNone(predictor.throttle_needed(1, 1000))

    def test_passes_to_throttle(self):
        policy = BUILTIN['minimal-downtime']  # 20 % then +10 %
        self.assertEqual(0, predictor.passes_to_throttle(policy, 30, 25))
        self.assertEqual(2, predictor.passes_to_throttle(policy, 0, 20))
        self.assertEqual(4, predictor.passes_to_throttle(policy, 0, 21))
        self.assertEqual(10, predictor.passes_to_throttle(policy, 0, 55))
        self.assertEqual(4, predictor.passes_to_throttle(policy, 40, 55))
