"""Count test outcomes in subunit v2 streams: prints 'N passed, N failed'.

Usage: subunit_summary.py NAME=FILE [NAME=FILE ...]
A missing or empty stream counts as one failure (the runner died), and so
does a runner that exited non-zero (FILE with .rc for .subunit holds its
exit code) without any failed test: it timed out or crashed after them.

       subunit_summary.py --detail DETAIL FILE
prints, test by test, the detail named DETAIL of the tests that have one
(with the outcome): what a scenario did, whether it passed or not.
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


class _Details(_Counter):
    def __init__(self, name):
        super().__init__()
        self.name = name
        self.details = collections.defaultdict(bytes)

    def status(self, test_id=None, file_name=None, file_bytes=None,
               **kwargs):
        super().status(test_id=test_id, **kwargs)
        if test_id and file_name == self.name and file_bytes:
            self.details[test_id] += file_bytes


def _read(path, result):
    with open(path, 'rb') as stream:
        # Interleaved non-subunit bytes (a test's stray output) are skipped.
        case = subunit.ByteStreamToStreamResult(
            stream, non_subunit_name='stdout')
        case.run(result)


def show_detail(name, path):
    result = _Details(name)
    try:
        _read(path, result)
    except OSError as exc:
        print('no results: %s' % exc)
        return
    for test_id, text in sorted(result.details.items()):
        print('%s (%s)\n    %s' % (
            test_id, result.outcomes.get(test_id, '?'),
            text.decode('utf-8', 'replace').strip().replace('\n', '\n    ')))


def count(path):
    counter = _Counter()
    _read(path, counter)
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
    if sys.argv[1:2] == ['--detail'] and len(sys.argv) == 4:
        show_detail(sys.argv[2], sys.argv[3])
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
