"""The one error type of the toolkit: unusable user input, reported as one line (no traceback).

Every script catches :class:`InputError` in :func:`models.cli.main`, prints ``error: <message>`` and exits 2.
"""


class InputError(Exception):
    """Unusable user input. ``str(err)`` is one line: the file, what is wrong, and what to do."""
