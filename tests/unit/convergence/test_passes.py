"""Pass decisions on traces recorded from real migrations
(tests/traces/libvirt, recorded by tools/record-traces.sh on the real
libvirt tier) and on hand-made sample series."""

import testtools

from nova_migration_guard.convergence import passes
from tests import traces

MIB = 2 ** 20
# Nova's [libvirt] live_migration_downtime default: the largest downtime
# its steps ever allow.
NOVA_MAX_DOWNTIME_MS = 500


def samples(trace, host, domain):
    return [s['stats'] for s in trace.job_stats
            if s['host'] == host and s['domain'] == domain]


class DirtyingGuestTraceTest(testtools.TestCase):
    """128 MiB rewritten under a 30 MiB/s cap, aborted after 6 passes."""

    def setUp(self):
        super().setUp()
        self.trace = traces.load('does_not_converge_and_is_aborted_cleanly')
        self.passes = passes.passes(samples(self.trace, 'A', 'dirty'))

    def test_every_pass_is_found(self):
        # The monitor samples every 0.5 s; a pass here takes ~4 s.
        iterations = [e['detail'] for e in self.trace.events
                      if e['event'] == 'MIGRATION_ITERATION']
        self.assertEqual(iterations, [p.iteration for p in self.passes])

    def test_rate_is_the_cap(self):
        for memory_pass in self.passes:
            self.assertAlmostEqual(
                30, memory_pass.bandwidth_bps / MIB, delta=3)

    def test_no_pass_after_the_first_fits_novas_largest_downtime(self):
        for memory_pass in self.passes[1:]:
            self.assertGreater(memory_pass.left_bytes, 100 * MIB)
            self.assertFalse(passes.switchover_fits(memory_pass,
                                                    NOVA_MAX_DOWNTIME_MS))

    def test_stalled(self):
        self.assertTrue(passes.stalled(self.passes))
        # ...though within each pass "remaining" falls, the figure Nova
        # stopped trusting: the smallest sample is far below any pass start.
        smallest = min(s['memory_remaining']
                       for s in samples(self.trace, 'A', 'dirty')
                       if s['type'] == passes.JOB_UNBOUNDED)
        self.assertLess(smallest, 16 * MIB)


class IdleGuestTraceTest(testtools.TestCase):
    """An idle guest migrated A->B, then B->A."""

    def test_last_pass_fits_and_nothing_stalls(self):
        trace = traces.load('there_and_back_through_nova')
        for host in ('A', 'B'):
            found = passes.passes(samples(trace, host, 'idle'))
            self.assertTrue(found, host)
            self.assertTrue(passes.switchover_fits(found[-1],
                                                   NOVA_MAX_DOWNTIME_MS))
            self.assertFalse(passes.stalled(found))


def series(*lefts, rate=30 * MIB):
    """Samples: for each pass, one at its start and one half-way."""
    out = []
    for iteration, left in enumerate(lefts, 1):
        for fraction in (1.0, 0.5):
            out.append({'type': passes.JOB_UNBOUNDED,
                        'memory_iteration': iteration,
                        'memory_remaining': int(left * fraction),
                        'memory_bps': rate})
    return out


class PassesTest(testtools.TestCase):

    def test_left_is_the_start_of_each_pass(self):
        found = passes.passes(series(256 * MIB, 64 * MIB))
        self.assertEqual([256 * MIB, 64 * MIB],
                         [p.left_bytes for p in found])

    def test_other_job_types_ignored(self):
        found = passes.passes([{'type': 0}, {'type': 3,
                                             'memory_iteration': 4}])
        self.assertEqual([], found)

    def test_shrinking_passes_do_not_stall(self):
        self.assertFalse(passes.stalled(passes.passes(
            series(256 * MIB, 128 * MIB, 64 * MIB, 32 * MIB))))

    def test_flat_passes_stall(self):
        self.assertTrue(passes.stalled(passes.passes(
            series(256 * MIB, 120 * MIB, 118 * MIB, 121 * MIB, 119 * MIB))))

    def test_too_few_passes_never_stall(self):
        self.assertFalse(passes.stalled(passes.passes(
            series(120 * MIB, 120 * MIB, 120 * MIB))))

    def test_switchover_needs_a_known_rate(self):
        self.assertFalse(passes.switchover_fits(
            passes.Pass(3, 1, 0), 500))
        self.assertTrue(passes.switchover_fits(
            passes.Pass(3, 15 * MIB, 30 * MIB), 500))
        self.assertFalse(passes.switchover_fits(
            passes.Pass(3, 15 * MIB + 1, 30 * MIB), 500))
