"""Prints: a style transfer above the working size, made coarse to fine (PrintOptions), and the print sizes
(``30x40cm``, ``8x10in``) that give its pixels with a DPI."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import limits
from ..errors import DeepCanvasError
from ..signature import check_record
from .common import option

#: Inches per unit of a print size.
UNITS = {"in": 1.0, "inch": 1.0, "cm": 1 / 2.54, "mm": 1 / 25.4}
#: The size the default look is made (and approved) at: larger sizes are refined from it.
WORKING_SIZE = 512


def parse_print_size(text: str) -> tuple[float, float]:
    """'30x40cm' or '8 x 10 in' -> (width, height) in inches; a one-line error for anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[x×]\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", str(text).lower())
    if not m:
        raise DeepCanvasError(f"print_size must look like 30x40cm or 8x10in, got {str(text)[:40]!r}")
    w, h, unit = float(m.group(1)), float(m.group(2)), m.group(3)
    if unit not in UNITS:
        raise DeepCanvasError(f"print_size's unit must be cm, mm or in, got {unit!r}")
    if w <= 0 or h <= 0:
        raise DeepCanvasError(f"print_size must be greater than 0 on both sides, got {text!r}")
    return w * UNITS[unit], h * UNITS[unit]


@dataclass(frozen=True)
class PrintOptions:
    """How a picture larger than the working size is made: at the working size with the normal schedule first,
    then upsampled and refined at each larger size (x2 steps), so the approved composition survives and
    the strokes gain detail instead of being blown up."""

    print_size: str | None = option(
        None, 'the print\'s size, e.g. "30x40cm" or "8x10in" (with dpi): the picture fits inside it at that '
              "many dots per inch (this sets size).")
    dpi: float | None = option(None, "dots per inch: with print_size, the pixels; recorded in the PNG or JPEG.",
                               positive=True)
    working_size: int = option(
        WORKING_SIZE, "sizes above this are made at this size first, then refined at each larger size.",
        integer=True, positive=True)
    print_iterations: int | None = option(
        None, "iterations at the first size above working_size, halved at each doubling after it (default: a "
              "sixth of the working size's).", integer=True, positive=True)
    print_from_init: bool = option(
        False, "init is a finished picture: a print skips the working size and refines it at each larger size.")

    def __post_init__(self):
        check_record(self)
        if self.print_size is not None:
            if self.dpi is None:
                raise DeepCanvasError("print_size needs a dpi to give the pixels, e.g. --dpi 300")
            parse_print_size(self.print_size)

    def side(self, content_hw: tuple[int, int], size: int) -> int:
        """The picture's longest side in pixels: ``size``, or the most that fits the print at the DPI."""
        if self.print_size is None:
            return size
        bw, bh = sorted(parse_print_size(self.print_size))
        h, w = content_hw
        short, long = sorted((h, w))  # the print turned to the picture's orientation
        side = int(min(bh * self.dpi, bw * self.dpi * long / short))
        limit = limits.MAX_SIDE
        if side > limit:
            raise DeepCanvasError(f"print_size {self.print_size} at {self.dpi:g} dpi is {side:,} px on the "
                                  f"longest side, over the {limit:,} px limit: lower the dpi")
        return max(1, side)
