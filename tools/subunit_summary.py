"""Count test outcomes in subunit v2 streams: prints 'N passed, N failed'.

Usage: subunit_summary.py NAME=FILE [NAME=FILE ...]
A missing or empty stream counts as one failure (the runner died), and so
does a runner that exited non-zero (FILE with .rc for .subunit holds its
exit code) without any failed test: it timed out or crashed after them.
"""

import collections
import os
import sys

import subunit
import testtools


class _Counter(testtools.StreamResult):
    def __init__(self):
        super().__init__()
        self.outcomes = {}

    def status(self, test_id=None, test_status=None, **kwargs):
        if test_id and test_status in ('success', 'fail', 'skip', 'xfail',
                                       'uxsuccess'):
            self.outcomes[test_id] = test_status


def count(path):
    counter = _Counter()
    with open(path, 'rb') as stream:
        # Interleaved non-subunit bytes (a test's stray output) are skipped.
        case = subunit.ByteStreamToStreamResult(
            stream, non_subunit_name='stdout')
        case.run(counter)
    tally = collections.Counter(counter.outcomes.values())
    passed = tally['success'] + tally['xfail']
    failed = tally['fail'] + tally['uxsuccess']
    return passed, failed, tally['skip'], [
        t for t, s in counter.outcomes.items() if s in ('fail', 'uxsuccess')]


def _exit_code(path):
    """The runner's exit code saved beside its stream, 0 if none."""
    try:
        with open(os.path.splitext(path)[0] + '.rc') as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def main(args):
    total = collections.Counter()
    for arg in args:
        name, _, path = arg.partition('=')
        try:
            passed, failed, skipped, failures = count(path)
        except OSError:
            passed, failed, skipped, failures = 0, 0, 0, []
        if passed + failed + skipped == 0:
            failed, failures = 1, ['%s: no test results' % name]
        rc = _exit_code(path)
        if rc and not failed:
            failed, failures = 1, ['%s: the runner exited %d (timed out or '
                                   'crashed) after its tests' % (name, rc)]
        print('%-14s %5d passed, %d failed, %d skipped'
              % (name, passed, failed, skipped))
        for test_id in failures[:50]:
            print('    FAILED %s' % test_id)
        total.update(passed=passed, failed=failed, skipped=skipped)
    print('%d passed, %d failed, %d skipped'
          % (total['passed'], total['failed'], total['skipped']))
    return 1 if total['failed'] else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
