"""The one error type of the toolkit: unusable user input, reported as one line (no traceback).

Every script catches :class:`InputError` in :func:`models.cli.main`, prints ``error: <message>`` and exits 2.
A usable input whose result is not trustworthy gets a :class:`ValidityWarning` instead.
"""


class InputError(Exception):
    """Unusable user input. ``str(err)`` is one line: the file, what is wrong, and what to do."""


class ValidityWarning(UserWarning):
    """A number outside the range where it was validated (too few frames, resolution, black holes, …): it is still
    returned, with this warning saying why it may not be trusted (``warnings.warn``; the scripts print it)."""
