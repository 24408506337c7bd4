"""One error type for everything a person can get wrong.

Library code raises :class:`DeepCanvasError` with a message written for a person
("cannot read 'x.jpg': not an image"); the CLI prints it on one line and exits
non-zero. Any other exception is a bug, and its traceback is fine to show.
"""


class DeepCanvasError(Exception):
    """A user-facing error: bad input, missing weights, unwritable output."""


def check_number(name: str, value, *, minimum=None, positive=False, integer=False, maximum=None):
    """Validate a numeric argument; return it (as int/float).

    ``maximum`` defaults to the upper limit :mod:`deepcanvas.limits` declares for ``name``.
    """
    import math

    from .limits import maximum_of

    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise DeepCanvasError(f"{name} must be a number, got {value!r}"[:200]) from None
    if math.isnan(v) or math.isinf(v):
        raise DeepCanvasError(f"{name} must be a finite number, got {value!r}")
    if integer:
        if v != int(v):
            raise DeepCanvasError(f"{name} must be a whole number, got {value!r}")
        v = int(v)
    if positive and v <= 0:
        raise DeepCanvasError(f"{name} must be greater than 0, got {value!r}")
    if minimum is not None and v < minimum:
        raise DeepCanvasError(f"{name} must be at least {minimum}, got {value!r}")
    maximum = maximum_of(name) if maximum is None else maximum
    if maximum is not None and v > maximum:
        raise DeepCanvasError(f"{name} must be at most {maximum:,}, got {value!r}"[:200])
    return v
