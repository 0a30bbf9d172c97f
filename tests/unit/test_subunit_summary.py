"""tools/subunit_summary.py: the counts CI ends with, and the scenario
details it prints before them."""

import importlib.util
import io
import pathlib
import tempfile
from unittest import mock

import subunit
import testtools

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location(
        'subunit_summary', ROOT / 'tools' / 'subunit_summary.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stream(path, tests):
    """Write a subunit v2 stream: (test id, status, {detail: text})."""
    with open(path, 'wb') as f:
        out = subunit.StreamResultToBytes(f)
        for test_id, status, details in tests:
            out.status(test_id=test_id, test_status='inprogress')
            for name, text in details.items():
                out.status(test_id=test_id, file_name=name,
                           file_bytes=text.encode(), eof=True,
                           mime_type='text/plain; charset=utf8')
            out.status(test_id=test_id, test_status=status)


class SubunitSummaryTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tool = _load()
        self.path = pathlib.Path(tempfile.mkdtemp()) / 'realcloud.subunit'
        self.addCleanup(lambda: self.path.unlink(missing_ok=True))
        _stream(self.path, [
            ('t.Guarded.test_a', 'success',
             {'summary': 'rounds: 20; violated: 0\nserved by: x pid 1',
              'rounds': 'not shown'}),
            ('t.Stock.test_b', 'fail', {'summary': 'rounds: 1; ERROR: 1'}),
            ('t.Other.test_c', 'success', {}),
        ])

    def _output(self, *args):
        with mock.patch('sys.stdout', new_callable=io.StringIO) as out:
            result = args[0](*args[1:])
        return result, out.getvalue()

    def test_detail_test_by_test_with_outcome(self):
        _, text = self._output(self.tool.show_detail, 'summary',
                               str(self.path))
        self.assertEqual(
            't.Guarded.test_a (success)\n'
            '    rounds: 20; violated: 0\n'
            '    served by: x pid 1\n'
            't.Stock.test_b (fail)\n'
            '    rounds: 1; ERROR: 1\n', text)

    def test_counts_end_with_the_total(self):
        status, text = self._output(self.tool.main,
                                    ['realcloud=%s' % self.path])
        self.assertEqual(1, status)
        self.assertEqual('2 passed, 1 failed, 0 skipped',
                         text.splitlines()[-1])
        self.assertIn('    FAILED t.Stock.test_b', text)
