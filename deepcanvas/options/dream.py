"""DeepDream's options, shared by a dream, a dream zoom and a dream video so that they cannot drift apart.

A picture's own options (a still dream's size, mask and feather; a video's clip) are the techniques' own.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import limits
from ..errors import DeepCanvasError
from ..signature import check_record
from .common import option


@dataclass(frozen=True)
class DreamOptions:
    """How a dream grows: which features it amplifies, on how many octaves, with what steps."""

    layers: str | None = option(
        None, 'layers whose activations to amplify, with optional weights, e.g. "block10" or "block6:1,block10:0.5" '
              "(default: the model's dream layers: block10, or relu4_3 on VGGs).")
    channels: str | None = option(None, 'amplify only these channels of the layers, e.g. "12,40".')
    octaves: int = option(4, "number of scales, each octave_scale times smaller than the next.", integer=True,
                          positive=True)
    octave_scale: float = option(1.4, "size ratio between neighbouring octaves (greater than 1).")
    iterations: int = option(10, "gradient steps per octave.", integer=True, positive=True)
    lr: float | None = option(
        None, "step size in pixel values (0..1) on the normalised gradient (default: 0.01; 0.004 for VGGs).",
        positive=True)
    jitter: int = option(32, "largest random shift of the image before each step, in pixels.", integer=True,
                         minimum=0)
    guide: str | None = option(None, "image whose features to dream toward, instead of amplifying the photo's own.")
    # The smallest tile holds 4 tile margins (techniques.dream_octaves.TILE_MARGIN): limits.py says how many px.
    tile: int = option(
        512, "process images larger than this many pixels in tiles of this size (bounds memory; at least 256).",
        integer=True, minimum=limits.range_of("tile", "dream_steps").minimum)

    def __post_init__(self):
        check_record(self)
        scale = limits.check_number("octave_scale", self.octave_scale)
        if scale <= 1:
            raise DeepCanvasError(f"octave_scale must be greater than 1, got {scale!r}")
        object.__setattr__(self, "octave_scale", scale)
