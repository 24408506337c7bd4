"""One error type for everything a person can get wrong.

Library code raises :class:`DeepCanvasError` with a message written for a person
("cannot read 'x.jpg': not an image"); the CLI prints it on one line and exits
non-zero. Any other exception is a bug, and its traceback is fine to show.
"""


class DeepCanvasError(Exception):
    """A user-facing error: bad input, missing weights, unwritable output."""
