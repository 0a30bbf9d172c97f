"""Draw benchmarks/convergence.py's results: memory remaining over time
for the heavy guest's first run per configuration, and each
configuration's median time for that guest (a run not completed drawn at
the limit, hatched).  Needs matplotlib only, so it also redraws a saved
run on a machine without libvirt::

    python benchmarks/convergence_plot.py \
        benchmarks/out/convergence-runs.jsonl doc/source/convergence.png
"""

import json
import statistics
import sys


def load(path):
    """The runs of a convergence-runs.jsonl file, oldest first."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot(runs, path, bandwidth_mib_s=15, limit_s=240, progress=print):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        progress('matplotlib not installed: no plot')
        return
    heavy = [r for r in runs if r['workload'] == 'heavy']
    policies = list(dict.fromkeys(r['policy'] for r in heavy))
    if not policies:
        progress('no heavy-guest runs: no plot')
        return
    colors = dict(zip(policies, plt.get_cmap('tab10').colors))
    fig, (curves, bars) = plt.subplots(
        1, 2, figsize=(13, 4.8), gridspec_kw={'width_ratios': [3, 2]})
    for policy in policies:
        first = next(r for r in heavy if r['policy'] == policy)
        if first['curve']:
            curves.plot([t for t, _ in first['curve']],
                        [m for _, m in first['curve']],
                        label=policy, color=colors[policy],
                        linestyle='-' if first['completed'] else ':')
    curves.set_xlabel('seconds since the migration started')
    curves.set_ylabel('memory remaining (MiB)')
    curves.set_title('Heavy guest (128 MiB rewritten at 2x the %d MiB/s '
                     'cap): first run' % bandwidth_mib_s)
    curves.legend(fontsize=8)
    times, done = [], []
    for policy in policies:
        mine = [r for r in heavy if r['policy'] == policy]
        times.append(statistics.median(r['seconds'] for r in mine))
        done.append(sum(r['completed'] for r in mine))
    drawn = bars.barh(range(len(policies)), times,
                      color=[colors[p] for p in policies])
    for bar, policy, seconds, completed in zip(drawn, policies, times, done):
        total = sum(r['policy'] == policy for r in heavy)
        if completed < total:
            bar.set_hatch('//')
        bars.text(seconds + 2, bar.get_y() + bar.get_height() / 2,
                  '%.0f s, %d/%d completed' % (seconds, completed, total),
                  va='center', fontsize=8)
    bars.set_yticks(range(len(policies)))
    bars.set_yticklabels(policies, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlim(0, limit_s * 1.45)
    bars.set_xlabel('median seconds (not completed: aborted at %d s)'
                    % limit_s)
    bars.set_title('Heavy guest: median time per configuration')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    progress('plot: %s' % path)


if __name__ == '__main__':
    plot(load(sys.argv[1]), sys.argv[2])
