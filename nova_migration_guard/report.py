"""Plain-text output shared by the demo command and the benchmarks."""

import os
import sys

# The streams the process started with: nova.test.TestCase replaces
# sys.stdout/err while an embedded cloud runs (OS_STDOUT_CAPTURE).
STDOUT = sys.stdout
STDERR = sys.stderr


def table(header, rows, right=()):
    """The lines of a text table: columns two spaces apart, each padded to
    its widest cell, left-aligned unless its index is in ``right``, with a
    dashed rule under the header."""
    widths = [max(len(cell) for cell in column)
              for column in zip(header, *rows)]

    def line(cells):
        return '  '.join(cell.rjust(w) if i in right else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths)))
    return ([line(header), line(['-' * w for w in widths])] +
            [line(row) for row in rows])


def progress(text):
    """A progress line on the original stderr."""
    STDERR.write(text + '\n')
    STDERR.flush()


def publish(text, path):
    """``text`` on the original stdout and in the file ``path``."""
    STDOUT.write(text)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
