"""One error type for everything a person can get wrong.

Library code raises :class:`DeepCanvasError` with a message written for a person
("cannot read 'x.jpg': not an image"); the CLI prints it on one line and exits
non-zero. Any other exception is a bug, and its traceback is fine to show.
"""


class DeepCanvasError(Exception):
    """A user-facing error: bad input, missing weights, unwritable output."""


class Notice(UserWarning):
    """Something a person should know about a run that is no problem (a print resuming from a finished
    size): a warning, so that the API's callers can filter it; the CLI shows it as one line."""
