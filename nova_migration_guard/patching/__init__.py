"""Apply, revert and inspect the Nova patch series in ``patches/``.

The patch set only adds hook points to Nova; all behaviour lives in this
package.  ``series`` finds the series for a Nova version, ``tree`` changes a
Nova installation all-or-nothing.
"""


class PatchError(Exception):
    """A refusal: its message is the one line the command prints."""
