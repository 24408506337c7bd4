"""Class visualization's options (with NetworkOptions, whose pooling it leaves out, and RunOptions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import DeepCanvasError
from ..signature import check_record
from .common import option

ParamKind = Literal["fourier", "pixel"]


@dataclass(frozen=True)
class ClassvizOptions:
    """How a class visualization is parameterised, transformed and optimised (None: the param's default)."""

    param: ParamKind = option(
        "fourier", "fourier (lucid's decorrelated Fourier image and random transforms) or pixel (the seed's pixel "
                   "ascent with jitter, periodic blur and clipping).")
    size: int = option(224, "width and height of the image in pixels.", integer=True, positive=True)
    iterations: int = option(512, "optimisation steps.", integer=True, positive=True)
    lr: float | None = option(
        None, "learning rate (default 0.1 for fourier's Adam; 0.01, the mean pixel change per step, for pixel).",
        positive=True)
    objective: str | None = option(
        None, "channel/neuron terms on any layer added to each image's class term (or alone when no class is "
              'given), e.g. "block10:37", "neuron:block10:37", "block10:37*2+logits:1".')
    l2_weight: float | None = option(
        None, "the seed's L2 decay: each step's gradient pulls every pixel toward grey by 2 * l2_weight * (x - 0.5) "
              "(default 0 for fourier, 0.01 for pixel).", minimum=0)
    blur_every: int = option(10, "pixel only: blur the image every this many steps (0: never).", integer=True,
                             minimum=0)
    blur_sigma: float = option(0.5, "pixel only: standard deviation of that Gaussian blur in pixels.", minimum=0)
    jitter: int = option(16, "largest random shift in pixels before each step.", integer=True, minimum=0)
    scale: float = option(0.25, "fourier only: random rescaling of up to this fraction each step.", minimum=0)
    rotate: float = option(20.0, "fourier only: random rotation of up to this many degrees each step.", minimum=0)
    crop: float = option(
        0.5, "fourier only: each step the network sees a random crop of at least this share of the area, zoomed "
             "back to full size (1: no cropping).", positive=True)
    decay_power: float = option(
        1.35, "fourier only: the spectrum's falloff 1/f^p (lucid's 1; higher: smoother, larger shapes).", minimum=0)
    decorrelate: bool = option(True, "fourier only: optimise in ImageNet's decorrelated colour space.")
    lr_floor: float | None = option(
        None, "the learning rate falls along half a cosine to this share of lr by the last step (1: constant; "
              "default 0.3 for fourier, 1 for pixel).", minimum=0, maximum=1)
    tv_weight: float = option(0.0, "weight of a total-variation penalty on the image (0: none).", minimum=0)
    cutoff: float = option(
        0.4, "fourier only: taper the spectrum above this frequency in cycles per pixel (Butterworth, order 4; 0: "
             "none, 0.5: Nyquist), which keeps the dotted near-Nyquist texture out of the image.", minimum=0,
        maximum=1)

    def __post_init__(self):
        check_record(self)
        if self.scale >= 1:
            raise DeepCanvasError(f"scale must be below 1, got {self.scale!r}")
        if self.crop > 1:
            raise DeepCanvasError(f"crop must be at most 1, got {self.crop!r}")
