"""The ranges of the techniques' numeric arguments, declared once.

:func:`check_number` (which every technique calls on its numbers)
applies the upper limits below to any argument of that name, so the API, the CLI and
the studio all refuse ``size=100000`` or ``iterations=10**12`` the same way. The studio
also checks every submitted number against the whole range (:func:`check`) before a
job is queued, so a value the technique would refuse never waits in the queue;
tests/test_limits.py runs each technique on a value just outside each range to keep
this table and the techniques' own checks in step.

A leaf module: no torch, nothing of deepcanvas but the error type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import DeepCanvasError


@dataclass(frozen=True)
class Range:
    """``minimum <= value <= maximum`` (``value > minimum`` when ``above``; ``value < maximum`` when ``below``)."""

    minimum: float
    maximum: float
    integer: bool = False
    above: bool = False
    below: bool = False

    def describe(self) -> str:
        lo = f"greater than {_fmt(self.minimum)}" if self.above else f"at least {_fmt(self.minimum)}"
        hi = f"below {_fmt(self.maximum)}" if self.below else f"at most {_fmt(self.maximum)}"
        return f"{lo} and {hi}"


def _fmt(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


#: The largest image side (size, min_size, tile) and the longest runs any entry point accepts.
MAX_SIDE = 16384
MAX_ITERATIONS = 100_000
MAX_FRAMES = 10_000
MAX_WEIGHT = 1e12
#: The smallest side style transfer runs at in the studio (each scale, and the style images at it).
MIN_STYLE_SIDE = 32

#: By argument name; :data:`BY_FUNCTION` holds a technique's narrower range for a shared name.
LIMITS: dict[str, Range] = {
    "size": Range(1, MAX_SIDE, integer=True),
    "min_size": Range(1, MAX_SIDE, integer=True),
    "tile": Range(1, MAX_SIDE, integer=True),
    "iterations": Range(1, MAX_ITERATIONS, integer=True),
    "frames": Range(1, MAX_FRAMES, integer=True),
    "octaves": Range(1, 32, integer=True),
    "octave_scale": Range(1, 8, above=True),
    "jitter": Range(0, 4096, integer=True),
    "blur_every": Range(0, MAX_ITERATIONS, integer=True),
    "seed": Range(0, 2**63 - 1, integer=True),
    "lr": Range(0, 1e4, above=True),
    "style_scale": Range(0, 16, above=True),
    "content_scale": Range(1, 4, integer=True),  # 1, 2 or 4: StyleOptions checks the value
    "init_noise": Range(0, 1e3),
    "content_weight": Range(0, MAX_WEIGHT),
    "style_weight": Range(0, MAX_WEIGHT),
    "tv_weight": Range(0, MAX_WEIGHT),
    "range_weight": Range(0, MAX_WEIGHT),
    "l2_weight": Range(0, MAX_WEIGHT),
    "alpha_weight": Range(0, MAX_WEIGHT),
    "colour_weight": Range(0, MAX_WEIGHT),
    "adam_beta1": Range(0, 1, below=True),
    "adam_beta2": Range(0, 1, below=True),
    "adam_eps": Range(0, 1, above=True),
    "adam_eps_rel": Range(0, 100),
    "style_strength": Range(0, 1),
    "feather": Range(0, 0.25),  # regions.feather: a share of the image's longest side
    "blur_sigma": Range(0, 100),
    "scale": Range(0, 1, below=True),
    "rotate": Range(0, 360),
    "crop": Range(0, 1, above=True),
    "decay_power": Range(0, 10),
    "alpha": Range(0, 100, above=True),
    "beta": Range(0, 100, above=True),
    "zoom": Range(1, 100),
    "fps": Range(0, 240, above=True),
    # video (techniques/style_video.py, dream_video.py)
    "temporal_weight": Range(0, MAX_WEIGHT),
    "later_iterations": Range(1, MAX_ITERATIONS, integer=True),
    "blend": Range(0, 1),
    "start": Range(0, 360_000),
    "duration": Range(0, 360_000, above=True),
    "overlap": Range(0, 100, integer=True),
    "chunk": Range(0, MAX_FRAMES, integer=True),
    "memory_limit_gb": Range(0, 4096, above=True),
    "lr_floor": Range(0, 1),
    "cutoff": Range(0, 1),
    # prints (options/prints.py)
    "dpi": Range(0, 10_000, above=True),
    "working_size": Range(1, MAX_SIDE, integer=True),
    "print_iterations": Range(1, MAX_ITERATIONS, integer=True),  # classviz: cycles per pixel (0.5 is Nyquist; 0: no taper)
}

#: Narrower ranges one technique's ``*_steps`` function sets for a shared name.
BY_FUNCTION: dict[str, dict[str, Range]] = {
    "style_transfer_steps": {"tile": Range(384, MAX_SIDE, integer=True),  # 4 x techniques.style_targets.TILE_MARGIN
                             # VGG's deepest style layer sits behind 4 poolings: smaller sides fail at run time
                             "size": Range(MIN_STYLE_SIDE, MAX_SIDE, integer=True),
                             "min_size": Range(MIN_STYLE_SIDE, MAX_SIDE, integer=True)},
    "dream_steps": {"tile": Range(256, MAX_SIDE, integer=True)},  # 4 x techniques.dream_octaves.TILE_MARGIN
}


def range_of(name: str, function: str | None = None) -> Range | None:
    return BY_FUNCTION.get(function or "", {}).get(name) or LIMITS.get(name)


def maximum_of(name: str) -> float | None:
    r = LIMITS.get(name)
    return None if r is None else r.maximum


def check_number(name: str, value, *, minimum=None, positive=False, integer=False, maximum=None):
    """Validate a numeric argument; return it (as int/float).

    ``maximum`` defaults to the upper limit declared above for ``name``.
    """
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


def check(name: str, value, function: str | None = None):
    """``value`` as an int or float inside its range, else a one-line DeepCanvasError naming ``name``."""
    if isinstance(value, bool):
        raise DeepCanvasError(f"{name} must be a number, got {value!r}")
    r = range_of(name, function)
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise DeepCanvasError(f"{name} must be a number, got {short(value)}") from None
    if math.isnan(v) or math.isinf(v):
        raise DeepCanvasError(f"{name} must be a finite number, got {short(value)}")
    if r is None:
        return v
    if r.integer:
        if v != int(v):
            raise DeepCanvasError(f"{name} must be a whole number, got {short(value)}")
        v = int(v)
    low = v <= r.minimum if r.above else v < r.minimum
    high = v >= r.maximum if r.below else v > r.maximum
    if low or high:
        raise DeepCanvasError(f"{name} must be {r.describe()}, got {short(value)}")
    return v


def short(value) -> str:
    """``repr(value)`` cut to a length a one-line message can hold."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return f"a number of over {int(value.bit_length() * 0.30103):,} digits"
    return text if len(text) <= 40 else text[:20] + "..." + text[-8:] + f" ({len(text)} characters)"
